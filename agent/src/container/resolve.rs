//! From a cgroup id to the cgroup's path below its mount, without walking the
//! tree on every lookup.
//!
//! cgroupfs is a kernfs filesystem, and kernfs exports file handles whose
//! payload is the node's 64-bit id (`handle_type` `FILEID_KERNFS` = `0xfe`, 8
//! bytes). That id is the directory's inode number, which is what events carry
//! as `cgroup_id` (v2) and what a v1 hierarchy numbers its directories with. So
//! [`CgroupPaths`] builds the handle from the id, opens it with
//! `open_by_handle_at(2)` on the mount and reads the path back from
//! `/proc/self/fd/N`: two system calls, whatever the size of the tree. This
//! works on cgroup v2 and on cgroup v1 hierarchies alike (checked on Linux
//! 6.18 for `memory`, `pids`, `cpu` and `name=systemd`); it needs
//! `CAP_DAC_READ_SEARCH`.
//!
//! When handles do not work (no capability, an old kernel), [`CgroupPaths`]
//! says so once in the log and walks the mount instead, visiting at most
//! [`ResolveOptions::walk_limit`] directories per lookup. A walk also fills the
//! cache's free room with every directory it passes.
//!
//! Results are kept in a bounded cache ([`ResolveOptions::capacity`] entries,
//! CLOCK eviction). Cgroup ids are not reused, so a path, once found, stays
//! right for as long as the id is asked about. A cgroup that no longer exists
//! (a container that exited before its last events were looked up) is
//! remembered as gone for [`ResolveOptions::negative_ttl`] only, so that a
//! burst of late events costs one lookup without the dead filling the cache
//! for long; a zero TTL does not cache it at all.

use std::{
    ffi::CString,
    fs, io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::fs::{DirEntryExt, MetadataExt},
    },
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use super::cache::ClockCache;
use crate::cgroup::{self, CgroupError};

/// Entries [`CgroupPaths`] caches by default.
pub const DEFAULT_CAPACITY: usize = 16_384;

/// How long a vanished cgroup is remembered as gone by default.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(2);

/// Directories a fallback walk visits at most by default.
pub const DEFAULT_WALK_LIMIT: usize = 65_536;

/// `FILEID_KERNFS` from `linux/exportfs.h`: the payload is the 64-bit node id.
const FILEID_KERNFS: libc::c_int = 0xfe;

/// What the kernel appends to the path of an open directory that was removed
/// (a cgroup really named so would lose it: a risk taken).
const DELETED: &str = " (deleted)";

/// Why a cgroup id could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The cgroup mount could not be found.
    #[error("cannot find the cgroup mount")]
    Mount(#[source] CgroupError),
    /// The mount could not be opened.
    #[error("cannot open cgroup mount {mount}")]
    Open {
        /// The mount.
        mount: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The path is not the root of a cgroup filesystem.
    #[error("{mount} is not a cgroup v1 or v2 filesystem")]
    NotCgroup {
        /// The path.
        mount: PathBuf,
    },
    /// A system call failed for another reason than the cgroup being gone.
    #[error("{call} on cgroup mount {mount}")]
    Syscall {
        /// The system call.
        call: &'static str,
        /// The mount.
        mount: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The mount's root could not be read during a walk.
    #[error("cannot read cgroup directory {path}")]
    Walk {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A handle opened something outside the mount (the mount is not reachable
    /// from this process's root).
    #[error("cgroup {id} is at {path}, outside the mount {mount}")]
    OutsideMount {
        /// The cgroup id.
        id: u64,
        /// Where it was found.
        path: PathBuf,
        /// The mount.
        mount: PathBuf,
    },
}

/// Which cgroup filesystem a mount is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupVersion {
    /// A cgroup v1 hierarchy.
    V1,
    /// The cgroup v2 unified hierarchy.
    V2,
}

/// How ids are looked up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lookup {
    /// With kernfs file handles where the kernel allows it, else by walking.
    #[default]
    Auto,
    /// Always by walking the mount (for tests and odd kernels).
    Walk,
}

/// How a [`CgroupPaths`] caches and looks up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolveOptions {
    /// Most cached entries, found and vanished together.
    pub capacity: usize,
    /// How long a vanished cgroup is remembered as gone (zero: not at all).
    pub negative_ttl: Duration,
    /// Most directories one fallback walk visits.
    pub walk_limit: usize,
    /// Handles or walks.
    pub lookup: Lookup,
}

impl Default for ResolveOptions {
    fn default() -> Self {
        Self {
            capacity: DEFAULT_CAPACITY,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            walk_limit: DEFAULT_WALK_LIMIT,
            lookup: Lookup::Auto,
        }
    }
}

/// What the cache has counted since the [`CgroupPaths`] was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the cache (found or still known as gone).
    pub hits: u64,
    /// Lookups that went to the kernel.
    pub misses: u64,
    /// Entries dropped to make room.
    pub evictions: u64,
    /// Lookups whose cgroup did not exist (or a bounded walk did not reach).
    pub vanished: u64,
    /// Entries now cached.
    pub entries: usize,
    /// Most entries cached.
    pub capacity: usize,
}

#[derive(Debug)]
enum Entry {
    Found(Arc<str>),
    Vanished { until: Instant },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Handles,
    Walk,
}

/// The paths of one cgroup mount's cgroups, by id, with a bounded cache.
///
/// # Examples
///
/// ```no_run
/// use guardrails::container::{CgroupPaths, ResolveOptions};
///
/// let mut paths = CgroupPaths::v2(ResolveOptions::default())?;
/// if let Some(path) = paths.path(8812)? {
///     println!("cgroup 8812 is {path}");
/// }
/// # Ok::<(), guardrails::container::ResolveError>(())
/// ```
#[derive(Debug)]
pub struct CgroupPaths {
    mount: PathBuf,
    mount_fd: OwnedFd,
    root_id: u64,
    version: CgroupVersion,
    method: Method,
    options: ResolveOptions,
    cache: ClockCache<Entry>,
    hits: u64,
    misses: u64,
    vanished: u64,
}

impl CgroupPaths {
    /// The cgroup v2 mount of this node.
    pub fn v2(options: ResolveOptions) -> Result<Self, ResolveError> {
        Self::open(
            &cgroup::cgroup2_mount().map_err(ResolveError::Mount)?,
            options,
        )
    }

    /// The cgroup v1 hierarchy with controller or name `hierarchy` (`memory`,
    /// `pids`, `systemd`), see [`cgroup::cgroup1_mount`].
    pub fn v1(hierarchy: &str, options: ResolveOptions) -> Result<Self, ResolveError> {
        Self::open(
            &cgroup::cgroup1_mount(hierarchy).map_err(ResolveError::Mount)?,
            options,
        )
    }

    /// The cgroup filesystem (v1 or v2) mounted at `mount`.
    pub fn open(mount: &Path, options: ResolveOptions) -> Result<Self, ResolveError> {
        let open_error = |source| ResolveError::Open {
            mount: mount.to_owned(),
            source,
        };
        // The kernel reports the paths of open files with symlinks resolved.
        let canonical = fs::canonicalize(mount).map_err(open_error)?;
        let version = match cgroup::fs_magic(&canonical).map_err(open_error)? {
            cgroup::CGROUP2_SUPER_MAGIC => CgroupVersion::V2,
            cgroup::CGROUP_SUPER_MAGIC => CgroupVersion::V1,
            _ => {
                return Err(ResolveError::NotCgroup {
                    mount: mount.to_owned(),
                });
            }
        };
        let root = fs::File::open(&canonical).map_err(open_error)?;
        let root_id = root.metadata().map_err(open_error)?.ino();
        let mut paths = Self {
            mount: canonical,
            mount_fd: OwnedFd::from(root),
            root_id,
            version,
            method: Method::Walk,
            cache: ClockCache::new(options.capacity),
            options,
            hits: 0,
            misses: 0,
            vanished: 0,
        };
        if paths.options.lookup == Lookup::Auto {
            match paths.probe_handles() {
                Ok(()) => paths.method = Method::Handles,
                Err(error) => paths.fall_back_to_walk(&error),
            }
        }
        Ok(paths)
    }

    /// Where the filesystem is mounted (symlinks resolved).
    pub fn mount(&self) -> &Path {
        &self.mount
    }

    /// Whether this is a v1 hierarchy or the v2 one.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// Whether lookups use file handles (rather than walking the mount).
    pub fn uses_handles(&self) -> bool {
        self.method == Method::Handles
    }

    /// The path of cgroup `id` relative to the mount (`/` for the root,
    /// `/kubepods.slice/…` below it), or `None` if no such cgroup exists now
    /// (or a fallback walk did not reach it).
    pub fn path(&mut self, id: u64) -> Result<Option<Arc<str>>, ResolveError> {
        let now = Instant::now();
        match self.cache.get(id) {
            Some(Entry::Found(path)) => {
                self.hits += 1;
                return Ok(Some(Arc::clone(path)));
            }
            Some(Entry::Vanished { until }) if *until > now => {
                self.hits += 1;
                self.vanished += 1;
                return Ok(None);
            }
            Some(Entry::Vanished { .. }) | None => {}
        }
        self.misses += 1;
        let found = self.look_up(id)?;
        match &found {
            Some(path) => self.cache.insert(id, Entry::Found(Arc::clone(path))),
            None => {
                self.vanished += 1;
                if !self.options.negative_ttl.is_zero() {
                    let until = now + self.options.negative_ttl;
                    self.cache.insert(id, Entry::Vanished { until });
                }
            }
        }
        Ok(found)
    }

    /// What the cache has counted so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits,
            misses: self.misses,
            evictions: self.cache.evictions(),
            vanished: self.vanished,
            entries: self.cache.len(),
            capacity: self.cache.capacity(),
        }
    }

    fn look_up(&mut self, id: u64) -> Result<Option<Arc<str>>, ResolveError> {
        if id == self.root_id {
            return Ok(Some(Arc::from("/")));
        }
        if self.method == Method::Handles {
            match self.open_by_id(id) {
                Ok(fd) => return self.path_of(id, &fd).map(Some),
                Err(error) if is_gone(&error) => return Ok(None),
                Err(error) if is_unsupported(&error) => self.fall_back_to_walk(&error),
                Err(source) => {
                    return Err(ResolveError::Syscall {
                        call: "open_by_handle_at",
                        mount: self.mount.clone(),
                        source,
                    });
                }
            }
        }
        self.walk(id)
    }

    /// Checks that the kernel hands out kernfs handles for this mount and
    /// lets this process open them.
    fn probe_handles(&self) -> io::Result<()> {
        let mut handle = KernfsHandle::empty();
        let mut mount_id: libc::c_int = 0;
        let empty = CString::default();
        // SAFETY: the path is NUL-terminated; the handle has room for
        // `handle_bytes` bytes after its header, as file_handle requires;
        // mount_id points to a writable int.
        let done = unsafe {
            libc::name_to_handle_at(
                self.mount_fd.as_raw_fd(),
                empty.as_ptr(),
                (&raw mut handle).cast(),
                &raw mut mount_id,
                libc::AT_EMPTY_PATH,
            )
        };
        if done != 0 {
            return Err(io::Error::last_os_error());
        }
        if handle.handle_type != FILEID_KERNFS
            || handle.handle_bytes != 8
            || handle.id() != Some(self.root_id)
        {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "the kernel gave a handle of type {:#x} and {} bytes, not a kernfs id",
                    handle.handle_type, handle.handle_bytes
                ),
            ));
        }
        self.open_by_id(self.root_id).map(drop)
    }

    fn open_by_id(&self, id: u64) -> io::Result<OwnedFd> {
        let mut handle = KernfsHandle::for_id(id);
        // SAFETY: the mount fd is open; the handle is a file_handle header
        // followed by the `handle_bytes` bytes it declares.
        let fd = unsafe {
            libc::open_by_handle_at(
                self.mount_fd.as_raw_fd(),
                (&raw mut handle).cast(),
                libc::O_PATH | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: open_by_handle_at returned a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// The path of an open cgroup directory, relative to the mount.
    fn path_of(&self, id: u64, fd: &OwnedFd) -> Result<Arc<str>, ResolveError> {
        let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let target = fs::read_link(&link).map_err(|source| ResolveError::Syscall {
            call: "readlink",
            mount: self.mount.clone(),
            source,
        })?;
        let target = target.to_string_lossy();
        // Removed since it was opened: where it was still says whose it was.
        let live = target.strip_suffix(DELETED).unwrap_or(&target);
        let mount = self.mount.to_string_lossy();
        let relative = match live.strip_prefix(&*mount) {
            Some("") => "/",
            Some(rest) if rest.starts_with('/') => rest,
            // Mounted at `/`.
            Some(rest) if mount.ends_with('/') => return Ok(Arc::from(format!("/{rest}"))),
            _ => {
                return Err(ResolveError::OutsideMount {
                    id,
                    path: PathBuf::from(live),
                    mount: self.mount.clone(),
                });
            }
        };
        Ok(Arc::from(relative))
    }

    fn fall_back_to_walk(&mut self, why: &io::Error) {
        self.method = Method::Walk;
        tracing::warn!(
            mount = %self.mount.display(),
            error = %why,
            walk_limit = self.options.walk_limit,
            "cgroup file handles do not work here; cgroup ids will be resolved by walking the mount, which is slower"
        );
    }

    /// Depth-first search of the mount for the directory whose inode is `id`,
    /// caching what it passes while the cache has room.
    fn walk(&mut self, id: u64) -> Result<Option<Arc<str>>, ResolveError> {
        let mut pending = vec![String::new()];
        let mut visited = 0_usize;
        while let Some(relative) = pending.pop() {
            let dir = self.mount.join(relative.trim_start_matches('/'));
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(source) if relative.is_empty() => {
                    return Err(ResolveError::Walk { path: dir, source });
                }
                // Removed while walking, or unreadable: skip it.
                Err(_) => continue,
            };
            for entry in entries.flatten() {
                if !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                    continue;
                }
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                let path = format!("{relative}/{name}");
                let ino = entry.ino();
                if ino == id {
                    return Ok(Some(Arc::from(path)));
                }
                if self.cache.has_room() && !self.cache.contains(ino) {
                    self.cache
                        .insert(ino, Entry::Found(Arc::from(path.as_str())));
                }
                visited += 1;
                if visited >= self.options.walk_limit {
                    tracing::debug!(
                        mount = %self.mount.display(),
                        cgroup_id = id,
                        visited,
                        "cgroup walk stopped at its limit"
                    );
                    return Ok(None);
                }
                pending.push(path);
            }
        }
        Ok(None)
    }
}

/// A `struct file_handle` with room for a kernfs id.
#[repr(C)]
#[derive(Debug)]
struct KernfsHandle {
    handle_bytes: libc::c_uint,
    handle_type: libc::c_int,
    /// `MAX_HANDLE_SZ` bytes, so that the probe can read whatever comes back.
    f_handle: [u8; 128],
}

impl KernfsHandle {
    fn empty() -> Self {
        Self {
            handle_bytes: 128,
            handle_type: 0,
            f_handle: [0; 128],
        }
    }

    fn for_id(id: u64) -> Self {
        let mut handle = Self {
            handle_bytes: 8,
            handle_type: FILEID_KERNFS,
            f_handle: [0; 128],
        };
        handle.f_handle[..8].copy_from_slice(&id.to_ne_bytes());
        handle
    }

    fn id(&self) -> Option<u64> {
        Some(u64::from_ne_bytes(self.f_handle.get(..8)?.try_into().ok()?))
    }
}

/// The cgroup no longer exists.
fn is_gone(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::ESTALE | libc::ENOENT))
}

/// The kernel or this process's privileges do not allow handles.
fn is_unsupported(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EPERM | libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernfs_handle_carries_the_id_in_native_byte_order() {
        let handle = KernfsHandle::for_id(0x0102_0304_0506_0708);
        assert_eq!(handle.handle_type, 0xfe);
        assert_eq!(handle.handle_bytes, 8);
        assert_eq!(handle.id(), Some(0x0102_0304_0506_0708));
        assert_eq!(
            std::mem::offset_of!(KernfsHandle, f_handle),
            std::mem::size_of::<libc::file_handle>(),
            "the payload follows the file_handle header"
        );
    }

    #[test]
    fn a_directory_that_is_not_a_cgroup_mount_is_refused() {
        let err = CgroupPaths::open(Path::new("/proc"), ResolveOptions::default())
            .expect_err("procfs is not a cgroup filesystem");
        assert!(matches!(err, ResolveError::NotCgroup { .. }), "{err}");
    }

    #[test]
    fn stale_and_missing_handles_mean_the_cgroup_is_gone() {
        assert!(is_gone(&io::Error::from_raw_os_error(libc::ESTALE)));
        assert!(!is_gone(&io::Error::from_raw_os_error(libc::EPERM)));
        assert!(is_unsupported(&io::Error::from_raw_os_error(libc::EPERM)));
    }
}
