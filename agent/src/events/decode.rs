//! Turning ring-buffer records into [`Event`]s.

use std::sync::Arc;

use std::borrow::Cow;

use crate::process::Args;

use agent_common::{ExecEvent, Record, RecordError, exec_flags};

use super::{
    clock::{BootClock, Suspended},
    event::{
        Event, EventKind, Exit, Fork, KernelDeny, KernelKill, NodeName, Process, SocketOwner,
        Syscall, TcpState, WallTime,
    },
    syscall::{self, SyscallDecodeError},
};

/// Why a record could not become an event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The fixed part is wrong.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// A syscall record is malformed.
    #[error(transparent)]
    Syscall(#[from] SyscallDecodeError),
    /// The variable part of an exec is shorter than its lengths say.
    #[error("exec record: {have} bytes of data, its lengths need {need}")]
    ExecData {
        /// Bytes present.
        have: usize,
        /// Bytes the lengths add up to.
        need: usize,
    },
}

/// What every decoded event needs besides its record.
#[derive(Clone, Debug)]
pub struct Decoder {
    /// Boot time to wall clock.
    pub clock: BootClock,
    /// The kernel's monotonic stamps to boot time; sampled again by the
    /// reader at each drain.
    pub suspended: Suspended,
    /// The node's name.
    pub node: NodeName,
    /// What is kept of [`THREAD_SECTIONS`] threads' last syscall records,
    /// by thread id.
    threads: Box<[ThreadSlot]>,
    /// Paths and strings of recent syscall records, shared by the next
    /// records that carry the same bytes.
    strings: syscall::RecentStrings,
    /// Syscall sections allocated ahead of their records.
    sections: syscall::SectionsAhead,
}

/// One thread's last syscall record, as on the wire and as decoded: its
/// process section and its call.
#[derive(Clone, Debug, Default)]
struct ThreadSlot {
    process: Option<ThreadSection>,
    call: Option<KeptCall>,
}

/// A thread's last syscall. A thread that repeats a call (a loop reading one
/// file, polling one socket) gets the section of the first for the next
/// ones: a shared count instead of a section allocated, filled, and dropped
/// on another core, and the rules find it by address among their kept
/// verdicts.
#[derive(Clone, Debug)]
struct KeptCall {
    nr: u32,
    flags: u32,
    ret: i64,
    args: [u64; 6],
    /// The paths, strings, descriptors and addresses the kernel sent.
    parts: Vec<u8>,
    section: Arc<Syscall>,
}

/// Longer parts are not kept: a call that carries them is decoded anew.
const MAX_KEPT_PARTS: usize = 512;

impl KeptCall {
    fn is(&self, ev: &agent_common::SyscallEvent, parts: &[u8]) -> bool {
        self.nr == ev.nr
            && self.ret == ev.ret
            && self.args == ev.args
            && self.flags == ev.flags
            && same_bytes(&self.parts, parts)
    }
}

/// Whether `a` and `b` hold the same bytes. Two empty slices are equal
/// without a call to `memcmp`: an empty buffer's pointer is dangling, and
/// glibc's AVX-512 `memcmp` reads zero bytes from it with a masked load,
/// whose fault suppression on an unmapped page takes a microcode assist on
/// AMD processors. On a getppid flood (no parts) that assist was half of the
/// pipeline thread's time.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && (a.is_empty() || a == b)
}

/// A thread's last syscall process section, as on the wire and as decoded.
type ThreadSection = (agent_common::Process, Arc<Process>);

/// Threads whose last syscall process section is kept, one slot per thread
/// id modulo this.
pub(crate) const THREAD_SECTIONS: usize = 256;

impl Decoder {
    /// A decoder for the node called `node`.
    pub fn new(clock: BootClock, node: NodeName) -> Self {
        Self {
            clock,
            suspended: Suspended::now(),
            node,
            threads: std::iter::repeat_with(ThreadSlot::default)
                .take(THREAD_SECTIONS)
                .collect(),
            strings: syscall::RecentStrings::default(),
            sections: syscall::SectionsAhead::default(),
        }
    }

    /// Keeps `event`'s process section, once enriched, as its thread's: the
    /// thread's next syscall records with the same process section on the
    /// wire get that one, which the enricher recognises by its address and
    /// leaves in place. Before, each got the decoded section, which the
    /// enricher swapped for the enriched one: two more shared counts raised
    /// and dropped per event.
    pub fn keep_enriched(&mut self, event: &Event) {
        if event.kind != EventKind::Syscall {
            return;
        }
        let Some(process) = &event.process else {
            return;
        };
        // The slot decoding this event just used: its wire section is this
        // event's.
        if let Some(ThreadSlot {
            process: Some((wire, kept)),
            ..
        }) = self.threads.get_mut(process.tid as usize % THREAD_SECTIONS)
            && wire.tid == process.tid
            && !Arc::ptr_eq(kept, process)
        {
            *kept = process.clone();
        }
    }

    /// Decodes one record.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<Event, DecodeError> {
        let mut one = Vec::with_capacity(1);
        self.decode_into(bytes, &mut one)?;
        Ok(one.swap_remove(0))
    }

    /// Decodes one record onto the end of `batch`, where the event is
    /// filled in place: returned by value, an event was copied at every
    /// step on its way into the batch. A record that does not decode adds
    /// nothing.
    pub fn decode_into(&mut self, bytes: &[u8], batch: &mut Vec<Event>) -> Result<(), DecodeError> {
        let record = Record::parse(bytes)?;
        let (hdr, kind) = match &record {
            Record::Exec(ev, _) => (ev.hdr, EventKind::ProcessExec),
            Record::Fork(ev) => (ev.hdr, EventKind::ProcessFork),
            Record::Exit(ev) => (ev.hdr, EventKind::ProcessExit),
            Record::Syscall(ev, _) => (ev.hdr, EventKind::Syscall),
            Record::TcpState(ev) => (ev.hdr, EventKind::TcpState),
        };
        let boot_ns = self.suspended.boot_ns(hdr.ktime_ns);
        super::in_place::push_made(batch, || {
            Event::new(
                kind,
                WallTime(self.clock.wall_time(boot_ns)),
                boot_ns,
                self.node.clone(),
            )
        });
        let filled = match batch.last_mut() {
            Some(event) => {
                event.cpu = Some(hdr.cpu);
                fill(
                    event,
                    &record,
                    &mut self.threads,
                    &mut self.strings,
                    &mut self.sections,
                )
            }
            None => Ok(()),
        };
        if filled.is_err() {
            batch.pop();
        }
        filled
    }
}

/// Adds the sections of `record` to its event. A syscall record whose
/// process section is the same as its thread's last one shares that one's
/// decoded section: a thread making many syscalls then costs one reference
/// per event rather than a new section, and the enricher recognises it by
/// its address.
fn fill(
    event: &mut Event,
    record: &Record<'_>,
    threads: &mut [ThreadSlot],
    strings: &mut syscall::RecentStrings,
    sections: &mut syscall::SectionsAhead,
) -> Result<(), DecodeError> {
    match record {
        Record::Exec(ev, data) => {
            set_exec_process(&mut event.process, ev, data)?;
            event.kernel_kill = kernel_kill(ev);
            event.kernel_deny = kernel_deny(ev);
        }
        Record::Fork(ev) => {
            set_process(&mut event.process, &ev.parent);
            event.fork = Some(Box::new(Fork {
                child_pid: ev.child_pid,
                child_ns_pid: ev.child_ns_pid,
                child_start_ns: ev.child_start_ns,
            }));
        }
        Record::Exit(ev) => {
            set_process(&mut event.process, &ev.proc);
            event.exit = Some(Box::new(Exit::from_wait_status(ev.status)));
        }
        Record::Syscall(ev, data) => {
            let slot = &mut threads[ev.proc.tid as usize % THREAD_SECTIONS];
            event.syscall = Some(call_section(ev, data, strings, sections, &mut slot.call)?);
            let kept = &mut slot.process;
            match kept {
                Some((wire, decoded)) if *wire == ev.proc => event.process = Some(decoded.clone()),
                _ => {
                    set_process(&mut event.process, &ev.proc);
                    *kept = event.process.clone().map(|decoded| (ev.proc, decoded));
                }
            }
        }
        Record::TcpState(ev) => {
            event.tcp_state = Some(Box::new(TcpState {
                old_state: syscall::tcp_state_name(ev.old_state)
                    .map_or_else(|| ev.old_state.to_string(), Cow::into_owned),
                new_state: syscall::tcp_state_name(ev.new_state)
                    .map_or_else(|| ev.new_state.to_string(), Cow::into_owned),
                socket: syscall::socket(&ev.socket),
                cgroup_id: ev.cgroup_id,
                owner: (ev.owner_pid != 0).then(|| SocketOwner {
                    pid: ev.owner_pid,
                    start_ns: ev.owner_start_ns,
                    comm: Some(text(until_nul(&ev.owner_comm))).filter(|c| !c.is_empty()),
                    exe: None,
                }),
            }));
        }
    }
    Ok(())
}

/// The syscall section of a record: the thread's last one when the record
/// repeats its call, else decoded (and kept, when its parts are short).
fn call_section(
    ev: &agent_common::SyscallEvent,
    data: &[u8],
    strings: &mut syscall::RecentStrings,
    sections: &mut syscall::SectionsAhead,
    slot: &mut Option<KeptCall>,
) -> Result<Arc<Syscall>, DecodeError> {
    let parts = data.get(..usize::from(ev.parts_len)).unwrap_or(data);
    if let Some(kept) = slot
        && kept.is(ev, parts)
    {
        return Ok(kept.section.clone());
    }
    let section = syscall::decode(ev, data, strings, sections)?;
    if parts.len() > MAX_KEPT_PARTS {
        *slot = None;
        return Ok(section);
    }
    // The buffer of the call it replaces is filled again.
    let mut kept_parts = slot.take().map(|kept| kept.parts).unwrap_or_default();
    kept_parts.clear();
    kept_parts.extend_from_slice(parts);
    *slot = Some(KeptCall {
        nr: ev.nr,
        flags: ev.flags,
        ret: ev.ret,
        args: ev.args,
        parts: kept_parts,
        section: section.clone(),
    });
    Ok(section)
}

/// Fills `slot` with the process of a record, in place.
fn set_process<'a>(
    slot: &'a mut Option<Arc<Process>>,
    p: &agent_common::Process,
) -> &'a mut Process {
    // A new allocation, so this borrows it without copying.
    let process = Arc::make_mut(slot.insert(Arc::default()));
    process.pid = p.pid;
    process.tid = p.tid;
    process.ns_pid = p.ns_pid;
    process.ppid = p.ppid;
    process.uid = p.uid;
    process.gid = p.gid;
    process.euid = p.euid;
    process.egid = p.egid;
    process.login_uid = (p.login_uid != u32::MAX).then_some(p.login_uid);
    process.tty = p.tty;
    process.pgid = p.pgid;
    process.vpgid = p.vpgid;
    process.sid = p.sid;
    process.cgroup_id = p.cgroup_id;
    process.start_ns = p.start_ns;
    process.memory_cgroup_id = (p.memory_cgroup_id != 0 && p.memory_cgroup_id != p.cgroup_id)
        .then_some(p.memory_cgroup_id);
    process.cap_effective = Some(p.cap_effective);
    let comm = until_nul(&p.comm);
    // Command names are nearly always valid UTF-8; the lossy conversion is
    // the slow path.
    process.comm = match std::str::from_utf8(comm) {
        Ok(comm) => comm.into(),
        Err(_) => compact_str::CompactString::from_utf8_lossy(comm),
    };
    process
}

/// Fills `slot` with the process of an exec record and what it runs.
fn set_exec_process(
    slot: &mut Option<Arc<Process>>,
    ev: &ExecEvent,
    data: &[u8],
) -> Result<(), DecodeError> {
    let lengths = [ev.filename_len, ev.exe_len, ev.cwd_len, ev.args_len].map(usize::from);
    let need = lengths.iter().sum();
    if data.len() < need {
        return Err(DecodeError::ExecData {
            have: data.len(),
            need,
        });
    }
    let mut parts = lengths.into_iter().scan(0, |start, len| {
        let part = &data[*start..*start + len];
        *start += len;
        Some(part)
    });
    let mut next = || parts.next().unwrap_or_default();
    let (filename, exe, cwd, args) = (next(), next(), next(), next());

    let flags = ev.flags;
    let process = set_process(slot, &ev.proc);
    process.truncated = [
        (exec_flags::FILENAME_TRUNCATED, "filename"),
        (exec_flags::EXE_TRUNCATED, "exe"),
        (exec_flags::CWD_TRUNCATED, "cwd"),
        (exec_flags::ARGS_TRUNCATED, "args"),
        (exec_flags::ARGS_UNREADABLE, "args_unreadable"),
    ]
    .into_iter()
    .filter(|(flag, _)| flags & flag != 0)
    .map(|(_, name)| name.to_owned())
    .collect();
    process.exe = Some(text(exe).into());
    process.filename = Some(text(filename));
    process.args = Some(Args::new(split_args(args)));
    process.argc = Some(ev.argc);
    process.cwd = Some(text(cwd).into());
    process.exe_memfd = flags & exec_flags::EXE_MEMFD != 0;
    process.exe_upper_layer = flags & exec_flags::EXE_UPPER_LAYER != 0;
    process.cap_effective = Some(ev.cap_effective);
    process.exe_ino = Some(ev.exe_ino);
    process.exe_mtime_ns = Some(ev.exe_mtime_ns);
    process.exe_ctime_ns = Some(ev.exe_ctime_ns);
    Ok(())
}

/// The kill the exec hook made, if any. A slot past the last (a record from
/// a newer program) still says that the kernel killed, as slot 255.
fn kernel_kill(ev: &ExecEvent) -> Option<KernelKill> {
    (ev.flags & exec_flags::KILLED != 0).then(|| KernelKill {
        slot: u8::try_from(ev.kill_slot).unwrap_or(u8::MAX),
    })
}

/// The exec that BPF LSM refused, if it was one; a slot past the last
/// reads as slot 255, as for a kill.
fn kernel_deny(ev: &ExecEvent) -> Option<KernelDeny> {
    (ev.flags & exec_flags::DENIED != 0).then(|| KernelDeny {
        slot: u8::try_from(ev.kill_slot).unwrap_or(u8::MAX),
    })
}

/// argv as the kernel lays it out: each argument NUL-terminated. A cut argv
/// ends in the middle of an argument, which is kept.
fn split_args(args: &[u8]) -> Vec<String> {
    let args = args.strip_suffix(&[0]).unwrap_or(args);
    if args.is_empty() {
        return Vec::new();
    }
    args.split(|&b| b == 0).map(text).collect()
}

fn until_nul(bytes: &[u8]) -> &[u8] {
    bytes.split(|&b| b == 0).next().unwrap_or_default()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_common::{EventKind as WireKind, WIRE_VERSION};

    fn exec_record(filename: &str, exe: &str, cwd: &str, args: &[u8], flags: u32) -> Vec<u8> {
        let mut ev = ExecEvent::default();
        ev.hdr.kind = WireKind::Exec as u16;
        ev.hdr.version = WIRE_VERSION;
        ev.proc.pid = 7;
        ev.proc.login_uid = u32::MAX;
        ev.proc.comm[..4].copy_from_slice(b"echo");
        ev.filename_len = filename.len() as u16;
        ev.exe_len = exe.len() as u16;
        ev.cwd_len = cwd.len() as u16;
        ev.args_len = args.len() as u16;
        ev.argc = 3;
        ev.flags = flags;
        ev.proc.tty = 34816;
        ev.proc.pgid = 7;
        ev.proc.sid = 5;
        ev.proc.vpgid = 1;
        ev.exe_ino = 99;
        ev.exe_mtime_ns = 1_700_000_000_123_456_789;
        ev.exe_ctime_ns = -5;
        // SAFETY: ExecEvent is a repr(C) struct of integers.
        let head = unsafe {
            std::slice::from_raw_parts(
                (&ev as *const ExecEvent).cast::<u8>(),
                size_of::<ExecEvent>(),
            )
        };
        let mut bytes = head.to_vec();
        for part in [filename.as_bytes(), exe.as_bytes(), cwd.as_bytes(), args] {
            bytes.extend_from_slice(part);
        }
        bytes
    }

    /// A getppid record of thread `tid` with user id `uid`.
    fn syscall_record(tid: u32, uid: u32) -> Vec<u8> {
        let mut ev = agent_common::SyscallEvent::default();
        ev.hdr.kind = WireKind::Syscall as u16;
        ev.hdr.version = WIRE_VERSION;
        ev.nr = 110;
        ev.proc.pid = tid;
        ev.proc.tid = tid;
        ev.proc.uid = uid;
        ev.proc.comm[..4].copy_from_slice(b"loop");
        // SAFETY: SyscallEvent is a repr(C) struct of integers.
        unsafe {
            std::slice::from_raw_parts(
                (&ev as *const agent_common::SyscallEvent).cast::<u8>(),
                size_of::<agent_common::SyscallEvent>(),
            )
        }
        .to_vec()
    }

    fn decoder() -> Decoder {
        Decoder::new(BootClock::now(), "n1".into())
    }

    #[test]
    fn a_threads_next_call_gets_its_section_as_kept_enriched_while_the_kernel_sends_the_same() {
        let mut decoder = decoder();
        let first = decoder.decode(&syscall_record(42, 0)).expect("decodes");
        let mut enriched = first.clone();
        let mut section = (**first.process.as_ref().expect("a process")).clone();
        section.exe = Some("/usr/bin/loop".into());
        enriched.process = Some(Arc::new(section));
        decoder.keep_enriched(&enriched);
        let kept = enriched.process.as_ref().expect("a process");

        let second = decoder.decode(&syscall_record(42, 0)).expect("decodes");
        assert!(Arc::ptr_eq(
            kept,
            second.process.as_ref().expect("a process")
        ));
        // Another thread in the same slot, or what the kernel sends changed:
        // decoded afresh.
        let other = decoder
            .decode(&syscall_record(42 + THREAD_SECTIONS as u32, 0))
            .expect("decodes");
        assert_eq!(other.process.as_ref().expect("a process").exe, None);
        let changed = decoder.decode(&syscall_record(42, 1000)).expect("decodes");
        let changed = changed.process.as_ref().expect("a process");
        assert_eq!((changed.uid, changed.exe.as_deref()), (1000, None));
        // Only a syscall's section is kept.
        let mut exec = enriched.clone();
        exec.kind = EventKind::ProcessExec;
        decoder.keep_enriched(&exec);
        let after = decoder.decode(&syscall_record(42, 1000)).expect("decodes");
        assert_eq!(after.process.as_ref().expect("a process").exe, None);
    }

    #[test]
    fn a_threads_repeated_call_shares_the_section_of_the_first() {
        let mut decoder = decoder();
        let record = syscall_record(42, 0);
        let section = |event: &Event| event.syscall.clone().expect("a syscall section");
        let first = section(&decoder.decode(&record).expect("decodes"));
        let again = section(&decoder.decode(&record).expect("decodes"));
        assert!(Arc::ptr_eq(&first, &again));

        // Another result is another call.
        let mut failed = record.clone();
        let ret = std::mem::offset_of!(agent_common::SyscallEvent, ret);
        failed[ret..ret + 8].copy_from_slice(&(-1i64).to_ne_bytes());
        let other = section(&decoder.decode(&failed).expect("decodes"));
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!((other.ret, first.ret), (-1, 0));
        // The thread's last call is the one kept.
        let after = section(&decoder.decode(&record).expect("decodes"));
        assert!(!Arc::ptr_eq(&first, &after));
        assert_eq!(*after, *first);
    }

    #[test]
    fn parts_are_the_same_when_their_bytes_are_empty_or_equal_only() {
        let kept: Vec<u8> = Vec::new();
        assert!(same_bytes(&kept, &[]));
        assert!(same_bytes(b"/etc/passwd\0", b"/etc/passwd\0"));
        assert!(!same_bytes(b"/etc/passwd\0", b"/etc/shadow\0"));
        assert!(!same_bytes(&kept, b"\0"));
        assert!(!same_bytes(b"/etc", b"/etc/"));
    }

    #[test]
    fn an_exec_record_gives_its_paths_and_arguments() {
        let bytes = exec_record(
            "/bin/echo",
            "/usr/bin/echo",
            "/tmp",
            b"/bin/echo\0a b\0c\0",
            0,
        );
        let event = decoder().decode(&bytes).expect("decodes");
        let p = event.process.expect("a process");
        assert_eq!(event.kind, EventKind::ProcessExec);
        assert_eq!(p.filename.as_deref(), Some("/bin/echo"));
        assert_eq!(p.exe.as_deref(), Some("/usr/bin/echo"));
        assert_eq!(p.cwd.as_deref(), Some("/tmp"));
        assert_eq!(
            p.args,
            Some(["/bin/echo", "a b", "c"].into_iter().collect())
        );
        assert_eq!(p.comm, "echo");
        assert_eq!(p.login_uid, None);
        assert!(p.truncated.is_empty());
        assert_eq!(event.kernel_kill, None);
        assert_eq!((p.tty, p.pgid, p.sid, p.vpgid), (34816, 7, 5, 1));
        assert_eq!(
            (p.exe_ino, p.exe_mtime_ns, p.exe_ctime_ns),
            (Some(99), Some(1_700_000_000_123_456_789), Some(-5))
        );
    }

    #[test]
    fn a_truncated_argv_keeps_its_partial_last_argument_and_says_so() {
        let bytes = exec_record(
            "/bin/echo",
            "/usr/bin/echo",
            "/",
            b"/bin/echo\0abc\0de",
            exec_flags::ARGS_TRUNCATED,
        );
        let p = decoder()
            .decode(&bytes)
            .expect("decodes")
            .process
            .expect("a process");
        assert_eq!(
            p.args,
            Some(["/bin/echo", "abc", "de"].into_iter().collect())
        );
        assert_eq!(p.truncated, vec!["args".to_owned()]);
        assert_eq!(p.argc, Some(3));
    }

    #[test]
    fn an_exec_the_kernel_killed_names_its_kill_slot() {
        let mut bytes = exec_record("/x", "/x", "/", b"x\0", exec_flags::KILLED);
        let slot = std::mem::offset_of!(ExecEvent, kill_slot);
        bytes[slot..slot + 4].copy_from_slice(&5u32.to_ne_bytes());
        let event = decoder().decode(&bytes).expect("decodes");
        assert_eq!(event.kernel_kill, Some(KernelKill { slot: 5 }));
        let json = serde_json::to_value(&event).expect("serializes");
        assert_eq!(json["kernel_kill"], serde_json::json!({"slot": 5}));
    }

    #[test]
    fn an_exec_bpf_lsm_refused_names_its_slot_and_says_argv_was_not_read() {
        let flags = exec_flags::DENIED | exec_flags::ARGS_UNREADABLE;
        let mut bytes = exec_record("/tmp/x", "/tmp/x", "/", b"", flags);
        let slot = std::mem::offset_of!(ExecEvent, kill_slot);
        bytes[slot..slot + 4].copy_from_slice(&7u32.to_ne_bytes());
        let event = decoder().decode(&bytes).expect("decodes");
        assert_eq!(event.kind, EventKind::ProcessExec);
        assert_eq!(event.kernel_deny, Some(KernelDeny { slot: 7 }));
        assert_eq!(event.kernel_kill, None);
        let p = event.process.as_ref().expect("a process");
        assert_eq!(p.truncated, vec!["args_unreadable".to_owned()]);
        assert_eq!(p.args.as_ref().map(Args::len), Some(0));
        let json = serde_json::to_value(&event).expect("serializes");
        assert_eq!(json["kernel_deny"], serde_json::json!({"slot": 7}));
        assert!(json.get("kernel_kill").is_none(), "{json}");
    }

    #[test]
    fn an_exec_record_whose_lengths_overrun_its_data_is_an_error() {
        let mut bytes = exec_record("/bin/echo", "/usr/bin/echo", "/", b"x\0", 0);
        bytes.truncate(bytes.len() - 1);
        assert!(matches!(
            decoder().decode(&bytes),
            Err(DecodeError::ExecData { .. })
        ));
    }

    #[test]
    fn records_decode_onto_the_batch_and_a_bad_one_leaves_it_as_it_was() {
        let good = exec_record("/bin/echo", "/usr/bin/echo", "/", b"echo\0hi\0", 0);
        let mut bad = good.clone();
        bad.truncate(bad.len() - 1);
        let mut batch = Vec::new();
        decoder().decode_into(&good, &mut batch).expect("decodes");
        assert!(decoder().decode_into(&bad, &mut batch).is_err());
        decoder().decode_into(&good, &mut batch).expect("decodes");
        assert_eq!(batch.len(), 2, "the bad record added nothing");
        for event in &batch {
            let process = event.process.as_ref().expect("a process");
            assert_eq!((process.pid, process.comm.as_str()), (7, "echo"));
            assert_eq!(
                process.args.as_ref().map(|a| a.to_vec()),
                Some(vec!["echo".to_owned(), "hi".to_owned()])
            );
        }
    }

    #[test]
    fn a_threads_equal_syscall_sections_decode_to_one_shared_process() {
        let mut decoder = decoder();
        let mut decode = |tid, uid| {
            let event = decoder.decode(&syscall_record(tid, uid)).expect("decodes");
            assert_eq!(event.syscall.as_ref().map(|s| &*s.name), Some("getppid"));
            event.process.expect("a process")
        };
        let first = decode(40, 1000);
        let again = decode(40, 1000);
        assert!(Arc::ptr_eq(&first, &again), "the same section is shared");
        let other_thread = decode(41, 1000);
        assert!(!Arc::ptr_eq(&first, &other_thread));
        assert_eq!(other_thread.tid, 41);
        let changed = decode(40, 0);
        assert!(!Arc::ptr_eq(&first, &changed), "a changed section is new");
        assert_eq!(
            (changed.tid, changed.uid, changed.comm.as_str()),
            (40, 0, "loop")
        );
        assert_eq!((first.uid, first.comm.as_str()), (1000, "loop"));
        // Thread 41 shares the slot of 41 + 256 and is not confused with it.
        let colliding = decode(41 + 256, 1000);
        assert_eq!(colliding.tid, 41 + 256);
        assert_eq!(decode(41, 1000).tid, 41);
    }
}
