//! Containment on the real kernel: freezing and isolating real cgroups, the
//! state pinned on bpffs surviving the handle (as it survives an agent exit),
//! and cleanup leaving nothing behind.
//!
//! They need root, BTF and a BPF filesystem at `/sys/fs/bpf`. Outside CI a
//! missing prerequisite skips the test with a printed reason; under `CI=true`
//! it fails it. Each test pins under a directory of its own.
#![expect(clippy::print_stderr, reason = "the tests say why they did not run")]

mod support;

use std::{
    net::{SocketAddr, TcpListener},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    sync::MutexGuard,
    time::{Duration, Instant},
};

use guardrails::actions::{
    cleanup::cleanup,
    containment::{Containment, Target},
    freeze::is_frozen,
    isolate::{AllowRule, Protocol},
};
use support::{TestCgroup, kernel_test, unique_hex};

/// `BPF_FS_MAGIC` from `linux/magic.h`.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// A pin directory of this test's own, cleaned up even when the test fails.
struct PinDir {
    path: PathBuf,
    _kernel: MutexGuard<'static, ()>,
}

impl PinDir {
    /// The kernel lock and a fresh pin directory, when this machine can run
    /// these tests.
    fn new() -> Option<Self> {
        let kernel = kernel_test()?;
        if !is_bpffs(Path::new("/sys/fs/bpf")) {
            let why = "no BPF filesystem at /sys/fs/bpf";
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "containment test prerequisite missing in CI: {why}"
            );
            eprintln!("skipped: {why}");
            return None;
        }
        Some(Self {
            path: PathBuf::from(format!("/sys/fs/bpf/guardrails-test-{}", unique_hex(12))),
            _kernel: kernel,
        })
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let report = cleanup(&self.path);
        if !report.is_clean() {
            eprintln!(
                "cleanup of {} failed: {:?}",
                self.path.display(),
                report.errors
            );
        }
    }
}

fn is_bpffs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mut stat = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: c_path is NUL-terminated and stat points to writable memory.
    if unsafe { libc::statfs(c_path.as_ptr(), stat.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: statfs succeeded and filled the struct.
    unsafe { stat.assume_init() }.f_type == BPF_FS_MAGIC
}

fn target(cgroup: &TestCgroup, rule: &str) -> Target {
    Target {
        cgroup_id: cgroup.id,
        cgroup_dir: cgroup.path.clone(),
        container_id: cgroup.container_id.clone().unwrap_or_default(),
        rule: rule.to_owned(),
    }
}

/// A process in `cgroup` that writes an increasing counter to a file.
struct Counter {
    child: Child,
    file: PathBuf,
}

impl Counter {
    fn start(cgroup: &TestCgroup) -> Self {
        let file = std::env::temp_dir().join(format!("guardrails-counter-{}", unique_hex(12)));
        let script = format!(
            "i=0; while :; do i=$((i+1)); echo $i > {}.tmp; mv {0}.tmp {0}; sleep 0.01; done",
            file.display()
        );
        let child = cgroup
            .command("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .spawn()
            .expect("start the counter");
        let counter = Self { child, file };
        let deadline = Instant::now() + Duration::from_secs(5);
        while counter.value().is_none() {
            assert!(Instant::now() < deadline, "the counter never counted");
            std::thread::sleep(Duration::from_millis(10));
        }
        counter
    }

    fn value(&self) -> Option<u64> {
        std::fs::read_to_string(&self.file)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Whether the counter moves within half a second.
    fn progresses(&self) -> bool {
        let before = self.value();
        std::thread::sleep(Duration::from_millis(500));
        self.value() != before
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.file);
        let _ = std::fs::remove_file(self.file.with_extension("tmp"));
    }
}

/// A TCP listener on loopback, outside every test cgroup.
fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback listener");
    let addr = listener.local_addr().expect("the listener's address");
    (listener, addr)
}

/// `BPF_CGROUP_INET_INGRESS` and `BPF_CGROUP_INET_EGRESS`.
const INGRESS: u32 = 0;
const EGRESS: u32 = 1;

/// The `BPF_PROG_QUERY` part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ProgQuery {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
    prog_attach_flags: u64,
    link_ids: u64,
    link_attach_flags: u64,
    revision: u64,
}

/// How many programs are attached to the cgroup at `dir` for `attach_type`,
/// as `bpftool cgroup show` asks the kernel.
fn attached_programs(dir: &Path, attach_type: u32) -> u32 {
    const BPF_PROG_QUERY: libc::c_long = 16;
    let cgroup = std::fs::File::open(dir).expect("open the cgroup");
    let mut attr = ProgQuery {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type,
        ..Default::default()
    };
    // SAFETY: attr is a valid BPF_PROG_QUERY attribute of the size passed;
    // with no id buffer the kernel only writes the counts into it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_QUERY,
            &mut attr as *mut ProgQuery,
            size_of::<ProgQuery>() as u32,
        )
    };
    assert_eq!(
        ret,
        0,
        "BPF_PROG_QUERY: {}",
        std::io::Error::last_os_error()
    );
    attr.prog_cnt
}

fn pins_below(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(pins_below(&path));
            } else {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn a_frozen_cgroup_makes_no_progress_until_thawed() {
    let Some(pins) = PinDir::new() else { return };
    let cgroup = TestCgroup::new();
    let counter = Counter::start(&cgroup);
    let mut containment = Containment::open(&pins.path, &[]).expect("open");
    assert!(counter.progresses(), "the counter runs before the freeze");

    containment
        .freeze(&target(&cgroup, "Shell in container"))
        .expect("freeze");
    assert!(is_frozen(&cgroup.path).expect("read cgroup.events"));
    assert!(!counter.progresses(), "a frozen counter still counted");
    let listed = containment.list().expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    let frozen = listed[0].frozen.as_ref().expect("listed as frozen");
    assert_eq!(frozen.rule, "Shell in container");
    assert_eq!(listed[0].cgroup_dir, cgroup.path);
    assert_eq!(Some(&listed[0].container_id), cgroup.container_id.as_ref());
    assert!(listed[0].isolated.is_none());

    containment.thaw(cgroup.id).expect("thaw");
    assert!(
        counter.progresses(),
        "the counter did not resume after the thaw"
    );
    assert!(containment.list().expect("list").is_empty());
}

#[test]
fn an_isolated_cgroup_reaches_only_allow_listed_ports_until_lifted() {
    let Some(pins) = PinDir::new() else { return };
    let (_blocked, blocked_addr) = listener();
    let (_allowed, allowed_addr) = listener();
    let allow = [AllowRule {
        protocol: Protocol::Tcp,
        port: allowed_addr.port(),
        remote: Some("127.0.0.1/32".parse().expect("a CIDR")),
    }];
    let cgroup = TestCgroup::new();
    let mut containment = Containment::open(&pins.path, &allow).expect("open");
    assert!(
        cgroup.connects_to(blocked_addr),
        "connects before isolation"
    );

    containment
        .isolate(&target(&cgroup, "Crypto miner"))
        .expect("isolate");
    assert!(
        !cgroup.connects_to(blocked_addr),
        "an isolated process connected"
    );
    assert!(
        support::connects_from_here(blocked_addr),
        "a process outside the cgroup was cut too"
    );
    assert!(
        cgroup.connects_to(allowed_addr),
        "the allow-listed port was cut"
    );
    assert_eq!(attached_programs(&cgroup.path, INGRESS), 1);
    assert_eq!(attached_programs(&cgroup.path, EGRESS), 1);
    let listed = containment.list().expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        listed[0].isolated.as_ref().map(|a| a.rule.as_str()),
        Some("Crypto miner")
    );
    let drops = listed[0].drops.expect("an isolation counts drops");
    assert!(
        drops.egress > 0,
        "the dropped SYN was not counted: {drops:?}"
    );

    containment.lift(cgroup.id).expect("lift");
    assert!(cgroup.connects_to(blocked_addr), "still cut after the lift");
    assert_eq!(attached_programs(&cgroup.path, INGRESS), 0);
    assert_eq!(attached_programs(&cgroup.path, EGRESS), 0);
    assert!(containment.list().expect("list").is_empty());
}

#[test]
fn containment_survives_the_handle_and_is_undone_after_reopening() {
    let Some(pins) = PinDir::new() else { return };
    let (_listener, addr) = listener();
    let (_allowed, allowed_addr) = listener();
    let allow = [
        AllowRule::DNS[0],
        AllowRule::DNS[1],
        AllowRule {
            protocol: Protocol::Any,
            port: allowed_addr.port(),
            remote: None,
        },
    ];
    let cgroup = TestCgroup::new();
    let counter = Counter::start(&cgroup);
    let target = target(&cgroup, "Reverse shell");
    {
        let mut containment = Containment::open(&pins.path, &allow).expect("open");
        containment.isolate(&target).expect("isolate");
        containment.freeze(&target).expect("freeze");
        // Dropped here, as an agent exit would.
    }
    assert!(!counter.progresses(), "thawed by the handle's drop");
    assert!(is_frozen(&cgroup.path).expect("read cgroup.events"));
    assert_eq!(attached_programs(&cgroup.path, EGRESS), 1);

    let mut containment = Containment::open(&pins.path, &allow).expect("reopen");
    let listed = containment.list().expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].cgroup_id, cgroup.id);
    assert!(listed[0].frozen.is_some() && listed[0].isolated.is_some());

    containment.thaw(cgroup.id).expect("thaw after reopening");
    assert!(counter.progresses(), "not thawed");
    assert!(
        !cgroup.connects_to(addr),
        "the isolation did not survive the handle"
    );
    // The links attached before the reopen still read the one pinned
    // allow-list, which the reopen rewrote.
    assert!(
        cgroup.connects_to(allowed_addr),
        "the allow-list was lost across the reopen"
    );
    containment.lift(cgroup.id).expect("lift after reopening");
    assert!(cgroup.connects_to(addr), "still cut after the lift");
    assert_eq!(attached_programs(&cgroup.path, INGRESS), 0);
    assert_eq!(attached_programs(&cgroup.path, EGRESS), 0);
    assert!(containment.list().expect("list").is_empty());
}

#[test]
fn cleanup_leaves_no_pin_no_program_and_no_frozen_cgroup() {
    let Some(pins) = PinDir::new() else { return };
    let cgroup = TestCgroup::new();
    let counter = Counter::start(&cgroup);
    {
        let mut containment = Containment::open(&pins.path, &AllowRule::DNS).expect("open");
        let target = target(&cgroup, "Container drift");
        containment.freeze(&target).expect("freeze");
        containment.isolate(&target).expect("isolate");
    }
    assert!(!pins_below(&pins.path).is_empty());

    let report = cleanup(&pins.path);
    assert!(report.is_clean(), "{:?}", report.errors);
    assert_eq!(report.thawed, std::slice::from_ref(&cgroup.path));
    assert_eq!(report.detached.len(), 2, "{report:?}");
    assert_eq!(report.unpinned.len(), 3, "{report:?}");
    assert!(report.removed_dir);
    assert!(!pins.path.exists(), "the pin directory is still there");
    assert_eq!(attached_programs(&cgroup.path, INGRESS), 0);
    assert_eq!(attached_programs(&cgroup.path, EGRESS), 0);
    assert!(!is_frozen(&cgroup.path).expect("read cgroup.events"));
    assert!(counter.progresses(), "still frozen after cleanup");
}
