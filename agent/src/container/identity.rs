//! From a cgroup path to a container identity, with no I/O.
//!
//! [`parse_cgroup_path`] reads the path of a cgroup below its mount (cgroup v1
//! and v2 paths look the same there) and recognises the layouts the kubelet and
//! the container runtimes create:
//!
//! | driver | runtime | layout (`…` is any prefix, `<uid>` a pod UID, `<id>` 64 hex) |
//! | --- | --- | --- |
//! | systemd | containerd | `…/kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope` |
//! | systemd | containerd | `…/kubepods.slice/kubepods-pod<uid>.slice/cri-containerd-<id>.scope` (guaranteed: no QoS level) |
//! | systemd | CRI-O | `…/kubepods-<qos>-pod<uid>.slice/crio-<id>.scope` |
//! | systemd | CRI-O (conmon) | `…/kubepods-<qos>-pod<uid>.slice/crio-conmon-<id>.scope`: the container's monitor, see below |
//! | systemd | Docker | `…/kubepods-<qos>-pod<uid>.slice/docker-<id>.scope`, and `/system.slice/docker-<id>.scope` (no pod) |
//! | systemd | Podman | `…/libpod-<id>.scope` (and `libpod-conmon-<id>.scope`, its monitor) |
//! | systemd, nested | any of the above | `…/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-<qos>.slice/kubelet-kubepods-<qos>-pod<uid>.slice/cri-containerd-<id>.scope` (kind, k3d) |
//! | cgroupfs | unknown (containerd or Docker) | `…/kubepods/<qos>/pod<uid>/<id>`, `…/kubepods/pod<uid>/<id>` (guaranteed) |
//! | cgroupfs | CRI-O | `…/kubepods/<qos>/pod<uid>/crio-<id>` (and `crio-conmon-<id>`) |
//! | cgroupfs | Docker | `…/docker/<id>` (no pod) |
//!
//! `<qos>` is `burstable` or `besteffort`; a pod without that level is
//! guaranteed. `<uid>` is a dashed UUID (underscores in systemd slice names,
//! reported with dashes) or, for static pods, the 32-hex config hash the
//! kubelet uses as their UID (reported as is). Anything may come before
//! `kubepods` (`/kubelet/kubepods/…`, `/kubelet.slice/kubelet-kubepods.slice/…`,
//! a kind node's own `/system.slice/docker-<node>.scope/…`).
//!
//! Rules, in order:
//!
//! - Below the deepest `kubepods` level, the first component that names a
//!   container under a pod is the container; any cgroup below it
//!   (`…/<id>/init.scope`, `…/cri-containerd-<id>.scope/sub`) is still that
//!   container. A kind node's own container above `kubepods` is ignored when a
//!   pod's container is found below it.
//! - Without a pod, the outermost container in the path is the container: that
//!   is the one the node's runtime manages (a container nested inside it, as
//!   in Docker in Docker, is its business).
//! - CRI-O's `crio-conmon-<id>` (and Podman's `libpod-conmon-<id>`) holds
//!   conmon, the runtime's monitor of container `<id>`, which runs outside the
//!   container's namespaces. It is reported as that container with
//!   [`Container::monitor`] set, so that it can be told apart from the
//!   workload without losing the link to its container.
//! - Anything else is [`Identity::Host`]: `/`, `/user.slice/…`,
//!   `/system.slice/ssh.service`, a pod's own slice with no container below
//!   it, and a bare `<id>` outside `kubepods` and `docker`.

use std::fmt;

/// Who a cgroup belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// The node itself: not in a container.
    Host,
    /// A container, maybe in a Kubernetes pod.
    Container(Container),
    /// The cgroup could not be resolved to a path (it was removed before it
    /// was looked up, or the lookup failed), so who it belongs to is unknown.
    /// [`parse_cgroup_path`] never returns this; only lookups by id do.
    Unknown,
}

impl Identity {
    /// The container, if this is one.
    pub fn container(&self) -> Option<&Container> {
        match self {
            Self::Container(container) => Some(container),
            Self::Host | Self::Unknown => None,
        }
    }
}

/// A container as the node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Container {
    /// The runtime that made it, as far as the path tells.
    pub runtime: Runtime,
    /// The container id: 64 lowercase hex characters.
    pub id: String,
    /// The pod's UID, dashed (`0f1e2d3c-…`), when the container is in a pod.
    /// Static pods have a 32-hex UID without dashes.
    pub pod_uid: Option<String>,
    /// The pod's QoS class, when the container is in a pod.
    pub qos: Option<Qos>,
    /// How the cgroup was named.
    pub driver: CgroupDriver,
    /// True for the cgroup of the runtime's monitor of this container (CRI-O's
    /// and Podman's conmon), not the container itself.
    pub monitor: bool,
}

/// A container runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// containerd (`cri-containerd-<id>.scope`).
    Containerd,
    /// CRI-O (`crio-<id>`).
    CriO,
    /// Docker (`docker-<id>.scope`, `/docker/<id>`).
    Docker,
    /// Podman (`libpod-<id>.scope`).
    Podman,
    /// The path does not say: the cgroupfs driver names a pod's containers by
    /// their id alone, whether containerd or Docker made them.
    Unknown,
}

impl Runtime {
    /// The runtime's name: `containerd`, `cri-o`, `docker`, `podman` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Containerd => "containerd",
            Self::CriO => "cri-o",
            Self::Docker => "docker",
            Self::Podman => "podman",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A pod's QoS class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Qos {
    /// Requests equal limits for every resource; no QoS level in the path.
    Guaranteed,
    /// Some requests.
    Burstable,
    /// No requests.
    BestEffort,
}

impl Qos {
    /// The class as Kubernetes spells it in cgroup names: `guaranteed`,
    /// `burstable` or `besteffort`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Guaranteed => "guaranteed",
            Self::Burstable => "burstable",
            Self::BestEffort => "besteffort",
        }
    }

    fn from_level(level: &str) -> Option<Self> {
        match level {
            "burstable" => Some(Self::Burstable),
            "besteffort" => Some(Self::BestEffort),
            _ => None,
        }
    }
}

impl fmt::Display for Qos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the kubelet and the runtime name cgroups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CgroupDriver {
    /// systemd units: `….slice` and `….scope`.
    Systemd,
    /// Plain directories: `kubepods/burstable/pod<uid>/<id>`.
    Cgroupfs,
}

impl CgroupDriver {
    /// `systemd` or `cgroupfs`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Systemd => "systemd",
            Self::Cgroupfs => "cgroupfs",
        }
    }
}

impl fmt::Display for CgroupDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who the cgroup at `path` (relative to its mount, as in `/proc/PID/cgroup`)
/// belongs to. See the [module docs](self) for the layouts and rules.
///
/// # Examples
///
/// ```
/// use guardrails::container::{CgroupDriver, Identity, Qos, Runtime};
///
/// let id = "a".repeat(64);
/// let path = format!(
///     "/kubepods.slice/kubepods-burstable.slice/\
///      kubepods-burstable-pod0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0.slice/\
///      cri-containerd-{id}.scope"
/// );
/// let Identity::Container(container) = guardrails::container::parse_cgroup_path(&path) else {
///     panic!("a container");
/// };
/// assert_eq!(container.runtime, Runtime::Containerd);
/// assert_eq!(container.id, id);
/// assert_eq!(container.pod_uid.as_deref(), Some("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"));
/// assert_eq!(container.qos, Some(Qos::Burstable));
/// assert_eq!(container.driver, CgroupDriver::Systemd);
/// assert_eq!(guardrails::container::parse_cgroup_path("/system.slice/ssh.service"), Identity::Host);
/// ```
pub fn parse_cgroup_path(path: &str) -> Identity {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let mut pod: Option<PodLevel> = None;
    let mut outermost: Option<Container> = None;
    let mut at = 0;
    while let Some(&component) = components.get(at) {
        at += 1;
        if let Some(level) = kubepods_slice(component) {
            pod = Some(level);
            continue;
        }
        if component == "kubepods" {
            pod = Some(PodLevel::new(CgroupDriver::Cgroupfs));
            continue;
        }
        if let Some(level) = pod
            .as_mut()
            .filter(|level| level.driver == CgroupDriver::Cgroupfs && level.uid.is_none())
        {
            if let Some(qos) = Qos::from_level(component) {
                level.qos = Some(qos);
                continue;
            }
            if let Some(uid) = component.strip_prefix("pod").and_then(pod_uid) {
                level.uid = Some(uid);
                continue;
            }
        }
        let found = container_component(component).or_else(|| {
            // cgroupfs Docker: `/docker/<id>`.
            (component == "docker")
                .then(|| {
                    components
                        .get(at)
                        .copied()
                        .filter(|next| is_container_id(next))
                })
                .flatten()
                .map(|id| {
                    at += 1;
                    ContainerName {
                        runtime: Runtime::Docker,
                        id,
                        driver: CgroupDriver::Cgroupfs,
                        monitor: false,
                    }
                })
        });
        let Some(found) = found else { continue };
        match &pod {
            Some(level) if level.uid.is_some() => return Identity::Container(level.with(found)),
            // A bare id means something only under a pod.
            _ if found.runtime == Runtime::Unknown => {}
            _ => {
                if outermost.is_none() {
                    outermost = Some(PodLevel::new(found.driver).without_pod(found));
                }
            }
        }
    }
    outermost.map_or(Identity::Host, Identity::Container)
}

/// Where in `kubepods` the path is: the driver, and the QoS level and pod seen.
#[derive(Debug)]
struct PodLevel {
    driver: CgroupDriver,
    qos: Option<Qos>,
    uid: Option<String>,
}

impl PodLevel {
    fn new(driver: CgroupDriver) -> Self {
        Self {
            driver,
            qos: None,
            uid: None,
        }
    }

    /// The container `found` in this pod.
    fn with(&self, found: ContainerName<'_>) -> Container {
        Container {
            runtime: found.runtime,
            id: found.id.to_owned(),
            pod_uid: self.uid.clone(),
            qos: Some(self.qos.unwrap_or(Qos::Guaranteed)),
            driver: found.driver,
            monitor: found.monitor,
        }
    }

    fn without_pod(&self, found: ContainerName<'_>) -> Container {
        Container {
            runtime: found.runtime,
            id: found.id.to_owned(),
            pod_uid: None,
            qos: None,
            driver: found.driver,
            monitor: found.monitor,
        }
    }
}

/// A systemd slice of the kubelet's: `kubepods.slice`, `kubepods-burstable.slice`,
/// `kubepods-burstable-pod<uid>.slice`, `kubepods-pod<uid>.slice`, each maybe
/// with a prefix (`kubelet-kubepods-….slice`).
fn kubepods_slice(component: &str) -> Option<PodLevel> {
    let name = component.strip_suffix(".slice")?;
    let mut parts = name.split('-');
    parts.by_ref().find(|part| *part == "kubepods")?;
    let mut level = PodLevel::new(CgroupDriver::Systemd);
    let mut next = parts.next();
    if let Some(qos) = next.and_then(Qos::from_level) {
        level.qos = Some(qos);
        next = parts.next();
    }
    if let Some(pod) = next {
        level.uid = Some(pod.strip_prefix("pod").and_then(pod_uid)?);
    }
    parts.next().is_none().then_some(level)
}

/// A pod UID as it appears after `pod`: a UUID with dashes or underscores, or
/// a static pod's 32-hex hash. Returned dashed and lowercase.
fn pod_uid(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    if bytes.len() == 32 && bytes.iter().all(u8::is_ascii_hexdigit) {
        return Some(raw.to_ascii_lowercase());
    }
    if bytes.len() != 36 {
        return None;
    }
    let separator = bytes[8];
    if separator != b'-' && separator != b'_' {
        return None;
    }
    let uuid_shape = bytes.iter().enumerate().all(|(at, byte)| {
        if matches!(at, 8 | 13 | 18 | 23) {
            *byte == separator
        } else {
            byte.is_ascii_hexdigit()
        }
    });
    uuid_shape.then(|| raw.replace('_', "-").to_ascii_lowercase())
}

/// A container id as runtimes write it: 64 lowercase hex characters.
fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A container named by one path component.
#[derive(Debug)]
struct ContainerName<'a> {
    runtime: Runtime,
    id: &'a str,
    driver: CgroupDriver,
    monitor: bool,
}

/// The container one path component names, if any.
fn container_component(component: &str) -> Option<ContainerName<'_>> {
    // Longer prefixes first: `crio-conmon-` before `crio-`.
    const PREFIXES: [(&str, Runtime, bool); 6] = [
        ("cri-containerd-", Runtime::Containerd, false),
        ("crio-conmon-", Runtime::CriO, true),
        ("crio-", Runtime::CriO, false),
        ("docker-", Runtime::Docker, false),
        ("libpod-conmon-", Runtime::Podman, true),
        ("libpod-", Runtime::Podman, false),
    ];
    if is_container_id(component) {
        return Some(ContainerName {
            runtime: Runtime::Unknown,
            id: component,
            driver: CgroupDriver::Cgroupfs,
            monitor: false,
        });
    }
    let (name, driver) = match component.strip_suffix(".scope") {
        Some(name) => (name, CgroupDriver::Systemd),
        None => (component, CgroupDriver::Cgroupfs),
    };
    PREFIXES.iter().find_map(|&(prefix, runtime, monitor)| {
        let id = name.strip_prefix(prefix).filter(|id| is_container_id(id))?;
        // cgroupfs names: only CRI-O's `crio-<id>` exists; the others are
        // systemd scopes.
        (driver == CgroupDriver::Systemd || runtime == Runtime::CriO).then_some(ContainerName {
            runtime,
            id,
            driver,
            monitor,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const OTHER: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
    const UID: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
    const UID_UNDERSCORES: &str = "0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0";

    fn container(path: &str) -> Container {
        match parse_cgroup_path(path) {
            Identity::Container(container) => container,
            other => panic!("{path}: expected a container, got {other:?}"),
        }
    }

    fn in_pod(runtime: Runtime, qos: Qos, driver: CgroupDriver) -> Container {
        Container {
            runtime,
            id: ID.to_owned(),
            pod_uid: Some(UID.to_owned()),
            qos: Some(qos),
            driver,
            monitor: false,
        }
    }

    #[test]
    fn a_containerd_container_in_a_burstable_pod_under_systemd_is_identified() {
        let path = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_UNDERSCORES}.slice/cri-containerd-{ID}.scope"
        );
        assert_eq!(
            container(&path),
            in_pod(Runtime::Containerd, Qos::Burstable, CgroupDriver::Systemd)
        );
    }

    #[test]
    fn a_guaranteed_pod_has_no_qos_level_in_its_systemd_path() {
        let path = format!(
            "/kubepods.slice/kubepods-pod{UID_UNDERSCORES}.slice/cri-containerd-{ID}.scope"
        );
        assert_eq!(
            container(&path),
            in_pod(Runtime::Containerd, Qos::Guaranteed, CgroupDriver::Systemd)
        );
    }

    #[test]
    fn a_crio_container_in_a_besteffort_pod_is_identified() {
        let path = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_UNDERSCORES}.slice/crio-{ID}.scope"
        );
        assert_eq!(
            container(&path),
            in_pod(Runtime::CriO, Qos::BestEffort, CgroupDriver::Systemd)
        );
    }

    #[test]
    fn crio_conmon_is_its_container_marked_as_the_monitor() {
        let path = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_UNDERSCORES}.slice/crio-conmon-{ID}.scope"
        );
        let conmon = container(&path);
        assert!(conmon.monitor, "conmon is the monitor");
        assert_eq!(
            Container {
                monitor: false,
                ..conmon
            },
            in_pod(Runtime::CriO, Qos::BestEffort, CgroupDriver::Systemd)
        );
    }

    #[test]
    fn a_crio_container_under_the_cgroupfs_driver_is_identified() {
        let path = format!("/kubepods/burstable/pod{UID}/crio-{ID}");
        assert_eq!(
            container(&path),
            in_pod(Runtime::CriO, Qos::Burstable, CgroupDriver::Cgroupfs)
        );
        let conmon = container(&format!("/kubepods/burstable/pod{UID}/crio-conmon-{ID}"));
        assert!(conmon.monitor);
        assert_eq!(conmon.id, ID);
    }

    #[test]
    fn a_docker_container_outside_kubernetes_has_no_pod() {
        let path = format!("/system.slice/docker-{ID}.scope");
        assert_eq!(
            container(&path),
            Container {
                runtime: Runtime::Docker,
                id: ID.to_owned(),
                pod_uid: None,
                qos: None,
                driver: CgroupDriver::Systemd,
                monitor: false,
            }
        );
    }

    #[test]
    fn a_docker_container_in_a_pod_under_systemd_is_identified() {
        let path = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_UNDERSCORES}.slice/docker-{ID}.scope"
        );
        assert_eq!(
            container(&path),
            in_pod(Runtime::Docker, Qos::Burstable, CgroupDriver::Systemd)
        );
    }

    #[test]
    fn a_podman_container_is_identified() {
        let c = container(&format!("/machine.slice/libpod-{ID}.scope"));
        assert_eq!(
            (c.runtime, c.id.as_str(), c.pod_uid),
            (Runtime::Podman, ID, None)
        );
        assert!(container(&format!("/machine.slice/libpod-conmon-{ID}.scope")).monitor);
    }

    #[test]
    fn a_cgroupfs_container_in_a_burstable_pod_is_identified_without_a_runtime() {
        let path = format!("/kubepods/burstable/pod{UID}/{ID}");
        assert_eq!(
            container(&path),
            in_pod(Runtime::Unknown, Qos::Burstable, CgroupDriver::Cgroupfs)
        );
    }

    #[test]
    fn a_cgroupfs_container_in_a_besteffort_pod_is_identified() {
        let path = format!("/kubepods/besteffort/pod{UID}/{ID}");
        assert_eq!(
            container(&path),
            in_pod(Runtime::Unknown, Qos::BestEffort, CgroupDriver::Cgroupfs)
        );
    }

    #[test]
    fn a_cgroupfs_guaranteed_pod_sits_directly_under_kubepods() {
        let path = format!("/kubepods/pod{UID}/{ID}");
        assert_eq!(
            container(&path),
            in_pod(Runtime::Unknown, Qos::Guaranteed, CgroupDriver::Cgroupfs)
        );
    }

    #[test]
    fn a_cgroupfs_docker_container_is_identified() {
        let c = container(&format!("/docker/{ID}"));
        assert_eq!(
            (c.runtime, c.id.as_str(), c.driver, c.pod_uid, c.qos),
            (Runtime::Docker, ID, CgroupDriver::Cgroupfs, None, None)
        );
    }

    #[test]
    fn a_kind_node_path_with_a_kubelet_prefix_is_identified() {
        let path = format!(
            "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_UNDERSCORES}.slice/cri-containerd-{ID}.scope"
        );
        assert_eq!(
            container(&path),
            in_pod(Runtime::Containerd, Qos::BestEffort, CgroupDriver::Systemd)
        );
    }

    #[test]
    fn a_kind_pod_seen_from_the_host_is_the_pod_container_not_the_node_container() {
        let path = format!(
            "/system.slice/docker-{OTHER}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod{UID_UNDERSCORES}.slice/cri-containerd-{ID}.scope"
        );
        assert_eq!(
            container(&path),
            in_pod(Runtime::Containerd, Qos::Guaranteed, CgroupDriver::Systemd)
        );
    }

    #[test]
    fn a_k3d_node_path_with_a_cgroupfs_prefix_is_identified() {
        let path = format!("/kubelet/kubepods/burstable/pod{UID}/{ID}");
        assert_eq!(
            container(&path),
            in_pod(Runtime::Unknown, Qos::Burstable, CgroupDriver::Cgroupfs)
        );
        let path = format!("/docker/{OTHER}/kubepods/besteffort/pod{UID}/{ID}");
        assert_eq!(
            container(&path),
            in_pod(Runtime::Unknown, Qos::BestEffort, CgroupDriver::Cgroupfs)
        );
    }

    #[test]
    fn a_cgroup_below_a_container_is_still_that_container() {
        let expected = in_pod(Runtime::Unknown, Qos::Burstable, CgroupDriver::Cgroupfs);
        assert_eq!(
            container(&format!("/kubepods/burstable/pod{UID}/{ID}/init.scope")),
            expected
        );
        let nested = format!(
            "/kubepods.slice/kubepods-pod{UID_UNDERSCORES}.slice/cri-containerd-{ID}.scope/system.slice/docker-{OTHER}.scope"
        );
        assert_eq!(
            container(&nested),
            in_pod(Runtime::Containerd, Qos::Guaranteed, CgroupDriver::Systemd)
        );
    }

    #[test]
    fn without_a_pod_the_outermost_container_is_the_container() {
        let c = container(&format!("/docker/{ID}/docker/{OTHER}"));
        assert_eq!(c.id, ID);
        let c = container(&format!("/system.slice/docker-{ID}.scope/init.scope"));
        assert_eq!(c.id, ID);
    }

    #[test]
    fn a_static_pod_keeps_its_hash_as_its_uid() {
        let hash = "5b3f0c0b4c7e8d9e1f2a3b4c5d6e7f80";
        let c = container(&format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{hash}.slice/cri-containerd-{ID}.scope"
        ));
        assert_eq!(c.pod_uid.as_deref(), Some(hash));
    }

    #[test]
    fn host_cgroups_are_the_host() {
        for path in [
            "/",
            "",
            "/user.slice/user-1000.slice/session-3.scope",
            "/system.slice/ssh.service",
            "/system.slice/containerd.service",
            "/init.scope",
            "/kubepods.slice",
            "/kubepods.slice/kubepods-burstable.slice",
            "/kubepods/burstable",
        ] {
            assert_eq!(parse_cgroup_path(path), Identity::Host, "{path}");
        }
    }

    #[test]
    fn a_pod_slice_without_a_container_is_the_host() {
        let path = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_UNDERSCORES}.slice"
        );
        assert_eq!(parse_cgroup_path(&path), Identity::Host);
    }

    #[test]
    fn names_that_only_look_like_containers_are_the_host() {
        for path in [
            format!("/{ID}"),
            format!("/system.slice/{ID}.service"),
            format!("/system.slice/docker-{}.scope", &ID[..63]),
            format!("/system.slice/docker-{}.scope", ID.to_uppercase()),
            format!("/system.slice/docker-{ID}"),
            format!("/system.slice/cri-containerd-{ID}"),
            format!("/kubepods/burstable/pod-nope/{ID}"),
        ] {
            assert_eq!(parse_cgroup_path(&path), Identity::Host, "{path}");
        }
    }

    #[test]
    fn a_container_under_a_pod_slice_that_is_not_a_pod_has_no_pod() {
        let path = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podnot-a-uid.slice/cri-containerd-{ID}.scope"
        );
        let c = container(&path);
        assert_eq!(
            (c.runtime, c.id.as_str(), c.pod_uid, c.qos),
            (Runtime::Containerd, ID, None, None)
        );
    }

    #[test]
    fn a_pod_uid_is_reported_dashed_and_lowercase() {
        assert_eq!(pod_uid(UID_UNDERSCORES).as_deref(), Some(UID));
        assert_eq!(pod_uid(&UID.to_uppercase()).as_deref(), Some(UID));
        assert_eq!(pod_uid("0f1e2d3c_4b5a-6978_8796_a5b4c3d2e1f0"), None);
        assert_eq!(pod_uid("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fz"), None);
    }

    #[test]
    fn names_print_as_kubernetes_spells_them() {
        assert_eq!(Qos::BestEffort.to_string(), "besteffort");
        assert_eq!(Runtime::CriO.to_string(), "cri-o");
        assert_eq!(CgroupDriver::Systemd.to_string(), "systemd");
    }
}
