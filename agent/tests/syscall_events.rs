//! The file, network, descriptor and privilege sensors against this machine's
//! kernel: each test makes real syscalls from a child in a fresh cgroup and
//! checks the event the agent printed for them.

mod support;

use std::net::{TcpListener, UdpSocket};

use guardrails::bpf::{
    hooks::{SYS_EXIT_EACH_COMPAT_PROGRAM, SYS_EXIT_EACH_PROGRAM, Sensor},
    kfuncs::RDONLY_CAST,
    syscalls::SYSCALLS,
};
use serde_json::Value;
use support::{
    Agent, MemfdExec, Overlay, TempDir, TestCgroup, config_for, cstring, in_cgroup, kernel_test,
};

/// The `syscall` events named `name` that process `pid` made.
fn calls<'a>(events: &'a [Value], cgroup: &TestCgroup, pid: u32, name: &str) -> Vec<&'a Value> {
    in_cgroup(events, cgroup)
        .filter(|e| {
            e["kind"] == "syscall" && e["process"]["pid"] == pid && e["syscall"]["name"] == name
        })
        .collect()
}

/// Where the syscall sensors attach in a test: most tests use the
/// per-syscall tracepoints, the default hook; a few use `sys_exit`, so that
/// hook is covered too, and the failed module load needs it on a kernel
/// built without modules (no tracepoint for those syscalls).
#[derive(Clone, Copy)]
enum Hook {
    PerSyscall,
    SysExit,
}

/// The tests' config for `cgroup` with `sensors.syscall_hook: hook`.
fn config_with_hook(cgroup: &TestCgroup, hook: &str) -> String {
    format!("{}sensors:\n  syscall_hook: {hook}\n", config_for(cgroup))
}

/// Runs `body` in a child in a fresh cgroup under a fresh agent and returns
/// the events once the child's exit has been seen, with the child's pid.
fn run_and_collect(
    hook: Hook,
    body: impl FnOnce() -> i32,
) -> Option<(Vec<Value>, TestCgroup, u32)> {
    let kernel = kernel_test()?;
    let cgroup = TestCgroup::new();
    let hook = match hook {
        Hook::PerSyscall => "per_syscall",
        Hook::SysExit => "sys_exit",
    };
    let agent = Agent::start(&config_with_hook(&cgroup, hook));
    let pid = cgroup.run_in(body);
    agent.wait_for_events("the child's exit", |events| {
        events
            .iter()
            .any(|e| e["kind"] == "process_exit" && e["process"]["pid"] == pid)
    });
    let (events, status) = agent.stop();
    assert!(status.success(), "{status}");
    support::assert_schema_valid(&events);
    drop(kernel);
    Some((events, cgroup, pid))
}

fn sockaddr_in(port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
        },
        sin_zero: [0; 8],
    }
}

const SOCKADDR_IN_LEN: libc::socklen_t = size_of::<libc::sockaddr_in>() as libc::socklen_t;

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `struct __user_cap_header_struct` for version 3, this process.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

static CAP_HEADER: CapHeader = CapHeader {
    version: 0x2008_0522,
    pid: 0,
};

fn only<'a>(found: Vec<&'a Value>, what: &str) -> &'a Value {
    assert_eq!(found.len(), 1, "exactly one {what}: {found:#?}");
    found[0]
}

#[test]
fn opening_a_temporary_file_reports_its_absolute_path_flags_and_descriptor() {
    let dir = TempDir::new("open");
    let name = cstring("created.txt");
    let dir_c = cstring(&dir.path);
    let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC;
    let Some((events, cgroup, pid)) = run_and_collect(Hook::PerSyscall, || {
        // SAFETY: system calls on C strings prepared before the fork.
        unsafe {
            if libc::chdir(dir_c.as_ptr()) != 0 {
                return 1;
            }
            let fd = libc::open(name.as_ptr(), flags, 0o640);
            i32::from(fd < 0)
        }
    }) else {
        return;
    };
    let expected = dir.path.join("created.txt");
    let open = calls(&events, &cgroup, pid, "open")
        .into_iter()
        .chain(calls(&events, &cgroup, pid, "openat"))
        .find(|e| e["syscall"]["paths"][0]["raw"] == "created.txt")
        .unwrap_or_else(|| panic!("no open of created.txt: {events:#?}"));
    let call = &open["syscall"];
    assert_eq!(call["sensor"], "file");
    assert_eq!(
        call["paths"][0]["path"],
        expected.to_str().expect("utf-8"),
        "made absolute"
    );
    assert_eq!(call["args"]["flags"], i64::from(flags));
    assert_eq!(call["args"]["mode"], 0o640);
    let fd = call["ret"].as_i64().expect("ret");
    assert!(fd >= 0);
    assert_eq!(call["fds"][0]["arg"], "ret");
    assert_eq!(call["fds"][0]["fd"], fd);
    assert_eq!(call["fds"][0]["path"], expected.to_str().expect("utf-8"));
}

#[test]
fn a_tcp_connect_and_its_accept_report_both_endpoints_and_dup2_onto_stdout_says_it_is_that_socket()
{
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let listen_fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
    let addr = sockaddr_in(port);
    let Some((events, cgroup, pid)) = run_and_collect(Hook::PerSyscall, || {
        // SAFETY: socket calls on a sockaddr prepared before the fork.
        unsafe {
            let client = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            if client < 0 || libc::connect(client, (&raw const addr).cast(), SOCKADDR_IN_LEN) != 0 {
                return 1;
            }
            let accepted = libc::accept(listen_fd, std::ptr::null_mut(), std::ptr::null_mut());
            // send() on a stream is sendto() without an address: not reported.
            let sent = libc::send(client, c"x".as_ptr().cast(), 1, 0);
            if accepted < 0 || sent != 1 || libc::dup2(client, 1) != 1 {
                return 2;
            }
            0
        }
    }) else {
        return;
    };
    drop(listener);

    let connect = only(calls(&events, &cgroup, pid, "connect"), "connect");
    let call = &connect["syscall"];
    assert_eq!(call["ret"], 0);
    assert_eq!(call["addresses"][0]["address"], "127.0.0.1");
    assert_eq!(call["addresses"][0]["port"], port);
    let socket = &call["fds"][0]["socket"];
    assert_eq!(
        (socket["family"].as_str(), socket["protocol"].as_str()),
        (Some("inet"), Some("tcp"))
    );
    assert_eq!(socket["remote"]["port"], port);
    assert_eq!(socket["remote"]["address"], "127.0.0.1");
    let client_port = socket["local"]["port"]
        .as_u64()
        .expect("the kernel bound a local port");
    assert_ne!(client_port, 0);

    let accept = only(calls(&events, &cgroup, pid, "accept"), "accept");
    let accepted = accept["syscall"]["fds"]
        .as_array()
        .expect("fds")
        .iter()
        .find(|fd| fd["arg"] == "ret")
        .expect("the accepted descriptor");
    assert_eq!(accepted["socket"]["local"]["port"], port);
    assert_eq!(accepted["socket"]["remote"]["port"], client_port);
    assert_eq!(accepted["socket"]["state"], "established");

    assert!(
        calls(&events, &cgroup, pid, "sendto").is_empty(),
        "a send() on a connected stream is not reported"
    );

    let dup2 = only(calls(&events, &cgroup, pid, "dup2"), "dup2");
    let call = &dup2["syscall"];
    assert_eq!(call["sensor"], "descriptors");
    assert_eq!(call["ret"], 1);
    let stdout = call["fds"]
        .as_array()
        .expect("fds")
        .iter()
        .find(|fd| fd["arg"] == "ret")
        .expect("the new descriptor");
    assert_eq!(stdout["fd"], 1);
    assert_eq!(stdout["type"], "socket");
    assert_eq!(stdout["socket"]["family"], "inet");
    assert_eq!(stdout["socket"]["protocol"], "tcp");
    assert_eq!(stdout["socket"]["local"]["port"], client_port);
    assert_eq!(stdout["socket"]["remote"]["port"], port);
}

#[test]
fn a_udp_sendto_and_recvfrom_report_their_addresses_and_a_packet_socket_its_family() {
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = receiver.local_addr().expect("addr").port();
    let addr = sockaddr_in(port);
    let payload = *b"ping";
    let Some((events, cgroup, pid)) = run_and_collect(Hook::PerSyscall, || {
        // SAFETY: socket calls on memory prepared before the fork.
        unsafe {
            let udp = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
            let sent = libc::sendto(
                udp,
                payload.as_ptr().cast(),
                payload.len(),
                0,
                (&raw const addr).cast(),
                SOCKADDR_IN_LEN,
            );
            let packet = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            // A datagram to ourselves, received with its source address.
            let inbox = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
            let any = sockaddr_in(0);
            let mut bound: libc::sockaddr_in = std::mem::zeroed();
            let mut len = SOCKADDR_IN_LEN;
            if libc::bind(inbox, (&raw const any).cast(), SOCKADDR_IN_LEN) != 0
                || libc::getsockname(inbox, (&raw mut bound).cast(), &mut len) != 0
                || libc::sendto(
                    udp,
                    payload.as_ptr().cast(),
                    4,
                    0,
                    (&raw const bound).cast(),
                    len,
                ) != 4
            {
                return 2;
            }
            let mut buf = [0u8; 8];
            let mut from: libc::sockaddr_in = std::mem::zeroed();
            let mut from_len = SOCKADDR_IN_LEN;
            let got = libc::recvfrom(
                inbox,
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&raw mut from).cast(),
                &mut from_len,
            );
            i32::from(udp < 0 || sent != 4 || packet < 0 || got != 4)
        }
    }) else {
        return;
    };
    let sendtos = calls(&events, &cgroup, pid, "sendto");
    assert_eq!(sendtos.len(), 2, "{sendtos:#?}");
    let sendto = sendtos[0];
    let call = &sendto["syscall"];
    assert_eq!(call["ret"], 4);
    assert_eq!(call["addresses"][0]["arg"], "dest_addr");
    assert_eq!(call["addresses"][0]["address"], "127.0.0.1");
    assert_eq!(call["addresses"][0]["port"], port);
    assert_eq!(call["fds"][0]["socket"]["protocol"], "udp");
    let udp_port = call["fds"][0]["socket"]["local"]["port"].clone();

    let recvfrom = only(calls(&events, &cgroup, pid, "recvfrom"), "recvfrom");
    assert_eq!(recvfrom["syscall"]["ret"], 4);
    assert_eq!(recvfrom["syscall"]["addresses"][0]["arg"], "src_addr");
    assert_eq!(recvfrom["syscall"]["addresses"][0]["address"], "127.0.0.1");
    assert_eq!(
        recvfrom["syscall"]["addresses"][0]["port"], udp_port,
        "the sender's port"
    );

    let sockets = calls(&events, &cgroup, pid, "socket");
    let packet = sockets
        .iter()
        .find(|e| e["syscall"]["args"]["domain"] == libc::AF_PACKET)
        .expect("the AF_PACKET socket");
    assert!(packet["syscall"]["ret"].as_i64().expect("ret") >= 0);
    assert_eq!(packet["syscall"]["fds"][0]["socket"]["family"], "packet");
    assert_eq!(packet["syscall"]["fds"][0]["socket"]["type"], "raw");
}

#[test]
fn a_symlink_and_a_hard_link_report_both_paths_made_absolute() {
    let dir = TempDir::new("links");
    std::fs::write(dir.path.join("original"), "x").expect("write");
    let dir_c = cstring(&dir.path);
    let (original, soft, hard) = (cstring("original"), cstring("soft"), cstring("hard"));
    let Some((events, cgroup, pid)) = run_and_collect(Hook::PerSyscall, || {
        // SAFETY: system calls on C strings prepared before the fork.
        unsafe {
            i32::from(
                libc::chdir(dir_c.as_ptr()) != 0
                    || libc::symlink(original.as_ptr(), soft.as_ptr()) != 0
                    || libc::link(original.as_ptr(), hard.as_ptr()) != 0,
            )
        }
    }) else {
        return;
    };
    let dir = dir.path.to_str().expect("utf-8");
    let symlink = calls(&events, &cgroup, pid, "symlink")
        .into_iter()
        .chain(calls(&events, &cgroup, pid, "symlinkat"))
        .next()
        .expect("a symlink event");
    assert_eq!(symlink["syscall"]["args"]["target"], "original");
    assert_eq!(symlink["syscall"]["paths"][0]["arg"], "linkpath");
    assert_eq!(
        symlink["syscall"]["paths"][0]["path"],
        format!("{dir}/soft")
    );
    let link = calls(&events, &cgroup, pid, "link")
        .into_iter()
        .chain(calls(&events, &cgroup, pid, "linkat"))
        .next()
        .expect("a link event");
    let paths: Vec<(&str, &str)> = link["syscall"]["paths"]
        .as_array()
        .expect("paths")
        .iter()
        .map(|p| {
            (
                p["arg"].as_str().expect("arg"),
                p["path"].as_str().expect("path"),
            )
        })
        .collect();
    assert_eq!(
        paths,
        [
            ("oldpath", format!("{dir}/original").as_str()),
            ("newpath", format!("{dir}/hard").as_str())
        ]
    );
    assert_eq!(link["syscall"]["ret"], 0);
}

#[test]
fn setuid_capset_ptrace_attach_and_a_failed_finit_module_are_reported_with_their_arguments() {
    let not_a_module = cstring("/bin/true");
    let mut target = 0;
    let Some((events, cgroup, pid)) = run_and_collect(Hook::SysExit, || {
        // SAFETY: fork/ptrace/kill/waitpid and friends are async-signal-safe.
        unsafe {
            let sleeper = libc::fork();
            if sleeper == 0 {
                libc::pause();
                libc::_exit(0);
            }
            target = sleeper;
            let attached = libc::ptrace(libc::PTRACE_ATTACH, sleeper, 0, 0);
            libc::kill(sleeper, libc::SIGKILL);
            libc::waitpid(sleeper, std::ptr::null_mut(), 0);
            let fd = libc::open(not_a_module.as_ptr(), libc::O_RDONLY);
            let loaded = libc::syscall(libc::SYS_finit_module, fd, c"".as_ptr(), 0);
            // Set the capabilities we already have: a capset that changes nothing.
            let mut caps = [CapData::default(); 2];
            let got = libc::syscall(libc::SYS_capget, &raw const CAP_HEADER, caps.as_mut_ptr());
            let set = libc::syscall(libc::SYS_capset, &raw const CAP_HEADER, caps.as_ptr());
            let dropped = libc::setuid(65534);
            i32::from(attached != 0 || loaded == 0 || got != 0 || set != 0 || dropped != 0)
        }
    }) else {
        return;
    };
    let ptrace = only(calls(&events, &cgroup, pid, "ptrace"), "ptrace");
    assert_eq!(ptrace["syscall"]["args"]["request"], libc::PTRACE_ATTACH);
    assert_eq!(ptrace["syscall"]["ret"], 0);
    let traced = ptrace["syscall"]["args"]["pid"].as_i64().expect("pid");
    let sleeper = events
        .iter()
        .find(|e| e["kind"] == "process_fork" && e["process"]["pid"] == pid)
        .expect("the sleeper's fork");
    assert_eq!(
        sleeper["fork"]["child_pid"], traced,
        "ptrace names the traced process"
    );

    let finit = only(calls(&events, &cgroup, pid, "finit_module"), "finit_module");
    assert!(
        finit["syscall"]["ret"].as_i64().expect("ret") < 0,
        "loading /bin/true fails"
    );
    assert_eq!(finit["syscall"]["fds"][0]["path"], "/usr/bin/true");
    assert_eq!(finit["syscall"]["sensor"], "privilege");

    let capset = only(calls(&events, &cgroup, pid, "capset"), "capset");
    assert_eq!(capset["syscall"]["ret"], 0);
    let mut own = [CapData::default(); 2];
    // SAFETY: capget into a local array of the kernel's layout.
    let got = unsafe { libc::syscall(libc::SYS_capget, &raw const CAP_HEADER, own.as_mut_ptr()) };
    assert_eq!(got, 0);
    let effective = u64::from(own[0].effective) | (u64::from(own[1].effective) << 32);
    assert_eq!(
        capset["syscall"]["capabilities"]["effective"], effective,
        "{capset}"
    );
    assert_eq!(capset["syscall"]["sensor"], "privilege");

    let setuid = only(calls(&events, &cgroup, pid, "setuid"), "setuid");
    assert_eq!(setuid["syscall"]["args"]["uid"], 65534);
    assert_eq!(setuid["syscall"]["ret"], 0);
}

#[test]
fn an_exec_of_a_memfd_is_marked_fileless() {
    let memfd = MemfdExec::new("gr-fileless");
    let Some((events, cgroup, pid)) = run_and_collect(Hook::SysExit, || memfd.run()) else {
        return;
    };
    let memfd = only(calls(&events, &cgroup, pid, "memfd_create"), "memfd_create");
    assert_eq!(memfd["syscall"]["args"]["name"], "gr-fileless");
    let exec = in_cgroup(&events, &cgroup)
        .find(|e| e["kind"] == "process_exec" && e["process"]["ppid"] == pid)
        .expect("the memfd's exec");
    assert_eq!(exec["process"]["exe_memfd"], true, "{exec}");
    assert!(
        exec["process"]["exe"]
            .as_str()
            .expect("exe")
            .contains("memfd:gr-fileless"),
        "{exec}"
    );
    assert_eq!(exec["process"].get("exe_upper_layer"), None);
}

#[test]
fn an_exec_of_a_binary_written_into_an_overlay_upper_layer_is_marked_and_one_from_the_image_is_not()
{
    let Some(_kernel) = kernel_test() else { return };
    let dir = TempDir::new("overlay");
    let overlay = Overlay::mount(&dir.path);
    let merged = &overlay.merged;
    // Written through the merged view: it lands in the upper layer.
    std::fs::copy("/bin/true", merged.join("dropped")).expect("write into the container");

    let cgroup = TestCgroup::new();
    let agent = Agent::start(&config_for(&cgroup));
    let mut pids = Vec::new();
    for name in ["dropped", "from-image"] {
        let mut child = cgroup.command(merged.join(name)).spawn().expect("run");
        pids.push(child.id());
        assert!(child.wait().expect("wait").success());
    }
    let events = agent.wait_for_events("both execs", |events| {
        pids.iter().all(|pid| {
            events
                .iter()
                .any(|e| e["kind"] == "process_exec" && e["process"]["pid"] == *pid)
        })
    });
    let exec = |pid: u32| support::find(&events, &cgroup, "process_exec", pid).expect("exec");
    let dropped = exec(pids[0]);
    assert_eq!(dropped["process"]["exe_upper_layer"], true, "{dropped}");
    assert_eq!(
        dropped["process"]["exe"],
        merged.join("dropped").to_str().expect("utf-8")
    );
    let from_image = exec(pids[1]);
    assert_eq!(
        from_image["process"].get("exe_upper_layer"),
        None,
        "{from_image}"
    );
    agent.stop();
}

#[test]
fn a_tcp_connection_reports_its_state_changes_with_the_owner_and_endpoints() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let addr = sockaddr_in(port);
    let Some((events, cgroup, pid)) = run_and_collect(Hook::SysExit, || {
        // SAFETY: socket calls on a sockaddr prepared before the fork.
        unsafe {
            let client = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            let connected = libc::connect(client, (&raw const addr).cast(), SOCKADDR_IN_LEN);
            libc::close(client);
            i32::from(client < 0 || connected != 0)
        }
    }) else {
        return;
    };
    drop(listener);
    let changes: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["kind"] == "tcp_state" && e["tcp_state"]["cgroup_id"] == cgroup.id)
        .filter(|e| {
            e["tcp_state"]["socket"]["remote"]["port"] == port
                || e["tcp_state"]["new_state"] == "syn_sent"
        })
        .map(|e| {
            let owner = &e["tcp_state"]["owner"];
            assert_eq!(owner["pid"], pid, "the child owns the socket: {e}");
            assert_eq!(e["container"]["kind"], "container", "{e}");
            (
                e["tcp_state"]["old_state"].as_str().expect("old"),
                e["tcp_state"]["new_state"].as_str().expect("new"),
            )
        })
        .collect();
    for expected in [
        ("close", "syn_sent"),
        ("syn_sent", "established"),
        ("established", "fin_wait1"),
    ] {
        assert!(
            changes.contains(&expected),
            "{expected:?} not in {changes:?}"
        );
    }
    let established = events
        .iter()
        .find(|e| {
            e["kind"] == "tcp_state"
                && e["tcp_state"]["new_state"] == "established"
                && e["tcp_state"]["cgroup_id"] == cgroup.id
        })
        .expect("the established change");
    let socket = &established["tcp_state"]["socket"];
    assert_eq!(socket["remote"]["address"], "127.0.0.1");
    assert_eq!(socket["remote"]["port"], port);
    assert_ne!(socket["local"]["port"], 0);
    // The child was forked from this test's thread and never exec'd: the
    // kernel names it after the thread (at most 15 bytes), which the process
    // tree never saw, so the name comes from the kernel's socket owner.
    let comm = established["tcp_state"]["owner"]["comm"]
        .as_str()
        .expect("the owner's name");
    let thread = std::thread::current();
    let name = thread.name().expect("test threads are named");
    assert_eq!(comm, &name[..name.len().min(15)]);
}

/// The reported syscalls (all sensors but the benchmark's) that this kernel
/// has no exit tracepoint for, from tracefs; `None` without tracefs.
fn syscalls_without_tracepoint() -> Option<Vec<&'static str>> {
    let category = [
        "/sys/kernel/tracing/events",
        "/sys/kernel/debug/tracing/events",
    ]
    .into_iter()
    .map(|events| std::path::Path::new(events).join("syscalls"))
    .find(|category| category.is_dir())?;
    Some(
        SYSCALLS
            .iter()
            .filter(|s| s.sensor != Sensor::Benchmark)
            .filter(|s| {
                !category
                    .join(format!("sys_exit_{}", s.tracepoint_name()))
                    .is_dir()
            })
            .map(|s| s.name)
            .collect(),
    )
}

/// The first JSON log line whose message contains `what`.
fn log_line(logs: &[String], what: &str) -> Option<Value> {
    logs.iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["message"].as_str().is_some_and(|m| m.contains(what)))
}

/// Whether the running kernel's BTF has the kfunc that the per-syscall
/// program reads the registers with.
fn kernel_has_rdonly_cast() -> bool {
    let btf = aya::Btf::from_sys_fs().expect("the kernel's BTF");
    btf.id_by_type_name_kind(RDONLY_CAST.name, aya_obj::btf::BtfKind::Func)
        .is_ok()
}

#[test]
fn each_syscall_hook_attaches_where_it_says_and_reports_an_open_through_it() {
    let Some(_kernel) = kernel_test() else { return };
    let missing = syscalls_without_tracepoint().expect("tracefs is mounted (the CI mounts it)");
    let reported = SYSCALLS
        .iter()
        .filter(|s| s.sensor != Sensor::Benchmark)
        .count();
    let dir = TempDir::new("hook");
    let opened = dir.path.join("opened");
    let opened = opened.to_str().expect("a UTF-8 path");
    let file = cstring(opened);
    // auto takes the tracepoints even where the kernel lacks some.
    for (hook, on_each) in [("per_syscall", true), ("sys_exit", false), ("auto", true)] {
        let cgroup = TestCgroup::new();
        let agent = Agent::start(&config_with_hook(&cgroup, hook));
        let logs = agent.logs();
        let attached = log_line(&logs, "sensors attached").expect("the attach line");
        let tracepoints = attached["tracepoints"].as_str().expect("tracepoints");
        let each = format!(
            "syscalls/sys_exit_* ({} syscalls)",
            reported - missing.len()
        );
        if on_each {
            assert!(tracepoints.contains(&each), "{hook}: {tracepoints}");
            // Where the kernel has the kfunc, the program reads the saved
            // registers through it, not with a helper call per event.
            let reads = log_line(&logs, "the per-syscall program reads the saved registers")
                .expect("the line saying how the registers are read");
            assert_eq!(
                reads["program"],
                if kernel_has_rdonly_cast() {
                    SYS_EXIT_EACH_PROGRAM
                } else {
                    SYS_EXIT_EACH_COMPAT_PROGRAM
                },
                "{hook}: {reads}"
            );
            assert!(
                !tracepoints.contains("\"sys_exit\""),
                "{hook}: {tracepoints}"
            );
        } else {
            assert!(
                tracepoints.contains("\"sys_exit\""),
                "{hook}: {tracepoints}"
            );
            assert!(!tracepoints.contains("syscalls/"), "{hook}: {tracepoints}");
        }
        // What is left out is said with the syscalls' names, and how to
        // see them.
        if !missing.is_empty() && hook != "sys_exit" {
            let said = log_line(&logs, "no exit tracepoint for these syscalls")
                .unwrap_or_else(|| panic!("{hook}: no line names the missing tracepoints"));
            for name in &missing {
                assert!(
                    said["syscalls"].as_str().is_some_and(|s| s.contains(name)),
                    "{hook}: {said}"
                );
            }
            assert!(
                said["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("syscall_hook: sys_exit")),
                "{hook}: {said}"
            );
        }
        // /metrics says the same, one series per syscall left out, so that
        // a gap in what is watched can be alerted on.
        let unobserved: Vec<String> = agent
            .scrape()
            .into_iter()
            .filter(|(series, value)| {
                series.starts_with("guardrails_syscall_unobserved{") && *value == 1.0
            })
            .map(|(series, _)| series)
            .collect();
        let expected: Vec<String> = if hook == "sys_exit" {
            Vec::new()
        } else {
            missing
                .iter()
                .map(|name| format!("guardrails_syscall_unobserved{{syscall=\"{name}\"}}"))
                .collect()
        };
        assert_eq!(unobserved, expected, "{hook}");
        // A rule that only those syscalls can match is said not to fire:
        // the default rules' module loads, on a kernel without modules.
        if missing.contains(&"finit_module") && missing.contains(&"init_module") {
            let blind = logs
                .iter()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .any(|line| {
                    line["rule"] == "Kernel module loaded from container"
                        && line["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("this rule cannot fire"))
                });
            assert_eq!(blind, hook != "sys_exit", "{hook}");
        }

        let pid = cgroup.run_in(|| {
            // SAFETY: open and close of a C string prepared before the fork.
            unsafe {
                let fd = libc::open(file.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o600);
                i32::from(fd < 0 || libc::close(fd) != 0)
            }
        });
        let events = agent.wait_for_events("the open", |events| {
            events.iter().any(|e| {
                e["kind"] == "syscall"
                    && e["process"]["pid"] == pid
                    && e["syscall"]["paths"][0]["path"] == opened
            })
        });
        let opens = calls(&events, &cgroup, pid, "openat")
            .into_iter()
            .chain(calls(&events, &cgroup, pid, "open"))
            .filter(|e| e["syscall"]["paths"][0]["path"] == opened)
            .count();
        assert_eq!(opens, 1, "{hook}: reported once, by one hook");
        let (_, status) = agent.stop();
        assert!(status.success(), "{status}");
    }
}
