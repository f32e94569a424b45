//! The containment contract: values of the pinned containment maps.
//!
//! KEEP IN SYNC with `agent-ebpf/bpf/contain/contain.h`: every type here mirrors
//! one there, field for field, and `agent-ebpf/tests/wire_layout.rs` checks
//! them against the BTF of the containment object. These maps are pinned and
//! outlive the agent, so a change of shape must also change how the agent
//! treats maps pinned by an older one.

/// Entries of the allow-list map (`GR_ALLOW_MAX`).
pub const ALLOW_MAX: usize = 32;
/// Cgroups that can be contained at once (`GR_CONTAINED_MAX`).
pub const CONTAINED_MAX: usize = 1024;
/// Bound of a rule name in the ledger, in bytes (`GR_RULE_MAX`).
pub const RULE_MAX: usize = 64;
/// Bound of a container id in the ledger, in bytes (`GR_CONTAINER_ID_MAX`).
pub const CONTAINER_ID_MAX: usize = 64;
/// Bound of a cgroup path in the ledger, in bytes (`GR_CGROUP_PATH_MAX`).
pub const CGROUP_PATH_MAX: usize = 512;

/// `enum gr_allow_family`: which addresses an allow rule matches.
pub mod allow_family {
    /// Any address.
    pub const ANY: u8 = 0;
    /// IPv4 addresses in the rule's prefix.
    pub const IPV4: u8 = 4;
    /// IPv6 addresses in the rule's prefix.
    pub const IPV6: u8 = 6;
}

/// `enum gr_contained_flags`: what is contained in a cgroup.
pub mod contained_flags {
    /// The cgroup is frozen.
    pub const FROZEN: u32 = 1 << 0;
    /// The cgroup's network is cut.
    pub const ISOLATED: u32 = 1 << 1;
}

/// `struct gr_allow_rule`: one allow-list entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllowEntry {
    /// 0 for an empty slot, which ends the list.
    pub used: u8,
    /// `IPPROTO_TCP`, `IPPROTO_UDP`, or 0 for both.
    pub proto: u8,
    /// One of [`allow_family`].
    pub family: u8,
    /// Bits of `addr` that must match.
    pub prefix_len: u8,
    /// The remote port, host byte order.
    pub port: u16,
    /// Padding.
    pub _pad: u16,
    /// The address, network byte order; IPv4 in the first word.
    pub addr: [u32; 4],
}

/// `struct gr_drops`: packets dropped for one isolated cgroup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drops {
    /// Received packets dropped.
    pub ingress: u64,
    /// Sent packets dropped.
    pub egress: u64,
}

/// `struct gr_contain_action`: when and why one action was taken.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContainAction {
    /// Unix time in nanoseconds.
    pub since_unix_ns: u64,
    /// The rule's name, NUL-padded.
    pub rule: [u8; RULE_MAX],
}

/// `struct gr_contained`: the ledger's value, keyed by cgroup v2 id.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contained {
    /// [`contained_flags`].
    pub flags: u32,
    /// Padding.
    pub _pad: u32,
    /// Valid when [`contained_flags::FROZEN`] is set.
    pub frozen: ContainAction,
    /// Valid when [`contained_flags::ISOLATED`] is set.
    pub isolated: ContainAction,
    /// The container's id, NUL-padded.
    pub container_id: [u8; CONTAINER_ID_MAX],
    /// The absolute cgroup v2 directory, NUL-padded.
    pub cgroup_path: [u8; CGROUP_PATH_MAX],
}

impl Default for ContainAction {
    fn default() -> Self {
        Self {
            since_unix_ns: 0,
            rule: [0; RULE_MAX],
        }
    }
}

impl Default for Contained {
    fn default() -> Self {
        Self {
            flags: 0,
            _pad: 0,
            frozen: ContainAction::default(),
            isolated: ContainAction::default(),
            container_id: [0; CONTAINER_ID_MAX],
            cgroup_path: [0; CGROUP_PATH_MAX],
        }
    }
}

// SAFETY: #[repr(C)] structs of integers and integer arrays, with explicit
// padding, so every bit pattern is a valid value.
#[cfg(feature = "user")]
unsafe impl aya::Pod for AllowEntry {}
// SAFETY: as above.
#[cfg(feature = "user")]
unsafe impl aya::Pod for Drops {}
// SAFETY: as above.
#[cfg(feature = "user")]
unsafe impl aya::Pod for Contained {}
