//! The pin directory and the ledger pinned in it.
//!
//! Containment must outlive the agent: a frozen or isolated container stays so
//! while the agent restarts or is gone. So its state lives in the kernel, as
//! BPF objects pinned on bpffs under one directory (default
//! [`DEFAULT_PIN_DIR`]):
//!
//! ```text
//! <pin dir>/maps/ledger             HASH  cgroup v2 id -> what is contained there
//! <pin dir>/maps/allow              ARRAY the isolation allow-list
//! <pin dir>/maps/drops              HASH  cgroup v2 id -> packets dropped
//! <pin dir>/links/<id>-ingress      the isolation program's link on that cgroup
//! <pin dir>/links/<id>-egress
//! ```
//!
//! Removing a link's pin detaches the program; removing the whole directory
//! (`cleanup`) undoes everything but a freeze, which the ledger records so
//! that it can be thawed.

use std::{
    io,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use agent_common::contain::{self as wire, contained_flags};
use aya::maps::{HashMap, Map, MapData, MapError, MapInfo};
use serde::Serialize;

/// Where the containment state is pinned unless configured otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/guardrails";

/// `BPF_FS_MAGIC` from `linux/magic.h`.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// The ledger map's name in the containment object, and its pin's name.
pub(crate) const LEDGER_MAP: &str = "gr_ledger";
pub(crate) const LEDGER_PIN: &str = "ledger";

/// Why the pin directory or the ledger could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The pin directory could not be created or inspected.
    #[error("pin directory {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The pin directory is not on a BPF filesystem.
    #[error(
        "pin directory {path} is not on a BPF filesystem (mount one: `mount -t bpf bpf /sys/fs/bpf`)"
    )]
    NotBpffs {
        /// The path.
        path: PathBuf,
    },
    /// A pinned map has another shape than this agent's: it was pinned by
    /// another version. It is never reused; `cleanup` removes it.
    #[error(
        "pinned map {path} has another shape ({found}) than expected ({expected}); run cleanup"
    )]
    Incompatible {
        /// The pin.
        path: PathBuf,
        /// key/value sizes and entries expected.
        expected: String,
        /// key/value sizes and entries found.
        found: String,
    },
    /// The ledger map could not be opened, read or written.
    #[error("ledger map {path}")]
    Map {
        /// The pin.
        path: PathBuf,
        /// What aya said.
        #[source]
        source: MapError,
    },
    /// A cgroup path does not fit in the ledger.
    #[error("cgroup {path}: path longer than {max} bytes")]
    PathTooLong {
        /// The path.
        path: PathBuf,
        /// The bound.
        max: usize,
    },
}

/// The layout of a pin directory; see the module doc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinDir {
    root: PathBuf,
}

/// Which way an isolation link filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Packets received by the cgroup's sockets.
    Ingress,
    /// Packets sent by the cgroup's sockets.
    Egress,
}

impl Direction {
    /// Both directions.
    pub const BOTH: [Self; 2] = [Self::Egress, Self::Ingress];

    /// The direction's name in a link's pin.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
        }
    }
}

impl PinDir {
    /// The layout under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of the pinned maps.
    pub fn maps(&self) -> PathBuf {
        self.root.join("maps")
    }

    /// The pin of the map named `pin`.
    pub fn map(&self, pin: &str) -> PathBuf {
        self.maps().join(pin)
    }

    /// The directory of the pinned links.
    pub fn links(&self) -> PathBuf {
        self.root.join("links")
    }

    /// The pin of the isolation link on cgroup `cgroup_id` for `direction`.
    pub fn link(&self, cgroup_id: u64, direction: Direction) -> PathBuf {
        self.links()
            .join(format!("{cgroup_id}-{}", direction.as_str()))
    }

    /// The cgroup and direction a link's pin is for, if it is named like one.
    pub fn parse_link_name(name: &str) -> Option<(u64, Direction)> {
        let (id, direction) = name.split_once('-')?;
        let direction = match direction {
            "ingress" => Direction::Ingress,
            "egress" => Direction::Egress,
            _ => return None,
        };
        Some((id.parse().ok()?, direction))
    }

    /// The ledger's pin.
    pub fn ledger(&self) -> PathBuf {
        self.map(LEDGER_PIN)
    }

    /// Creates the directory and its subdirectories on bpffs.
    pub fn create(&self) -> Result<(), LedgerError> {
        for dir in [self.maps(), self.links()] {
            std::fs::create_dir_all(&dir).map_err(|source| LedgerError::Io {
                path: dir.clone(),
                source,
            })?;
        }
        self.check_bpffs()
    }

    /// Mounts bpffs at [`BPFFS_MOUNT`] when this directory lies below it and
    /// nothing is mounted there yet, as on a host where no BPF tool ran
    /// since boot (in a pod, the DaemonSet mounts the host's). Returns
    /// whether it mounted.
    pub fn mount_bpffs_if_needed(&self) -> Result<bool, LedgerError> {
        let mount = Path::new(BPFFS_MOUNT);
        let io = |source| LedgerError::Io {
            path: mount.to_owned(),
            source,
        };
        if !self.root.starts_with(mount) || !mount.is_dir() {
            return Ok(false);
        }
        if crate::cgroup::fs_magic(mount).map_err(io)? == BPF_FS_MAGIC {
            return Ok(false);
        }
        let target = std::ffi::CString::new(BPFFS_MOUNT).map_err(|e| io(e.into()))?;
        let fstype = c"bpf";
        // SAFETY: every pointer is a NUL-terminated string that outlives the
        // call; no mount data is passed.
        let mounted = unsafe {
            libc::mount(
                fstype.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if mounted != 0 {
            return Err(io(std::io::Error::last_os_error()));
        }
        Ok(true)
    }

    /// Fails unless the directory is on a BPF filesystem: pins live nowhere
    /// else, and `cleanup` removes everything below it.
    pub fn check_bpffs(&self) -> Result<(), LedgerError> {
        let magic = crate::cgroup::fs_magic(&self.root).map_err(|source| LedgerError::Io {
            path: self.root.clone(),
            source,
        })?;
        if magic == BPF_FS_MAGIC {
            Ok(())
        } else {
            Err(LedgerError::NotBpffs {
                path: self.root.clone(),
            })
        }
    }

    /// Fails if the ledger is pinned with another shape (another version's).
    pub(crate) fn check_ledger_shape(&self) -> Result<(), LedgerError> {
        self.check_pinned_shape(
            LEDGER_PIN,
            size_of::<u64>(),
            size_of::<wire::Contained>(),
            wire::CONTAINED_MAX,
        )
    }

    /// Fails if the map pinned as `pin` exists with another shape; a missing
    /// pin is fine (the loader creates it).
    pub(crate) fn check_pinned_shape(
        &self,
        pin: &str,
        key_size: usize,
        value_size: usize,
        max_entries: usize,
    ) -> Result<(), LedgerError> {
        let path = self.map(pin);
        if !path.exists() {
            return Ok(());
        }
        let info = MapInfo::from_pin(&path).map_err(|source| LedgerError::Map {
            path: path.clone(),
            source,
        })?;
        let found = (
            info.key_size() as usize,
            info.value_size() as usize,
            info.max_entries() as usize,
        );
        let expected = (key_size, value_size, max_entries);
        if found == expected {
            return Ok(());
        }
        let describe =
            |(k, v, n): (usize, usize, usize)| format!("key {k}, value {v}, {n} entries");
        Err(LedgerError::Incompatible {
            path,
            expected: describe(expected),
            found: describe(found),
        })
    }
}

/// When and why one action was taken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Action {
    /// The rule that caused it (cut to a bound of 64 bytes).
    pub rule: String,
    /// When, in nanoseconds since the Unix epoch.
    pub since_unix_ns: u64,
}

/// Packets dropped by an isolation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Drops {
    /// Received packets dropped.
    pub ingress: u64,
    /// Sent packets dropped.
    pub egress: u64,
}

/// What is contained in one cgroup, as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Contained {
    /// The cgroup v2 id.
    pub cgroup_id: u64,
    /// The absolute cgroup v2 directory.
    pub cgroup_dir: PathBuf,
    /// The container's id (cut to a bound of 64 bytes).
    pub container_id: String,
    /// Set while the cgroup is frozen.
    pub frozen: Option<Action>,
    /// Set while the cgroup's network is cut.
    pub isolated: Option<Action>,
    /// Packets dropped since the isolation, when isolated.
    pub drops: Option<Drops>,
}

/// Where bpffs is mounted by convention.
pub const BPFFS_MOUNT: &str = "/sys/fs/bpf";

/// The pinned ledger: what is contained, by cgroup v2 id.
pub(crate) struct Ledger {
    path: PathBuf,
    map: HashMap<MapData, u64, wire::Contained>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// The ledger map taken from the loaded containment object.
    pub(crate) fn from_map(pin: &PinDir, map: Map) -> Result<Self, LedgerError> {
        let path = pin.ledger();
        let map = HashMap::try_from(map).map_err(|source| LedgerError::Map {
            path: path.clone(),
            source,
        })?;
        Ok(Self { path, map })
    }

    /// The pinned ledger alone, without loading any program.
    pub(crate) fn open_pinned(pin: &PinDir) -> Result<Self, LedgerError> {
        let path = pin.ledger();
        pin.check_ledger_shape()?;
        let map_error = |source| LedgerError::Map {
            path: path.clone(),
            source,
        };
        let data = MapData::from_pin(&path).map_err(map_error)?;
        let map = Map::from_map_data(data).map_err(map_error)?;
        Self::from_map(pin, map)
    }

    /// The ledger's entry for `cgroup_id`.
    pub(crate) fn get(&self, cgroup_id: u64) -> Result<Option<Entry>, LedgerError> {
        match self.map.get(&cgroup_id, 0) {
            Ok(raw) => Ok(Some(Entry::from_raw(cgroup_id, &raw))),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(source) => Err(self.map_error(source)),
        }
    }

    /// Writes `entry`, or removes it once nothing is contained there.
    pub(crate) fn put(&mut self, entry: &Entry) -> Result<(), LedgerError> {
        if entry.frozen.is_none() && entry.isolated.is_none() {
            return match self.map.remove(&entry.cgroup_id) {
                Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
                Err(source) => Err(self.map_error(source)),
            };
        }
        let raw = entry.to_raw()?;
        self.map
            .insert(entry.cgroup_id, raw, 0)
            .map_err(|source| self.map_error(source))
    }

    /// Every entry.
    pub(crate) fn entries(&self) -> Result<Vec<Entry>, LedgerError> {
        self.map
            .iter()
            .map(|item| {
                item.map(|(id, raw)| Entry::from_raw(id, &raw))
                    .map_err(|source| self.map_error(source))
            })
            .collect()
    }

    fn map_error(&self, source: MapError) -> LedgerError {
        LedgerError::Map {
            path: self.path.clone(),
            source,
        }
    }
}

/// One ledger entry, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub cgroup_id: u64,
    pub cgroup_dir: PathBuf,
    pub container_id: String,
    pub frozen: Option<Action>,
    pub isolated: Option<Action>,
}

impl Entry {
    /// A new entry with nothing contained yet.
    pub(crate) fn new(cgroup_id: u64, cgroup_dir: &Path, container_id: &str) -> Self {
        Self {
            cgroup_id,
            cgroup_dir: cgroup_dir.to_owned(),
            container_id: container_id.to_owned(),
            frozen: None,
            isolated: None,
        }
    }

    /// What `status` shows; `drops` comes from the isolation's counters.
    pub(crate) fn into_contained(self, drops: Option<Drops>) -> Contained {
        Contained {
            cgroup_id: self.cgroup_id,
            cgroup_dir: self.cgroup_dir,
            container_id: self.container_id,
            frozen: self.frozen,
            drops: self.isolated.as_ref().map(|_| drops.unwrap_or_default()),
            isolated: self.isolated,
        }
    }

    fn from_raw(cgroup_id: u64, raw: &wire::Contained) -> Self {
        let action = |flag: u32, action: &wire::ContainAction| {
            (raw.flags & flag != 0).then(|| Action {
                rule: from_padded(&action.rule),
                since_unix_ns: action.since_unix_ns,
            })
        };
        Self {
            cgroup_id,
            cgroup_dir: PathBuf::from(from_padded_os(&raw.cgroup_path)),
            container_id: from_padded(&raw.container_id),
            frozen: action(contained_flags::FROZEN, &raw.frozen),
            isolated: action(contained_flags::ISOLATED, &raw.isolated),
        }
    }

    fn to_raw(&self) -> Result<wire::Contained, LedgerError> {
        use std::os::unix::ffi::OsStrExt;
        let mut raw = wire::Contained::default();
        let path = self.cgroup_dir.as_os_str().as_bytes();
        if path.len() > wire::CGROUP_PATH_MAX {
            return Err(LedgerError::PathTooLong {
                path: self.cgroup_dir.clone(),
                max: wire::CGROUP_PATH_MAX,
            });
        }
        raw.cgroup_path[..path.len()].copy_from_slice(path);
        write_bounded(&mut raw.container_id, &self.container_id);
        if let Some(action) = &self.frozen {
            raw.flags |= contained_flags::FROZEN;
            raw.frozen = raw_action(action);
        }
        if let Some(action) = &self.isolated {
            raw.flags |= contained_flags::ISOLATED;
            raw.isolated = raw_action(action);
        }
        Ok(raw)
    }
}

/// An action taken now because of `rule`.
pub(crate) fn action_now(rule: &str) -> Action {
    let since_unix_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    Action {
        rule: rule.to_owned(),
        since_unix_ns,
    }
}

fn raw_action(action: &Action) -> wire::ContainAction {
    let mut raw = wire::ContainAction {
        since_unix_ns: action.since_unix_ns,
        ..Default::default()
    };
    write_bounded(&mut raw.rule, &action.rule);
    raw
}

/// Copies as much of `text` as fits, cut at a character boundary; the rest
/// stays NUL. Rule names and container ids are shown, not looked up, so a cut
/// one still serves.
fn write_bounded(out: &mut [u8], text: &str) {
    let mut end = text.len().min(out.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out[..end].copy_from_slice(&text.as_bytes()[..end]);
}

fn padded_len(bytes: &[u8]) -> usize {
    bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len())
}

fn from_padded(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..padded_len(bytes)]).into_owned()
}

fn from_padded_os(bytes: &[u8]) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(&bytes[..padded_len(bytes)]).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_reads_back_as_written() {
        let mut entry = Entry::new(42, Path::new("/sys/fs/cgroup/a/b"), "abc123");
        entry.frozen = Some(Action {
            rule: "Shell in container".into(),
            since_unix_ns: 7,
        });
        let raw = entry.to_raw().expect("fits");
        assert_eq!(Entry::from_raw(42, &raw), entry);
    }

    #[test]
    fn a_long_rule_name_is_cut_at_a_character_boundary() {
        let mut out = [0u8; 4];
        write_bounded(&mut out, "abcé");
        assert_eq!(from_padded(&out), "abc");
    }

    #[test]
    fn a_path_longer_than_the_bound_is_refused() {
        let long = format!("/sys/fs/cgroup/{}", "a".repeat(wire::CGROUP_PATH_MAX));
        let entry = Entry::new(1, Path::new(&long), "");
        assert!(matches!(
            entry.to_raw(),
            Err(LedgerError::PathTooLong { .. })
        ));
    }

    #[test]
    fn link_pins_are_named_after_the_cgroup_and_direction() {
        let pin = PinDir::new("/sys/fs/bpf/guardrails");
        let path = pin.link(77, Direction::Egress);
        assert_eq!(path, Path::new("/sys/fs/bpf/guardrails/links/77-egress"));
        let name = path.file_name().and_then(|n| n.to_str()).expect("a name");
        assert_eq!(PinDir::parse_link_name(name), Some((77, Direction::Egress)));
        assert_eq!(PinDir::parse_link_name("77-sideways"), None);
    }
}
