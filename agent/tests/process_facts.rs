//! The process facts that Falco's rules ask about (`proc.tty`, `proc.sid`,
//! `proc.vpgid`, `proc.sname`, `proc.exe_ino.*`, `user.name`, ...), checked on
//! real processes: terminals, sessions, process groups, executables and
//! roots made by the test.

mod support;

use std::{
    ffi::CString,
    os::unix::{ffi::OsStrExt, fs::MetadataExt, process::CommandExt},
    path::Path,
};

use serde_json::Value;
use support::{Agent, TempDir, TestCgroup, config_for, find, in_cgroup, kernel_test, open_pty};

/// `/proc/PID/stat`'s encoding of a device number (the kernel's
/// new_encode_dev).
fn tty_nr(rdev: u64) -> u64 {
    let (major, minor) = (u64::from(libc::major(rdev)), u64::from(libc::minor(rdev)));
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

#[test]
fn a_process_on_a_pseudo_terminal_has_its_tty_and_one_without_has_none() {
    let Some(_kernel) = kernel_test() else { return };
    let cgroup = TestCgroup::new();
    let agent = Agent::start(&config_for(&cgroup));
    let (master, terminal) = open_pty();
    let rdev = std::fs::metadata(Path::new(std::ffi::OsStr::from_bytes(terminal.as_bytes())))
        .expect("stat the terminal")
        .rdev();

    let mut on_tty = cgroup.command("/bin/true");
    let slave = terminal.clone();
    // SAFETY: setsid, open and ioctl are async-signal-safe; the path was
    // made before the fork.
    unsafe {
        on_tty.pre_exec(move || {
            // A new session has no terminal; the first one its leader opens
            // becomes its controlling terminal.
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let fd = libc::open(slave.as_ptr(), libc::O_RDWR);
            if fd < 0 || libc::ioctl(fd, libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = on_tty.spawn().expect("run true on the terminal");
    let on_tty_pid = child.id();
    assert!(child.wait().expect("wait").success());

    let mut detached = cgroup.command("/bin/true");
    // SAFETY: setsid is async-signal-safe. A new session drops whatever
    // terminal the test runs on.
    unsafe {
        detached.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = detached.spawn().expect("run true without a terminal");
    let detached_pid = child.id();
    assert!(child.wait().expect("wait").success());

    let events = agent.wait_for_exec(detached_pid);
    let events = if find(&events, &cgroup, "process_exec", on_tty_pid).is_none() {
        agent.wait_for_exec(on_tty_pid)
    } else {
        events
    };
    let exec = find(&events, &cgroup, "process_exec", on_tty_pid).expect("the exec on the tty");
    assert_eq!(
        exec["process"]["tty"].as_u64(),
        Some(tty_nr(rdev)),
        "{exec}"
    );
    assert_ne!(exec["process"]["tty"], 0);
    assert_eq!(exec["process"]["sid"], on_tty_pid);
    let exec = find(&events, &cgroup, "process_exec", detached_pid).expect("the detached exec");
    assert_eq!(exec["process"]["tty"], 0, "{exec}");
    // SAFETY: master is ours.
    unsafe { libc::close(master) };
    support::assert_schema_valid(&events);
    agent.stop();
}

/// The event of `kind` about the process whose argv\[1\] is `token`.
fn by_token<'a>(events: &'a [Value], cgroup: &TestCgroup, kind: &str, token: &str) -> &'a Value {
    let pid = in_cgroup(events, cgroup)
        .find(|e| e["kind"] == "process_exec" && e["process"]["args"][1] == token)
        .expect("the exec")["process"]["pid"]
        .clone();
    in_cgroup(events, cgroup)
        .find(|e| e["kind"] == kind && e["process"]["pid"] == pid)
        .unwrap_or_else(|| panic!("no {kind} of {pid}"))
}

#[test]
fn session_and_group_leaders_are_named_from_the_process_tree() {
    let Some(_kernel) = kernel_test() else { return };
    let cgroup = TestCgroup::new();
    let agent = Agent::start(&config_for(&cgroup));
    let shell_exe = std::fs::canonicalize("/bin/sh").expect("resolve /bin/sh");

    // A shell that leads a new session (and so its own group) runs a child.
    let session_token = support::unique_hex(12);
    let mut leader = cgroup.command("/bin/sh");
    leader.args(["-c", &format!("/bin/true {session_token}; exit 0")]);
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        leader.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = leader.spawn().expect("run sh in a new session");
    let session_pid = child.id();
    assert!(child.wait().expect("wait").success());

    // A shell that leads only a new group, in the test's session.
    let group_token = support::unique_hex(12);
    let mut group = cgroup.command("/bin/sh");
    group.args(["-c", &format!("/bin/true {group_token}; exit 0")]);
    group.process_group(0);
    let mut child = group.spawn().expect("run sh in a new group");
    let group_pid = child.id();
    assert!(child.wait().expect("wait").success());

    let done = |events: &[Value]| {
        [&session_token, &group_token].iter().all(|token| {
            events.iter().any(|e| {
                e["kind"] == "process_exit"
                    && e["process"]["comm"] == "true"
                    && events.iter().any(|x| {
                        x["kind"] == "process_exec"
                            && x["process"]["args"][1] == token.as_str()
                            && x["process"]["pid"] == e["process"]["pid"]
                    })
            })
        })
    };
    let events = agent.wait_for_events("both children's exits", done);

    let shell_exec = find(&events, &cgroup, "process_exec", session_pid).expect("the shell's exec");
    for kind in ["process_exec", "process_exit"] {
        let p = &by_token(&events, &cgroup, kind, &session_token)["process"];
        assert_eq!(
            (&p["sid"], &p["pgid"]),
            (&session_pid.into(), &session_pid.into()),
            "{p}"
        );
        assert_eq!(
            p["vpgid"], session_pid,
            "the test runs in the host's PID namespace"
        );
        for section in ["session_leader", "group_leader"] {
            assert_eq!(
                p[section],
                serde_json::json!({"pid": session_pid, "comm": "sh", "exe": shell_exe.to_str()}),
                "{section}"
            );
        }
        assert_eq!(p["ancestors"][0]["pid"], session_pid);
        assert_eq!(
            p["ancestors"][0]["start_ns"], shell_exec["process"]["start_ns"],
            "the parent's start, for proc.ppid.duration"
        );
    }

    // SAFETY: getsid has no preconditions.
    let test_session = unsafe { libc::getsid(0) } as u32;
    let p = &by_token(&events, &cgroup, "process_exec", &group_token)["process"];
    assert_eq!(
        (&p["pgid"], &p["sid"]),
        (&group_pid.into(), &test_session.into()),
        "{p}"
    );
    assert_eq!(p["group_leader"]["pid"], group_pid);
    assert_eq!(p["group_leader"]["comm"], "sh");
    if !p["session_leader"].is_null() {
        assert_eq!(p["session_leader"]["pid"], test_session);
    }
    support::assert_schema_valid(&events);
    agent.stop();
}

#[test]
fn a_process_in_its_own_pid_namespace_has_its_numbers_there_and_on_the_host() {
    let Some(_kernel) = kernel_test() else { return };
    let cgroup = TestCgroup::new();
    let agent = Agent::start(&config_for(&cgroup));

    // pid 1 of a new PID namespace leads a new session there and runs a
    // child: the child's group is visible in its namespace, as 1.
    let token = support::unique_hex(12);
    let mut command = cgroup.command("unshare");
    command.args([
        "--pid",
        "--fork",
        "setsid",
        "/bin/sh",
        "-c",
        &format!("/bin/true {token}; exit 0"),
    ]);
    assert!(command.status().expect("run unshare").success());

    let events = agent.wait_for_events("the child's exit", |events| {
        events.iter().any(|e| {
            e["kind"] == "process_exit"
                && e["process"]["comm"] == "true"
                && e["process"]["ns_pid"] == 2
        })
    });
    for kind in ["process_exec", "process_exit"] {
        let p = &by_token(&events, &cgroup, kind, &token)["process"];
        let shell = p["ppid"].as_u64().expect("a parent");
        assert_eq!(p["ns_pid"], 2, "pid 1's first child there: {p}");
        assert_ne!(p["pid"], p["ns_pid"], "the host's number differs: {p}");
        assert_eq!(
            (&p["pgid"], &p["sid"]),
            (&shell.into(), &shell.into()),
            "{p}"
        );
        assert_eq!(p["vpgid"], 1, "the group as its namespace sees it: {p}");
    }
    let child = &by_token(&events, &cgroup, "process_exec", &token)["process"]["pid"];
    let fork = in_cgroup(&events, &cgroup)
        .find(|e| e["kind"] == "process_fork" && &e["fork"]["child_pid"] == child)
        .expect("the shell's fork of the child");
    assert_eq!(fork["fork"]["child_ns_pid"], 2, "{fork}");
    assert_eq!(
        fork["process"]["ns_pid"], 1,
        "the shell is pid 1 there: {fork}"
    );
    support::assert_schema_valid(&events);
    agent.stop();
}

#[test]
fn an_execd_binary_carries_its_inode_and_times_on_every_event() {
    let Some(_kernel) = kernel_test() else { return };
    let cgroup = TestCgroup::new();
    let agent = Agent::start(&config_for(&cgroup));
    let dir = TempDir::new("exe");
    let program = dir.path.join("my-true");
    std::fs::copy("/bin/true", &program).expect("copy true");
    let meta = std::fs::metadata(&program).expect("stat the copy");

    let mut child = cgroup.command(&program).spawn().expect("run the copy");
    let pid = child.id();
    assert!(child.wait().expect("wait").success());
    let events = agent.wait_for_events("the copy's exit", |events| {
        events
            .iter()
            .any(|e| e["kind"] == "process_exit" && e["process"]["pid"] == pid)
    });
    let ns = |sec: i64, nsec: i64| sec * 1_000_000_000 + nsec;
    for kind in ["process_exec", "process_exit"] {
        let p = &find(&events, &cgroup, kind, pid).expect("the event")["process"];
        assert_eq!(p["exe_ino"].as_u64(), Some(meta.ino()), "{kind}: {p}");
        assert_eq!(
            p["exe_mtime_ns"].as_i64(),
            Some(ns(meta.mtime(), meta.mtime_nsec()))
        );
        assert_eq!(
            p["exe_ctime_ns"].as_i64(),
            Some(ns(meta.ctime(), meta.ctime_nsec()))
        );
    }
    agent.stop();
}

/// The shared libraries (and loader) `program` needs, as ldd lists them.
fn libraries_of(program: &str) -> Vec<String> {
    let output = std::process::Command::new("ldd")
        .arg(program)
        .output()
        .expect("run ldd");
    assert!(output.status.success(), "ldd {program} failed");
    String::from_utf8_lossy(&output.stdout)
        .split_ascii_whitespace()
        .filter(|word| word.starts_with('/'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn user_names_are_root_for_uid_0_absent_without_an_entry_and_read_from_a_chroot() {
    let Some(_kernel) = kernel_test() else { return };
    let cgroup = TestCgroup::new();
    let agent = Agent::start(&config_for(&cgroup));
    const NOBODY_HERE: u32 = 54_321;

    let mut child = cgroup
        .command("/bin/true")
        .spawn()
        .expect("run true as root");
    let root_pid = child.id();
    assert!(child.wait().expect("wait").success());

    let mut child = cgroup
        .command_as("/bin/true", NOBODY_HERE, NOBODY_HERE)
        .spawn()
        .expect("run true as a uid without a name");
    let nameless_pid = child.id();
    assert!(child.wait().expect("wait").success());

    // A root of its own: sleep and the libraries it needs, and files that
    // name the uid the host does not.
    let jail = TempDir::new("chroot");
    for file in std::iter::once("/bin/sleep".to_owned()).chain(libraries_of("/bin/sleep")) {
        let source = std::fs::canonicalize(&file).expect("a file sleep needs");
        let target = jail.path.join(file.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().expect("a parent")).expect("mkdir");
        std::fs::copy(&source, &target).expect("copy into the root");
    }
    std::fs::create_dir_all(jail.path.join("etc")).expect("mkdir etc");
    std::fs::write(
        jail.path.join("etc/passwd"),
        format!("root:x:0:0::/:/bin/sleep\nalice:x:{NOBODY_HERE}:{NOBODY_HERE}::/:/bin/sleep\n"),
    )
    .expect("write passwd");
    std::fs::write(
        jail.path.join("etc/group"),
        format!("staff:x:{NOBODY_HERE}:\n"),
    )
    .expect("write group");
    let jail_path = CString::new(jail.path.as_os_str().as_bytes()).expect("a path");
    let mut jailed = cgroup.command("/bin/sleep");
    jailed.arg("0.5");
    // SAFETY: chroot, chdir, setgroups, setgid and setuid are
    // async-signal-safe; the path was made before the fork. This closure runs
    // after the one that joins the cgroup, which needs the host's root.
    unsafe {
        jailed.pre_exec(move || {
            if libc::chroot(jail_path.as_ptr()) != 0
                || libc::chdir(c"/".as_ptr()) != 0
                || libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(NOBODY_HERE) != 0
                || libc::setuid(NOBODY_HERE) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = jailed.spawn().expect("run sleep in the root");
    let jailed_pid = child.id();
    let events = agent.wait_for_exec(jailed_pid);
    assert!(child.wait().expect("wait").success());
    let events = if find(&events, &cgroup, "process_exec", nameless_pid).is_none() {
        agent.wait_for_exec(nameless_pid)
    } else {
        events
    };

    let p = &find(&events, &cgroup, "process_exec", root_pid).expect("root's exec")["process"];
    assert_eq!(
        (&p["user_name"], &p["group_name"]),
        (&"root".into(), &"root".into()),
        "{p}"
    );
    let p = &find(&events, &cgroup, "process_exec", nameless_pid).expect("the exec")["process"];
    assert_eq!(p["uid"], NOBODY_HERE);
    assert!(
        p.get("user_name").is_none(),
        "no name, as Falco's <NA>: {p}"
    );
    assert!(p.get("group_name").is_none(), "{p}");
    let p =
        &find(&events, &cgroup, "process_exec", jailed_pid).expect("the jailed exec")["process"];
    assert_eq!(p["exe"], "/bin/sleep");
    assert_eq!(
        (&p["user_name"], &p["group_name"]),
        (&"alice".into(), &"staff".into()),
        "{p}"
    );
    support::assert_schema_valid(&events);

    let scrape = agent.scrape();
    let entries = scrape
        .iter()
        .find(|(name, _)| name == "guardrails_user_names_cache_entries")
        .map(|(_, value)| *value);
    assert!(entries.is_some(), "the cache is on /metrics: {scrape:?}");
    agent.stop();
}
