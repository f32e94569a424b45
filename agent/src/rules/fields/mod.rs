//! The fields a condition or an output can name, Falco's spelling mapped onto
//! our events.
//!
//! [`FIELDS`] is the registry: each entry has a name, a type and whether it
//! takes an argument (`proc.aname[2]`, `evt.arg.flags`). [`resolve`] turns a
//! field as written into a [`Field`]; [`Field::extract`] reads its value from
//! an [`EventView`]. A field with no value for an event extracts as `None`:
//! every comparison on it is false and outputs show `<NA>`, as in Falco.

mod extract;
pub mod names;
mod view;

use std::{borrow::Cow, net::IpAddr};

pub use extract::{Direct, FlagField, IntField, TextField};
pub use view::{EventView, MEMO_SLOTS};

/// The type of a field's values; it decides which operators apply and how a
/// literal on the right side is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// Text.
    Str,
    /// A signed integer.
    Int,
    /// `true` or `false`.
    Bool,
    /// An IP address; compared against addresses or networks.
    Ip,
    /// An IP address compared as part of a network (`fd.net = 10.0.0.0/8`).
    Net,
    /// Text or a number, depending on the event (`evt.rawarg.*`).
    Dynamic,
}

/// What a field takes in brackets or after its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgSpec {
    /// Nothing.
    None,
    /// A required index (`proc.aexepath[2]`).
    Index,
    /// An optional index; without one the field is a list of every value
    /// and a comparison holds when it holds for any (`proc.aname`).
    IndexOrAll,
    /// A required key: `evt.arg.flags`, `evt.arg[0]`, `k8s.pod.label[app]`.
    Key,
}

/// One field of the registry.
#[derive(Clone, Copy, Debug)]
pub struct FieldDef {
    /// Its name, e.g. `proc.aname`.
    pub name: &'static str,
    /// Its type.
    pub ty: FieldType,
    /// What argument it takes.
    pub arg: ArgSpec,
    /// Which value it reads.
    pub id: FieldId,
    /// One line for rule authors.
    pub doc: &'static str,
}

/// What a field reads; the argument, if any, is in [`Field::arg`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[expect(
    missing_docs,
    reason = "each variant reads the field of the same name in FIELDS"
)]
pub enum FieldId {
    EvtType,
    EvtDir,
    EvtRes,
    EvtRawRes,
    EvtNum,
    EvtHostname,
    EvtTime,
    EvtRawTime,
    EvtArgs,
    EvtArg,
    EvtRawArg,
    EvtIsOpenRead,
    EvtIsOpenWrite,
    EvtIsOpenExec,
    EvtIsOpenCreate,
    EvtSource,
    EvtCategory,
    EvtCpu,
    EvtFailed,
    ProcPid,
    ProcPpid,
    ProcVpid,
    ProcName,
    ProcExe,
    ProcExePath,
    ProcArgs,
    ProcCmdline,
    ProcCmdNArgs,
    ProcPname,
    ProcPexe,
    ProcPexePath,
    ProcPcmdline,
    ProcAname,
    ProcApid,
    ProcAexe,
    ProcAexePath,
    ProcAcmdline,
    ProcCwd,
    ProcTty,
    ProcSid,
    ProcVpgid,
    ProcSname,
    ProcVpgidName,
    ProcVpgidExe,
    ProcIsVpgidLeader,
    ProcIsSidLeader,
    ProcDuration,
    ProcPpidDuration,
    ProcExeIno,
    ProcExeInoMtime,
    ProcExeInoCtime,
    ProcExeInoCtimeDurationProcStart,
    ProcIsExeUpperLayer,
    ProcIsExeFromMemfd,
    ProcIsContainerHealthcheck,
    ProcIsContainerLivenessProbe,
    ProcIsContainerReadinessProbe,
    ThreadTid,
    ThreadVtid,
    ThreadCapEffective,
    ThreadCapPermitted,
    ThreadCapInheritable,
    UserUid,
    UserName,
    UserLoginUid,
    UserLoginName,
    UserHomedir,
    UserShell,
    GroupGid,
    GroupName,
    FdNum,
    FdType,
    FdTypeChar,
    FdName,
    FdNameRaw,
    FdDirectory,
    FdFilename,
    FdIp,
    FdCip,
    FdSip,
    FdLip,
    FdRip,
    FdPort,
    FdCport,
    FdSport,
    FdLport,
    FdRport,
    FdL4Proto,
    FdSockFamily,
    FdNet,
    FdCnet,
    FdSnet,
    FdLnet,
    FdRnet,
    FdConnected,
    FdNameChanged,
    FdIsServer,
    FdTypes,
    FdSipName,
    FdCipName,
    FdLipName,
    FdRipName,
    FdContainerId,
    ContainerId,
    ContainerFullId,
    ContainerName,
    ContainerType,
    ContainerImage,
    ContainerImageRepository,
    ContainerImageTag,
    ContainerImageId,
    ContainerImageDigest,
    ContainerPrivileged,
    ContainerStartTs,
    ContainerDuration,
    ContainerHealthcheck,
    ContainerLivenessProbe,
    ContainerReadinessProbe,
    K8sNsName,
    K8sPodName,
    K8sPodUid,
    K8sPodLabel,
    K8sPodLabels,
    K8sPodIp,
    K8sPodSandboxId,
    K8sNsLabel,
    K8sDeploymentName,
    K8sRsName,
    K8sSvcName,
}

macro_rules! fields {
    ($($name:literal, $ty:ident, $arg:ident, $id:ident, $doc:literal;)*) => {
        /// Every field, in Falco's spelling.
        pub const FIELDS: &[FieldDef] = &[$(FieldDef {
            name: $name,
            ty: FieldType::$ty,
            arg: ArgSpec::$arg,
            id: FieldId::$id,
            doc: $doc,
        }),*];
    };
}

fields! {
    "evt.type", Str, None, EvtType, "the event type: a syscall name, execve, clone, procexit";
    "evt.dir", Str, None, EvtDir, "`<` for every event (all are reported as they return)";
    "evt.res", Str, None, EvtRes, "SUCCESS, or the errno name such as ENOENT";
    "evt.rawres", Int, None, EvtRawRes, "the return value as a number";
    "evt.failed", Bool, None, EvtFailed, "whether the call returned an error";
    "evt.num", Int, None, EvtNum, "the event's sequence number";
    "evt.hostname", Str, None, EvtHostname, "the node's name";
    "evt.time", Str, None, EvtTime, "the event's time, RFC 3339";
    "evt.rawtime", Int, None, EvtRawTime, "the event's time, ns since the epoch";
    "evt.args", Str, None, EvtArgs, "every argument as name=value";
    "evt.arg", Str, Key, EvtArg, "one argument by name or index, as Falco renders it";
    "evt.rawarg", Dynamic, Key, EvtRawArg, "one argument by name, unrendered";
    "evt.is_open_read", Bool, None, EvtIsOpenRead, "an open for reading";
    "evt.is_open_write", Bool, None, EvtIsOpenWrite, "an open for writing";
    "evt.is_open_exec", Bool, None, EvtIsOpenExec, "an open for execution";
    "evt.is_open_create", Bool, None, EvtIsOpenCreate, "an open that may create the file";
    "evt.source", Str, None, EvtSource, "`syscall`";
    "evt.category", Str, None, EvtCategory, "file, net, process or security";
    "evt.cpu", Int, None, EvtCpu, "the CPU";
    "proc.pid", Int, None, ProcPid, "process id";
    "proc.ppid", Int, None, ProcPpid, "parent's process id";
    "proc.vpid", Int, None, ProcVpid, "process id in its PID namespace";
    "proc.name", Str, None, ProcName, "command name";
    "proc.exe", Str, None, ProcExe, "argv[0]";
    "proc.exepath", Str, None, ProcExePath, "the executable's full path";
    "proc.args", Str, None, ProcArgs, "arguments after argv[0], space separated";
    "proc.cmdline", Str, None, ProcCmdline, "proc.name and proc.args";
    "proc.cmdnargs", Int, None, ProcCmdNArgs, "number of arguments";
    "proc.pname", Str, None, ProcPname, "parent's command name";
    "proc.pexe", Str, None, ProcPexe, "parent's argv[0]";
    "proc.pexepath", Str, None, ProcPexePath, "parent's executable";
    "proc.pcmdline", Str, None, ProcPcmdline, "parent's command line";
    "proc.aname", Str, IndexOrAll, ProcAname, "ancestor's command name: [0] self, [1] parent; without index any";
    "proc.apid", Int, IndexOrAll, ProcApid, "ancestor's pid";
    "proc.aexe", Str, IndexOrAll, ProcAexe, "ancestor's argv[0]";
    "proc.aexepath", Str, IndexOrAll, ProcAexePath, "ancestor's executable";
    "proc.acmdline", Str, IndexOrAll, ProcAcmdline, "ancestor's command line";
    "proc.cwd", Str, None, ProcCwd, "working directory";
    "proc.tty", Int, None, ProcTty, "controlling terminal, 0 for none";
    "proc.sid", Int, None, ProcSid, "session id";
    "proc.vpgid", Int, None, ProcVpgid, "process group id in its PID namespace";
    "proc.sname", Str, None, ProcSname, "session leader's command name";
    "proc.vpgid.name", Str, None, ProcVpgidName, "process group leader's command name";
    "proc.vpgid.exe", Str, None, ProcVpgidExe, "process group leader's executable";
    "proc.is_vpgid_leader", Bool, None, ProcIsVpgidLeader, "the process leads its process group";
    "proc.is_sid_leader", Bool, None, ProcIsSidLeader, "the process leads its session";
    "proc.duration", Int, None, ProcDuration, "ns since the process started";
    "proc.ppid.duration", Int, None, ProcPpidDuration, "ns since the parent started";
    "proc.exe_ino", Int, None, ProcExeIno, "the executable's inode";
    "proc.exe_ino.mtime", Int, None, ProcExeInoMtime, "the executable's modification time, ns";
    "proc.exe_ino.ctime", Int, None, ProcExeInoCtime, "the executable's change time, ns";
    "proc.exe_ino.ctime_duration_proc_start", Int, None, ProcExeInoCtimeDurationProcStart, "ns between the executable's change and the process start";
    "proc.is_exe_upper_layer", Bool, None, ProcIsExeUpperLayer, "the executable lives on an overlay upper layer";
    "proc.is_exe_from_memfd", Bool, None, ProcIsExeFromMemfd, "the executable is a memfd";
    "proc.is_container_healthcheck", Bool, None, ProcIsContainerHealthcheck, "a container health check";
    "proc.is_container_liveness_probe", Bool, None, ProcIsContainerLivenessProbe, "a liveness probe";
    "proc.is_container_readiness_probe", Bool, None, ProcIsContainerReadinessProbe, "a readiness probe";
    "thread.tid", Int, None, ThreadTid, "thread id";
    "thread.vtid", Int, None, ThreadVtid, "thread id in its PID namespace";
    "thread.cap_effective", Str, None, ThreadCapEffective, "effective capabilities, space separated";
    "thread.cap_permitted", Str, None, ThreadCapPermitted, "permitted capabilities";
    "thread.cap_inheritable", Str, None, ThreadCapInheritable, "inheritable capabilities";
    "user.uid", Int, None, UserUid, "user id";
    "user.name", Str, None, UserName, "user name";
    "user.loginuid", Int, None, UserLoginUid, "audit login uid, -1 for none";
    "user.loginname", Str, None, UserLoginName, "login user's name";
    "user.homedir", Str, None, UserHomedir, "user's home directory";
    "user.shell", Str, None, UserShell, "user's shell";
    "group.gid", Int, None, GroupGid, "group id";
    "group.name", Str, None, GroupName, "group name";
    "fd.num", Int, None, FdNum, "the descriptor number, -1 for a failed open";
    "fd.type", Str, None, FdType, "file, directory, ipv4, ipv6, unix, pipe, ...";
    "fd.typechar", Str, None, FdTypeChar, "f, d, 4, 6, u, p, ...";
    "fd.name", Str, None, FdName, "the file's path, or the connection cip:cport->sip:sport";
    "fd.nameraw", Str, None, FdNameRaw, "the path as the process passed it";
    "fd.directory", Str, None, FdDirectory, "the file's directory";
    "fd.filename", Str, None, FdFilename, "the file's name";
    "fd.ip", Ip, None, FdIp, "either end's address";
    "fd.cip", Ip, None, FdCip, "client address";
    "fd.sip", Ip, None, FdSip, "server address";
    "fd.lip", Ip, None, FdLip, "local address";
    "fd.rip", Ip, None, FdRip, "remote address";
    "fd.port", Int, None, FdPort, "either end's port";
    "fd.cport", Int, None, FdCport, "client port";
    "fd.sport", Int, None, FdSport, "server port";
    "fd.lport", Int, None, FdLport, "local port";
    "fd.rport", Int, None, FdRport, "remote port";
    "fd.l4proto", Str, None, FdL4Proto, "tcp, udp, icmp, raw";
    "fd.sockfamily", Str, None, FdSockFamily, "ip or unix";
    "fd.net", Net, None, FdNet, "either end's address, compared with networks";
    "fd.cnet", Net, None, FdCnet, "client address, compared with networks";
    "fd.snet", Net, None, FdSnet, "server address, compared with networks";
    "fd.lnet", Net, None, FdLnet, "local address, compared with networks";
    "fd.rnet", Net, None, FdRnet, "remote address, compared with networks";
    "fd.connected", Bool, None, FdConnected, "the socket is connected";
    "fd.name_changed", Bool, None, FdNameChanged, "the event changed the descriptor's name";
    "fd.is_server", Bool, None, FdIsServer, "the process is the server end";
    "fd.types", Str, IndexOrAll, FdTypes, "the types of the event's descriptors";
    "fd.sip.name", Str, None, FdSipName, "server's domain name";
    "fd.cip.name", Str, None, FdCipName, "client's domain name";
    "fd.lip.name", Str, None, FdLipName, "local domain name";
    "fd.rip.name", Str, None, FdRipName, "remote domain name";
    "fd.containerid", Str, None, FdContainerId, "container id and descriptor";
    "container.id", Str, None, ContainerId, "container id (12 characters), `host` on the host";
    "container.full_id", Str, None, ContainerFullId, "container id (64 characters), `host` on the host";
    "container.name", Str, None, ContainerName, "container name, `host` on the host";
    "container.type", Str, None, ContainerType, "runtime: containerd, cri-o, docker, podman";
    "container.image", Str, None, ContainerImage, "image";
    "container.image.repository", Str, None, ContainerImageRepository, "image repository";
    "container.image.tag", Str, None, ContainerImageTag, "image tag";
    "container.image.id", Str, None, ContainerImageId, "image id";
    "container.image.digest", Str, None, ContainerImageDigest, "image digest";
    "container.privileged", Bool, None, ContainerPrivileged, "the container is privileged";
    "container.start_ts", Int, None, ContainerStartTs, "container start, ns since the epoch";
    "container.duration", Int, None, ContainerDuration, "ns since the container started";
    "container.healthcheck", Str, None, ContainerHealthcheck, "health check command";
    "container.liveness_probe", Str, None, ContainerLivenessProbe, "liveness probe command";
    "container.readiness_probe", Str, None, ContainerReadinessProbe, "readiness probe command";
    "k8s.ns.name", Str, None, K8sNsName, "pod's namespace";
    "k8s.pod.name", Str, None, K8sPodName, "pod's name";
    "k8s.pod.uid", Str, None, K8sPodUid, "pod's UID";
    "k8s.pod.label", Str, Key, K8sPodLabel, "one pod label";
    "k8s.pod.labels", Str, None, K8sPodLabels, "pod labels, key:value, comma separated";
    "k8s.pod.ip", Ip, None, K8sPodIp, "pod's IP";
    "k8s.pod.sandbox_id", Str, None, K8sPodSandboxId, "pod sandbox id";
    "k8s.ns.label", Str, Key, K8sNsLabel, "one namespace label";
    "k8s.deployment.name", Str, None, K8sDeploymentName, "owning deployment";
    "k8s.rs.name", Str, None, K8sRsName, "owning replica set";
    "k8s.svc.name", Str, None, K8sSvcName, "services selecting the pod";
}

/// What a field was given in brackets or after its name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FieldArg {
    /// Nothing: a plain field, or every value of a list field.
    None,
    /// `[n]`.
    Index(usize),
    /// `.name` or `[name]`.
    Key(Box<str>),
}

/// A field ready to extract.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Field {
    /// What it reads.
    pub id: FieldId,
    /// Its argument.
    pub arg: FieldArg,
    /// Its type.
    pub ty: FieldType,
    /// Whether it yields several values (an ancestor field without index).
    pub is_list: bool,
}

/// Why a field as written is not one we know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// No such field.
    #[error("unknown field \"{0}\"")]
    Unknown(String),
    /// The field needs an argument.
    #[error("field \"{0}\" needs an argument, such as {0}[1]")]
    MissingArg(String),
    /// The field takes none.
    #[error("field \"{0}\" takes no argument")]
    UnexpectedArg(String),
    /// The index is not a number.
    #[error("field \"{field}\" needs a numeric index, not \"{arg}\"")]
    BadIndex {
        /// The field.
        field: String,
        /// What was given.
        arg: String,
    },
}

/// The field named `name`, with `arg` from brackets.
pub fn resolve(name: &str, arg: Option<&str>) -> Result<Field, FieldError> {
    // `evt.arg.flags` and `k8s.pod.label.app` put the key after a dot.
    let (def, arg) = match find(name) {
        Some(def) => (def, arg.map(str::to_owned)),
        None => {
            let (base, key) = FIELDS
                .iter()
                .filter(|d| d.arg == ArgSpec::Key)
                .find_map(|d| {
                    name.strip_prefix(d.name)
                        .and_then(|rest| rest.strip_prefix('.'))
                        .filter(|key| !key.is_empty())
                        .map(|key| (d, key))
                })
                .ok_or_else(|| FieldError::Unknown(name.to_owned()))?;
            if arg.is_some() {
                return Err(FieldError::UnexpectedArg(name.to_owned()));
            }
            (base, Some(key.to_owned()))
        }
    };
    let bad_index = |arg: &str| FieldError::BadIndex {
        field: def.name.to_owned(),
        arg: arg.to_owned(),
    };
    let (arg, is_list) = match (def.arg, arg) {
        (ArgSpec::None, None) => (FieldArg::None, false),
        (ArgSpec::None, Some(_)) => return Err(FieldError::UnexpectedArg(def.name.to_owned())),
        (ArgSpec::Index | ArgSpec::Key, None) => {
            return Err(FieldError::MissingArg(def.name.to_owned()));
        }
        (ArgSpec::IndexOrAll, None) => (FieldArg::None, true),
        (ArgSpec::IndexOrAll, Some(a)) if a.is_empty() => (FieldArg::None, true),
        (ArgSpec::Index | ArgSpec::IndexOrAll, Some(a)) => (
            FieldArg::Index(a.trim().parse().map_err(|_| bad_index(&a))?),
            false,
        ),
        (ArgSpec::Key, Some(a)) => match a.trim().parse::<usize>() {
            Ok(index) if def.id == FieldId::EvtArg || def.id == FieldId::EvtRawArg => {
                (FieldArg::Index(index), false)
            }
            _ => (FieldArg::Key(a.trim().into()), false),
        },
    };
    Ok(Field {
        id: def.id,
        arg,
        ty: def.ty,
        is_list,
    })
}

/// The registry entry with this exact name.
pub fn find(name: &str) -> Option<&'static FieldDef> {
    FIELDS.iter().find(|d| d.name == name)
}

/// A field's value for one event, borrowed from the event where it can be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Val<'a> {
    /// Text.
    Str(Cow<'a, str>),
    /// A number.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// An address.
    Ip(IpAddr),
    /// Every value of a list field.
    List(Vec<Val<'a>>),
}

impl Val<'_> {
    /// The value as an output shows it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out);
        out
    }

    /// Appends the value as an output shows it, with no text of its own
    /// made on the way.
    pub fn render_into(&self, out: &mut String) {
        use std::fmt::Write as _;
        // Writing into a String cannot fail.
        let _ = match self {
            Self::Str(s) => {
                out.push_str(s);
                Ok(())
            }
            Self::Int(n) => write!(out, "{n}"),
            Self::Bool(b) => write!(out, "{b}"),
            Self::Ip(ip) => write!(out, "{ip}"),
            Self::List(items) => {
                out.push('(');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.render_into(out);
                }
                out.push(')');
                Ok(())
            }
        };
    }

    /// The value as JSON, for a violation's field values.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Str(s) => serde_json::Value::String(s.to_string()),
            Self::Int(n) => serde_json::Value::from(*n),
            Self::Bool(b) => serde_json::Value::Bool(*b),
            Self::Ip(ip) => serde_json::Value::String(ip.to_string()),
            Self::List(items) => serde_json::Value::Array(items.iter().map(Val::to_json).collect()),
        }
    }
}

impl Field {
    /// Whether the field's values are the two ends of a connection, where
    /// Falco's `!=` means that neither end matches.
    pub fn both_ends(&self) -> bool {
        matches!(self.id, FieldId::FdIp | FieldId::FdNet | FieldId::FdPort)
    }

    /// Whether the field tells apart two events of the same call by the same
    /// process: it reads when or where the event happened, or its place in
    /// the stream, not what happened. A verdict on a repeated call is reused
    /// only for rules that read none of these ([`super::verdicts`]).
    pub fn is_per_event(&self) -> bool {
        use FieldId as F;
        matches!(
            self.id,
            F::EvtNum
                | F::EvtTime
                | F::EvtRawTime
                | F::EvtCpu
                | F::ProcDuration
                | F::ProcPpidDuration
                | F::ProcExeInoCtimeDurationProcStart
                | F::ContainerDuration
        )
    }

    /// Reads the field from an event; `None` when the event has no value for
    /// it.
    pub fn extract<'a>(&self, view: &'a EventView<'_>) -> Option<Val<'a>> {
        extract::extract(self, view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_working_directory_ends_with_a_slash_as_in_falco() {
        use std::sync::Arc;

        use crate::events::event::{Event, EventKind, Process, WallTime};
        let cwd = resolve("proc.cwd", None).expect("proc.cwd");
        for (dir, want) in [
            ("/dev/shm", "/dev/shm/"),
            ("/", "/"),
            ("/tmp/x/", "/tmp/x/"),
        ] {
            let event = Event {
                process: Some(Arc::new(Process {
                    comm: "x".into(),
                    cwd: Some(dir.into()),
                    ..Process::default()
                })),
                ..Event::new(
                    EventKind::ProcessExec,
                    WallTime::parse("2026-11-26T05:18:39.123456789Z").expect("a time"),
                    1,
                    "n1".into(),
                )
            };
            let view = EventView::new(&event, 1);
            assert_eq!(cwd.extract(&view), Some(Val::Str(want.into())), "{dir}");
        }
    }

    #[test]
    fn the_event_time_is_the_time_the_event_is_written_with() {
        use crate::events::event::{Event, EventKind, WallTime};
        let time = resolve("evt.time", None).expect("evt.time");
        let event = Event::new(
            EventKind::Syscall,
            WallTime::parse("2026-11-26T05:18:39.000000042Z").expect("a time"),
            1,
            "n1".into(),
        );
        let view = EventView::new(&event, 1);
        assert_eq!(
            time.extract(&view),
            Some(Val::Str("2026-11-26T05:18:39.000000042Z".into()))
        );
    }

    #[test]
    fn the_fields_that_tell_apart_two_events_of_one_call_are_the_per_event_ones() {
        use crate::events::event::Event;
        let at = |time: &str, monotonic_ns: u64, cpu: u32| -> Event {
            serde_json::from_value(serde_json::json!({
                "schema_version": 1, "kind": "syscall", "time": time,
                "monotonic_ns": monotonic_ns, "node": "n", "cpu": cpu,
                "container": {"kind": "container", "id": "c".repeat(64), "runtime": "containerd"},
                "process": {"pid": 7, "tid": 7, "ns_pid": 7, "ppid": 6, "uid": 0, "gid": 0,
                    "euid": 0, "egid": 0, "cgroup_id": 1, "comm": "cat", "exe": "/usr/bin/cat",
                    "start_ns": 1_000, "exe_ctime_ns": 5, "cwd": "/root", "args": ["cat", "/etc/hosts"],
                    "ancestors": [{"pid": 6, "start_ns": 500, "comm": "bash",
                                   "exe": "/usr/bin/bash", "args": ["bash"]}]},
                "syscall": {"name": "openat", "nr": 257, "sensor": "file", "ret": 3,
                    "args": {"dirfd": -100, "flags": 0, "mode": 0},
                    "fds": [{"arg": "ret", "fd": 3, "type": "file", "path": "/etc/hosts"}],
                    "paths": [{"arg": "pathname", "raw": "/etc/hosts", "path": "/etc/hosts"}]}
            }))
            .expect("an open event")
        };
        let first = at("2026-11-27T08:00:00Z", 2_000, 0);
        // The wall clock and the boot clock drift apart (NTP steps one of
        // them): a second later on one is not exactly a second on the other.
        let second = at("2026-11-27T08:00:01Z", 1_000_002_007, 1);
        let (first, second) = (EventView::new(&first, 1), EventView::new(&second, 2));
        let mut per_event_with_values = 0;
        for def in FIELDS {
            let arg = match def.arg {
                ArgSpec::Index => Some("1"),
                ArgSpec::Key => Some("flags"),
                ArgSpec::None | ArgSpec::IndexOrAll => None,
            };
            let field = resolve(def.name, arg).expect(def.name);
            let (a, b) = (field.extract(&first), field.extract(&second));
            if a != b {
                assert!(field.is_per_event(), "{} differs: {a:?}, {b:?}", def.name);
            } else if field.is_per_event() && a.is_some() {
                panic!("{} is said to be per event but reads the same", def.name);
            }
            per_event_with_values += usize::from(field.is_per_event() && a.is_some());
        }
        assert_eq!(
            per_event_with_values, 7,
            "all but container.duration have values here"
        );
    }

    #[test]
    fn field_names_are_unique() {
        let mut names: Vec<&str> = FIELDS.iter().map(|d| d.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }

    #[test]
    fn arguments_come_in_brackets_or_after_a_dot() {
        let flags = resolve("evt.arg.flags", None).expect("evt.arg.flags");
        assert_eq!(flags.arg, FieldArg::Key("flags".into()));
        let first = resolve("evt.arg", Some("0")).expect("evt.arg[0]");
        assert_eq!(first.arg, FieldArg::Index(0));
        let grandparent = resolve("proc.aname", Some("2")).expect("proc.aname[2]");
        assert_eq!(
            (grandparent.arg, grandparent.is_list),
            (FieldArg::Index(2), false)
        );
        assert!(resolve("proc.aname", None).expect("proc.aname").is_list);
        assert!(matches!(
            resolve("proc.nmae", None),
            Err(FieldError::Unknown(_))
        ));
        assert!(matches!(
            resolve("proc.name", Some("1")),
            Err(FieldError::UnexpectedArg(_))
        ));
        assert!(matches!(
            resolve("proc.aexepath", Some("x")),
            Err(FieldError::BadIndex { .. })
        ));
    }
}
