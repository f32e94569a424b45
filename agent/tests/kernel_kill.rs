//! The in-kernel kill, on the running kernel: the sensors object loaded in
//! this process, a kill slot set and a container cgroup armed, and real
//! programs executed in and out of that cgroup.

mod support;

use std::{
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::ExitStatus,
};

use aya::Btf;
use guardrails::{
    actions::kernel_kill::KernelMatch,
    bpf::{
        Sensors,
        hooks::{Sensor, SyscallHook},
        loader::{LoadOptions, SensorMaps},
        ring::EventRing,
    },
    events::{
        Event, EventKind,
        clock::BootClock,
        decode::Decoder,
        event::{Exit, KernelKill},
    },
};
use support::{TempDir, TestCgroup};

/// A copy of touch(1) under its own name, so that its path and command name
/// are this test's alone. Whatever it is asked to touch shows that it ran.
struct Marker {
    dir: TempDir,
    path: PathBuf,
}

impl Marker {
    const NAME: &str = "gr-kill-marker";

    fn new() -> Self {
        let dir = TempDir::new("kernel-kill");
        let path = dir.path.join(Self::NAME);
        let touch = ["/usr/bin/touch", "/bin/touch"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("touch(1) is installed");
        std::fs::copy(touch, &path).expect("copy touch");
        // The kernel compares the executable's resolved path.
        let path = std::fs::canonicalize(&path).expect("resolve the marker's path");
        Self { dir, path }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path.join(name)
    }

    /// Runs the marker in `cgroup` with `args`; its pid and how it ended.
    fn run(&self, cgroup: &TestCgroup, args: &[&str]) -> (u32, ExitStatus) {
        let mut child = cgroup
            .command(&self.path)
            .args(args)
            .spawn()
            .expect("start the marker");
        let pid = child.id();
        (pid, child.wait().expect("wait for the marker"))
    }
}

fn load(scope: &[&TestCgroup]) -> (Sensors, SensorMaps) {
    let btf = Btf::from_sys_fs().expect("kernel BTF");
    let options = LoadOptions {
        ring_buffer_bytes: 1 << 22,
        wakeup_bytes: 0,
        scope: scope.iter().map(|c| c.id).collect(),
        sensors: vec![Sensor::Process],
        syscall_hook: SyscallHook::default(),
    };
    Sensors::load(&btf, &options).unwrap_or_else(|e| panic!("load the sensors: {e:?}"))
}

/// Every event waiting in the ring buffer.
fn drain(events: &mut EventRing) -> Vec<Event> {
    let mut decoder = Decoder::new(BootClock::now(), "test".into());
    let mut out = Vec::new();
    while let Some(record) = events.next_record() {
        out.push(decoder.decode(record).expect("a record decodes"));
    }
    out
}

fn exec_of(events: &[Event], pid: u32) -> &Event {
    events
        .iter()
        .find(|e| {
            e.kind == EventKind::ProcessExec && e.process.as_ref().is_some_and(|p| p.pid == pid)
        })
        .unwrap_or_else(|| panic!("no exec event of pid {pid} in {events:#?}"))
}

fn exit_of(events: &[Event], pid: u32) -> &Exit {
    events
        .iter()
        .filter(|e| e.kind == EventKind::ProcessExit)
        .find(|e| e.process.as_ref().is_some_and(|p| p.pid == pid))
        .and_then(|e| e.exit.as_deref())
        .unwrap_or_else(|| panic!("no exit event of pid {pid}"))
}

#[test]
fn a_program_matched_by_path_in_an_armed_cgroup_is_killed_before_it_runs_and_elsewhere_runs() {
    let Some(_kernel) = support::kernel_test() else {
        return;
    };
    let armed = TestCgroup::new();
    let other = TestCgroup::new();
    let marker = Marker::new();
    let (_sensors, mut maps) = load(&[&armed, &other]);
    let exe = marker.path.to_str().expect("a UTF-8 path").to_owned();
    maps.kill
        .set_slots(
            &[(
                5,
                KernelMatch {
                    exes: vec![exe],
                    ..KernelMatch::default()
                },
            )],
            0,
        )
        .expect("set the slot");
    maps.kill.arm(armed.id, 1 << 5).expect("arm the cgroup");

    let killed_file = marker.file("killed");
    let (killed, status) = marker.run(&armed, &[killed_file.to_str().expect("UTF-8")]);
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert!(!killed_file.exists(), "the killed marker wrote its file");

    let ran_file = marker.file("ran");
    let (ran, status) = marker.run(&other, &[ran_file.to_str().expect("UTF-8")]);
    assert!(status.success(), "{status:?}");
    assert!(
        ran_file.exists(),
        "the marker did not run outside the armed cgroup"
    );

    let events = drain(&mut maps.events);
    let exec = exec_of(&events, killed);
    assert_eq!(exec.kernel_kill, Some(KernelKill { slot: 5 }));
    assert_eq!(
        exec.process.as_ref().and_then(|p| p.exe.as_deref()),
        marker.path.to_str()
    );
    assert_eq!(exit_of(&events, killed).signal, Some(libc::SIGKILL));
    assert_eq!(exec_of(&events, ran).kernel_kill, None);
    assert_eq!(exit_of(&events, ran).code, Some(0));
}

#[test]
fn a_name_with_an_argument_prefix_kills_only_the_matching_arguments_until_disarmed() {
    let Some(_kernel) = support::kernel_test() else {
        return;
    };
    let armed = TestCgroup::new();
    let marker = Marker::new();
    let (_sensors, mut maps) = load(&[&armed]);
    let dir = marker.dir.path.to_str().expect("a UTF-8 path");
    // The prefix runs across the separator between two arguments, which
    // proc.args shows as a space.
    let slot = |prefix: &str| {
        (
            9,
            KernelMatch {
                names: vec![Marker::NAME.into()],
                args_prefix: Some(prefix.to_owned()),
                ..KernelMatch::default()
            },
        )
    };
    maps.kill
        .set_slots(&[slot(&format!("-m {dir}/"))], 0)
        .expect("set the slot");
    maps.kill.arm(armed.id, 1 << 9).expect("arm the cgroup");

    let modified = marker.file("modified");
    let (killed, status) = marker.run(&armed, &["-m", modified.to_str().expect("UTF-8")]);
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert!(!modified.exists());

    let accessed = marker.file("accessed");
    let (other_args, status) = marker.run(&armed, &["-a", accessed.to_str().expect("UTF-8")]);
    assert!(status.success(), "{status:?}");
    assert!(accessed.exists());

    // A reload that changes the slot's prefix takes effect at once.
    maps.kill
        .set_slots(&[slot(&format!("-a {dir}/"))], 0)
        .expect("replace the slot");
    let (_, status) = marker.run(&armed, &["-m", modified.to_str().expect("UTF-8")]);
    assert!(status.success(), "{status:?}");
    assert!(modified.exists());

    maps.kill.disarm(armed.id).expect("disarm");
    let disarmed = marker.file("disarmed");
    let (_, status) = marker.run(&armed, &["-a", disarmed.to_str().expect("UTF-8")]);
    assert!(status.success(), "{status:?}");
    assert!(disarmed.exists());

    let events = drain(&mut maps.events);
    assert_eq!(
        exec_of(&events, killed).kernel_kill,
        Some(KernelKill { slot: 9 })
    );
    assert_eq!(exec_of(&events, other_args).kernel_kill, None);
    let kills = events.iter().filter(|e| e.kernel_kill.is_some()).count();
    assert_eq!(kills, 1, "{events:#?}");
}

#[test]
fn the_exec_hook_leaves_a_deny_slot_to_bpf_lsm_and_kills_again_once_it_is_not_one() {
    let Some(_kernel) = support::kernel_test() else {
        return;
    };
    let armed = TestCgroup::new();
    let marker = Marker::new();
    let (_sensors, mut maps) = load(&[&armed]);
    let slot = [(
        2,
        KernelMatch {
            names: vec![Marker::NAME.into()],
            ..KernelMatch::default()
        },
    )];
    maps.kill.set_slots(&slot, 1 << 2).expect("set a deny slot");
    maps.kill.arm(armed.id, 1 << 2).expect("arm the cgroup");

    // The BPF LSM hook is not attached here: a deny slot is left to it, so
    // nothing stops the marker.
    let ran_file = marker.file("left-to-lsm");
    let (ran, status) = marker.run(&armed, &[ran_file.to_str().expect("UTF-8")]);
    assert!(status.success(), "{status:?}");
    assert!(ran_file.exists());

    maps.kill.set_slots(&slot, 0).expect("make it a kill slot");
    let killed_file = marker.file("killed");
    let (killed, status) = marker.run(&armed, &[killed_file.to_str().expect("UTF-8")]);
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert!(!killed_file.exists());

    let events = drain(&mut maps.events);
    assert_eq!(exec_of(&events, ran).kernel_kill, None);
    assert_eq!(
        exec_of(&events, killed).kernel_kill,
        Some(KernelKill { slot: 2 })
    );
    assert!(
        events.iter().all(|e| e.kernel_deny.is_none()),
        "{events:#?}"
    );
}
