//! The syscalls the syscall sensor reports, and how each argument is read.
//!
//! One table, used twice: the loader turns the entries of the enabled sensors
//! into `gr_syscall_specs` for the kernel, and the decoder names the syscall
//! and its arguments. Numbers are x86_64's.

use std::sync::OnceLock;

use agent_common::{ArgKind, DIRFD_CWD, NO_FILTER, SyscallSpec};

use super::hooks::Sensor;

/// How one argument is read and what it is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arg {
    /// Its name, as in the syscall's man page.
    pub name: &'static str,
    /// What the kernel resolves for it.
    pub kind: ArgKind,
    /// For a path: the index of the directory descriptor it is relative to.
    pub dirfd: Option<u8>,
}

/// One reported syscall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Syscall {
    /// Its name, as Falco's `evt.type` spells it.
    pub name: &'static str,
    /// Its number on x86_64.
    pub nr: u32,
    /// The sensor that reports it.
    pub sensor: Sensor,
    /// Its arguments, in order.
    pub args: &'static [Arg],
    /// Whether it returns a new descriptor (resolved like an fd argument).
    pub returns_fd: bool,
    /// Report only calls whose argument at this index is one of these values.
    pub only_when: Option<(u8, [u32; 2])>,
    /// Report only calls that carried a socket address: datagram traffic,
    /// not every send() and recv() of a stream.
    pub only_with_address: bool,
}

const fn arg(name: &'static str, kind: ArgKind) -> Arg {
    Arg {
        name,
        kind,
        dirfd: None,
    }
}
const fn scalar(name: &'static str) -> Arg {
    arg(name, ArgKind::Scalar)
}
const fn fd(name: &'static str) -> Arg {
    arg(name, ArgKind::Fd)
}
const fn dirfd(name: &'static str) -> Arg {
    arg(name, ArgKind::Dirfd)
}
const fn path(name: &'static str) -> Arg {
    arg(name, ArgKind::Path)
}
/// A path relative to the directory descriptor at index `dirfd`.
const fn path_at(name: &'static str, dirfd: u8) -> Arg {
    Arg {
        dirfd: Some(dirfd),
        ..path(name)
    }
}
const fn string(name: &'static str) -> Arg {
    arg(name, ArgKind::String)
}
const fn sockaddr(name: &'static str) -> Arg {
    arg(name, ArgKind::Sockaddr)
}
const fn msghdr(name: &'static str) -> Arg {
    arg(name, ArgKind::Msghdr)
}

const fn with_address(syscall: Syscall) -> Syscall {
    Syscall {
        only_with_address: true,
        ..syscall
    }
}

const fn call(name: &'static str, nr: u32, sensor: Sensor, args: &'static [Arg]) -> Syscall {
    Syscall {
        name,
        nr,
        sensor,
        args,
        returns_fd: false,
        only_when: None,
        only_with_address: false,
    }
}
const fn call_fd(name: &'static str, nr: u32, sensor: Sensor, args: &'static [Arg]) -> Syscall {
    Syscall {
        returns_fd: true,
        ..call(name, nr, sensor, args)
    }
}

use Sensor::{Benchmark, Descriptors, File, Network, Privilege};

/// `fcntl` commands that duplicate a descriptor: F_DUPFD and F_DUPFD_CLOEXEC.
const FCNTL_DUP_COMMANDS: [u32; 2] = [0, 1030];

/// Every syscall the sensors can report.
pub static SYSCALLS: &[Syscall] = &[
    // Files.
    call_fd(
        "open",
        2,
        File,
        &[path("pathname"), scalar("flags"), scalar("mode")],
    ),
    call_fd("creat", 85, File, &[path("pathname"), scalar("mode")]),
    call_fd(
        "openat",
        257,
        File,
        &[
            dirfd("dirfd"),
            path_at("pathname", 0),
            scalar("flags"),
            scalar("mode"),
        ],
    ),
    call_fd(
        "openat2",
        437,
        File,
        &[
            dirfd("dirfd"),
            path_at("pathname", 0),
            arg("how", ArgKind::OpenHow),
            scalar("size"),
        ],
    ),
    call("unlink", 87, File, &[path("pathname")]),
    call("rmdir", 84, File, &[path("pathname")]),
    call(
        "unlinkat",
        263,
        File,
        &[dirfd("dirfd"), path_at("pathname", 0), scalar("flags")],
    ),
    call("rename", 82, File, &[path("oldpath"), path("newpath")]),
    call(
        "renameat",
        264,
        File,
        &[
            dirfd("olddirfd"),
            path_at("oldpath", 0),
            dirfd("newdirfd"),
            path_at("newpath", 2),
        ],
    ),
    call(
        "renameat2",
        316,
        File,
        &[
            dirfd("olddirfd"),
            path_at("oldpath", 0),
            dirfd("newdirfd"),
            path_at("newpath", 2),
            scalar("flags"),
        ],
    ),
    call("chmod", 90, File, &[path("pathname"), scalar("mode")]),
    call("fchmod", 91, File, &[fd("fd"), scalar("mode")]),
    call(
        "fchmodat",
        268,
        File,
        &[dirfd("dirfd"), path_at("pathname", 0), scalar("mode")],
    ),
    call(
        "fchmodat2",
        452,
        File,
        &[
            dirfd("dirfd"),
            path_at("pathname", 0),
            scalar("mode"),
            scalar("flags"),
        ],
    ),
    call("mkdir", 83, File, &[path("pathname"), scalar("mode")]),
    call(
        "mkdirat",
        258,
        File,
        &[dirfd("dirfd"), path_at("pathname", 0), scalar("mode")],
    ),
    call("link", 86, File, &[path("oldpath"), path("newpath")]),
    call(
        "linkat",
        265,
        File,
        &[
            dirfd("olddirfd"),
            path_at("oldpath", 0),
            dirfd("newdirfd"),
            path_at("newpath", 2),
            scalar("flags"),
        ],
    ),
    call("symlink", 88, File, &[string("target"), path("linkpath")]),
    call(
        "symlinkat",
        266,
        File,
        &[string("target"), dirfd("newdirfd"), path_at("linkpath", 1)],
    ),
    // Network.
    call_fd(
        "socket",
        41,
        Network,
        &[scalar("domain"), scalar("type"), scalar("protocol")],
    ),
    call(
        "connect",
        42,
        Network,
        &[fd("sockfd"), sockaddr("addr"), scalar("addrlen")],
    ),
    call_fd(
        "accept",
        43,
        Network,
        &[fd("sockfd"), scalar("addr"), scalar("addrlen")],
    ),
    call_fd(
        "accept4",
        288,
        Network,
        &[
            fd("sockfd"),
            scalar("addr"),
            scalar("addrlen"),
            scalar("flags"),
        ],
    ),
    call(
        "bind",
        49,
        Network,
        &[fd("sockfd"), sockaddr("addr"), scalar("addrlen")],
    ),
    call("listen", 50, Network, &[fd("sockfd"), scalar("backlog")]),
    with_address(call(
        "sendto",
        44,
        Network,
        &[
            fd("sockfd"),
            scalar("buf"),
            scalar("len"),
            scalar("flags"),
            sockaddr("dest_addr"),
            scalar("addrlen"),
        ],
    )),
    with_address(call(
        "sendmsg",
        46,
        Network,
        &[fd("sockfd"), msghdr("msg"), scalar("flags")],
    )),
    with_address(call(
        "recvfrom",
        45,
        Network,
        &[
            fd("sockfd"),
            scalar("buf"),
            scalar("len"),
            scalar("flags"),
            arg("src_addr", ArgKind::SockaddrOut),
            scalar("addrlen"),
        ],
    )),
    with_address(call(
        "recvmsg",
        47,
        Network,
        &[fd("sockfd"), msghdr("msg"), scalar("flags")],
    )),
    // Descriptors.
    call_fd("dup", 32, Descriptors, &[fd("oldfd")]),
    call_fd("dup2", 33, Descriptors, &[fd("oldfd"), scalar("newfd")]),
    call_fd(
        "dup3",
        292,
        Descriptors,
        &[fd("oldfd"), scalar("newfd"), scalar("flags")],
    ),
    Syscall {
        only_when: Some((1, FCNTL_DUP_COMMANDS)),
        ..call_fd(
            "fcntl",
            72,
            Descriptors,
            &[fd("fd"), scalar("cmd"), scalar("arg")],
        )
    },
    // Privilege and kernel surface.
    call("setuid", 105, Privilege, &[scalar("uid")]),
    call("setgid", 106, Privilege, &[scalar("gid")]),
    call(
        "setreuid",
        113,
        Privilege,
        &[scalar("ruid"), scalar("euid")],
    ),
    call(
        "setregid",
        114,
        Privilege,
        &[scalar("rgid"), scalar("egid")],
    ),
    call(
        "setresuid",
        117,
        Privilege,
        &[scalar("ruid"), scalar("euid"), scalar("suid")],
    ),
    call(
        "setresgid",
        119,
        Privilege,
        &[scalar("rgid"), scalar("egid"), scalar("sgid")],
    ),
    call("setfsuid", 122, Privilege, &[scalar("fsuid")]),
    call("setfsgid", 123, Privilege, &[scalar("fsgid")]),
    call(
        "capset",
        126,
        Privilege,
        &[scalar("hdrp"), arg("datap", ArgKind::CapData)],
    ),
    call(
        "ptrace",
        101,
        Privilege,
        &[
            scalar("request"),
            scalar("pid"),
            scalar("addr"),
            scalar("data"),
        ],
    ),
    call(
        "init_module",
        175,
        Privilege,
        &[
            scalar("module_image"),
            scalar("len"),
            string("param_values"),
        ],
    ),
    call(
        "finit_module",
        313,
        Privilege,
        &[fd("fd"), string("param_values"), scalar("flags")],
    ),
    call(
        "mount",
        165,
        Privilege,
        &[
            string("source"),
            path("target"),
            string("filesystemtype"),
            scalar("mountflags"),
            scalar("data"),
        ],
    ),
    call(
        "umount2",
        166,
        Privilege,
        &[path("target"), scalar("flags")],
    ),
    call("unshare", 272, Privilege, &[scalar("flags")]),
    call("setns", 308, Privilege, &[fd("fd"), scalar("nstype")]),
    call_fd(
        "memfd_create",
        319,
        Privilege,
        &[string("name"), scalar("flags")],
    ),
    call(
        "bpf",
        321,
        Privilege,
        &[scalar("cmd"), scalar("attr"), scalar("size")],
    ),
    call_fd("userfaultfd", 323, Privilege, &[scalar("flags")]),
    // Benchmarks only.
    call("getppid", 110, Benchmark, &[]),
];

/// The syscall with this name (Falco's spelling), if a sensor reports it.
pub fn by_name(name: &str) -> Option<&'static Syscall> {
    SYSCALLS.iter().find(|s| s.name == name)
}

/// The syscall with this number, if a sensor reports it, with what decoding
/// its records needs: looked up once per record, so by index, not by search.
pub fn by_number(nr: u32) -> Option<&'static Decoding> {
    static BY_NUMBER: OnceLock<Box<[Option<Decoding>]>> = OnceLock::new();
    let table = BY_NUMBER.get_or_init(|| {
        let len = SYSCALLS
            .iter()
            .map(|s| s.nr as usize + 1)
            .max()
            .unwrap_or(0);
        let mut table: Box<[Option<Decoding>]> =
            std::iter::repeat_with(|| None).take(len).collect();
        for syscall in SYSCALLS {
            let mut by_name: ArgOrder = (0..syscall.args.len() as u8).collect();
            by_name.sort_by_key(|&i| syscall.args[usize::from(i)].name);
            table[syscall.nr as usize] = Some(Decoding { syscall, by_name });
        }
        table
    });
    table.get(usize::try_from(nr).ok()?)?.as_ref()
}

/// A syscall's argument indices, in some order.
pub type ArgOrder = smallvec::SmallVec<[u8; 6]>;

/// A reported syscall as its records are decoded.
#[derive(Debug)]
pub struct Decoding {
    /// The syscall.
    pub syscall: &'static Syscall,
    /// Its arguments' indices in the order of their names, the order in
    /// which an event lists them.
    pub by_name: ArgOrder,
}

impl Decoding {
    /// Where argument `index` stands in name order.
    pub fn rank(&self, index: u8) -> Option<usize> {
        self.by_name.iter().position(|&i| i == index)
    }
}

impl Syscall {
    /// The name of its tracepoints in tracefs (`syscalls/sys_exit_<name>`):
    /// the kernel's name for the syscall, which for `umount2` is `umount`.
    pub fn tracepoint_name(&self) -> &'static str {
        match self.name {
            "umount2" => "umount",
            name => name,
        }
    }

    /// The kernel's description of this syscall.
    pub fn spec(&self) -> SyscallSpec {
        let mut spec = SyscallSpec {
            args: [ArgKind::None as u8; 6],
            ret: if self.returns_fd {
                ArgKind::Fd as u8
            } else {
                ArgKind::Scalar as u8
            },
            dirfd_of: [DIRFD_CWD; 6],
            filter_arg: NO_FILTER,
            require_address: u8::from(self.only_with_address),
            filter_values: [0; 2],
        };
        for (i, arg) in self.args.iter().enumerate().take(6) {
            spec.args[i] = arg.kind as u8;
            if let Some(dirfd) = arg.dirfd {
                spec.dirfd_of[i] = dirfd;
            }
        }
        if let Some((arg, values)) = self.only_when {
            spec.filter_arg = arg;
            spec.filter_values = values;
        }
        spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_syscall_has_a_unique_number_below_the_kernel_bound() {
        for (i, a) in SYSCALLS.iter().enumerate() {
            assert!(a.nr < agent_common::SYSCALL_MAX, "{}", a.name);
            assert!(a.args.len() <= 6, "{}", a.name);
            for b in &SYSCALLS[i + 1..] {
                assert_ne!(a.nr, b.nr, "{} and {}", a.name, b.name);
            }
        }
    }

    #[test]
    fn each_syscall_is_found_by_its_number_with_its_arguments_in_name_order() {
        for syscall in SYSCALLS {
            let found = by_number(syscall.nr).expect("every syscall is found");
            assert_eq!(found.syscall, syscall);
            let names: Vec<&str> = found
                .by_name
                .iter()
                .map(|&i| syscall.args[usize::from(i)].name)
                .collect();
            let mut sorted: Vec<&str> = syscall.args.iter().map(|a| a.name).collect();
            sorted.sort_unstable();
            assert_eq!(names, sorted, "{}", syscall.name);
        }
        assert!(by_number(39).is_none(), "getpid is not reported");
        assert!(by_number(u32::MAX).is_none());
    }

    #[test]
    fn every_relative_path_points_at_a_directory_descriptor() {
        for s in SYSCALLS {
            for arg in s.args {
                if let Some(dirfd) = arg.dirfd {
                    let target = s.args.get(usize::from(dirfd)).map(|a| a.kind);
                    assert_eq!(target, Some(ArgKind::Dirfd), "{}.{}", s.name, arg.name);
                }
            }
        }
    }

    #[test]
    fn a_spec_describes_each_argument_and_the_return_value() {
        let openat = by_number(257).expect("openat").syscall.spec();
        assert_eq!(openat.args[..4], [7, 3, 1, 1]);
        assert_eq!(openat.dirfd_of[1], 0);
        assert_eq!(openat.ret, ArgKind::Fd as u8);
        assert_eq!(openat.filter_arg, NO_FILTER);
        let fcntl = by_number(72).expect("fcntl").syscall.spec();
        assert_eq!((fcntl.filter_arg, fcntl.filter_values), (1, [0, 1030]));
    }

    /// The `evt.type` names that a Falco condition compares with.
    fn event_types(condition: &str) -> Vec<String> {
        let mut names = Vec::new();
        let mut rest = condition;
        while let Some(at) = rest.find("evt.type") {
            rest = rest[at + "evt.type".len()..].trim_start();
            let list = if let Some(after) = rest.strip_prefix("in") {
                let after = after.trim_start();
                after
                    .strip_prefix('(')
                    .and_then(|l| l.split_once(')'))
                    .map_or("", |(inside, _)| inside)
            } else if let Some(after) = rest.strip_prefix('=') {
                after.split_whitespace().next().unwrap_or_default()
            } else {
                ""
            };
            names.extend(
                list.split(',')
                    .map(|n| n.trim().trim_matches(')').to_owned())
                    .filter(|n| {
                        !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    }),
            );
        }
        names
    }

    #[test]
    fn the_syscalls_of_falcos_incubating_and_sandbox_rules_are_reported_too() {
        // evt.type values of falco-incubating_rules.yaml and
        // falco-sandbox_rules.yaml (falcosecurity/rules), beyond the stable set.
        for name in [
            "accept",
            "accept4",
            "bpf",
            "chmod",
            "creat",
            "fchmod",
            "fchmodat",
            "listen",
            "mkdir",
            "mkdirat",
            "recvfrom",
            "recvmsg",
            "rename",
            "renameat",
            "renameat2",
            "rmdir",
            "setns",
            "setuid",
            "unlink",
            "unlinkat",
            "unshare",
            "userfaultfd",
        ] {
            assert!(SYSCALLS.iter().any(|s| s.name == name), "{name}");
        }
    }

    #[test]
    fn every_syscall_that_falcos_stable_rules_match_on_is_reported() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/compat/falco-rules/falco_rules.yaml"
        );
        let text =
            std::fs::read_to_string(path).expect("Falco's stable rules are beside the project");
        let items: Vec<serde_yaml::Value> = serde_yaml::from_str(&text).expect("YAML");
        let mut wanted: Vec<String> = items
            .iter()
            .filter_map(|item| item.get("condition").and_then(serde_yaml::Value::as_str))
            .flat_map(event_types)
            .collect();
        wanted.sort();
        wanted.dedup();
        assert!(wanted.len() > 10, "the scan found the syscalls: {wanted:?}");
        // execve and execveat are the process sensor's; `container` is not a syscall.
        let missing: Vec<_> = wanted
            .iter()
            .filter(|name| !["execve", "execveat", "container"].contains(&name.as_str()))
            .filter(|name| !SYSCALLS.iter().any(|s| s.name == name.as_str()))
            .collect();
        assert!(missing.is_empty(), "not reported: {missing:?}");
    }
}
