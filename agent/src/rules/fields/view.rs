//! One event as the rules see it: the event, plus the derived values that
//! several fields share (command lines, the event's descriptor), computed at
//! most once and only when a rule asks.

use std::{
    borrow::Cow,
    cell::{Cell, OnceCell},
};

use crate::events::event::{Event, EventKind, FdInfo, PathArg, Process, Socket, Syscall};

/// An event under evaluation.
#[derive(Debug)]
pub struct EventView<'a> {
    /// The event.
    pub event: &'a Event,
    /// Its sequence number (`evt.num`).
    pub number: u64,
    cmdline: OnceCell<Cow<'a, str>>,
    evt_args: OnceCell<String>,
    fd: OnceCell<Option<Fd<'a>>>,
    fd_name: OnceCell<Option<String>>,
    type_id: OnceCell<Option<u8>>,
    open_flags: OnceCell<Option<u64>>,
    /// Macro results of this event: bit `slot` of `memo_known` says whether
    /// bit `slot` of `memo_value` holds the result.
    memo_known: [Cell<u64>; MEMO_WORDS],
    memo_value: [Cell<u64>; MEMO_WORDS],
}

const MEMO_WORDS: usize = 4;

/// Macros whose results can be remembered per event.
pub const MEMO_SLOTS: u16 = (MEMO_WORDS * 64) as u16;

/// The descriptor an event is about, as Falco's `fd.*` fields see it.
#[derive(Clone, Copy, Debug)]
pub struct Fd<'a> {
    /// The descriptor number; -1 for a failed open.
    pub num: i64,
    /// What it refers to.
    pub target: FdTarget<'a>,
    /// The path as the process passed it, for opens.
    pub raw: Option<&'a str>,
    /// Whether the process is the server end of a connection.
    pub server: bool,
    /// Whether this event gave the descriptor its name (open, connect,
    /// accept, socket).
    pub name_changed: bool,
}

/// What a descriptor refers to.
#[derive(Clone, Copy, Debug)]
pub enum FdTarget<'a> {
    /// A file (or directory) at this absolute path.
    File {
        /// The path.
        path: &'a str,
        /// Whether it is a directory (opened with `O_DIRECTORY`).
        directory: bool,
    },
    /// A socket, as the kernel held it.
    Socket(&'a Socket),
    /// A pipe.
    Pipe,
    /// An anonymous inode (eventfd, epoll, ...).
    Anon,
}

impl<'a> EventView<'a> {
    /// A view of `event`, the `number`th the rules have seen.
    pub fn new(event: &'a Event, number: u64) -> Self {
        Self {
            event,
            number,
            cmdline: OnceCell::new(),
            evt_args: OnceCell::new(),
            fd: OnceCell::new(),
            fd_name: OnceCell::new(),
            type_id: OnceCell::new(),
            open_flags: OnceCell::new(),
            memo_known: Default::default(),
            memo_value: Default::default(),
        }
    }

    /// The number of the event's type in the rules' index.
    pub fn type_id(&self) -> Option<u8> {
        *self.type_id.get_or_init(|| match self.syscall() {
            Some(s) => super::super::index::syscall_type_id(s.nr, &s.name),
            None => super::super::index::event_type_id(self.event_type()),
        })
    }

    /// What kind of syscall the event is, looked up by its type number: one
    /// classification, rather than name comparisons in each descriptor field.
    pub fn syscall_class(&self) -> SyscallClass {
        let Some(syscall) = self.syscall() else {
            return SyscallClass::Other;
        };
        self.type_id()
            .and_then(|id| CLASSES.get(usize::from(id)).copied())
            .unwrap_or_else(|| SyscallClass::of(&syscall.name))
    }

    /// The open flags of an open, once per event.
    pub fn open_flags(&self) -> Option<u64> {
        *self
            .open_flags
            .get_or_init(|| super::extract::open_flags(self))
    }

    /// The result of the macro in `slot`, computed by `eval` the first time.
    pub fn memo(&self, slot: u16, eval: impl FnOnce() -> bool) -> bool {
        let (word, bit) = (usize::from(slot / 64), 1u64 << (slot % 64));
        let (Some(known), Some(value)) = (self.memo_known.get(word), self.memo_value.get(word))
        else {
            return eval();
        };
        if known.get() & bit != 0 {
            return value.get() & bit != 0;
        }
        let result = eval();
        known.set(known.get() | bit);
        if result {
            value.set(value.get() | bit);
        }
        result
    }

    /// The process the event is about.
    pub fn process(&self) -> Option<&'a Process> {
        self.event.process.as_deref()
    }

    /// The syscall, for syscall events.
    pub fn syscall(&self) -> Option<&'a Syscall> {
        self.event.syscall.as_deref()
    }

    /// Falco's name for the event's type.
    pub fn event_type(&self) -> &'a str {
        event_type_name(self.event)
    }

    /// `proc.args`: the arguments after argv\[0\].
    pub fn proc_args(&self) -> Option<&'a str> {
        Some(self.process()?.args.as_ref()?.tail())
    }

    /// `proc.cmdline`: the command name and the arguments.
    pub fn cmdline(&self) -> Option<&str> {
        let process = self.process()?;
        Some(self.cmdline.get_or_init(|| process.command_line()))
    }

    /// `evt.args`: every argument as `name=value`.
    pub fn evt_args(&self) -> &str {
        self.evt_args
            .get_or_init(|| super::extract::render_all_args(self))
    }

    /// The descriptor the event is about.
    pub fn fd(&self) -> Option<&Fd<'a>> {
        self.fd.get_or_init(|| event_fd(self)).as_ref()
    }

    /// `fd.name`.
    pub fn fd_name(&self) -> Option<&str> {
        self.fd_name
            .get_or_init(|| {
                let fd = self.fd()?;
                match fd.target {
                    // A unix socket is named by its path, which the call's
                    // address carries.
                    FdTarget::Socket(s) if s.family == "unix" => self
                        .syscall()?
                        .addresses
                        .iter()
                        .find_map(|a| a.path.clone()),
                    _ => fd_name(fd),
                }
            })
            .as_deref()
    }
}

/// Falco's name for an event's type: `execve`, `clone`, `procexit`, the
/// syscall's name, or ours for kinds Falco does not have.
pub fn event_type_name(event: &Event) -> &str {
    match event.kind {
        EventKind::ProcessExec => "execve",
        EventKind::ProcessFork => "clone",
        EventKind::ProcessExit => "procexit",
        EventKind::Syscall => event.syscall.as_deref().map_or("syscall", |s| &s.name),
        EventKind::TcpState => "tcp_state",
        EventKind::EventsLost => "events_lost",
        EventKind::Violation => "violation",
        EventKind::Action => "action",
    }
}

/// The syscalls the descriptor fields treat apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallClass {
    /// `open`, `openat`: flags in the `flags` argument.
    Open,
    /// `openat2`: flags in `struct open_how`.
    OpenAt2,
    /// `creat`: flags implied.
    Creat,
    /// `accept`, `accept4`: the process is the server end.
    Accept,
    /// `connect`.
    Connect,
    /// `socket`.
    Socket,
    /// `dup`, `dup2`, `dup3`, `fcntl`: the new descriptor refers to the old one's target.
    Dup,
    /// Other syscalls that return a new descriptor: `memfd_create`, `userfaultfd`, `bpf`.
    NewFd,
    /// Everything else.
    Other,
}

impl SyscallClass {
    /// The class of the syscall called `name`.
    fn of(name: &str) -> Self {
        match name {
            "open" | "openat" => Self::Open,
            "openat2" => Self::OpenAt2,
            "creat" => Self::Creat,
            "accept" | "accept4" => Self::Accept,
            "connect" => Self::Connect,
            "socket" => Self::Socket,
            "dup" | "dup2" | "dup3" | "fcntl" => Self::Dup,
            "memfd_create" | "userfaultfd" | "bpf" => Self::NewFd,
            _ => Self::Other,
        }
    }

    /// Whether it opens a file.
    fn opens(self) -> bool {
        matches!(self, Self::Open | Self::OpenAt2 | Self::Creat)
    }

    /// Whether the descriptor it is about is the one it returns.
    fn returns_new_fd(self) -> bool {
        !matches!(self, Self::Connect | Self::Other)
    }

    /// Whether it gives the descriptor its name (Falco's `fd.name_changed`).
    fn names_fd(self) -> bool {
        self.opens() || matches!(self, Self::Connect | Self::Accept | Self::Socket)
    }
}

/// Each event type's class, by type number.
static CLASSES: std::sync::LazyLock<Vec<SyscallClass>> = std::sync::LazyLock::new(|| {
    super::super::index::event_type_names()
        .iter()
        .map(|name| SyscallClass::of(name))
        .collect()
});

fn event_fd<'a>(view: &EventView<'a>) -> Option<Fd<'a>> {
    const O_DIRECTORY: u64 = 0o200000;
    let syscall = view.syscall()?;
    let class = view.syscall_class();
    let by_arg = |arg: &str| syscall.fds.iter().find(|f| f.arg == arg);
    let raw = syscall.paths.first().map(|p| &*p.raw);
    let shape = FdShape {
        raw,
        server: class == SyscallClass::Accept,
        name_changed: class.names_fd(),
        directory_open: class.opens() && view.open_flags().unwrap_or(0) & O_DIRECTORY != 0,
    };
    if class.returns_new_fd() {
        if let Some(info) = by_arg("ret") {
            // dup's new descriptor refers to what the old one did.
            return Some(fd_of(info, &shape));
        }
        if class.opens() {
            // A failed open still names the file it tried.
            let path = syscall.paths.first()?;
            return Some(Fd {
                num: if syscall.ret < 0 { -1 } else { syscall.ret },
                target: FdTarget::File {
                    path: path.path(),
                    directory: false,
                },
                raw: Some(&path.raw),
                server: shape.server,
                name_changed: shape.name_changed,
            });
        }
    }
    let info = syscall.fds.iter().find(|f| f.arg != "ret")?;
    let mut fd = fd_of(info, &shape);
    if class == SyscallClass::Dup && syscall.ret >= 0 {
        fd.num = syscall.ret;
    }
    Some(fd)
}

/// What the syscall says of its descriptor, beside the descriptor itself.
struct FdShape<'a> {
    raw: Option<&'a str>,
    server: bool,
    name_changed: bool,
    directory_open: bool,
}

fn fd_of<'a>(info: &'a FdInfo, shape: &FdShape<'a>) -> Fd<'a> {
    let target = match (info.kind.as_ref(), &info.path, &info.socket) {
        ("socket", _, Some(socket)) => FdTarget::Socket(socket),
        ("pipe", _, _) => FdTarget::Pipe,
        (_, Some(path), _) => FdTarget::File {
            path,
            directory: shape.directory_open,
        },
        _ => FdTarget::Anon,
    };
    Fd {
        num: info.fd,
        target,
        raw: shape.raw,
        server: shape.server || listening(&target),
        name_changed: shape.name_changed,
    }
}

fn listening(target: &FdTarget<'_>) -> bool {
    matches!(target, FdTarget::Socket(s) if s.state.as_deref() == Some("listen"))
}

/// `fd.name`: a file's path, or `client:port->server:port` for a socket.
fn fd_name(fd: &Fd<'_>) -> Option<String> {
    match fd.target {
        FdTarget::File { path, .. } => Some(path.to_owned()),
        FdTarget::Socket(socket) => {
            let (client, server) = client_server(fd, socket);
            match (client, server) {
                (Some(c), Some(s)) => Some(format!(
                    "{}:{}->{}:{}",
                    c.address, c.port, s.address, s.port
                )),
                (None, Some(e)) | (Some(e), None) => Some(format!("{}:{}", e.address, e.port)),
                (None, None) => None,
            }
        }
        FdTarget::Pipe | FdTarget::Anon => None,
    }
}

/// The client and server ends of a socket: the process is the server of an
/// accepted or listening socket, the client otherwise.
pub fn client_server<'s>(
    fd: &Fd<'_>,
    socket: &'s Socket,
) -> (
    Option<&'s crate::events::event::Endpoint>,
    Option<&'s crate::events::event::Endpoint>,
) {
    if fd.server {
        (socket.remote.as_ref(), socket.local.as_ref())
    } else {
        (socket.local.as_ref(), socket.remote.as_ref())
    }
}

/// The path argument called `arg`.
pub fn path_arg<'a>(syscall: &'a Syscall, arg: &str) -> Option<&'a PathArg> {
    syscall.paths.iter().find(|p| p.arg == arg)
}
