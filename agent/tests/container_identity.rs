//! Container identity on the real kernel: cgroup directories named like the
//! kubelet's and the runtimes', made under `<mount>/guardrails-tests/`, looked
//! up by their ids and removed afterwards.
//!
//! They need root. Outside CI, without it, each test prints why it did not
//! run; under `CI=true` a missing prerequisite fails it. The cgroup v1 tests
//! also need the v1 hierarchy they use; a node with cgroup v2 alone has none,
//! so there they print why and return, in CI too.
#![expect(clippy::print_stderr, reason = "the tests say why they did not run")]

mod support;

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use guardrails::container::{
    CgroupDriver, CgroupPaths, ContainerResolver, Identity, Lookup, Qos, ResolveOptions, Runtime,
};
use support::unique_hex;

/// The cgroup v2 mount, when this machine can run these tests. Outside CI a
/// missing prerequisite skips the test with a printed reason; under `CI=true`
/// it fails the test.
fn cgroup2() -> Option<PathBuf> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mount = guardrails::cgroup::cgroup2_mount();
    let missing = match (&mount, root) {
        (_, false) => "not root",
        (Err(_), true) => "no cgroup v2 mount",
        (Ok(_), true) => return mount.ok(),
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "container identity test prerequisite missing in CI: {missing}"
    );
    eprintln!("skipped: {missing}");
    None
}

/// The mount of cgroup v1 hierarchy `hierarchy`, if root and it is mounted.
fn cgroup1(hierarchy: &str) -> Option<PathBuf> {
    cgroup2()?;
    match guardrails::cgroup::cgroup1_mount(hierarchy) {
        Ok(mount) => Some(mount),
        Err(error) => {
            eprintln!("skipped: {error}");
            None
        }
    }
}

/// A fresh directory tree under `<mount>/guardrails-tests/`, removed (deepest
/// first, as cgroups must be) when dropped.
struct Tree {
    base: PathBuf,
}

impl Tree {
    fn new(mount: &Path) -> Self {
        let base = mount
            .join("guardrails-tests")
            .join(format!("identity-{}", unique_hex(12)));
        std::fs::create_dir_all(&base).unwrap_or_else(|e| panic!("create {}: {e}", base.display()));
        Self { base }
    }

    /// Makes the cgroup at `relative` (and its parents) and returns its id.
    fn cgroup(&self, relative: &str) -> u64 {
        let path = self.base.join(relative);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
            .ino()
    }

    fn remove(&self, relative: &str) {
        let path = self.base.join(relative);
        std::fs::remove_dir(&path).unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        fn remove(dir: &Path) {
            if let Ok(entries) = std::fs::read_dir(dir) {
                for entry in entries.flatten() {
                    if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                        remove(&entry.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(dir);
        }
        remove(&self.base);
    }
}

/// A pod UID, dashed.
fn pod_uid() -> String {
    let hex = unique_hex(32);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn resolver() -> ContainerResolver {
    ContainerResolver::new(ResolveOptions::default()).expect("open the cgroup v2 mount")
}

fn container(identity: Identity) -> guardrails::container::Container {
    match identity {
        Identity::Container(container) => container,
        other => panic!("expected a container, got {other:?}"),
    }
}

#[test]
fn a_containerd_container_in_a_kubepods_slice_is_identified_by_its_cgroup_id() {
    let Some(mount) = cgroup2() else { return };
    let tree = Tree::new(&mount);
    let (uid, id) = (pod_uid(), unique_hex(64));
    let scope = format!(
        "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{id}.scope",
        uid.replace('-', "_")
    );
    let cgroup_id = tree.cgroup(&scope);
    let below = tree.cgroup(&format!("{scope}/init.scope"));

    let mut resolver = resolver();
    let found = container(resolver.identify(cgroup_id));
    assert_eq!(found.runtime, Runtime::Containerd);
    assert_eq!(found.id, id);
    assert_eq!(found.pod_uid.as_deref(), Some(uid.as_str()));
    assert_eq!(found.qos, Some(Qos::Burstable));
    assert_eq!(found.driver, CgroupDriver::Systemd);
    assert_eq!(resolver.identify(below), Identity::Container(found));
}

#[test]
fn a_crio_container_and_its_conmon_are_identified_by_their_cgroup_ids() {
    let Some(mount) = cgroup2() else { return };
    let tree = Tree::new(&mount);
    let (uid, id) = (pod_uid(), unique_hex(64));
    let pod = format!(
        "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice",
        uid.replace('-', "_")
    );
    let workload = tree.cgroup(&format!("{pod}/crio-{id}.scope"));
    let conmon = tree.cgroup(&format!("{pod}/crio-conmon-{id}.scope"));

    let mut resolver = resolver();
    let found = container(resolver.identify(workload));
    assert_eq!(
        (
            found.runtime,
            found.id.as_str(),
            found.pod_uid.as_deref(),
            found.qos,
            found.monitor
        ),
        (
            Runtime::CriO,
            id.as_str(),
            Some(uid.as_str()),
            Some(Qos::BestEffort),
            false
        )
    );
    let monitor = container(resolver.identify(conmon));
    assert_eq!((monitor.id.as_str(), monitor.monitor), (id.as_str(), true));
}

#[test]
fn a_cgroupfs_container_in_a_guaranteed_pod_is_identified_by_its_cgroup_id() {
    let Some(mount) = cgroup2() else { return };
    let tree = Tree::new(&mount);
    let (uid, id) = (pod_uid(), unique_hex(64));
    let cgroup_id = tree.cgroup(&format!("kubelet/kubepods/pod{uid}/{id}"));

    let found = container(resolver().identify(cgroup_id));
    assert_eq!(found.runtime, Runtime::Unknown, "cgroupfs names do not say");
    assert_eq!(found.id, id);
    assert_eq!(found.pod_uid.as_deref(), Some(uid.as_str()));
    assert_eq!(found.qos, Some(Qos::Guaranteed));
    assert_eq!(found.driver, CgroupDriver::Cgroupfs);
}

#[test]
fn host_cgroups_and_the_root_are_the_host() {
    let Some(mount) = cgroup2() else { return };
    let tree = Tree::new(&mount);
    let ssh = tree.cgroup("system.slice/ssh.service");
    let session = tree.cgroup("user.slice/user-1000.slice/session-1.scope");
    let root = std::fs::metadata(&mount).expect("stat the mount").ino();

    let mut resolver = resolver();
    assert_eq!(resolver.identify(ssh), Identity::Host);
    assert_eq!(resolver.identify(session), Identity::Host);
    assert_eq!(resolver.identify(root), Identity::Host);
}

#[test]
fn a_removed_cgroup_is_unknown_not_the_host() {
    let Some(mount) = cgroup2() else { return };
    let tree = Tree::new(&mount);
    let scope = format!("docker-{}.scope", unique_hex(64));
    let cgroup_id = tree.cgroup(&scope);
    tree.remove(&scope);

    let mut resolver = resolver();
    assert_eq!(resolver.identify(cgroup_id), Identity::Unknown);
    assert_eq!(resolver.identify(cgroup_id), Identity::Unknown);
    let stats = resolver.stats();
    assert_eq!(
        (
            stats.v2.misses,
            stats.v2.hits,
            stats.v2.vanished,
            stats.failures
        ),
        (1, 1, 2, 0),
        "the second lookup is answered from the cache: {stats:?}"
    );
}

#[test]
fn lookups_use_file_handles_as_root_and_repeat_lookups_hit_the_cache() {
    let Some(mount) = cgroup2() else { return };
    let tree = Tree::new(&mount);
    let id = unique_hex(64);
    let cgroup_id = tree.cgroup(&format!("system.slice/docker-{id}.scope"));

    let mut paths = CgroupPaths::v2(ResolveOptions::default()).expect("open the cgroup v2 mount");
    assert!(
        paths.uses_handles(),
        "root with CAP_DAC_READ_SEARCH may open kernfs handles"
    );
    let expected = format!(
        "/guardrails-tests/{}/system.slice/docker-{id}.scope",
        tree.base
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a name")
    );
    for _ in 0..3 {
        let path = paths.path(cgroup_id).expect("resolve").expect("it exists");
        assert_eq!(&*path, expected);
    }
    let stats = paths.stats();
    assert_eq!(
        (stats.misses, stats.hits, stats.entries),
        (1, 2, 1),
        "{stats:?}"
    );
}

#[test]
fn the_fallback_walk_finds_the_same_paths_as_file_handles() {
    let Some(mount) = cgroup2() else { return };
    let tree = Tree::new(&mount);
    let id = unique_hex(64);
    let cgroup_id = tree.cgroup(&format!("kubepods/besteffort/pod{}/{id}/sub", pod_uid()));

    let walk = ResolveOptions {
        lookup: Lookup::Walk,
        ..ResolveOptions::default()
    };
    let mut walking = CgroupPaths::open(&mount, walk).expect("open the cgroup v2 mount");
    assert!(!walking.uses_handles());
    let mut handles =
        CgroupPaths::open(&mount, ResolveOptions::default()).expect("open the cgroup v2 mount");
    let by_walk = walking
        .path(cgroup_id)
        .expect("walk")
        .expect("found by walking");
    let by_handle = handles
        .path(cgroup_id)
        .expect("handle")
        .expect("found by handle");
    assert_eq!(by_walk, by_handle);

    let mut resolver = ContainerResolver::with_v2(walking, ResolveOptions::default());
    assert_eq!(container(resolver.identify(cgroup_id)).id, id);
}

#[test]
fn a_walk_stops_at_its_limit() {
    let Some(mount) = cgroup2() else { return };
    let tree = Tree::new(&mount);
    let deep = tree.cgroup("a/b/c/d/e/f");
    let options = ResolveOptions {
        lookup: Lookup::Walk,
        walk_limit: 1,
        ..ResolveOptions::default()
    };
    let mut paths = CgroupPaths::open(&mount, options).expect("open the cgroup v2 mount");
    assert_eq!(paths.path(deep).expect("a bounded walk is no error"), None);
}

#[test]
fn a_cgroup_v1_container_is_identified_in_its_hierarchy() {
    for hierarchy in ["pids", "memory"] {
        let Some(mount) = cgroup1(hierarchy) else {
            continue;
        };
        let tree = Tree::new(&mount);
        let (uid, id) = (pod_uid(), unique_hex(64));
        let cgroup_id = tree.cgroup(&format!(
            "kubepods.slice/kubepods-pod{}.slice/cri-containerd-{id}.scope",
            uid.replace('-', "_")
        ));
        let host = tree.cgroup("system.slice/ssh.service");

        let paths =
            CgroupPaths::v1(hierarchy, ResolveOptions::default()).expect("open the hierarchy");
        assert!(
            paths.uses_handles(),
            "kernfs handles work on the {hierarchy} hierarchy"
        );

        let mut resolver = resolver();
        let found = container(resolver.identify_v1(hierarchy, cgroup_id));
        assert_eq!(
            (
                found.runtime,
                found.id.as_str(),
                found.pod_uid.as_deref(),
                found.qos
            ),
            (
                Runtime::Containerd,
                id.as_str(),
                Some(uid.as_str()),
                Some(Qos::Guaranteed)
            ),
            "{hierarchy}"
        );
        assert_eq!(
            resolver.identify_v1(hierarchy, host),
            Identity::Host,
            "{hierarchy}"
        );
        let by_mount = mount.to_str().expect("a UTF-8 mount point");
        assert_eq!(
            resolver.identify_v1(by_mount, cgroup_id),
            Identity::Container(found),
            "{hierarchy} named by its mount point"
        );
    }
}

#[test]
fn an_unknown_v1_hierarchy_gives_unknown_identities() {
    let Some(_) = cgroup2() else { return };
    let mut resolver = resolver();
    assert_eq!(
        resolver.identify_v1("no-such-controller", 1),
        Identity::Unknown
    );
    assert!(resolver.stats().v1.is_empty());
}
