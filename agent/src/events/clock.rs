//! Turning the kernel's timestamps into boot time and wall-clock time.
//!
//! The kernel stamps events with `CLOCK_MONOTONIC`, its cheapest precise clock
//! for a program; events carry `CLOCK_BOOTTIME`, the clock of process start
//! times, which also counts the time the machine spent suspended. That time
//! is sampled at each drain of the ring buffer ([`Suspended`]), so only an
//! event that waited in the ring across a suspend is stamped late, by the
//! length of the suspend. Boot time never jumps. Its offset to
//! `CLOCK_REALTIME` is sampled at start and refreshed periodically, so that a
//! clock step (NTP, an operator) shows up within one refresh.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Maps `CLOCK_BOOTTIME` nanoseconds to wall-clock time.
#[derive(Clone, Copy, Debug)]
pub struct BootClock {
    /// `CLOCK_REALTIME - CLOCK_BOOTTIME`, in nanoseconds.
    offset_ns: i128,
}

impl BootClock {
    /// Samples the offset now.
    pub fn now() -> Self {
        // Of a few samples, keep the one whose two realtime reads are closest,
        // which bounds how far the boottime read is from either.
        let mut best: Option<(i128, i128)> = None;
        for _ in 0..5 {
            let before = read(libc::CLOCK_REALTIME);
            let boot = read(libc::CLOCK_BOOTTIME);
            let after = read(libc::CLOCK_REALTIME);
            let gap = after - before;
            let offset = before + gap / 2 - boot;
            if best.is_none_or(|(g, _)| gap < g) {
                best = Some((gap, offset));
            }
        }
        Self {
            offset_ns: best.map_or(0, |(_, offset)| offset),
        }
    }

    /// The wall-clock time of a `CLOCK_BOOTTIME` reading.
    pub fn wall_time(&self, boot_ns: u64) -> SystemTime {
        let ns = i128::from(boot_ns) + self.offset_ns;
        match u64::try_from(ns) {
            Ok(ns) => UNIX_EPOCH + Duration::from_nanos(ns),
            Err(_) => UNIX_EPOCH,
        }
    }
}

/// How long the machine has been suspended since boot: `CLOCK_BOOTTIME -
/// CLOCK_MONOTONIC`, which changes only at a resume.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Suspended {
    ns: u64,
}

impl Suspended {
    /// Samples it now. The two clocks cannot be read at once: a boot-time
    /// read between two monotonic reads bounds it to their gap, and where
    /// that range holds 0 (a machine never suspended, most servers) it is 0
    /// exactly, so boot and monotonic stamps compare without an error of a
    /// few tens of nanoseconds.
    pub fn now() -> Self {
        let before = read(libc::CLOCK_MONOTONIC);
        let boot = read(libc::CLOCK_BOOTTIME);
        let after = read(libc::CLOCK_MONOTONIC);
        Self::between(boot - after, boot - before)
    }

    /// From the range the offset lies in.
    fn between(low: i128, high: i128) -> Self {
        let ns = if low <= 0 { 0 } else { low + (high - low) / 2 };
        Self {
            ns: u64::try_from(ns).unwrap_or(0),
        }
    }

    /// The `CLOCK_BOOTTIME` of a `CLOCK_MONOTONIC` reading taken since the
    /// last resume.
    pub fn boot_ns(self, monotonic_ns: u64) -> u64 {
        monotonic_ns.saturating_add(self.ns)
    }
}

/// The current `CLOCK_BOOTTIME` in nanoseconds.
pub fn boot_ns() -> u64 {
    u64::try_from(read(libc::CLOCK_BOOTTIME)).unwrap_or(0)
}

fn read(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write to; the clocks exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_time_of_now_maps_to_the_wall_clock_of_now() {
        let clock = BootClock::now();
        let wall = clock.wall_time(boot_ns());
        let skew = SystemTime::now()
            .duration_since(wall)
            .unwrap_or_else(|e| e.duration());
        assert!(skew < Duration::from_millis(50), "skew {skew:?}");
    }

    #[test]
    fn a_monotonic_reading_maps_to_the_boot_time_it_was_taken_at() {
        let monotonic = u64::try_from(read(libc::CLOCK_MONOTONIC)).expect("positive");
        let boot = boot_ns();
        let mapped = Suspended::now().boot_ns(monotonic);
        // The boot time was read after the monotonic one, within a
        // millisecond on any machine that is not thrashing.
        assert!(mapped <= boot, "{mapped} > {boot}");
        assert!(boot - mapped < 1_000_000, "{mapped} vs {boot}");
    }

    #[test]
    fn the_suspended_time_is_zero_when_the_reads_allow_it_and_else_their_middle() {
        assert_eq!(Suspended::between(-40, 30), Suspended { ns: 0 });
        assert_eq!(Suspended::between(0, 25), Suspended { ns: 0 });
        let resumed = Suspended::between(5_000_000_000, 5_000_000_040);
        assert_eq!(resumed, Suspended { ns: 5_000_000_020 });
        assert_eq!(resumed.boot_ns(1_000), 5_000_001_020);
    }

    #[test]
    fn timestamps_are_rfc3339_in_utc_with_nanoseconds() {
        let time = crate::events::event::WallTime(BootClock::now().wall_time(boot_ns()));
        let text = serde_json::to_value(time)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .expect("a time serializes as a string");
        assert_eq!(text.len(), "2026-11-26T05:18:39.123456789Z".len(), "{text}");
        assert!(text.ends_with('Z') && text.as_bytes()[10] == b'T', "{text}");
    }
}
