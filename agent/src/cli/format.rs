//! How `guardrails events` shows events to people: one compact line each,
//! optionally coloured, or aligned table rows.
//!
//! The functions read the event's JSON as a [`serde_json::Value`] rather than
//! an [`Event`](crate::events::Event): with `--field` the agent sends only part
//! of each event, and a newer agent may add optional fields, so nothing here
//! insists on a field being present. What is missing shows as `-`.

use std::{
    borrow::Cow,
    ffi::OsStr,
    fmt::Write as _,
    io::{self, Write},
};

use serde_json::Value;

use super::EventsFormat;
use crate::events::event::WallTime;

/// The width of a table when `COLUMNS` does not say.
pub const DEFAULT_WIDTH: usize = 120;

const RESET: &str = "\x1b[0m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";

/// Whether to colour output: only on a terminal, and never when `NO_COLOR`
/// is set to anything but the empty string (<https://no-color.org>).
pub fn use_color(is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    is_terminal && no_color.is_none_or(OsStr::is_empty)
}

/// The output format when none is asked for: compact for a terminal, JSON
/// lines for a pipe or file.
pub fn default_format(is_terminal: bool) -> EventsFormat {
    if is_terminal {
        EventsFormat::Compact
    } else {
        EventsFormat::Json
    }
}

/// The width to cut table rows to: `COLUMNS` when it is a positive number,
/// else [`DEFAULT_WIDTH`].
pub fn terminal_width(columns: Option<&str>) -> usize {
    columns
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&w| w > 0)
        .unwrap_or(DEFAULT_WIDTH)
}

/// Writes events in one format.
#[derive(Debug)]
pub struct Printer {
    format: EventsFormat,
    color: bool,
    width: usize,
    header_written: bool,
}

impl Printer {
    /// A printer for `format`; `color` applies to the compact form, `width`
    /// to the table.
    pub fn new(format: EventsFormat, color: bool, width: usize) -> Self {
        Self {
            format,
            color,
            width,
            header_written: false,
        }
    }

    /// Writes one event; the table's header goes before the first.
    pub fn event(&mut self, out: &mut impl Write, event: &proto::v1::Event) -> io::Result<()> {
        let Ok(json) = event.json.to_str() else {
            return writeln!(out, "{}: not UTF-8 text", clean(&event.kind));
        };
        if self.format == EventsFormat::Json {
            out.write_all(json.as_bytes())?;
            return out.write_all(b"\n");
        }
        if self.format == EventsFormat::Table && !self.header_written {
            self.header_written = true;
            writeln!(out, "{}", table_header(self.width))?;
        }
        let Some(value) = parse(&event.kind, json) else {
            return writeln!(
                out,
                "{}: not a JSON object: {}",
                clean(&event.kind),
                clean(json)
            );
        };
        match self.format {
            EventsFormat::Compact => writeln!(out, "{}", compact_line(&value, self.color)),
            _ => writeln!(out, "{}", table_row(&value, self.width)),
        }
    }
}

/// The event's JSON object, with the message's kind when the JSON lacks one.
fn parse(kind: &str, json: &str) -> Option<Value> {
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(mut map)) => {
            if !map.contains_key("kind") && !kind.is_empty() {
                map.insert("kind".into(), Value::String(kind.to_owned()));
            }
            Some(Value::Object(map))
        }
        _ => None,
    }
}

/// One line for people: time (UTC, to the millisecond), kind, node,
/// `namespace/pod` (or `host`, or the container's short id), `comm[pid]`
/// and what happened.
pub fn compact_line(event: &Value, color: bool) -> String {
    let paint = |code: &str, text: &str| {
        if color && !code.is_empty() {
            format!("{code}{text}{RESET}")
        } else {
            text.to_owned()
        }
    };
    let kind = kind(event);
    let mut line = String::new();
    line.push_str(&paint(DIM, &time(event)));
    line.push(' ');
    line.push_str(&paint(kind_color(kind), &format!("{kind:<12}")));
    let _ = write!(
        line,
        " {} {} {} ",
        clean(str_at(event, &["node"]).unwrap_or("-")),
        clean(&place(event)),
        paint(BOLD, &clean(&process(event)))
    );
    match violation(event) {
        Some((priority, rule, output)) => {
            let _ = write!(
                line,
                "{} {}: {}",
                paint(priority_color(priority), &priority.to_uppercase()),
                clean(rule),
                clean(output)
            );
        }
        None => line.push_str(&clean(&detail(event))),
    }
    line.truncate(line.trim_end().len());
    line
}

/// The table's columns.
const COLUMNS: [&str; 5] = ["TIME", "KIND", "NAMESPACE/POD", "PROCESS", "DETAIL"];

/// The widths of all columns but the last, which takes what is left: time
/// and kind fixed, the pod and the process narrower on a narrow terminal,
/// so that some detail remains visible.
fn column_widths(width: usize) -> [usize; 4] {
    [
        12,
        12,
        (width * 24 / 100).clamp(12, 32),
        (width * 16 / 100).clamp(10, 22),
    ]
}

/// The table's header, cut to `width` characters.
pub fn table_header(width: usize) -> String {
    row(COLUMNS.map(Cow::Borrowed), width)
}

/// One table row, the columns aligned under [`table_header`], cut to
/// `width` characters.
pub fn table_row(event: &Value, width: usize) -> String {
    let detail = match violation(event) {
        Some((priority, rule, output)) => {
            format!("{} {rule}: {output}", priority.to_uppercase())
        }
        None => detail(event),
    };
    row(
        [
            Cow::Owned(time(event)),
            Cow::Borrowed(kind(event)),
            Cow::Owned(place(event)),
            Cow::Owned(process(event)),
            Cow::Owned(detail),
        ],
        width,
    )
}

fn row(cells: [Cow<'_, str>; 5], width: usize) -> String {
    let [time, kind, place, process, detail] = cells.map(|cell| clean(&cell).into_owned());
    let [w0, w1, w2, w3] = column_widths(width);
    let line = format!(
        "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {detail}",
        cut(&time, w0),
        cut(&kind, w1),
        cut(&place, w2),
        cut(&process, w3),
    );
    cut(line.trim_end(), width).into_owned()
}

/// `text` cut to `width` characters, the last replaced by `…` when cut.
fn cut(text: &str, width: usize) -> Cow<'_, str> {
    if text.chars().count() <= width {
        return Cow::Borrowed(text);
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    if width > 0 {
        cut.push('…');
    }
    Cow::Owned(cut)
}

/// `text` with control characters escaped, so that what a process chose
/// (arguments, paths) cannot move the cursor or recolour the terminal, and
/// stays on one line.
fn clean(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn kind(event: &Value) -> &str {
    str_at(event, &["kind"]).unwrap_or("-")
}

/// `HH:MM:SS.mmm` in UTC; the text as given when it is not RFC 3339.
fn time(event: &Value) -> String {
    let Some(text) = str_at(event, &["time"]) else {
        return "-".into();
    };
    match WallTime::parse(text) {
        Ok(time) => {
            let full = humantime::format_rfc3339_millis(time.0).to_string();
            full.get(11..23).unwrap_or(&full).to_owned()
        }
        Err(_) => text.to_owned(),
    }
}

/// `namespace/pod`; else `host`, or `ctr/` and the container's short id.
fn place(event: &Value) -> String {
    if let (Some(namespace), Some(pod)) = (
        str_at(event, &["kubernetes", "namespace"]),
        str_at(event, &["kubernetes", "pod"]),
    ) {
        return format!("{namespace}/{pod}");
    }
    match str_at(event, &["container", "kind"]) {
        Some("host") => "host".into(),
        Some(_) => match str_at(event, &["container", "id"]) {
            Some(id) => format!("ctr/{}", id.get(..12).unwrap_or(id)),
            None => "ctr/?".into(),
        },
        None => "-".into(),
    }
}

/// `comm[pid]` of the process, or of a TCP socket's owner.
fn process(event: &Value) -> String {
    let (comm, pid) = if event.get("process").is_some() {
        (
            str_at(event, &["process", "comm"]),
            u64_at(event, &["process", "pid"]),
        )
    } else {
        (
            str_at(event, &["tcp_state", "owner", "comm"]),
            u64_at(event, &["tcp_state", "owner", "pid"]),
        )
    };
    match (comm, pid) {
        (Some(comm), Some(pid)) => format!("{comm}[{pid}]"),
        (Some(comm), None) => comm.to_owned(),
        (None, Some(pid)) => format!("[{pid}]"),
        (None, None) => "-".into(),
    }
}

/// A violation's priority, rule and output.
fn violation(event: &Value) -> Option<(&str, &str, &str)> {
    let v = event.get("violation")?;
    Some((
        v.get("priority").and_then(Value::as_str).unwrap_or("-"),
        v.get("rule").and_then(Value::as_str).unwrap_or("-"),
        v.get("output").and_then(Value::as_str).unwrap_or(""),
    ))
}

/// What happened, by kind (not for violations, which show their rule).
fn detail(event: &Value) -> String {
    match kind(event) {
        "process_exec" => command_line(event),
        "process_fork" => match u64_at(event, &["fork", "child_pid"]) {
            Some(child) => format!("child {child}"),
            None => String::new(),
        },
        "process_exit" => exit(event),
        "syscall" => syscall(event),
        "tcp_state" => tcp_state(event),
        "events_lost" => events_lost(event),
        "action" => action(event),
        _ => String::new(),
    }
}

/// The arguments as a shell would take them; the executable when they are
/// missing; `…` when argv was cut.
fn command_line(event: &Value) -> String {
    let args: Vec<&str> = event
        .pointer("/process/args")
        .and_then(Value::as_array)
        .map(|args| args.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if args.is_empty() {
        return str_at(event, &["process", "exe"])
            .or_else(|| str_at(event, &["process", "filename"]))
            .unwrap_or("")
            .to_owned();
    }
    let mut line = args
        .iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ");
    let argc = u64_at(event, &["process", "argc"]).unwrap_or(0);
    if argc > args.len() as u64 {
        line.push_str(" …");
    }
    line
}

fn shell_quote(arg: &str) -> Cow<'_, str> {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_alphanumeric() || "-_./:=,+@%^".contains(c));
    if plain {
        Cow::Borrowed(arg)
    } else {
        Cow::Owned(format!("'{}'", arg.replace('\'', r"'\''")))
    }
}

fn exit(event: &Value) -> String {
    if let Some(code) = event.pointer("/exit/code").and_then(Value::as_i64) {
        return format!("exit {code}");
    }
    let Some(signal) = event.pointer("/exit/signal").and_then(Value::as_i64) else {
        return String::new();
    };
    let name = str_at(event, &["exit", "signal_name"])
        .map_or_else(|| format!("signal {signal}"), str::to_owned);
    let core = event
        .pointer("/exit/core_dumped")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    format!(
        "killed by {name}{}",
        if core { " (core dumped)" } else { "" }
    )
}

/// The call's name, what it was about (paths, addresses, else descriptors,
/// else its arguments) and, when it failed, the error.
fn syscall(event: &Value) -> String {
    let Some(call) = event.get("syscall") else {
        return String::new();
    };
    let list = |key: &str| {
        call.get(key)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    };
    let mut about: Vec<String> = list("paths")
        .iter()
        .filter_map(|p| {
            p.get("path")
                .or_else(|| p.get("raw"))
                .and_then(Value::as_str)
        })
        .map(str::to_owned)
        .collect();
    about.extend(list("addresses").iter().filter_map(address));
    if about.is_empty() {
        about.extend(list("fds").iter().filter_map(fd));
    }
    if about.is_empty()
        && let Some(args) = call.get("args").and_then(Value::as_object)
    {
        about.extend(args.iter().map(|(name, value)| match value {
            Value::String(text) => format!("{name}={text:?}"),
            other => format!("{name}={other}"),
        }));
    }
    let mut line = call
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned();
    let separator = if list("paths").len() > 1 {
        " → "
    } else {
        " "
    };
    if !about.is_empty() {
        line.push(' ');
        line.push_str(&about.join(separator));
    }
    if let Some(ret) = call.get("ret").and_then(Value::as_i64)
        && ret < 0
    {
        let _ = write!(line, " = {ret}");
        if let Ok(errno) = i32::try_from(-ret) {
            let text = io::Error::from_raw_os_error(errno).to_string();
            let text = text.split(" (os error").next().unwrap_or(&text);
            let _ = write!(line, " ({text})");
        }
    }
    line
}

/// A socket address argument: `address:port` (`[v6]:port`), or a unix path.
fn address(a: &Value) -> Option<String> {
    if let Some(path) = a.get("path").and_then(Value::as_str) {
        return Some(path.to_owned());
    }
    let address = a.get("address").and_then(Value::as_str)?;
    Some(match a.get("port").and_then(Value::as_u64) {
        Some(port) => endpoint(address, port),
        None => address.to_owned(),
    })
}

fn endpoint(address: &str, port: u64) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

/// A descriptor argument: `fd=N` and its file or socket.
fn fd(f: &Value) -> Option<String> {
    let number = f.get("fd").and_then(Value::as_i64)?;
    let what = f
        .get("path")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| f.get("socket").map(socket))
        .or_else(|| f.get("type").and_then(Value::as_str).map(str::to_owned));
    Some(match what {
        Some(what) if !what.is_empty() => format!("fd={number} {what}"),
        _ => format!("fd={number}"),
    })
}

/// `protocol local → remote`, as far as known.
fn socket(s: &Value) -> String {
    let side = |key: &str| {
        let e = s.get(key)?;
        Some(endpoint(
            e.get("address").and_then(Value::as_str)?,
            e.get("port").and_then(Value::as_u64)?,
        ))
    };
    let mut text = s
        .get("protocol")
        .or_else(|| s.get("family"))
        .and_then(Value::as_str)
        .unwrap_or("socket")
        .to_owned();
    match (side("local"), side("remote")) {
        (Some(local), Some(remote)) => {
            let _ = write!(text, " {local} → {remote}");
        }
        (Some(local), None) => {
            let _ = write!(text, " {local}");
        }
        (None, Some(remote)) => {
            let _ = write!(text, " → {remote}");
        }
        (None, None) => {}
    }
    text
}

fn tcp_state(event: &Value) -> String {
    let Some(tcp) = event.get("tcp_state") else {
        return String::new();
    };
    let state = |key: &str| tcp.get(key).and_then(Value::as_str).unwrap_or("?");
    let mut line = format!("{} → {}", state("old_state"), state("new_state"));
    if let Some(s) = tcp.get("socket") {
        let _ = write!(line, " {}", socket(s));
    }
    line
}

/// `enforce done: killed pid 42 in the kernel at exec, before it ran`.
fn action(event: &Value) -> String {
    let at = |key: &str| str_at(event, &["action", key]).unwrap_or("-");
    let mut text = format!("{} {}: {}", at("mode"), at("outcome"), at("message"));
    if let Some(error) = str_at(event, &["action", "error"])
        && !at("message").contains(error)
    {
        let _ = write!(text, " ({error})");
    }
    text
}

fn events_lost(event: &Value) -> String {
    let count = |key: &str| u64_at(event, &["lost", key]).unwrap_or(0);
    format!(
        "ring buffer full {}, decode failed {}, queue full {} (total {})",
        count("ring_buffer_full"),
        count("decode_failed"),
        count("queue_full"),
        count("total")
    )
}

fn kind_color(kind: &str) -> &'static str {
    match kind {
        "process_exec" => "\x1b[32m",
        "process_fork" | "process_exit" => "\x1b[34m",
        "syscall" => "\x1b[36m",
        "tcp_state" => "\x1b[35m",
        "events_lost" => "\x1b[33m",
        "violation" => "\x1b[1;31m",
        "action" => "\x1b[1;33m",
        _ => "",
    }
}

/// Falco's priorities, most severe in bold red down to debug dimmed.
fn priority_color(priority: &str) -> &'static str {
    match priority.to_ascii_lowercase().as_str() {
        "emergency" | "alert" | "critical" => "\x1b[1;31m",
        "error" => "\x1b[31m",
        "warning" => "\x1b[33m",
        "notice" => "\x1b[36m",
        "informational" | "info" => "\x1b[32m",
        "debug" => DIM,
        _ => "",
    }
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(value, path)?.as_str()
}

fn u64_at(value: &Value, path: &[&str]) -> Option<u64> {
    at(value, path)?.as_u64()
}

fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, sync::Arc};

    use super::*;
    use crate::{
        events::{
            EventKind,
            event::{
                Address, ArgValue, ContainerInfo, Event, Exit, PathArg, Process, Syscall, Violation,
            },
            kubernetes::{Kubernetes, PodStatus},
        },
        rules::Priority,
    };

    fn event(kind: EventKind) -> Event {
        Event {
            process: Some(Arc::new(Process {
                pid: 4242,
                comm: "bash".into(),
                ..Process::default()
            })),
            container: Some(Arc::new(ContainerInfo {
                kind: "container".into(),
                id: Some("0123456789abcdef0123456789abcdef".into()),
                ..ContainerInfo::default()
            })),
            kubernetes: Some(Arc::new(Kubernetes {
                status: PodStatus::Resolved,
                pod: Some("web-7d9".into()),
                namespace: Some("shop".into()),
                ..Kubernetes::unresolved()
            })),
            ..Event::new(
                kind,
                WallTime::parse("2026-03-01T09:08:07.654321987Z").expect("a time"),
                1,
                "node-1".into(),
            )
        }
    }

    fn value(event: &Event) -> Value {
        serde_json::to_value(event).expect("serializes")
    }

    fn exec() -> Event {
        let mut e = event(EventKind::ProcessExec);
        if let Some(p) = e.process.as_mut().map(Arc::make_mut) {
            p.args = Some(["curl", "-s", "http://x/a b", "it's"].into_iter().collect());
            p.argc = Some(4);
        }
        e
    }

    fn open_denied() -> Event {
        Event {
            syscall: Some(Arc::new(Syscall {
                name: "openat".into(),
                ret: -13,
                paths: smallvec::smallvec![PathArg::new(
                    "filename".into(),
                    "shadow".into(),
                    "/etc/shadow".into(),
                )],
                ..Syscall::default()
            })),
            ..event(EventKind::Syscall)
        }
    }

    fn violation_event() -> Event {
        Event {
            violation: Some(Box::new(Violation {
                rule: "Read sensitive file untrusted".into(),
                priority: Priority::Warning,
                tags: [].into(),
                output: "Sensitive file opened (file=/etc/shadow)".into(),
                fields: BTreeMap::new(),
                event_type: "openat".into(),
                blast_radius: None,
            })),
            ..open_denied()
        }
        .with_kind(EventKind::Violation)
    }

    trait WithKind {
        fn with_kind(self, kind: EventKind) -> Self;
    }

    impl WithKind for Event {
        fn with_kind(mut self, kind: EventKind) -> Self {
            self.kind = kind;
            self
        }
    }

    #[test]
    fn an_action_shows_its_mode_outcome_and_message() {
        let mut action = exec().with_kind(EventKind::Action);
        action.action = Some(Box::new(crate::events::action::ActionReport {
            action: "kill".into(),
            mode: crate::actions::Mode::Monitor,
            mode_source: "default".into(),
            outcome: crate::events::action::Outcome::WouldAct,
            rule: Some("Curl in a pod".into()),
            method: None,
            message: "would kill pid 4242 (bash) (monitor mode)".into(),
            target: crate::events::action::ActionTarget::default(),
            error: None,
        }));
        assert!(
            compact_line(&value(&action), false).ends_with(
                "action       node-1 shop/web-7d9 bash[4242] monitor would_act: would kill pid 4242 (bash) (monitor mode)"
            ),
            "{}",
            compact_line(&value(&action), false)
        );
    }

    #[test]
    fn an_exec_is_one_line_with_its_command_line_quoted_as_a_shell_would() {
        assert_eq!(
            compact_line(&value(&exec()), false),
            "09:08:07.654 process_exec node-1 shop/web-7d9 bash[4242] curl -s 'http://x/a b' 'it'\\''s'"
        );
    }

    #[test]
    fn a_cut_argv_ends_in_an_ellipsis_and_no_args_shows_the_executable() {
        let mut e = exec();
        if let Some(p) = e.process.as_mut().map(Arc::make_mut) {
            p.argc = Some(9);
        }
        assert!(compact_line(&value(&e), false).ends_with("'it'\\''s' …"));
        if let Some(p) = e.process.as_mut().map(Arc::make_mut) {
            p.args = None;
            p.exe = Some("/usr/bin/curl".into());
        }
        assert!(compact_line(&value(&e), false).ends_with("bash[4242] /usr/bin/curl"));
    }

    #[test]
    fn a_failed_syscall_shows_its_path_and_error() {
        assert_eq!(
            compact_line(&value(&open_denied()), false),
            "09:08:07.654 syscall      node-1 shop/web-7d9 bash[4242] openat /etc/shadow = -13 (Permission denied)"
        );
    }

    #[test]
    fn a_connect_shows_its_endpoint_and_a_privilege_call_its_arguments() {
        let connect = Event {
            syscall: Some(Arc::new(Syscall {
                name: "connect".into(),
                addresses: vec![Address {
                    arg: "addr".into(),
                    family: "inet6".into(),
                    address: Some("2001:db8::1".into()),
                    port: Some(443),
                    path: None,
                }],
                ..Syscall::default()
            })),
            ..event(EventKind::Syscall)
        };
        assert!(
            compact_line(&value(&connect), false).ends_with("connect [2001:db8::1]:443"),
            "{}",
            compact_line(&value(&connect), false)
        );
        let setuid = Event {
            syscall: Some(Arc::new(Syscall {
                name: "setuid".into(),
                args: [("uid".into(), ArgValue::Unsigned(0))]
                    .into_iter()
                    .collect(),
                ..Syscall::default()
            })),
            ..event(EventKind::Syscall)
        };
        assert!(compact_line(&value(&setuid), false).ends_with("setuid uid=0"));
    }

    #[test]
    fn a_host_process_and_an_exit_by_signal() {
        let e = Event {
            container: Some(Arc::new(ContainerInfo {
                kind: "host".into(),
                ..ContainerInfo::default()
            })),
            kubernetes: None,
            exit: Some(Box::new(Exit::from_wait_status(0x80 | 9))),
            ..event(EventKind::ProcessExit)
        };
        assert_eq!(
            compact_line(&value(&e), false),
            "09:08:07.654 process_exit node-1 host bash[4242] killed by SIGKILL (core dumped)"
        );
    }

    #[test]
    fn a_violation_shows_priority_rule_and_output_coloured_by_priority() {
        let v = value(&violation_event());
        assert_eq!(
            compact_line(&v, false),
            "09:08:07.654 violation    node-1 shop/web-7d9 bash[4242] WARNING Read sensitive file untrusted: Sensitive file opened (file=/etc/shadow)"
        );
        let coloured = compact_line(&v, true);
        assert!(coloured.contains("\x1b[33mWARNING\x1b[0m"), "{coloured:?}");
        assert!(
            coloured.contains("\x1b[1;31mviolation   \x1b[0m"),
            "{coloured:?}"
        );
        assert!(
            coloured.starts_with("\x1b[2m09:08:07.654\x1b[0m"),
            "{coloured:?}"
        );
    }

    #[test]
    fn without_colour_there_is_no_escape_and_what_a_process_chose_is_escaped() {
        let mut e = exec();
        if let Some(p) = e.process.as_mut().map(Arc::make_mut) {
            p.args = Some(["sh", "-c", "\x1b[2Jrm -rf /\nok"].into_iter().collect());
        }
        let line = compact_line(&value(&e), false);
        assert!(!line.contains('\x1b') && !line.contains('\n'), "{line:?}");
        assert!(line.contains(r"\u{1b}[2Jrm -rf /\nok"), "{line:?}");
        let coloured = compact_line(&value(&e), true);
        assert_eq!(
            coloured.matches('\x1b').count(),
            6,
            "only our own: {coloured:?}"
        );
    }

    #[test]
    fn colour_only_on_a_terminal_and_never_with_no_color() {
        assert!(use_color(true, None));
        assert!(!use_color(false, None));
        assert!(!use_color(true, Some(OsStr::new("1"))));
        assert!(!use_color(false, Some(OsStr::new("1"))));
        // An empty NO_COLOR does not count, as no-color.org says.
        assert!(use_color(true, Some(OsStr::new(""))));
        assert_eq!(default_format(true), EventsFormat::Compact);
        assert_eq!(default_format(false), EventsFormat::Json);
    }

    #[test]
    fn a_partial_event_from_a_field_mask_still_prints() {
        let v: Value = serde_json::from_str(
            r#"{"schema_version":1,"kind":"process_exec","time":"2026-03-01T09:08:07.654321987Z","process":{"pid":7}}"#,
        )
        .expect("json");
        assert_eq!(compact_line(&v, false), "09:08:07.654 process_exec - - [7]");
    }

    #[test]
    fn table_rows_align_under_the_header_and_are_cut_to_the_width() {
        let header = table_header(200);
        let row = table_row(&value(&open_denied()), 200);
        assert_eq!(
            header,
            "TIME          KIND          NAMESPACE/POD                     PROCESS                 DETAIL"
        );
        assert_eq!(
            row,
            "09:08:07.654  syscall       shop/web-7d9                      bash[4242]              openat /etc/shadow = -13 (Permission denied)"
        );
        for name in ["KIND", "NAMESPACE/POD", "PROCESS", "DETAIL"] {
            let column = header.find(name).expect("a column");
            assert_ne!(row.as_bytes()[column], b' ', "{name} starts a cell");
            assert_eq!(&row.as_bytes()[column - 2..column], b"  ");
        }
        // 80 columns: the pod and process columns narrow so that the detail shows.
        let narrow = table_row(&value(&open_denied()), 80);
        assert_eq!(narrow.chars().count(), 80);
        assert!(narrow.ends_with("openat /etc/shad…"), "{narrow}");
        let header = table_header(80);
        assert_eq!(narrow.find("openat"), header.find("DETAIL"));
        assert_eq!(table_header(20), "TIME          KIND …");
    }

    #[test]
    fn a_long_pod_name_is_cut_within_its_column() {
        let mut e = open_denied();
        e.kubernetes = Some(Arc::new(Kubernetes {
            status: PodStatus::Resolved,
            pod: Some("checkout-service-canary-5f8d7c9b6-abcde".into()),
            namespace: Some("shop".into()),
            ..Kubernetes::unresolved()
        }));
        let row = table_row(&value(&e), 200);
        assert!(
            row.contains("shop/checkout-service-canary-5f…  bash[4242]"),
            "{row}"
        );
    }

    #[test]
    fn the_width_comes_from_columns_or_defaults_to_120() {
        assert_eq!(terminal_width(Some("80")), 80);
        assert_eq!(terminal_width(Some("0")), DEFAULT_WIDTH);
        assert_eq!(terminal_width(Some("wide")), DEFAULT_WIDTH);
        assert_eq!(terminal_width(None), DEFAULT_WIDTH);
    }

    #[test]
    fn json_is_written_exactly_as_received_one_per_line_and_the_table_has_one_header() {
        let message = proto::v1::Event {
            cursor: None,
            kind: "syscall".into(),
            json: serde_json::to_string(&open_denied()).expect("json").into(),
        };
        let mut out = Vec::new();
        let mut json = Printer::new(EventsFormat::Json, false, 120);
        json.event(&mut out, &message).expect("write");
        json.event(&mut out, &message).expect("write");
        let json = message.json.to_str().expect("UTF-8");
        assert_eq!(out, format!("{json}\n{json}\n").into_bytes());
        let mut out = Vec::new();
        let mut table = Printer::new(EventsFormat::Table, false, 120);
        table.event(&mut out, &message).expect("write");
        table.event(&mut out, &message).expect("write");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(text.lines().count(), 3);
        assert!(text.starts_with("TIME "));
    }

    #[test]
    fn text_that_is_not_json_is_shown_as_it_is() {
        let message = proto::v1::Event {
            cursor: None,
            kind: "syscall".into(),
            json: "not json".into(),
        };
        let mut out = Vec::new();
        Printer::new(EventsFormat::Compact, false, 120)
            .event(&mut out, &message)
            .expect("write");
        assert_eq!(out, b"syscall: not a JSON object: not json\n");
    }

    #[test]
    fn text_that_is_not_utf8_is_named_in_every_format() {
        let message = proto::v1::Event {
            cursor: None,
            kind: "syscall".into(),
            json: proto::v1::JsonText::from_shared(bytes::Bytes::from_static(
                b"{\"a\":\"\xc3\x28\"}",
            )),
        };
        for format in [
            EventsFormat::Json,
            EventsFormat::Compact,
            EventsFormat::Table,
        ] {
            let mut out = Vec::new();
            Printer::new(format, false, 120)
                .event(&mut out, &message)
                .expect("write");
            assert_eq!(out, b"syscall: not UTF-8 text\n", "{format:?}");
        }
    }
}
