//! Freezing a cgroup v2 directory through `cgroup.freeze`.
//!
//! A frozen cgroup's processes stay in the kernel, stopped where they were, so
//! that their memory, files and sockets can be examined; they cannot tell
//! they were stopped. Freezing is asynchronous: the kernel reports it done in
//! `cgroup.events` once every task has stopped, which we wait for, bounded.
//!
//! These calls block for up to their timeout; async callers run them on a
//! blocking thread.

use std::{
    io,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// How long [`freeze_cgroup`] and [`thaw_cgroup`] wait by default.
pub const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// Between two reads of `cgroup.events`: freezing usually takes a few
/// milliseconds, and the file is cheap to read.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Why a cgroup could not be frozen or thawed.
#[derive(Debug, thiserror::Error)]
pub enum FreezeError {
    /// `cgroup.freeze` could not be written (not cgroup v2, or the cgroup is gone).
    #[error("cgroup {path}: writing cgroup.freeze")]
    Write {
        /// The cgroup directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// `cgroup.events` could not be read.
    #[error("cgroup {path}: reading cgroup.events")]
    Events {
        /// The cgroup directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The kernel did not report the new state in time. The request stays
    /// written: the kernel completes it when it can.
    #[error("cgroup {path}: not {want} after {timeout:?}")]
    Timeout {
        /// The cgroup directory.
        path: PathBuf,
        /// `frozen` or `thawed`.
        want: &'static str,
        /// How long we waited.
        timeout: Duration,
    },
}

/// Freezes the cgroup at `dir` (and every cgroup below it) and waits up to
/// `timeout` until the kernel reports it frozen.
pub fn freeze_cgroup(dir: &Path, timeout: Duration) -> Result<(), FreezeError> {
    set_frozen(dir, true, timeout)
}

/// Thaws the cgroup at `dir` and waits up to `timeout` until the kernel
/// reports it thawed. A cgroup whose parent is frozen stays frozen.
pub fn thaw_cgroup(dir: &Path, timeout: Duration) -> Result<(), FreezeError> {
    set_frozen(dir, false, timeout)
}

/// Whether the kernel reports the cgroup at `dir` frozen.
pub fn is_frozen(dir: &Path) -> Result<bool, FreezeError> {
    let events = dir.join("cgroup.events");
    let text = std::fs::read_to_string(&events).map_err(|source| FreezeError::Events {
        path: dir.to_owned(),
        source,
    })?;
    Ok(frozen_in_events(&text))
}

fn set_frozen(dir: &Path, frozen: bool, timeout: Duration) -> Result<(), FreezeError> {
    std::fs::write(dir.join("cgroup.freeze"), if frozen { "1" } else { "0" }).map_err(
        |source| FreezeError::Write {
            path: dir.to_owned(),
            source,
        },
    )?;
    let deadline = Instant::now() + timeout;
    loop {
        if is_frozen(dir)? == frozen {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(FreezeError::Timeout {
                path: dir.to_owned(),
                want: if frozen { "frozen" } else { "thawed" },
                timeout,
            });
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// `cgroup.events` is `key value` lines: `populated 1`, `frozen 0`.
fn frozen_in_events(text: &str) -> bool {
    text.lines()
        .filter_map(|line| line.split_once(' '))
        .any(|(key, value)| key == "frozen" && value.trim() == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frozen_line_of_cgroup_events_is_what_counts() {
        assert!(frozen_in_events("populated 1\nfrozen 1\n"));
        assert!(!frozen_in_events("populated 1\nfrozen 0\n"));
        assert!(!frozen_in_events("populated 1\n"));
    }

    #[test]
    fn a_directory_without_cgroup_freeze_cannot_be_frozen() {
        let err = freeze_cgroup(Path::new("/proc/self"), Duration::ZERO)
            .expect_err("procfs has no cgroup.freeze");
        assert!(matches!(err, FreezeError::Write { .. }), "{err}");
    }
}
