//! `kill` from userspace, for rules the kernel cannot express: through a
//! pidfd, checked against the process's start time, so that a pid reused by
//! another process after the offender exited is never signalled.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::Path,
};

use crate::process as procfs;

/// Why a process could not be killed.
#[derive(Debug, thiserror::Error)]
pub enum KillError {
    /// It is gone already (exited, or its pid now names another process).
    #[error("pid {pid} has exited")]
    Gone {
        /// The process.
        pid: u32,
    },
    /// The kernel refused.
    #[error("{what} for pid {pid}")]
    Os {
        /// The process.
        pid: u32,
        /// The call that failed.
        what: &'static str,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

/// Sends SIGKILL to process `pid` if it is still the one that started at
/// `start_ns` (`CLOCK_BOOTTIME`, as events carry it).
pub fn kill(pid: u32, start_ns: u64, tick_ns: u64) -> Result<(), KillError> {
    let os = |what| move |source| KillError::Os { pid, what, source };
    let raw_pid = libc::pid_t::try_from(pid).map_err(|_| KillError::Gone { pid })?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw_pid, 0) };
    if fd < 0 {
        let error = io::Error::last_os_error();
        return match error.raw_os_error() {
            Some(libc::ESRCH) => Err(KillError::Gone { pid }),
            _ => Err(os("pidfd_open")(error)),
        };
    }
    let raw_fd = i32::try_from(fd).map_err(|_| KillError::Gone { pid })?;
    // SAFETY: the descriptor was just returned by pidfd_open and nothing else
    // owns it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw_fd) };
    // The pidfd now names whichever process had the pid when it was opened;
    // that it started when the event says makes it the offender. Signals
    // through the pidfd reach that process or nobody.
    let started =
        procfs::start_ticks(Path::new("/proc"), pid).map_err(|_| KillError::Gone { pid })?;
    if tick_ns == 0 || started != start_ns / tick_ns {
        return Err(KillError::Gone { pid });
    }
    // SAFETY: pidfd_send_signal reads the descriptor and the signal; no info
    // struct is passed.
    let sent = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if sent < 0 {
        let error = io::Error::last_os_error();
        return match error.raw_os_error() {
            Some(libc::ESRCH) => Err(KillError::Gone { pid }),
            _ => Err(os("pidfd_send_signal")(error)),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    fn start_ns(pid: u32, tick: u64) -> u64 {
        procfs::start_ticks(Path::new("/proc"), pid).expect("stat") * tick
    }

    #[test]
    fn the_process_that_started_then_is_killed_and_a_different_start_is_not() {
        let tick = procfs::clock_tick_ns().expect("tick");
        let mut child = Command::new("sleep").arg("30").spawn().expect("sleep");
        let pid = child.id();
        let started = start_ns(pid, tick);
        // Another process's start (a tick later) must not be signalled.
        assert!(matches!(
            kill(pid, started + tick, tick),
            Err(KillError::Gone { .. })
        ));
        assert!(child.try_wait().expect("wait").is_none(), "still running");
        kill(pid, started, tick).expect("kill");
        let status = child.wait().expect("wait");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert!(matches!(
            kill(pid, started, tick),
            Err(KillError::Gone { .. })
        ));
    }
}
