//! Reading each field from an event.

use std::{borrow::Cow, net::IpAddr};

use super::{
    Field, FieldArg, FieldId, Val, names,
    view::{EventView, Fd, FdTarget, SyscallClass, client_server, path_arg},
};
use crate::events::event::{ArgValue, EventKind, Process, Socket, Syscall};

/// The field's value for the event, `None` when it has none.
pub fn extract<'a>(field: &Field, view: &'a EventView<'_>) -> Option<Val<'a>> {
    use FieldId as F;
    let event = view.event;
    let process = view.process();
    let int = |n: i64| Some(Val::Int(n));
    let borrowed = |s: &'a str| Some(Val::Str(Cow::Borrowed(s)));
    let owned = |s: String| Some(Val::Str(Cow::Owned(s)));
    let flag = |b: bool| Some(Val::Bool(b));
    if let Some(direct) = Direct::of(field) {
        return match direct {
            Direct::Text(f) => f.read(view).map(|s| Val::Str(Cow::Borrowed(s))),
            Direct::Int(f) => f.read(view).map(Val::Int),
            Direct::Flag(f) => f.read(view).map(Val::Bool),
        };
    }
    match field.id {
        // Read above, by `Direct`.
        F::ProcPid
        | F::ProcPpid
        | F::UserUid
        | F::FdNum
        | F::EvtNum
        | F::ProcDuration
        | F::EvtIsOpenRead
        | F::EvtIsOpenWrite
        | F::EvtIsOpenCreate
        | F::EvtType
        | F::EvtHostname
        | F::ProcName
        | F::ProcExe
        | F::ProcExePath
        | F::ProcArgs
        | F::ProcCmdline
        | F::ProcPname
        | F::ProcPexe
        | F::ProcPexePath
        | F::FdType
        | F::FdTypeChar
        | F::FdName
        | F::FdNameRaw
        | F::FdDirectory
        | F::FdFilename
        | F::ContainerId => None,
        F::EvtDir => borrowed("<"),
        F::EvtRes => result(event).map(|ret| {
            Val::Str(if ret >= 0 {
                Cow::Borrowed("SUCCESS")
            } else {
                names::errno(-ret).map_or_else(|| Cow::Owned(ret.to_string()), Cow::Borrowed)
            })
        }),
        F::EvtRawRes => result(event).map(Val::Int),
        F::EvtFailed => result(event).map(|ret| Val::Bool(ret < 0)),
        F::EvtTime => owned(event.time.to_string()),
        F::EvtRawTime => event
            .time
            .0
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| Val::Int(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))),
        F::EvtArgs => borrowed(view.evt_args()),
        F::EvtArg if event.kind == EventKind::ProcessExec => exec_arg(field, process?),
        F::EvtArg => {
            let syscall = view.syscall()?;
            let name = arg_name(syscall, &field.arg)?;
            render_arg(syscall, name).map(Val::Str)
        }
        F::EvtRawArg => {
            let syscall = view.syscall()?;
            let name = arg_name(syscall, &field.arg)?;
            if let Some(path) = path_arg(syscall, name) {
                return borrowed(&path.raw);
            }
            match syscall.args.get(name)? {
                ArgValue::Unsigned(n) => int(i64::try_from(*n).unwrap_or(i64::MAX)),
                ArgValue::Signed(n) => int(*n),
                ArgValue::Text(s) => borrowed(s),
            }
        }
        F::EvtIsOpenExec => view.open_flags().map(|_| Val::Bool(false)),
        F::EvtSource => borrowed("syscall"),
        F::EvtCategory => borrowed(category(view)),
        F::EvtCpu => event.cpu.and_then(|c| int(c.into())),

        F::ProcVpid => int(process?.ns_pid.into()),
        F::ProcCmdNArgs => int(process?
            .args
            .as_ref()
            .map_or(0, |a| a.len().saturating_sub(1))
            .try_into()
            .unwrap_or(i64::MAX)),
        F::ProcPcmdline => ancestor(process?, 1, Part::Cmdline),
        F::ProcAname => ancestors(field, process?, Part::Name),
        F::ProcApid => ancestors(field, process?, Part::Pid),
        F::ProcAexe => ancestors(field, process?, Part::Exe),
        F::ProcAexePath => ancestors(field, process?, Part::ExePath),
        F::ProcAcmdline => ancestors(field, process?, Part::Cmdline),
        // Falco keeps the working directory with a trailing slash
        // (`proc.cwd startswith "/dev/shm/"` holds in /dev/shm itself).
        F::ProcCwd => {
            let cwd = process?.cwd.as_deref().filter(|c| !c.is_empty())?;
            if cwd.ends_with('/') {
                borrowed(cwd)
            } else {
                owned(format!("{cwd}/"))
            }
        }
        F::ProcIsExeUpperLayer => flag(process?.exe_upper_layer),
        F::ProcIsExeFromMemfd => flag(process?.exe_memfd),
        // Health checks and probes are known only from the runtime's config.
        F::ProcIsContainerHealthcheck
        | F::ProcIsContainerLivenessProbe
        | F::ProcIsContainerReadinessProbe => flag(false),
        // Filled from the process facts the sensors report.
        F::ProcTty
        | F::ProcSid
        | F::ProcVpgid
        | F::ProcSname
        | F::ProcVpgidName
        | F::ProcVpgidExe
        | F::ProcIsVpgidLeader
        | F::ProcIsSidLeader
        | F::ProcPpidDuration
        | F::ProcExeIno
        | F::ProcExeInoMtime
        | F::ProcExeInoCtime
        | F::ProcExeInoCtimeDurationProcStart => process_fact(field.id, view),

        F::ThreadTid => int(process?.tid.into()),
        F::ThreadVtid => None,
        F::ThreadCapEffective => owned(names::capabilities(process?.cap_effective?)),
        F::ThreadCapPermitted => owned(names::capabilities(
            view.syscall()?.capabilities.as_ref()?.permitted,
        )),
        F::ThreadCapInheritable => owned(names::capabilities(
            view.syscall()?.capabilities.as_ref()?.inheritable,
        )),

        F::UserLoginUid => int(process?.login_uid.map_or(-1, i64::from)),
        F::UserName | F::UserLoginName | F::GroupName => process_fact(field.id, view),
        F::UserHomedir | F::UserShell => None,
        F::GroupGid => int(process?.gid.into()),

        F::FdIp | F::FdNet => {
            let (c, s) = ends(view)?;
            let ips: Vec<Val<'_>> = [c, s]
                .into_iter()
                .flatten()
                .filter_map(|e| ip(&e.address))
                .collect();
            (!ips.is_empty()).then_some(Val::List(ips))
        }
        F::FdPort => {
            let (c, s) = ends(view)?;
            let ports: Vec<Val<'_>> = [c, s]
                .into_iter()
                .flatten()
                .map(|e| Val::Int(e.port.into()))
                .collect();
            (!ports.is_empty()).then_some(Val::List(ports))
        }
        F::FdCip | F::FdCnet => ip(&ends(view)?.0?.address),
        F::FdSip | F::FdSnet => ip(&ends(view)?.1?.address),
        F::FdLip | F::FdLnet => ip(&socket(view)?.local.as_ref()?.address),
        F::FdRip | F::FdRnet => ip(&socket(view)?.remote.as_ref()?.address),
        F::FdCport => int(ends(view)?.0?.port.into()),
        F::FdSport => int(ends(view)?.1?.port.into()),
        F::FdLport => int(socket(view)?.local.as_ref()?.port.into()),
        F::FdRport => int(socket(view)?.remote.as_ref()?.port.into()),
        F::FdL4Proto => {
            let s = socket(view)?;
            matches!(s.family.as_ref(), "inet" | "inet6")
                .then(|| Val::Str(Cow::Borrowed(s.protocol.as_ref())))
        }
        F::FdSockFamily => match socket(view)?.family.as_ref() {
            "inet" | "inet6" => borrowed("ip"),
            "unix" => borrowed("unix"),
            _ => None,
        },
        F::FdConnected => {
            let s = socket(view)?;
            flag(
                s.state.as_deref() == Some("established")
                    || s.remote.as_ref().is_some_and(|r| r.port != 0),
            )
        }
        F::FdNameChanged => flag(view.fd()?.name_changed),
        F::FdIsServer => flag(view.fd()?.server),
        F::FdTypes => fd_types(field, view),
        // Names need DNS, which the agent does not do on the event path.
        F::FdSipName | F::FdCipName | F::FdLipName | F::FdRipName => None,
        F::FdContainerId => {
            let fd = view.fd()?;
            owned(format!("{}:{}", container_id(view)?, fd.num))
        }

        F::ContainerFullId => {
            let c = event.container.as_deref()?;
            match c.kind.as_str() {
                "host" => borrowed("host"),
                _ => borrowed(c.id.as_deref()?),
            }
        }
        F::ContainerName => {
            let c = event.container.as_deref()?;
            if c.kind == "host" {
                return borrowed("host");
            }
            borrowed(&kube(view)?.container.as_ref()?.name)
        }
        F::ContainerType => borrowed(event.container.as_deref()?.runtime.as_deref()?),
        F::K8sPodUid => borrowed(event.container.as_deref()?.pod_uid.as_deref()?),
        F::ContainerImage => borrowed(&kube(view)?.container.as_ref()?.image),
        F::ContainerImageRepository => {
            borrowed(image_parts(&kube(view)?.container.as_ref()?.image).0)
        }
        F::ContainerImageTag => borrowed(image_parts(&kube(view)?.container.as_ref()?.image).1?),
        F::ContainerImageDigest => {
            let c = kube(view)?.container.as_ref()?;
            borrowed(
                image_parts(&c.image)
                    .2
                    .or_else(|| c.image_id.as_deref().and_then(|id| image_parts(id).2))?,
            )
        }
        F::ContainerImageId => {
            let c = kube(view)?.container.as_ref()?;
            let id = c.image_id.as_deref()?;
            let digest = image_parts(id).2.unwrap_or(id);
            let hex = digest.rsplit_once(':').map_or(digest, |(_, hex)| hex);
            borrowed(hex.get(..12).unwrap_or(hex))
        }
        F::ContainerPrivileged => flag(kube(view)?.container.as_ref()?.privileged),
        F::K8sNsName => borrowed(kube(view)?.namespace.as_deref()?),
        F::K8sPodName => borrowed(kube(view)?.pod.as_deref()?),
        F::K8sPodIp => kube(view)?.ip.as_deref()?.parse().ok().map(Val::Ip),
        F::K8sPodLabel => match &field.arg {
            FieldArg::Key(key) => borrowed(kube(view)?.labels.get(&**key)?),
            _ => None,
        },
        F::K8sPodLabels => {
            let labels = &kube(view)?.labels;
            owned(
                labels
                    .iter()
                    .map(|(k, v)| format!("{k}:{v}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        }
        F::K8sNsLabel => match &field.arg {
            FieldArg::Key(key) => borrowed(kube(view)?.namespace_labels.get(&**key)?),
            _ => None,
        },
        F::K8sDeploymentName => {
            let workload = kube(view)?.workload.as_ref()?;
            (workload.kind == "Deployment").then_some(Val::Str(Cow::Borrowed(&workload.name)))
        }
        F::K8sRsName => {
            let owner = kube(view)?.owner.as_ref()?;
            (owner.kind == "ReplicaSet").then_some(Val::Str(Cow::Borrowed(&owner.name)))
        }
        // Runtime facts the kube API does not give, and Services (read only
        // for a violation's blast radius, not per event), have no value.
        F::ContainerStartTs
        | F::ContainerDuration
        | F::ContainerHealthcheck
        | F::ContainerLivenessProbe
        | F::ContainerReadinessProbe
        | F::K8sPodSandboxId
        | F::K8sSvcName => None,
    }
}

/// A field read straight from the event as text, a number or a flag: a
/// check on one tests the value as it is, without making a [`Val`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direct {
    /// Text borrowed from the event.
    Text(TextField),
    /// A number.
    Int(IntField),
    /// A flag.
    Flag(FlagField),
}

impl Direct {
    /// How `field` is read directly, if it is.
    pub fn of(field: &Field) -> Option<Self> {
        use FieldId as F;
        if !matches!(field.arg, FieldArg::None) {
            return None;
        }
        if let Some(text) = TextField::of(field) {
            return Some(Self::Text(text));
        }
        Some(match field.id {
            F::ProcPid => Self::Int(IntField::ProcPid),
            F::ProcPpid => Self::Int(IntField::ProcPpid),
            F::UserUid => Self::Int(IntField::UserUid),
            F::FdNum => Self::Int(IntField::FdNum),
            F::EvtNum => Self::Int(IntField::EvtNum),
            F::ProcDuration => Self::Int(IntField::ProcDuration),
            F::EvtIsOpenRead => Self::Flag(FlagField::EvtIsOpenRead),
            F::EvtIsOpenWrite => Self::Flag(FlagField::EvtIsOpenWrite),
            F::EvtIsOpenCreate => Self::Flag(FlagField::EvtIsOpenCreate),
            _ => return None,
        })
    }
}

/// The number fields read directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntField {
    /// `proc.pid`.
    ProcPid,
    /// `proc.ppid`.
    ProcPpid,
    /// `user.uid`.
    UserUid,
    /// `fd.num`.
    FdNum,
    /// `evt.num` (Falco's `never_true` is `evt.num = 0`).
    EvtNum,
    /// `proc.duration` (Falco's `proc_is_new` tests it on opens).
    ProcDuration,
}

impl IntField {
    /// The field's number for the event, `None` when it has none.
    pub fn read(self, view: &EventView<'_>) -> Option<i64> {
        match self {
            Self::ProcPid => Some(view.process()?.pid.into()),
            Self::ProcPpid => Some(view.process()?.ppid.into()),
            Self::UserUid => Some(view.process()?.uid.into()),
            Self::FdNum => Some(view.fd()?.num),
            Self::EvtNum => Some(i64::try_from(view.number).unwrap_or(i64::MAX)),
            Self::ProcDuration => {
                let p = view.process()?;
                (p.start_ns > 0).then(|| elapsed(view.event.monotonic_ns, p.start_ns))
            }
        }
    }
}

/// The flag fields read directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagField {
    /// `evt.is_open_read`.
    EvtIsOpenRead,
    /// `evt.is_open_write`.
    EvtIsOpenWrite,
    /// `evt.is_open_create`.
    EvtIsOpenCreate,
}

impl FlagField {
    /// The field's flag for the event, `None` when it has none.
    pub fn read(self, view: &EventView<'_>) -> Option<bool> {
        let flags = view.open_flags()?;
        Some(match self {
            Self::EvtIsOpenRead => names::open_reads(flags),
            Self::EvtIsOpenWrite => names::open_writes(flags),
            Self::EvtIsOpenCreate => flags & names::O_CREAT != 0,
        })
    }
}

/// The fields whose value is text borrowed from the event, never built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextField {
    /// `evt.type`.
    EvtType,
    /// `evt.hostname`.
    EvtHostname,
    /// `proc.name`.
    ProcName,
    /// `proc.exe`.
    ProcExe,
    /// `proc.exepath`.
    ProcExePath,
    /// `proc.args`.
    ProcArgs,
    /// `proc.cmdline`.
    ProcCmdline,
    /// `proc.pname`.
    ProcPname,
    /// `proc.pexe`.
    ProcPexe,
    /// `proc.pexepath`.
    ProcPexePath,
    /// `fd.type`.
    FdType,
    /// `fd.typechar`.
    FdTypeChar,
    /// `fd.name`.
    FdName,
    /// `fd.nameraw`.
    FdNameRaw,
    /// `fd.directory`.
    FdDirectory,
    /// `fd.filename`.
    FdFilename,
    /// `container.id`.
    ContainerId,
}

impl TextField {
    /// The text field `field` is, if it is one.
    fn of(field: &Field) -> Option<Self> {
        use FieldId as F;
        Some(match field.id {
            F::EvtType => Self::EvtType,
            F::EvtHostname => Self::EvtHostname,
            F::ProcName => Self::ProcName,
            F::ProcExe => Self::ProcExe,
            F::ProcExePath => Self::ProcExePath,
            F::ProcArgs => Self::ProcArgs,
            F::ProcCmdline => Self::ProcCmdline,
            F::ProcPname => Self::ProcPname,
            F::ProcPexe => Self::ProcPexe,
            F::ProcPexePath => Self::ProcPexePath,
            F::FdType => Self::FdType,
            F::FdTypeChar => Self::FdTypeChar,
            F::FdName => Self::FdName,
            F::FdNameRaw => Self::FdNameRaw,
            F::FdDirectory => Self::FdDirectory,
            F::FdFilename => Self::FdFilename,
            F::ContainerId => Self::ContainerId,
            _ => return None,
        })
    }

    /// The field's text for the event, `None` when it has none.
    pub fn read<'a>(self, view: &'a EventView<'_>) -> Option<&'a str> {
        let own = |part| generation_text(view.process()?, 0, part);
        let parent = |part| generation_text(view.process()?, 1, part);
        match self {
            Self::EvtType => Some(view.event_type()),
            Self::EvtHostname => Some(&view.event.node),
            Self::ProcName => own(Part::Name),
            Self::ProcExe => own(Part::Exe),
            Self::ProcExePath => own(Part::ExePath),
            Self::ProcArgs => view.proc_args(),
            Self::ProcCmdline => view.cmdline(),
            Self::ProcPname => parent(Part::Name),
            Self::ProcPexe => parent(Part::Exe),
            Self::ProcPexePath => parent(Part::ExePath),
            Self::FdType => Some(fd_type(view.fd()?).0),
            Self::FdTypeChar => Some(fd_type(view.fd()?).1),
            // A file's name is its path, borrowed; only a socket's is built.
            Self::FdName => match view.fd()?.target {
                FdTarget::File { path, .. } => Some(path),
                _ => view.fd_name(),
            },
            Self::FdNameRaw => view.fd()?.raw,
            Self::FdDirectory => match view.fd()?.target {
                FdTarget::File {
                    path,
                    directory: true,
                } => Some(path),
                FdTarget::File { path, .. } => Some(parent_dir(path)),
                _ => None,
            },
            Self::FdFilename => match view.fd()?.target {
                FdTarget::File { path, .. } => Some(path.rsplit('/').next().unwrap_or(path)),
                _ => None,
            },
            Self::ContainerId => container_id(view),
        }
    }
}

/// Facts about the process's terminal, group, session, executable and
/// names.
fn process_fact<'a>(id: FieldId, view: &'a EventView<'_>) -> Option<Val<'a>> {
    use FieldId as F;
    let p = view.process()?;
    let int = |n: i64| Some(Val::Int(n));
    let text = |s: &'a str| Some(Val::Str(Cow::Borrowed(s)));
    match id {
        F::ProcTty => int(p.tty.into()),
        F::ProcSid => int(p.sid.into()),
        F::ProcVpgid => int(p.vpgid.into()),
        F::ProcSname => text(p.session_leader.as_ref()?.image.comm()),
        F::ProcVpgidName => text(p.group_leader.as_ref()?.image.comm()),
        F::ProcVpgidExe => {
            let leader = p.group_leader.as_ref()?;
            text(leader.image.exe()).filter(|_| !leader.image.exe().is_empty())
        }
        F::ProcIsVpgidLeader => Some(Val::Bool(p.pgid != 0 && p.pid == p.pgid)),
        F::ProcIsSidLeader => Some(Val::Bool(p.sid != 0 && p.pid == p.sid)),
        F::ProcPpidDuration => {
            let parent = p.ancestors.first()?;
            (parent.start_ns > 0)
                .then(|| Val::Int(elapsed(view.event.monotonic_ns, parent.start_ns)))
        }
        F::ProcExeIno => int(i64::try_from(p.exe_ino?).ok()?),
        F::ProcExeInoMtime => int(p.exe_mtime_ns?),
        F::ProcExeInoCtime => int(p.exe_ctime_ns?),
        F::ProcExeInoCtimeDurationProcStart => {
            // Both on the wall clock: the process started `duration` ago.
            let now = view
                .event
                .time
                .0
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_nanos();
            let now = i64::try_from(now).ok()?;
            let started = now - elapsed(view.event.monotonic_ns, p.start_ns);
            int(started - p.exe_ctime_ns?)
        }
        F::UserName => text(p.user_name.as_deref()?),
        F::GroupName => text(p.group_name.as_deref()?),
        F::UserLoginName => text(p.login_name.as_deref()?),
        _ => None,
    }
}

/// `proc.exepath`: a memfd executable is named as Falco names it
/// (`memfd:name`), not as the kernel's path to it (`/memfd:name (deleted)`).
fn exe_path(process: &Process) -> Option<&str> {
    let exe = process.exe.as_deref().filter(|e| !e.is_empty())?;
    if process.exe_memfd
        && let Some(name) = exe.strip_prefix('/').filter(|e| e.starts_with("memfd:"))
    {
        return Some(name.strip_suffix(" (deleted)").unwrap_or(name));
    }
    Some(exe)
}

fn elapsed(now: u64, since: u64) -> i64 {
    i64::try_from(now.saturating_sub(since)).unwrap_or(i64::MAX)
}

fn result(event: &crate::events::event::Event) -> Option<i64> {
    match event.kind {
        EventKind::Syscall => event.syscall.as_ref().map(|s| s.ret),
        EventKind::ProcessExec => Some(0),
        EventKind::ProcessFork => event.fork.as_ref().map(|f| i64::from(f.child_pid)),
        _ => None,
    }
}

fn category(view: &EventView<'_>) -> &'static str {
    match view.event.kind {
        EventKind::ProcessExec | EventKind::ProcessFork | EventKind::ProcessExit => "process",
        EventKind::TcpState => "net",
        EventKind::EventsLost | EventKind::Violation | EventKind::Action => "internal",
        EventKind::Syscall => match view.syscall().map(|s| &*s.sensor) {
            Some("file") => "file",
            Some("network") => "net",
            Some("descriptors") => "io",
            _ => "security",
        },
    }
}

/// The flags of an open, from its arguments.
pub fn open_flags(view: &EventView<'_>) -> Option<u64> {
    let syscall = view.syscall()?;
    match view.syscall_class() {
        SyscallClass::Open => match syscall.args.get("flags")? {
            ArgValue::Unsigned(f) => Some(*f),
            _ => None,
        },
        SyscallClass::OpenAt2 => syscall.open_how.as_ref().map(|h| h.flags),
        // creat is open(O_CREAT|O_WRONLY|O_TRUNC).
        SyscallClass::Creat => Some(0o1 | 0o100 | 0o1000),
        _ => None,
    }
}

#[derive(Clone, Copy)]
enum Part {
    Name,
    Exe,
    ExePath,
    Cmdline,
    Pid,
}

/// One generation's `part`: 0 is the process itself, 1 its parent.
fn generation<'a>(process: &'a Process, n: usize, part: Part) -> Option<Val<'a>> {
    match part {
        Part::Name | Part::Exe | Part::ExePath => {
            generation_text(process, n, part).map(|s| Val::Str(Cow::Borrowed(s)))
        }
        Part::Cmdline if n == 0 => Some(Val::Str(process.command_line())),
        Part::Cmdline => {
            let image = &process.ancestors.get(n - 1)?.image;
            Some(Val::Str(image.args().command_line(image.comm())))
        }
        Part::Pid if n == 0 => Some(Val::Int(process.pid.into())),
        Part::Pid => Some(Val::Int(process.ancestors.get(n - 1)?.pid.into())),
    }
}

/// One generation's name, executable or executable path, as the event holds
/// it; `None` for the parts that are not text kept in the event.
fn generation_text(process: &Process, n: usize, part: Part) -> Option<&str> {
    if n == 0 {
        return match part {
            Part::Name => Some(&process.comm),
            Part::Exe => process.args.as_ref()?.get(0),
            // A process the tree learnt of only from a fork it did not see
            // has an empty image: no path, like its ancestors' (`<NA>`).
            Part::ExePath => exe_path(process),
            Part::Cmdline | Part::Pid => None,
        };
    }
    let image = &process.ancestors.get(n - 1)?.image;
    match part {
        Part::Name => Some(image.comm()),
        Part::Exe => image.args().get(0),
        Part::ExePath => Some(image.exe()).filter(|e| !e.is_empty()),
        Part::Cmdline | Part::Pid => None,
    }
}

fn ancestor(process: &Process, n: usize, part: Part) -> Option<Val<'_>> {
    generation(process, n, part)
}

/// `proc.aname[n]`, or every ancestor's (not the process's own) without `n`.
fn ancestors<'a>(field: &Field, process: &'a Process, part: Part) -> Option<Val<'a>> {
    match field.arg {
        FieldArg::Index(n) => generation(process, n, part),
        _ => {
            let all: Vec<Val<'a>> = (1..=process.ancestors.len())
                .filter_map(|n| generation(process, n, part))
                .collect();
            (!all.is_empty()).then_some(Val::List(all))
        }
    }
}

fn ip(text: &str) -> Option<Val<'static>> {
    text.parse::<IpAddr>().ok().map(Val::Ip)
}

fn socket<'a>(view: &'a EventView<'_>) -> Option<&'a Socket> {
    match view.fd()?.target {
        FdTarget::Socket(s) => Some(s),
        _ => None,
    }
}

type Ends<'a> = (
    Option<&'a crate::events::event::Endpoint>,
    Option<&'a crate::events::event::Endpoint>,
);

fn ends<'a>(view: &'a EventView<'_>) -> Option<Ends<'a>> {
    let fd = view.fd()?;
    let FdTarget::Socket(s) = fd.target else {
        return None;
    };
    Some(client_server(fd, s))
}

fn fd_type(fd: &Fd<'_>) -> (&'static str, &'static str) {
    match fd.target {
        FdTarget::File {
            directory: true, ..
        } => ("directory", "d"),
        FdTarget::File { .. } => ("file", "f"),
        FdTarget::Socket(s) => match s.family.as_ref() {
            "inet" => ("ipv4", "4"),
            "inet6" => ("ipv6", "6"),
            "unix" => ("unix", "u"),
            "netlink" => ("netlink", "n"),
            _ => ("socket", "o"),
        },
        FdTarget::Pipe => ("pipe", "p"),
        FdTarget::Anon => ("anon", "o"),
    }
}

/// `fd.types[n]`: the type of descriptor `n` when the event names it;
/// without `n`, the types of every descriptor the event names.
fn fd_types<'a>(field: &Field, view: &'a EventView<'_>) -> Option<Val<'a>> {
    let syscall = view.syscall()?;
    let type_of = |info: &'a crate::events::event::FdInfo| -> &'static str {
        match (info.kind.as_ref(), &info.socket) {
            ("socket", Some(s)) => match s.family.as_ref() {
                "inet" => "ipv4",
                "inet6" => "ipv6",
                "unix" => "unix",
                _ => "socket",
            },
            ("pipe", _) => "pipe",
            ("file", _) => "file",
            _ => "anon",
        }
    };
    match field.arg {
        FieldArg::Index(n) => {
            let n = i64::try_from(n).ok()?;
            let info = syscall
                .fds
                .iter()
                .find(|f| f.fd == n || (f.arg == "ret" && syscall.ret == n))?;
            Some(Val::Str(Cow::Borrowed(type_of(info))))
        }
        _ => {
            let all: Vec<Val<'a>> = syscall
                .fds
                .iter()
                .map(|f| Val::Str(Cow::Borrowed(type_of(f))))
                .collect();
            (!all.is_empty()).then_some(Val::List(all))
        }
    }
}

fn parent_dir(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => path,
    }
}

/// `container.id`: 12 characters, or `host`.
/// The event's pod, when resolved.
fn kube<'a>(view: &'a EventView<'_>) -> Option<&'a crate::events::kubernetes::Kubernetes> {
    view.event
        .kubernetes
        .as_deref()
        .filter(|k| k.status == crate::events::kubernetes::PodStatus::Resolved)
}

/// An image reference's repository, tag and digest:
/// `registry:5000/app:1.2@sha256:ab` → (`registry:5000/app`, `1.2`, `sha256:ab`).
fn image_parts(image: &str) -> (&str, Option<&str>, Option<&str>) {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].rfind(':') {
        Some(colon) => {
            let at = last_slash + colon;
            (&name[..at], Some(&name[at + 1..]), digest)
        }
        None => (name, None, digest),
    }
}

fn container_id<'a>(view: &'a EventView<'_>) -> Option<&'a str> {
    let c = view.event.container.as_deref()?;
    match c.kind.as_str() {
        "host" => Some("host"),
        "container" => c.id.as_deref().map(|id| id.get(..12).unwrap_or(id)),
        _ => None,
    }
}

/// An argument of an exec as Falco names them: `flags` (what the
/// executable is: `EXE_UPPER_LAYER`, `EXE_FROM_MEMFD`), `exe`, `args`,
/// `cwd`, `filename`.
fn exec_arg<'a>(field: &Field, process: &'a Process) -> Option<Val<'a>> {
    let FieldArg::Key(key) = &field.arg else {
        return None;
    };
    let text = |s: &'a str| Some(Val::Str(Cow::Borrowed(s)));
    match &**key {
        "flags" => {
            let names: Vec<&str> = [
                (process.exe_upper_layer, "EXE_UPPER_LAYER"),
                (process.exe_memfd, "EXE_FROM_MEMFD"),
            ]
            .into_iter()
            .filter_map(|(set, name)| set.then_some(name))
            .collect();
            if names.is_empty() {
                text("0")
            } else {
                Some(Val::Str(Cow::Owned(names.join("|"))))
            }
        }
        "exe" => text(process.args.as_ref()?.get(0)?),
        "filename" => text(process.filename.as_deref()?),
        "cwd" => text(process.cwd.as_deref()?),
        "args" => Some(Val::Str(Cow::Owned(
            process
                .args
                .as_ref()?
                .iter()
                .skip(1)
                .collect::<Vec<_>>()
                .join(" "),
        ))),
        _ => None,
    }
}

/// Falco's argument names where ours (the man pages') differ.
fn falco_alias<'s>(syscall: &str, name: &'s str) -> &'s str {
    match (syscall, name) {
        (_, "name")
            if matches!(
                syscall,
                "open" | "openat" | "openat2" | "creat" | "unlink" | "unlinkat"
            ) =>
        {
            "pathname"
        }
        (_, "path" | "filename") => "pathname",
        ("socket", "proto") => "protocol",
        ("symlinkat", "linkdirfd") => "newdirfd",
        ("linkat" | "renameat" | "renameat2", "olddir") => "olddirfd",
        ("linkat" | "renameat" | "renameat2", "newdir") => "newdirfd",
        ("init_module" | "finit_module", "uargs") => "param_values",
        ("mount", "dev") => "source",
        ("mount", "dir") => "target",
        ("mount", "type") => "filesystemtype",
        ("umount2" | "umount", "name") => "target",
        (_, "fd") if !matches!(syscall, "finit_module" | "setns" | "fchmod" | "fcntl") => "sockfd",
        _ => name,
    }
}

/// Our name of the argument a field names, by name or position.
fn arg_name<'s>(syscall: &'s Syscall, arg: &'s FieldArg) -> Option<&'s str> {
    match arg {
        FieldArg::Key(key) => {
            let ours = falco_alias(&syscall.name, key);
            let known = |n: &str| {
                n == "res"
                    || syscall.args.get(n).is_some()
                    || path_arg(syscall, n).is_some()
                    || syscall.fds.iter().any(|f| f.arg == n)
            };
            if known(ours) {
                Some(ours)
            } else if known(key) {
                Some(key)
            } else if &**key == "flags" && syscall.open_how.is_some() {
                Some("flags")
            } else {
                None
            }
        }
        FieldArg::Index(n) => crate::bpf::syscalls::by_name(&syscall.name)
            .and_then(|s| s.args.get(*n))
            .map(|a| a.name),
        FieldArg::None => None,
    }
}

/// One argument as Falco renders it: names for flags and requests, paths
/// made absolute, numbers in decimal.
fn render_arg<'a>(syscall: &'a Syscall, name: &str) -> Option<Cow<'a, str>> {
    if name == "res" {
        return Some(Cow::Owned(syscall.ret.to_string()));
    }
    if let Some(path) = path_arg(syscall, name) {
        return Some(Cow::Borrowed(path.path()));
    }
    let value = match syscall.args.get(name) {
        Some(v) => v,
        None if name == "flags" => {
            return syscall
                .open_how
                .as_ref()
                .map(|h| Cow::Owned(names::open_flags(h.flags)));
        }
        None => return None,
    };
    let number = match value {
        ArgValue::Text(s) => return Some(Cow::Borrowed(s)),
        ArgValue::Signed(n) => return Some(Cow::Owned(n.to_string())),
        ArgValue::Unsigned(n) => *n,
    };
    let named = match (&*syscall.name, name) {
        ("open" | "openat", "flags") => Some(Cow::Owned(names::open_flags(number))),
        ("ptrace", "request") => names::ptrace_request(number).map(Cow::Borrowed),
        ("socket", "domain") => names::socket_domain(number).map(Cow::Borrowed),
        ("socket", "type") => Some(Cow::Owned(names::socket_type(number))),
        _ => None,
    };
    Some(named.unwrap_or_else(|| Cow::Owned(number.to_string())))
}

/// `evt.args`: `name=value` for each argument, in the syscall's order, then
/// `res`.
pub fn render_all_args(view: &EventView<'_>) -> String {
    let Some(syscall) = view.syscall() else {
        return String::new();
    };
    let mut out = String::new();
    let order = crate::bpf::syscalls::by_name(&syscall.name).map(|s| s.args);
    for arg in order.into_iter().flatten() {
        if let Some(value) = render_arg(syscall, arg.name) {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(arg.name);
            out.push('=');
            out.push_str(&value);
        }
    }
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str("res=");
    out.push_str(&syscall.ret.to_string());
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::events::event::{Event, EventKind, Process, WallTime};

    fn event(process: Process) -> Event {
        Event {
            process: Some(Arc::new(process)),
            ..Event::new(
                EventKind::Syscall,
                WallTime::parse("2026-11-26T05:18:39.123456789Z").expect("a time"),
                42,
                "n1".into(),
            )
        }
    }

    fn value(name: &str, event: &Event) -> Option<String> {
        let field = super::super::resolve(name, None).expect("a field");
        extract(&field, &EventView::new(event, 1)).map(|v| match v {
            Val::Str(s) => s.into_owned(),
            other => format!("{other:?}"),
        })
    }

    #[test]
    fn an_unknown_image_has_no_exe_path_or_cwd_rather_than_empty_ones() {
        // What the enrichment fills in for a process whose fork it missed.
        let unknown = event(Process {
            pid: 7,
            comm: "worker".into(),
            exe: Some("".into()),
            args: Some(std::iter::empty::<&str>().collect()),
            cwd: Some("".into()),
            ..Process::default()
        });
        assert_eq!(value("proc.exepath", &unknown), None);
        assert_eq!(value("proc.cwd", &unknown), None);
        assert_eq!(value("proc.exe", &unknown), None);
        assert_eq!(value("proc.name", &unknown).as_deref(), Some("worker"));

        let known = event(Process {
            pid: 8,
            comm: "cat".into(),
            exe: Some("/usr/bin/cat".into()),
            args: Some(["cat"].into_iter().collect()),
            cwd: Some("/tmp".into()),
            ..Process::default()
        });
        assert_eq!(
            value("proc.exepath", &known).as_deref(),
            Some("/usr/bin/cat")
        );
        assert_eq!(value("proc.cwd", &known).as_deref(), Some("/tmp/"));
    }
}
