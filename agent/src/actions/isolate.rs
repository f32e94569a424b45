//! Cutting a cgroup's network: the isolation programs of the containment
//! object, attached to a cgroup v2 directory for ingress and egress.
//!
//! A packet passes only when its remote endpoint is on the allow-list (egress:
//! the destination, ingress: the source); everything else is dropped and
//! counted for the isolated cgroup. The allow-list is one pinned map shared
//! by every attachment, past and future, so a reloaded program sees the same
//! list as the links left by an earlier agent.
//!
//! Each attachment is a bpf link pinned in the pin directory; the link, not
//! the agent, keeps the program attached. Removing the pin detaches it.

use std::{
    fmt,
    fs::File,
    net::IpAddr,
    path::{Path, PathBuf},
    str::FromStr,
};

use agent_common::contain::{self as wire, allow_family};
use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{Array, HashMap, Map, MapData, MapError},
    pin::PinError,
    programs::{
        CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, ProgramError,
        links::{FdLink, LinkError},
    },
};
use serde::{Deserialize, Serialize};

use super::ledger::{Direction, Drops, LEDGER_MAP, LedgerError, PinDir};

const EGRESS_PROGRAM: &str = "gr_isolate_egress";
const INGRESS_PROGRAM: &str = "gr_isolate_ingress";
const ALLOW_MAP: &str = "gr_allow";
const ALLOW_PIN: &str = "allow";
const DROPS_MAP: &str = "gr_drops";
const DROPS_PIN: &str = "drops";

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// Why isolation failed.
#[derive(Debug, thiserror::Error)]
pub enum IsolateError {
    /// The allow-list is not valid.
    #[error("allow-list has {0} rules, at most {max} fit", max = wire::ALLOW_MAX)]
    TooManyRules(usize),
    /// An allow rule's port is 0.
    #[error("allow rule {0}: port 0 matches nothing")]
    ZeroPort(AllowRule),
    /// The pin directory or a pinned map is unusable.
    #[error(transparent)]
    Pins(#[from] LedgerError),
    /// The containment object was refused as a whole.
    #[error("loading the containment object")]
    Load(#[source] EbpfError),
    /// A map is missing or of the wrong type.
    #[error("map {name}")]
    Map {
        /// The map's name.
        name: &'static str,
        /// What aya said.
        #[source]
        source: MapError,
    },
    /// A map is not in the object.
    #[error("map {0} is missing from the containment object")]
    MissingMap(&'static str),
    /// A program is not in the object.
    #[error("program {0} is missing from the containment object")]
    MissingProgram(&'static str),
    /// The kernel refused to load a program.
    #[error("program {program}")]
    Program {
        /// The program's name.
        program: &'static str,
        /// What aya said, with the verifier's log when it refused the program.
        #[source]
        source: ProgramError,
    },
    /// The cgroup directory could not be opened.
    #[error("cgroup {path}: opening the directory")]
    Cgroup {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused the attachment.
    #[error("cgroup {path}: attaching {program}")]
    Attach {
        /// The directory.
        path: PathBuf,
        /// The program's name.
        program: &'static str,
        /// What aya said.
        #[source]
        source: ProgramError,
    },
    /// The kernel attached without a bpf link (before Linux 5.7), which
    /// cannot be pinned and so would not outlive the agent.
    #[error("cgroup {path}: the attachment is not a bpf link and cannot be pinned")]
    NotPinnable {
        /// The directory.
        path: PathBuf,
        /// What aya said.
        #[source]
        source: LinkError,
    },
    /// The link could not be pinned.
    #[error("pinning link {path}")]
    Pin {
        /// The pin.
        path: PathBuf,
        /// What aya said.
        #[source]
        source: PinError,
    },
    /// A link's pin could not be removed.
    #[error("removing link {path}")]
    Unpin {
        /// The pin.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// The transport protocols an allow rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP only.
    Tcp,
    /// UDP only.
    Udp,
    /// TCP and UDP.
    Any,
}

/// An IPv4 or IPv6 prefix, written `10.0.0.0/8` or `fd00::/8`; a bare
/// address is a prefix of its full length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    addr: IpAddr,
    prefix_len: u8,
}

/// Why a CIDR did not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid CIDR `{0}`: expected an IPv4 or IPv6 address, optionally with /<prefix length>")]
pub struct CidrError(String);

impl Cidr {
    /// The prefix of `prefix_len` bits of `addr`, if the length fits the family.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Option<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix_len <= max).then_some(Self { addr, prefix_len })
    }

    /// The address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || CidrError(text.to_owned());
        let (addr, len) = match text.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| error())?;
        let len = match len {
            Some(len) => len.parse().map_err(|_| error())?,
            None if addr.is_ipv4() => 32,
            None => 128,
        };
        Self::new(addr, len).ok_or_else(error)
    }
}

impl TryFrom<String> for Cidr {
    type Error = CidrError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<Cidr> for String {
    fn from(cidr: Cidr) -> Self {
        cidr.to_string()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// A remote endpoint an isolated cgroup may still exchange packets with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowRule {
    /// The transport protocol.
    pub protocol: Protocol,
    /// The remote port.
    pub port: u16,
    /// The remote addresses; any address when absent.
    #[serde(default)]
    pub remote: Option<Cidr>,
}

impl AllowRule {
    /// DNS to any server: UDP and TCP port 53.
    pub const DNS: [Self; 2] = [
        Self {
            protocol: Protocol::Udp,
            port: 53,
            remote: None,
        },
        Self {
            protocol: Protocol::Tcp,
            port: 53,
            remote: None,
        },
    ];

    fn to_entry(self) -> Result<wire::AllowEntry, IsolateError> {
        if self.port == 0 {
            return Err(IsolateError::ZeroPort(self));
        }
        let proto = match self.protocol {
            Protocol::Tcp => IPPROTO_TCP,
            Protocol::Udp => IPPROTO_UDP,
            Protocol::Any => 0,
        };
        let mut entry = wire::AllowEntry {
            used: 1,
            proto,
            port: self.port,
            ..Default::default()
        };
        if let Some(cidr) = self.remote {
            entry.prefix_len = cidr.prefix_len;
            // The program compares words as they are in the packet: keep the
            // address's bytes in network order in memory.
            let bytes = match cidr.addr {
                IpAddr::V4(v4) => {
                    entry.family = allow_family::IPV4;
                    let mut bytes = [0; 16];
                    bytes[..4].copy_from_slice(&v4.octets());
                    bytes
                }
                IpAddr::V6(v6) => {
                    entry.family = allow_family::IPV6;
                    v6.octets()
                }
            };
            for (word, chunk) in entry.addr.iter_mut().zip(bytes.chunks_exact(4)) {
                *word = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            }
        }
        Ok(entry)
    }
}

impl fmt::Display for AllowRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let protocol = match self.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Any => "any",
        };
        match self.remote {
            Some(remote) => write!(f, "{protocol} port {} of {remote}", self.port),
            None => write!(f, "{protocol} port {} of any address", self.port),
        }
    }
}

/// The loaded isolation programs and their pinned maps.
pub(crate) struct Isolation {
    ebpf: Ebpf,
    drops: HashMap<MapData, u64, wire::Drops>,
}

impl fmt::Debug for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Isolation").finish_non_exhaustive()
    }
}

impl Isolation {
    /// Loads the containment object, re-using its maps where they are pinned
    /// under `pin` and pinning them where not, writes `allow` as the
    /// allow-list, and loads the programs without attaching them. Returns the
    /// ledger map too, which the object holds.
    pub(crate) fn load(pin: &PinDir, allow: &[AllowRule]) -> Result<(Self, Map), IsolateError> {
        if allow.len() > wire::ALLOW_MAX {
            return Err(IsolateError::TooManyRules(allow.len()));
        }
        let mut entries = vec![wire::AllowEntry::default(); wire::ALLOW_MAX];
        for (slot, rule) in entries.iter_mut().zip(allow) {
            *slot = rule.to_entry()?;
        }
        pin.create()?;
        pin.check_pinned_shape(
            ALLOW_PIN,
            size_of::<u32>(),
            size_of::<wire::AllowEntry>(),
            wire::ALLOW_MAX,
        )?;
        pin.check_pinned_shape(
            DROPS_PIN,
            size_of::<u64>(),
            size_of::<wire::Drops>(),
            wire::CONTAINED_MAX,
        )?;
        pin.check_ledger_shape()?;

        let mut ebpf = EbpfLoader::new()
            .map_pin_path(ALLOW_MAP, pin.map(ALLOW_PIN))
            .map_pin_path(DROPS_MAP, pin.map(DROPS_PIN))
            .map_pin_path(LEDGER_MAP, pin.ledger())
            .load(agent_ebpf::CONTAIN)
            .map_err(IsolateError::Load)?;

        let mut allow_map: Array<_, wire::AllowEntry> =
            take_map(&mut ebpf, ALLOW_MAP, Array::try_from)?;
        // Every slot is written, the empty ones too, so that a shorter list
        // than the pinned one ends where it should.
        for (index, entry) in (0u32..).zip(&entries) {
            allow_map
                .set(index, entry, 0)
                .map_err(|source| IsolateError::Map {
                    name: ALLOW_MAP,
                    source,
                })?;
        }
        let drops = take_map(&mut ebpf, DROPS_MAP, HashMap::try_from)?;
        let ledger = ebpf
            .take_map(LEDGER_MAP)
            .ok_or(IsolateError::MissingMap(LEDGER_MAP))?;

        for name in [EGRESS_PROGRAM, INGRESS_PROGRAM] {
            program(&mut ebpf, name)?
                .load()
                .map_err(|source| IsolateError::Program {
                    program: name,
                    source,
                })?;
        }
        Ok((Self { ebpf, drops }, ledger))
    }

    /// Attaches both programs to the cgroup at `dir` and pins their links.
    /// A direction whose link is already pinned is left as it is. On failure
    /// nothing this call attached stays attached.
    pub(crate) fn attach(
        &mut self,
        pin: &PinDir,
        cgroup_id: u64,
        dir: &Path,
    ) -> Result<(), IsolateError> {
        // Counted from the first packet on: the key must exist before any
        // program runs for this cgroup.
        if let Err(MapError::KeyNotFound) = self.drops.get(&cgroup_id, 0) {
            self.drops
                .insert(cgroup_id, wire::Drops::default(), 0)
                .map_err(|source| IsolateError::Map {
                    name: DROPS_MAP,
                    source,
                })?;
        }
        let cgroup = File::open(dir).map_err(|source| IsolateError::Cgroup {
            path: dir.to_owned(),
            source,
        })?;
        let mut pinned = Vec::new();
        for direction in Direction::BOTH {
            let path = pin.link(cgroup_id, direction);
            if path.exists() {
                continue;
            }
            match self.attach_one(&cgroup, dir, direction, &path) {
                Ok(()) => pinned.push(path),
                Err(error) => {
                    for path in pinned {
                        if let Err(unpin) = std::fs::remove_file(&path) {
                            tracing::warn!(path = %path.display(), error = %unpin, "cannot undo a partial isolation");
                        }
                    }
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    fn attach_one(
        &mut self,
        cgroup: &File,
        dir: &Path,
        direction: Direction,
        path: &Path,
    ) -> Result<(), IsolateError> {
        let (name, attach_type) = match direction {
            Direction::Egress => (EGRESS_PROGRAM, CgroupSkbAttachType::Egress),
            Direction::Ingress => (INGRESS_PROGRAM, CgroupSkbAttachType::Ingress),
        };
        let attach_error = |source| IsolateError::Attach {
            path: dir.to_owned(),
            program: name,
            source,
        };
        let program = program(&mut self.ebpf, name)?;
        // A cgroup bpf link always runs beside the other programs of the
        // cgroup and of its ancestors (a CNI's, an isolated pod's), all of
        // which must pass a packet; the kernel refuses any mode flag on it.
        let id = program
            .attach(cgroup, attach_type, CgroupAttachMode::Single)
            .map_err(attach_error)?;
        let link = program.take_link(id).map_err(attach_error)?;
        let link = FdLink::try_from(link).map_err(|source| IsolateError::NotPinnable {
            path: dir.to_owned(),
            source,
        })?;
        // Dropping the pinned link closes our descriptor only: the pin keeps
        // the program attached.
        link.pin(path).map_err(|source| IsolateError::Pin {
            path: path.to_owned(),
            source,
        })?;
        Ok(())
    }

    /// The packets dropped for `cgroup_id`, if it is isolated.
    pub(crate) fn drops(&self, cgroup_id: u64) -> Result<Option<Drops>, IsolateError> {
        match self.drops.get(&cgroup_id, 0) {
            Ok(raw) => Ok(Some(Drops {
                ingress: raw.ingress,
                egress: raw.egress,
            })),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(source) => Err(IsolateError::Map {
                name: DROPS_MAP,
                source,
            }),
        }
    }

    /// Stops counting drops for `cgroup_id`.
    pub(crate) fn forget(&mut self, cgroup_id: u64) -> Result<(), IsolateError> {
        match self.drops.remove(&cgroup_id) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(source) => Err(IsolateError::Map {
                name: DROPS_MAP,
                source,
            }),
        }
    }
}

/// Removes the pinned links of `cgroup_id`, which detaches the programs.
/// Returns the pins removed.
pub(crate) fn detach(pin: &PinDir, cgroup_id: u64) -> Result<Vec<PathBuf>, IsolateError> {
    let mut removed = Vec::new();
    for direction in Direction::BOTH {
        let path = pin.link(cgroup_id, direction);
        match std::fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(IsolateError::Unpin { path, source }),
        }
    }
    Ok(removed)
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut CgroupSkb, IsolateError> {
    ebpf.program_mut(name)
        .ok_or(IsolateError::MissingProgram(name))?
        .try_into()
        .map_err(|source| IsolateError::Program {
            program: name,
            source,
        })
}

fn take_map<T>(
    ebpf: &mut Ebpf,
    name: &'static str,
    convert: impl FnOnce(Map) -> Result<T, MapError>,
) -> Result<T, IsolateError> {
    let map = ebpf.take_map(name).ok_or(IsolateError::MissingMap(name))?;
    convert(map).map_err(|source| IsolateError::Map { name, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cidr_parses_with_or_without_a_prefix_length() {
        let cidr: Cidr = "10.1.0.0/16".parse().expect("valid");
        assert_eq!(cidr.prefix_len(), 16);
        let host: Cidr = "fd00::1".parse().expect("valid");
        assert_eq!(host.prefix_len(), 128);
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("dns".parse::<Cidr>().is_err());
    }

    #[test]
    fn an_allow_rule_keeps_the_address_in_network_order() {
        let rule = AllowRule {
            protocol: Protocol::Udp,
            port: 53,
            remote: Some("10.96.0.10/32".parse().expect("valid")),
        };
        let entry = rule.to_entry().expect("valid");
        assert_eq!(entry.proto, IPPROTO_UDP);
        assert_eq!(entry.family, allow_family::IPV4);
        assert_eq!(entry.addr[0].to_ne_bytes(), [10, 96, 0, 10]);
        assert_eq!(entry.port, 53);
    }

    #[test]
    fn an_allow_rule_reads_from_config() {
        let rule: AllowRule =
            serde_yaml::from_str("{protocol: tcp, port: 443, remote: 192.0.2.0/24}")
                .expect("valid");
        assert_eq!(
            rule.remote.map(|c| c.to_string()).as_deref(),
            Some("192.0.2.0/24")
        );
        assert!(AllowRule { port: 0, ..rule }.to_entry().is_err());
    }
}
