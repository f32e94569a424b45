//! cgroups on this node: where they are mounted and what id a directory has.
//!
//! A cgroup v2 id, as the kernel reports it in events, is the inode number of
//! the cgroup's directory in the cgroup2 filesystem. A cgroup v1 hierarchy
//! (`memory`, `pids`, `name=systemd`, … on hybrid nodes) numbers its
//! directories the same way, each hierarchy on its own.

use std::{
    io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

/// `CGROUP2_SUPER_MAGIC` from `linux/magic.h`.
pub(crate) const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// `CGROUP_SUPER_MAGIC` (cgroup v1) from `linux/magic.h`.
pub(crate) const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;

/// Why a cgroup could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No cgroup2 filesystem is mounted.
    #[error("no cgroup v2 filesystem is mounted (looked in /proc/self/mountinfo)")]
    NoCgroup2,
    /// No cgroup v1 hierarchy with that controller or name is mounted.
    #[error("no cgroup v1 hierarchy `{hierarchy}` is mounted (looked in /proc/self/mountinfo)")]
    NoCgroup1 {
        /// The controller (`memory`) or name (`systemd`, `name=systemd`) looked for.
        hierarchy: String,
    },
    /// The path could not be inspected.
    #[error("cgroup {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The path is not a directory of a cgroup2 filesystem.
    #[error("cgroup {path}: not a directory of a cgroup v2 filesystem")]
    NotCgroup2 {
        /// The path.
        path: PathBuf,
    },
}

/// The mount point of the cgroup2 filesystem (e.g. `/sys/fs/cgroup` or, on a
/// hybrid host, `/sys/fs/cgroup/unified`).
pub fn cgroup2_mount() -> Result<PathBuf, CgroupError> {
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(|source| CgroupError::Io {
            path: "/proc/self/mountinfo".into(),
            source,
        })?;
    mountinfo
        .lines()
        .find_map(|line| {
            // "<id> <parent> <dev> <root> <mount point> <options> ... - <fstype> ..."
            let (before, after) = line.split_once(" - ")?;
            let fstype = after.split_whitespace().next()?;
            let mount_point = before.split_whitespace().nth(4)?;
            (fstype == "cgroup2").then(|| PathBuf::from(unescape_mount_path(mount_point)))
        })
        .ok_or(CgroupError::NoCgroup2)
}

/// The mount point of the cgroup v1 hierarchy with controller `hierarchy`
/// (`memory`, `pids`, `cpu`) or name (`systemd` or `name=systemd`), e.g.
/// `/sys/fs/cgroup/memory`.
pub fn cgroup1_mount(hierarchy: &str) -> Result<PathBuf, CgroupError> {
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(|source| CgroupError::Io {
            path: "/proc/self/mountinfo".into(),
            source,
        })?;
    find_cgroup1_mount(&mountinfo, hierarchy).ok_or_else(|| CgroupError::NoCgroup1 {
        hierarchy: hierarchy.to_owned(),
    })
}

fn find_cgroup1_mount(mountinfo: &str, hierarchy: &str) -> Option<PathBuf> {
    let name = hierarchy.strip_prefix("name=").unwrap_or(hierarchy);
    if name.is_empty() || name.contains(',') || matches!(name, "rw" | "ro") {
        return None;
    }
    mountinfo.lines().find_map(|line| {
        // "... <mount point> <options> ... - cgroup <source> <super options>"
        let (before, after) = line.split_once(" - ")?;
        let mut after = after.split_whitespace();
        if after.next()? != "cgroup" {
            return None;
        }
        let super_options = after.nth(1)?;
        let matches = super_options
            .split(',')
            .any(|option| option == name || option.strip_prefix("name=") == Some(name));
        let mount_point = before.split_whitespace().nth(4)?;
        matches.then(|| PathBuf::from(unescape_mount_path(mount_point)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mount_path(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest
            .get(at + 1..at + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The cgroup v2 id of `path`, which is absolute or relative to `mount`.
pub fn cgroup_id(mount: &Path, path: &Path) -> Result<u64, CgroupError> {
    let path = mount.join(path);
    let io_error = |source| CgroupError::Io {
        path: path.clone(),
        source,
    };
    let metadata = std::fs::metadata(&path).map_err(io_error)?;
    if !metadata.is_dir() || fs_magic(&path).map_err(io_error)? != CGROUP2_SUPER_MAGIC {
        return Err(CgroupError::NotCgroup2 { path });
    }
    Ok(metadata.ino())
}

/// Directories searched at most by [`find_process`]; a node has a few
/// hundred to a few thousand cgroups.
const SEARCH_LIMIT: usize = 100_000;

/// The cgroup v2 directory below `mount` (relative to it) whose
/// `cgroup.procs` lists `pid`, searched breadth first.
pub fn find_process(mount: &Path, pid: u32) -> Option<PathBuf> {
    let wanted = pid.to_string();
    let mut queue = std::collections::VecDeque::from([PathBuf::new()]);
    let mut seen = 0;
    while let Some(relative) = queue.pop_front() {
        seen += 1;
        if seen > SEARCH_LIMIT {
            return None;
        }
        let dir = mount.join(&relative);
        if std::fs::read_to_string(dir.join("cgroup.procs"))
            .is_ok_and(|procs| procs.lines().any(|line| line == wanted))
        {
            return Some(relative);
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                queue.push_back(relative.join(entry.file_name()));
            }
        }
    }
    None
}

/// The filesystem magic of `path` (`statfs(2)`'s `f_type`).
pub(crate) fn fs_magic(path: &Path) -> io::Result<i64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut stat = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: c_path is NUL-terminated and stat points to writable memory of
    // the right type.
    if unsafe { libc::statfs(c_path.as_ptr(), stat.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statfs succeeded and filled the struct.
    Ok(unsafe { stat.assume_init() }.f_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_found_in_the_cgroup_proc_names() {
        let Ok(mount) = cgroup2_mount() else {
            return;
        };
        let text = std::fs::read_to_string("/proc/self/cgroup").expect("/proc/self/cgroup");
        let path = text
            .lines()
            .find_map(|line| line.strip_prefix("0::"))
            .expect("a cgroup v2 line");
        let found = find_process(&mount, std::process::id()).expect("this test's cgroup");
        assert_eq!(Path::new("/").join(found), Path::new(path));
        assert_eq!(find_process(&mount, u32::MAX), None);
    }

    #[test]
    fn an_escaped_mount_point_is_read_back_as_written() {
        assert_eq!(unescape_mount_path(r"/mnt/a\040b\134c"), r"/mnt/a b\c");
        assert_eq!(unescape_mount_path("/sys/fs/cgroup"), "/sys/fs/cgroup");
    }

    #[test]
    fn a_cgroup1_hierarchy_is_found_by_controller_or_name() {
        let mountinfo = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        let found = |hierarchy| find_cgroup1_mount(mountinfo, hierarchy);
        assert_eq!(found("memory"), Some("/sys/fs/cgroup/memory".into()));
        assert_eq!(found("cpuacct"), Some("/sys/fs/cgroup/cpu,cpuacct".into()));
        assert_eq!(found("systemd"), Some("/sys/fs/cgroup/systemd".into()));
        assert_eq!(found("name=systemd"), Some("/sys/fs/cgroup/systemd".into()));
        assert_eq!(found("pids"), None);
        assert_eq!(found("rw"), None);
        assert_eq!(found("mode=755"), None);
    }

    #[test]
    fn a_directory_outside_cgroup2_is_refused() {
        let err = cgroup_id(Path::new("/"), Path::new("/proc")).expect_err("procfs is not cgroup2");
        assert!(matches!(err, CgroupError::NotCgroup2 { .. }), "{err}");
    }
}
