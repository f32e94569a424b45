//! One event as the rules see it: the event, plus the derived values that
//! several fields share (command lines, the event's descriptor), computed at
//! most once and only when a rule asks.

use std::cell::{Cell, OnceCell};

use crate::events::event::{Event, EventKind, FdInfo, PathArg, Process, Socket, Syscall};

/// An event under evaluation.
#[derive(Debug)]
pub struct EventView<'a> {
    /// The event.
    pub event: &'a Event,
    /// Its sequence number (`evt.num`).
    pub number: u64,
    cmdline: OnceCell<String>,
    args: OnceCell<String>,
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
            args: OnceCell::new(),
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
        self.event.process.as_ref()
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
    pub fn proc_args(&self) -> Option<&str> {
        let args = self.process()?.args.as_ref()?;
        Some(self.args.get_or_init(|| {
            let rest: Vec<&str> = args.iter().skip(1).collect();
            rest.join(" ")
        }))
    }

    /// `proc.cmdline`: the command name and the arguments.
    pub fn cmdline(&self) -> Option<&str> {
        let process = self.process()?;
        Some(self.cmdline.get_or_init(|| {
            let args = process.args.as_ref().map(|a| a.iter().skip(1));
            command_line(&process.comm, args.into_iter().flatten())
        }))
    }

    /// `evt.args`: every argument as `name=value`.
    pub fn evt_args(&self) -> &str {
        self.evt_args
            .get_or_init(|| super::extract::render_all_args(self))
    }

    /// The descriptor the event is about.
    pub fn fd(&self) -> Option<&Fd<'a>> {
        self.fd.get_or_init(|| event_fd(self.event)).as_ref()
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

/// A command line: the name, then the arguments, space separated.
pub fn command_line<'s>(name: &str, args: impl Iterator<Item = &'s str>) -> String {
    let mut line = String::from(name);
    for arg in args {
        line.push(' ');
        line.push_str(arg);
    }
    line
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

/// The syscalls whose descriptor is the one they return.
fn returns_new_fd(name: &str) -> bool {
    matches!(
        name,
        "open"
            | "openat"
            | "openat2"
            | "creat"
            | "socket"
            | "accept"
            | "accept4"
            | "dup"
            | "dup2"
            | "dup3"
            | "fcntl"
            | "memfd_create"
            | "userfaultfd"
            | "bpf"
    )
}

fn is_open(name: &str) -> bool {
    matches!(name, "open" | "openat" | "openat2" | "creat")
}

fn event_fd(event: &Event) -> Option<Fd<'_>> {
    let syscall = event.syscall.as_deref()?;
    let name: &str = &syscall.name;
    let by_arg = |arg: &str| syscall.fds.iter().find(|f| f.arg == arg);
    let raw = syscall.paths.first().map(|p| p.raw.as_str());
    let server = matches!(name, "accept" | "accept4");
    let name_changed = is_open(name) || matches!(name, "connect" | "accept" | "accept4" | "socket");
    if returns_new_fd(name) {
        if let Some(info) = by_arg("ret") {
            // dup's new descriptor refers to what the old one did.
            return Some(fd_of(info, syscall, raw, server, name_changed));
        }
        if is_open(name) {
            // A failed open still names the file it tried.
            let path = syscall.paths.first()?;
            return Some(Fd {
                num: if syscall.ret < 0 { -1 } else { syscall.ret },
                target: FdTarget::File {
                    path: &path.path,
                    directory: false,
                },
                raw: Some(&path.raw),
                server,
                name_changed,
            });
        }
    }
    let info = syscall.fds.iter().find(|f| f.arg != "ret")?;
    let mut fd = fd_of(info, syscall, raw, server, name_changed);
    if matches!(name, "dup" | "dup2" | "dup3" | "fcntl") && syscall.ret >= 0 {
        fd.num = syscall.ret;
    }
    Some(fd)
}

fn fd_of<'a>(
    info: &'a FdInfo,
    syscall: &'a Syscall,
    raw: Option<&'a str>,
    server: bool,
    name_changed: bool,
) -> Fd<'a> {
    let target = match (info.kind.as_ref(), &info.path, &info.socket) {
        ("socket", _, Some(socket)) => FdTarget::Socket(socket),
        ("pipe", _, _) => FdTarget::Pipe,
        (_, Some(path), _) => FdTarget::File {
            path,
            directory: is_directory_open(syscall),
        },
        _ => FdTarget::Anon,
    };
    Fd {
        num: info.fd,
        target,
        raw,
        server: server || listening(&target),
        name_changed,
    }
}

fn listening(target: &FdTarget<'_>) -> bool {
    matches!(target, FdTarget::Socket(s) if s.state.as_deref() == Some("listen"))
}

fn is_directory_open(syscall: &Syscall) -> bool {
    const O_DIRECTORY: u64 = 0o200000;
    let flags = match syscall.args.get("flags") {
        Some(crate::events::event::ArgValue::Unsigned(f)) => *f,
        _ => syscall.open_how.as_ref().map_or(0, |h| h.flags),
    };
    is_open(&syscall.name) && flags & O_DIRECTORY != 0
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
