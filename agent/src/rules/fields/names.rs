//! How Falco renders numeric arguments as names: errno codes, open flags,
//! ptrace requests, socket domains and types, capabilities. Rules compare
//! against these names (`evt.res = ENOENT`, `evt.arg.flags contains O_TRUNC`).

use std::fmt::Write;

/// The name of an errno value (positive), such as `ENOENT`.
pub fn errno(code: i64) -> Option<&'static str> {
    const NAMES: [&str; 134] = [
        "",
        "EPERM",
        "ENOENT",
        "ESRCH",
        "EINTR",
        "EIO",
        "ENXIO",
        "E2BIG",
        "ENOEXEC",
        "EBADF",
        "ECHILD",
        "EAGAIN",
        "ENOMEM",
        "EACCES",
        "EFAULT",
        "ENOTBLK",
        "EBUSY",
        "EEXIST",
        "EXDEV",
        "ENODEV",
        "ENOTDIR",
        "EISDIR",
        "EINVAL",
        "ENFILE",
        "EMFILE",
        "ENOTTY",
        "ETXTBSY",
        "EFBIG",
        "ENOSPC",
        "ESPIPE",
        "EROFS",
        "EMLINK",
        "EPIPE",
        "EDOM",
        "ERANGE",
        "EDEADLK",
        "ENAMETOOLONG",
        "ENOLCK",
        "ENOSYS",
        "ENOTEMPTY",
        "ELOOP",
        "",
        "ENOMSG",
        "EIDRM",
        "ECHRNG",
        "EL2NSYNC",
        "EL3HLT",
        "EL3RST",
        "ELNRNG",
        "EUNATCH",
        "ENOCSI",
        "EL2HLT",
        "EBADE",
        "EBADR",
        "EXFULL",
        "ENOANO",
        "EBADRQC",
        "EBADSLT",
        "",
        "EBFONT",
        "ENOSTR",
        "ENODATA",
        "ETIME",
        "ENOSR",
        "ENONET",
        "ENOPKG",
        "EREMOTE",
        "ENOLINK",
        "EADV",
        "ESRMNT",
        "ECOMM",
        "EPROTO",
        "EMULTIHOP",
        "EDOTDOT",
        "EBADMSG",
        "EOVERFLOW",
        "ENOTUNIQ",
        "EBADFD",
        "EREMCHG",
        "ELIBACC",
        "ELIBBAD",
        "ELIBSCN",
        "ELIBMAX",
        "ELIBEXEC",
        "EILSEQ",
        "ERESTART",
        "ESTRPIPE",
        "EUSERS",
        "ENOTSOCK",
        "EDESTADDRREQ",
        "EMSGSIZE",
        "EPROTOTYPE",
        "ENOPROTOOPT",
        "EPROTONOSUPPORT",
        "ESOCKTNOSUPPORT",
        "EOPNOTSUPP",
        "EPFNOSUPPORT",
        "EAFNOSUPPORT",
        "EADDRINUSE",
        "EADDRNOTAVAIL",
        "ENETDOWN",
        "ENETUNREACH",
        "ENETRESET",
        "ECONNABORTED",
        "ECONNRESET",
        "ENOBUFS",
        "EISCONN",
        "ENOTCONN",
        "ESHUTDOWN",
        "ETOOMANYREFS",
        "ETIMEDOUT",
        "ECONNREFUSED",
        "EHOSTDOWN",
        "EHOSTUNREACH",
        "EALREADY",
        "EINPROGRESS",
        "ESTALE",
        "EUCLEAN",
        "ENOTNAM",
        "ENAVAIL",
        "EISNAM",
        "EREMOTEIO",
        "EDQUOT",
        "ENOMEDIUM",
        "EMEDIUMTYPE",
        "ECANCELED",
        "ENOKEY",
        "EKEYEXPIRED",
        "EKEYREVOKED",
        "EKEYREJECTED",
        "EOWNERDEAD",
        "ENOTRECOVERABLE",
        "ERFKILL",
        "EHWPOISON",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .filter(|name| !name.is_empty())
        .copied()
}

const O_ACCMODE: u64 = 0o3;
const O_WRONLY: u64 = 0o1;
const O_RDWR: u64 = 0o2;
/// `O_CREAT`.
pub const O_CREAT: u64 = 0o100;
const O_TMPFILE: u64 = 0o20000000 | O_DIRECTORY;
const O_DIRECTORY: u64 = 0o200000;

/// Whether the access mode reads.
pub fn open_reads(flags: u64) -> bool {
    flags & O_ACCMODE != O_WRONLY
}

/// Whether the access mode writes.
pub fn open_writes(flags: u64) -> bool {
    matches!(flags & O_ACCMODE, O_WRONLY | O_RDWR)
}

/// Open flags as Falco renders them: `O_WRONLY|O_CREAT|O_TRUNC`.
pub fn open_flags(flags: u64) -> String {
    const BITS: [(u64, &str); 15] = [
        (0o100, "O_CREAT"),
        (0o200, "O_EXCL"),
        (0o400, "O_NOCTTY"),
        (0o1000, "O_TRUNC"),
        (0o2000, "O_APPEND"),
        (0o4000, "O_NONBLOCK"),
        (0o10000, "O_DSYNC"),
        (0o40000, "O_DIRECT"),
        (0o100000, "O_LARGEFILE"),
        (0o200000, "O_DIRECTORY"),
        (0o400000, "O_NOFOLLOW"),
        (0o1000000, "O_NOATIME"),
        (0o2000000, "O_CLOEXEC"),
        (0o4010000, "O_SYNC"),
        (0o10000000, "O_PATH"),
    ];
    let mut out = String::from(match flags & O_ACCMODE {
        O_WRONLY => "O_WRONLY",
        O_RDWR => "O_RDWR",
        _ => "O_RDONLY",
    });
    if flags & O_TMPFILE == O_TMPFILE {
        out.push_str("|O_TMPFILE");
    }
    for (bit, name) in BITS {
        if flags & bit == bit && !(bit == O_DIRECTORY && flags & O_TMPFILE == O_TMPFILE) {
            out.push('|');
            out.push_str(name);
        }
    }
    out
}

/// A ptrace request's name, such as `PTRACE_ATTACH`.
pub fn ptrace_request(request: u64) -> Option<&'static str> {
    Some(match request {
        0 => "PTRACE_TRACEME",
        1 => "PTRACE_PEEKTEXT",
        2 => "PTRACE_PEEKDATA",
        3 => "PTRACE_PEEKUSR",
        4 => "PTRACE_POKETEXT",
        5 => "PTRACE_POKEDATA",
        6 => "PTRACE_POKEUSR",
        7 => "PTRACE_CONT",
        8 => "PTRACE_KILL",
        9 => "PTRACE_SINGLESTEP",
        12 => "PTRACE_GETREGS",
        13 => "PTRACE_SETREGS",
        14 => "PTRACE_GETFPREGS",
        15 => "PTRACE_SETFPREGS",
        16 => "PTRACE_ATTACH",
        17 => "PTRACE_DETACH",
        24 => "PTRACE_SYSCALL",
        0x4200 => "PTRACE_SETOPTIONS",
        0x4201 => "PTRACE_GETEVENTMSG",
        0x4202 => "PTRACE_GETSIGINFO",
        0x4203 => "PTRACE_SETSIGINFO",
        0x4204 => "PTRACE_GETREGSET",
        0x4205 => "PTRACE_SETREGSET",
        0x4206 => "PTRACE_SEIZE",
        0x4207 => "PTRACE_INTERRUPT",
        0x4208 => "PTRACE_LISTEN",
        _ => return None,
    })
}

/// A socket domain's name, such as `AF_INET`.
pub fn socket_domain(domain: u64) -> Option<&'static str> {
    Some(match domain {
        0 => "AF_UNSPEC",
        1 => "AF_UNIX",
        2 => "AF_INET",
        10 => "AF_INET6",
        16 => "AF_NETLINK",
        17 => "AF_PACKET",
        29 => "AF_CAN",
        38 => "AF_ALG",
        40 => "AF_VSOCK",
        44 => "AF_XDP",
        _ => return None,
    })
}

/// A socket type's name (flags such as `SOCK_CLOEXEC` appended).
pub fn socket_type(kind: u64) -> String {
    let base = match kind & 0xf {
        1 => "SOCK_STREAM",
        2 => "SOCK_DGRAM",
        3 => "SOCK_RAW",
        4 => "SOCK_RDM",
        5 => "SOCK_SEQPACKET",
        10 => "SOCK_PACKET",
        _ => "",
    };
    let mut out = if base.is_empty() {
        (kind & 0xf).to_string()
    } else {
        base.to_owned()
    };
    if kind & 0o2000000 != 0 {
        out.push_str("|SOCK_CLOEXEC");
    }
    if kind & 0o4000 != 0 {
        out.push_str("|SOCK_NONBLOCK");
    }
    out
}

/// Capability names by number.
const CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// A capability mask as Falco renders it: names separated by spaces.
pub fn capabilities(mask: u64) -> String {
    let mut out = String::new();
    for (bit, name) in CAPS.iter().enumerate() {
        if mask & (1 << bit) != 0 {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(name);
        }
    }
    for bit in CAPS.len()..64 {
        if mask & (1 << bit) != 0 {
            if !out.is_empty() {
                out.push(' ');
            }
            let _ = write!(out, "CAP_{bit}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_flags_read_like_falco_renders_them() {
        assert_eq!(open_flags(0), "O_RDONLY");
        assert_eq!(open_flags(0o1 | 0o100 | 0o1000), "O_WRONLY|O_CREAT|O_TRUNC");
        assert!(open_writes(0o2) && open_reads(0o2));
        assert!(!open_writes(0) && open_reads(0));
    }

    #[test]
    fn numbers_have_their_kernel_names() {
        assert_eq!(errno(2), Some("ENOENT"));
        assert_eq!(errno(115), Some("EINPROGRESS"));
        assert_eq!(ptrace_request(16), Some("PTRACE_ATTACH"));
        assert_eq!(socket_domain(17), Some("AF_PACKET"));
        assert_eq!(
            capabilities(1 << 21 | 1 << 16),
            "CAP_SYS_MODULE CAP_SYS_ADMIN"
        );
        assert_eq!(socket_type(2 | 0o2000000), "SOCK_DGRAM|SOCK_CLOEXEC");
    }
}
