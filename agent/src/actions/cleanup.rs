//! Undoing every containment, with the agent stopped: thaw what the ledger
//! says is frozen, remove every pinned link (which detaches the isolation
//! programs), unpin every map and remove the pin directory.
//!
//! Nothing is loaded: only the pinned objects are touched. Each item that
//! fails is reported and the rest still done; the ledger is kept when a
//! frozen cgroup could not be thawed, so that a second run can retry.

use std::{
    collections::HashSet,
    io,
    os::fd::{AsRawFd, FromRawFd},
    path::{Path, PathBuf},
};

use serde::Serialize;

use super::{
    containment::is_same_cgroup,
    freeze::{self, FREEZE_TIMEOUT, FreezeError},
    ledger::{Ledger, LedgerError, PinDir},
};

/// One item cleanup could not undo.
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    /// The pin directory is unusable or the ledger could not be read; the
    /// ledger is kept.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A frozen cgroup could not be thawed.
    #[error("cgroup {cgroup_id}: thawing")]
    Thaw {
        /// The cgroup.
        cgroup_id: u64,
        /// What failed.
        #[source]
        source: FreezeError,
    },
    /// A directory could not be listed.
    #[error("listing {path}")]
    List {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A pin or directory could not be removed.
    #[error("removing {path}")]
    Remove {
        /// The pin or directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

/// What [`cleanup`] did.
#[derive(Debug, Default, Serialize)]
pub struct CleanupReport {
    /// Cgroups thawed.
    pub thawed: Vec<PathBuf>,
    /// Cgroups the ledger listed that no longer exist.
    pub gone: Vec<u64>,
    /// Link pins removed: each detached a program.
    pub detached: Vec<PathBuf>,
    /// Map pins (and any other pins) removed.
    pub unpinned: Vec<PathBuf>,
    /// Whether the pin directory is gone.
    pub removed_dir: bool,
    /// What failed, item by item.
    #[serde(serialize_with = "errors_as_text")]
    pub errors: Vec<CleanupError>,
}

impl CleanupReport {
    /// Whether everything was undone.
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Undoes every containment recorded under `pin_dir` and removes it. A
/// missing directory has nothing to undo.
pub fn cleanup(pin_dir: &Path) -> CleanupReport {
    let mut report = CleanupReport::default();
    if !pin_dir.exists() {
        report.removed_dir = true;
        return report;
    }
    let pin = PinDir::new(pin_dir);
    // Everything below the directory is removed: it must be ours, on bpffs.
    if let Err(error) = pin.check_bpffs() {
        report.errors.push(error.into());
        return report;
    }
    let mut keep = HashSet::new();
    if pin.ledger().exists() && !thaw_all(&pin, &mut report) {
        keep.insert(pin.ledger());
    }
    remove_below(&pin, pin_dir, &keep, &mut report);
    match std::fs::remove_dir(pin_dir) {
        Ok(()) => report.removed_dir = true,
        Err(source) if keep.is_empty() => report.errors.push(CleanupError::Remove {
            path: pin_dir.to_owned(),
            source,
        }),
        Err(_) => {}
    }
    for path in &report.thawed {
        tracing::info!(cgroup = %path.display(), "cleanup thawed a cgroup");
    }
    tracing::info!(
        thawed = report.thawed.len(),
        detached = report.detached.len(),
        unpinned = report.unpinned.len(),
        errors = report.errors.len(),
        "containment cleaned up"
    );
    report
}

/// Thaws every frozen cgroup of the ledger; false if the ledger must be kept.
fn thaw_all(pin: &PinDir, report: &mut CleanupReport) -> bool {
    let entries = match Ledger::open_pinned(pin).and_then(|ledger| ledger.entries()) {
        Ok(entries) => entries,
        Err(error) => {
            report.errors.push(error.into());
            return false;
        }
    };
    let mut all_thawed = true;
    for entry in entries.into_iter().filter(|e| e.frozen.is_some()) {
        if !is_same_cgroup(&entry.cgroup_dir, entry.cgroup_id) {
            report.gone.push(entry.cgroup_id);
            continue;
        }
        match freeze::thaw_cgroup(&entry.cgroup_dir, FREEZE_TIMEOUT) {
            Ok(()) => report.thawed.push(entry.cgroup_dir),
            Err(source) => {
                all_thawed = false;
                report.errors.push(CleanupError::Thaw {
                    cgroup_id: entry.cgroup_id,
                    source,
                });
            }
        }
    }
    all_thawed
}

/// Removes every pin and directory below `dir` but those in `keep`.
fn remove_below(pin: &PinDir, dir: &Path, keep: &HashSet<PathBuf>, report: &mut CleanupReport) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(source) => {
            report.errors.push(CleanupError::List {
                path: dir.to_owned(),
                source,
            });
            return;
        }
    };
    let links = pin.links();
    for entry in entries {
        let path = match entry {
            Ok(entry) => entry.path(),
            Err(source) => {
                report.errors.push(CleanupError::List {
                    path: dir.to_owned(),
                    source,
                });
                continue;
            }
        };
        if keep.contains(&path) {
            continue;
        }
        let is_dir = path.is_dir();
        let result = if is_dir {
            remove_below(pin, &path, keep, report);
            std::fs::remove_dir(&path)
        } else if dir == links {
            detach_pinned_link(&path).and_then(|()| std::fs::remove_file(&path))
        } else {
            std::fs::remove_file(&path)
        };
        match result {
            Ok(()) if is_dir => {}
            Ok(()) if dir == links => report.detached.push(path),
            Ok(()) => report.unpinned.push(path),
            // A directory that holds a kept pin stays, as it should.
            Err(_) if is_dir && keep.iter().any(|k| k.starts_with(&path)) => {}
            Err(source) => report.errors.push(CleanupError::Remove { path, source }),
        }
    }
}

/// Detaches the link pinned at `path` from its cgroup now. Removing the pin
/// alone drops the kernel's last reference to the link, and the kernel
/// releases a link from a work queue: the program could stay attached for a
/// moment after cleanup said it was detached.
fn detach_pinned_link(path: &Path) -> io::Result<()> {
    const BPF_OBJ_GET: libc::c_long = 7;
    const BPF_LINK_DETACH: libc::c_long = 34;
    // `union bpf_attr`, as large as any command's part of it; each command
    // reads its first fields.
    let mut attr = [0u64; 16];
    let pathname = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    attr[0] = pathname.as_ptr() as u64;
    let bpf = |command: libc::c_long, attr: &mut [u64; 16]| {
        // SAFETY: `attr` is a zeroed `union bpf_attr` of the size passed,
        // holding the fields `command` reads (a NUL-terminated path that
        // outlives the call, or a descriptor).
        unsafe {
            libc::syscall(
                libc::SYS_bpf,
                command,
                attr.as_mut_ptr(),
                std::mem::size_of_val(attr),
            )
        }
    };
    let fd = bpf(BPF_OBJ_GET, &mut attr);
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    // SAFETY: the kernel just returned this descriptor, owned by nobody else.
    let link = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let mut attr = [0u64; 16];
    attr[0] = u64::from(link.as_raw_fd().cast_unsigned());
    if bpf(BPF_LINK_DETACH, &mut attr) < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn errors_as_text<S: serde::Serializer>(
    errors: &[CleanupError],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use std::fmt::Write;
    serializer.collect_seq(errors.iter().map(|error| {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            let _ = write!(text, ": {cause}");
            source = cause.source();
        }
        text
    }))
}
