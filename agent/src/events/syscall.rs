//! Turning a syscall record and its parts into the `syscall` section.

use std::{
    borrow::Cow,
    collections::BTreeMap,
    mem::MaybeUninit,
    net::{Ipv4Addr, Ipv6Addr},
    path::{Component, Path, PathBuf},
    sync::Arc,
};

use agent_common::{ArgKind, PART_RET, SocketInfo, SyscallEvent, part_kind, syscall_flags};

use super::event::{
    Address, ArgValue, CapSets, Endpoint, FdInfo, OpenHow, PathArg, Socket, Syscall,
};
use super::in_place;
use crate::bpf::syscalls::{self, Arg};

/// Why a syscall record could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum SyscallDecodeError {
    /// The kernel sent a syscall the agent did not ask for.
    #[error("syscall record of unknown syscall {0}")]
    UnknownSyscall(u32),
    /// The parts run past the record.
    #[error("syscall record: parts overrun the record at byte {0}")]
    PartsOverrun(usize),
}

/// One part after the record.
struct Part<'a> {
    kind: u8,
    arg: u8,
    data: &'a [u8],
}

/// A record's parts; a syscall has few, kept inline.
type Parts<'a> = smallvec::SmallVec<[Part<'a>; 8]>;

/// Splits `data` into `parts`: filled in place, because a returned
/// `Parts` was copied whole (its inline room included) on the way out.
fn split_parts<'a>(data: &'a [u8], parts: &mut Parts<'a>) -> Result<(), SyscallDecodeError> {
    let mut at = 0;
    while at < data.len() {
        let header = agent_common::read_part_header(&data[at..])
            .ok_or(SyscallDecodeError::PartsOverrun(at))?;
        let start = at + size_of::<agent_common::Part>();
        let end = start + usize::from(header.len);
        let bytes = data
            .get(start..end)
            .ok_or(SyscallDecodeError::PartsOverrun(at))?;
        parts.push(Part {
            kind: header.kind,
            arg: header.arg,
            data: bytes,
        });
        at = end;
    }
    Ok(())
}

/// Strings of recent records by their bytes. A process opens the same files
/// again and again (its libraries, its configuration, one log): a path seen
/// lately costs a lookup and a reference instead of an allocation, a copy,
/// a UTF-8 check and a free on the thread that drops the event.
#[derive(Clone, Debug)]
pub struct RecentStrings {
    slots: Box<[Option<Arc<str>>]>,
}

/// Strings kept, one per slot, a new one replacing the one in its slot.
const RECENT_STRINGS: usize = 256;

/// A longer string is not kept, so that the cache holds at most about 64 KiB.
const MAX_RECENT_LEN: usize = 256;

impl Default for RecentStrings {
    fn default() -> Self {
        Self {
            slots: std::iter::repeat_with(|| None)
                .take(RECENT_STRINGS)
                .collect(),
        }
    }
}

impl RecentStrings {
    /// `bytes` as text (invalid UTF-8 replaced), shared with the last equal
    /// string in its slot.
    pub fn get(&mut self, bytes: &[u8]) -> Arc<str> {
        if bytes.len() > MAX_RECENT_LEN {
            return String::from_utf8_lossy(bytes).into();
        }
        let mut hasher = rustc_hash::FxHasher::default();
        std::hash::Hasher::write(&mut hasher, bytes);
        // The multiplication leaves its best bits at the top.
        let slot = (std::hash::Hasher::finish(&hasher) >> 56) as usize % RECENT_STRINGS;
        let Some(kept) = self.slots.get_mut(slot) else {
            return String::from_utf8_lossy(bytes).into();
        };
        if let Some(text) = kept
            && text.as_bytes() == bytes
        {
            return text.clone();
        }
        match String::from_utf8_lossy(bytes) {
            // Only a string equal to its bytes can be found by them.
            Cow::Borrowed(valid) => {
                let text: Arc<str> = valid.into();
                *kept = Some(text.clone());
                text
            }
            Cow::Owned(replaced) => replaced.into(),
        }
    }
}

/// Syscall sections allocated a few records before they are filled. The
/// allocator hands the decoder memory that the thread which dropped an older
/// event freed, on another core or long ago, and writing a section into it
/// stalled on each of its lines in turn; allocated ahead, its lines are
/// requested then and arrive while the records in between are decoded.
#[derive(Debug, Default)]
pub struct SectionsAhead {
    ready: [Option<Arc<MaybeUninit<Syscall>>>; SECTIONS_AHEAD],
    next: usize,
}

/// Records ahead whose sections are allocated.
const SECTIONS_AHEAD: usize = 4;

/// A copy allocates its own sections when it needs them.
impl Clone for SectionsAhead {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl SectionsAhead {
    /// A section to fill now; allocates and requests the one
    /// `SECTIONS_AHEAD` records later.
    fn take(&mut self) -> Arc<MaybeUninit<Syscall>> {
        let later = Arc::<Syscall>::new_uninit();
        crate::events::prefetch::for_write(&*later);
        let slot = &mut self.ready[self.next];
        self.next = (self.next + 1) % SECTIONS_AHEAD;
        slot.replace(later).unwrap_or_else(Arc::new_uninit)
    }

    /// A new section, filled by `fill` where it lies.
    fn build<E>(
        &mut self,
        fill: impl FnOnce(&mut Syscall) -> Result<(), E>,
    ) -> Result<Arc<Syscall>, E> {
        let place = self.take();
        // SAFETY: `take` made this allocation and hands it out once, so this
        // is its only holder; it is written before it is taken as
        // initialised.
        let section = unsafe {
            (*Arc::as_ptr(&place).cast_mut()).write(Syscall::default());
            place.assume_init()
        };
        // SAFETY: still the only holder, and the reference does not outlive
        // `fill`. (`Arc::get_mut` would cost a locked instruction per event
        // to find out what is known here.)
        fill(unsafe { &mut *Arc::as_ptr(&section).cast_mut() })?;
        Ok(section)
    }
}

/// Decodes the syscall section of a record; `data` is what follows the struct.
/// Built in its allocation, so that the section is not moved once filled.
pub fn decode(
    ev: &SyscallEvent,
    data: &[u8],
    strings: &mut RecentStrings,
    sections: &mut SectionsAhead,
) -> Result<Arc<Syscall>, SyscallDecodeError> {
    sections.build(|section| fill(ev, data, strings, section))
}

/// Fills `section` from a syscall record.
fn fill(
    ev: &SyscallEvent,
    data: &[u8],
    strings: &mut RecentStrings,
    section: &mut Syscall,
) -> Result<(), SyscallDecodeError> {
    let known = syscalls::by_number(ev.nr).ok_or(SyscallDecodeError::UnknownSyscall(ev.nr))?;
    let table = known.syscall;
    let data = data.get(..usize::from(ev.parts_len)).unwrap_or(data);
    let mut parts = Parts::new();
    split_parts(data, &mut parts)?;
    // A static name, so that each use makes its `Cow` where it is stored
    // rather than copying one made in a branch.
    let arg_name = |index: u8| -> &'static str {
        if index == PART_RET {
            "ret"
        } else {
            table.args.get(usize::from(index)).map_or_else(
                || {
                    UNNAMED_ARGS
                        .get(usize::from(index))
                        .copied()
                        .unwrap_or("arg")
                },
                |a| a.name,
            )
        }
    };

    let descriptors = parts
        .iter()
        .filter(|p| {
            matches!(
                p.kind,
                part_kind::FD_PATH | part_kind::SOCKET | part_kind::FD_OTHER
            )
        })
        .count();
    let paths = parts.iter().filter(|p| p.kind == part_kind::PATH).count();
    section.name = table.name.into();
    section.nr = ev.nr;
    section.sensor = table.sensor.name().into();
    section.ret = ev.ret;
    for &index in &known.by_name {
        if let (Some(arg), Some(&value)) = (
            table.args.get(usize::from(index)),
            ev.args.get(usize::from(index)),
        ) {
            section
                .args
                .push_in_order(arg.name.into(), scalar_value(arg, value));
        }
    }
    section.fds.reserve_exact(descriptors);
    section.paths.reserve_exact(paths);
    section.truncated =
        ev.flags & (syscall_flags::PARTS_TRUNCATED | syscall_flags::PATH_TRUNCATED) != 0;

    let fd_value = |index: u8| -> i64 {
        if index == PART_RET {
            ev.ret
        } else {
            ev.args
                .get(usize::from(index))
                .map_or(-1, |v| i64::from(*v as i32))
        }
    };
    let mut bases: BTreeMap<u8, String> = BTreeMap::new();
    for part in &parts {
        if part.kind == part_kind::BASE {
            bases.insert(part.arg, text(part.data));
        }
    }
    for part in &parts {
        match part.kind {
            part_kind::PATH | part_kind::STRING => {
                let value = strings.get(part.data);
                if part.kind == part_kind::PATH {
                    let resolved = match bases.get(&part.arg) {
                        Some(base) if !value.starts_with('/') => {
                            Some(normalize(&Path::new(base).join(&*value)).into())
                        }
                        // Most paths are already absolute and clean.
                        _ if is_normal(&value) => None,
                        _ => Some(normalize(Path::new(&*value)).into()),
                    }
                    .filter(|resolved: &Arc<str>| *resolved != value);
                    in_place::push_small(
                        &mut section.paths,
                        PathArg {
                            arg: arg_name(part.arg).into(),
                            raw: value.clone(),
                            resolved,
                        },
                    );
                }
                match known.rank(part.arg) {
                    Some(position) => section.args.set_at(position, ArgValue::Text(value)),
                    None => {
                        section
                            .args
                            .insert(arg_name(part.arg).into(), ArgValue::Text(value));
                    }
                }
            }
            part_kind::FD_PATH => {
                // An open's new descriptor names the file its path argument
                // did: one string for both.
                let path = section
                    .paths
                    .iter()
                    .find(|p| p.path().as_bytes() == part.data)
                    .map_or_else(|| strings.get(part.data), |p| p.path().clone());
                in_place::push_small(
                    &mut section.fds,
                    FdInfo {
                        arg: arg_name(part.arg).into(),
                        fd: fd_value(part.arg),
                        kind: "file".into(),
                        path: Some(path),
                        socket: None,
                    },
                );
            }
            part_kind::SOCKET => {
                if let Some(info) = agent_common::read_socket_info(part.data) {
                    in_place::push_small(
                        &mut section.fds,
                        FdInfo {
                            arg: arg_name(part.arg).into(),
                            fd: fd_value(part.arg),
                            kind: "socket".into(),
                            path: None,
                            socket: Some(Box::new(socket(&info))),
                        },
                    );
                }
            }
            part_kind::FD_OTHER => {
                let mode = part
                    .data
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, u32::from_ne_bytes);
                let kind = match mode & 0o170_000 {
                    0o010_000 => "pipe",
                    0o140_000 => "socket",
                    _ => "anon",
                };
                in_place::push_small(
                    &mut section.fds,
                    FdInfo {
                        arg: arg_name(part.arg).into(),
                        fd: fd_value(part.arg),
                        kind: kind.into(),
                        path: None,
                        socket: None,
                    },
                );
            }
            part_kind::SOCKADDR => {
                if let Some(address) = sockaddr(arg_name(part.arg).into(), part.data) {
                    section.addresses.push(address);
                }
            }
            part_kind::OPEN_HOW => {
                let word = |i: usize| {
                    part.data
                        .get(i * 8..i * 8 + 8)
                        .and_then(|b| b.try_into().ok())
                        .map_or(0, u64::from_ne_bytes)
                };
                section.open_how = Some(Box::new(OpenHow {
                    flags: word(0),
                    mode: word(1),
                    resolve: word(2),
                }));
            }
            part_kind::CAP_DATA => {
                let word = |i: usize| {
                    part.data
                        .get(i * 4..i * 4 + 4)
                        .and_then(|b| b.try_into().ok())
                        .map_or(0, u32::from_ne_bytes)
                };
                // Two structs of {effective, permitted, inheritable}: the low
                // then the high 32 capabilities.
                let set = |i: usize| u64::from(word(i)) | (u64::from(word(i + 3)) << 32);
                section.capabilities = Some(Box::new(CapSets {
                    effective: set(0),
                    permitted: set(1),
                    inheritable: set(2),
                }));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Names of the arguments a syscall's table does not name (the kernel sends
/// at most six, numbered from 0).
const UNNAMED_ARGS: [&str; 6] = ["arg0", "arg1", "arg2", "arg3", "arg4", "arg5"];

fn scalar_value(arg: &Arg, raw: u64) -> ArgValue {
    match arg.kind {
        // Descriptors are C ints: AT_FDCWD is -100.
        ArgKind::Fd | ArgKind::Dirfd => ArgValue::int(i64::from(raw as i32)),
        _ => ArgValue::Unsigned(raw),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether `path` is absolute with no `.`, `..` or empty component, so that
/// [`normalize`] would return it unchanged.
fn is_normal(path: &str) -> bool {
    path.starts_with('/')
        && (path.len() == 1 || !path.ends_with('/'))
        && path
            .as_bytes()
            .split(|&b| b == b'/')
            .skip(1)
            .all(|c| !c.is_empty() && c != b"." && c != b"..")
        || path == "/"
}

/// Removes `.` and resolves `..` lexically.
fn normalize(path: &Path) -> String {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => out.push(name),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out.to_string_lossy().into_owned()
}

/// `AF_*` names.
pub fn family_name(family: u16) -> Cow<'static, str> {
    match family {
        1 => "unix".into(),
        2 => "inet".into(),
        10 => "inet6".into(),
        16 => "netlink".into(),
        17 => "packet".into(),
        other => Cow::Owned(other.to_string()),
    }
}

fn socket_type_name(kind: u16) -> Cow<'static, str> {
    match kind & 0xf {
        1 => "stream".into(),
        2 => "dgram".into(),
        3 => "raw".into(),
        5 => "seqpacket".into(),
        other => Cow::Owned(other.to_string()),
    }
}

fn protocol_name(protocol: u16) -> Cow<'static, str> {
    match protocol {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        255 => "raw".into(),
        other => Cow::Owned(other.to_string()),
    }
}

/// `TCP_*` state names.
pub fn tcp_state_name(state: u16) -> Option<Cow<'static, str>> {
    let name = match state {
        1 => "established",
        2 => "syn_sent",
        3 => "syn_recv",
        4 => "fin_wait1",
        5 => "fin_wait2",
        6 => "time_wait",
        7 => "close",
        8 => "close_wait",
        9 => "last_ack",
        10 => "listen",
        11 => "closing",
        12 => "new_syn_recv",
        _ => return None,
    };
    Some(Cow::Borrowed(name))
}

fn ip(family: u16, bytes: &[u8; 16]) -> Option<String> {
    match family {
        2 => Some(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).to_string()),
        10 => Some(Ipv6Addr::from(*bytes).to_string()),
        _ => None,
    }
}

/// A socket as the JSON schema describes it.
pub fn socket(info: &SocketInfo) -> Socket {
    let inet = matches!(info.family, 2 | 10);
    let endpoint = |addr: &[u8; 16], port: u16| {
        ip(info.family, addr).map(|address| Endpoint { address, port })
    };
    let remote = endpoint(&info.remote_addr, info.remote_port).filter(|e| e.port != 0);
    Socket {
        family: family_name(info.family),
        kind: socket_type_name(info.r#type),
        protocol: protocol_name(info.protocol),
        state: if inet && info.protocol == 6 {
            tcp_state_name(info.state)
        } else {
            None
        },
        local: if inet {
            endpoint(&info.local_addr, info.local_port)
        } else {
            None
        },
        remote,
    }
}

fn sockaddr(arg: Cow<'static, str>, data: &[u8]) -> Option<Address> {
    let family = u16::from_ne_bytes(data.get(..2)?.try_into().ok()?);
    let port = || data.get(2..4).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let mut address = Address {
        arg,
        family: family_name(family),
        ..Address::default()
    };
    match family {
        2 => {
            let b = data.get(4..8)?;
            address.address = Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string());
            address.port = port();
        }
        10 => {
            let b: [u8; 16] = data.get(8..24)?.try_into().ok()?;
            address.address = Some(Ipv6Addr::from(b).to_string());
            address.port = port();
        }
        1 => {
            let raw = data.get(2..).unwrap_or_default();
            address.path = Some(match raw.first() {
                Some(0) => format!("@{}", text(until_nul(&raw[1..]))),
                _ => text(until_nul(raw)),
            });
        }
        _ => {}
    }
    Some(address)
}

fn until_nul(bytes: &[u8]) -> &[u8] {
    bytes.split(|&b| b == 0).next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_path_is_made_absolute_and_dots_are_removed() {
        assert_eq!(normalize(Path::new("/tmp/a/../b/./c")), "/tmp/b/c");
        assert_eq!(normalize(Path::new("/../x")), "/x");
    }

    #[test]
    fn a_clean_absolute_path_is_recognised_as_normal_and_others_are_not() {
        for path in ["/", "/etc/hostname", "/a/b.c/..d"] {
            assert!(is_normal(path), "{path}");
            assert_eq!(normalize(Path::new(path)), path);
        }
        for path in ["etc", "/etc/", "/a//b", "/a/./b", "/a/../b", "/.."] {
            assert!(!is_normal(path), "{path}");
        }
    }

    #[test]
    fn an_inet_sockaddr_gives_its_address_and_port() {
        let mut data = vec![2, 0, 0x1f, 0x90, 127, 0, 0, 1];
        data.extend([0; 8]);
        let address = sockaddr("addr".into(), &data).expect("decodes");
        assert_eq!(address.family, "inet");
        assert_eq!(address.address.as_deref(), Some("127.0.0.1"));
        assert_eq!(address.port, Some(8080));
    }

    #[test]
    fn a_unix_sockaddr_gives_its_path_or_abstract_name() {
        let named = sockaddr("addr".into(), b"\x01\x00/run/x.sock\0\0\0").expect("decodes");
        assert_eq!(named.path.as_deref(), Some("/run/x.sock"));
        let abstract_name = sockaddr("addr".into(), b"\x01\x00\0hidden\0").expect("decodes");
        assert_eq!(abstract_name.path.as_deref(), Some("@hidden"));
    }

    fn part(kind: u8, arg: u8, data: &[u8]) -> Vec<u8> {
        let len = u16::try_from(data.len()).expect("a short part");
        let mut bytes = vec![kind, arg];
        bytes.extend(len.to_ne_bytes());
        bytes.extend(data);
        bytes
    }

    /// An openat(AT_FDCWD, `path`) that returned descriptor 3, which the
    /// kernel resolved to `path`: the record and its parts.
    fn open_record(path: &[u8]) -> (SyscallEvent, Vec<u8>) {
        let mut data = part(part_kind::PATH, 1, path);
        data.extend(part(part_kind::FD_PATH, PART_RET, path));
        let ev = SyscallEvent {
            nr: 257,
            ret: 3,
            args: [u64::from(-100i32 as u32), 0, 0, 0, 0, 0],
            parts_len: u16::try_from(data.len()).expect("short"),
            ..SyscallEvent::default()
        };
        (ev, data)
    }

    /// Decodes one record with no strings or sections of earlier ones.
    fn decode_alone(ev: &SyscallEvent, data: &[u8]) -> Result<Arc<Syscall>, SyscallDecodeError> {
        decode(
            ev,
            data,
            &mut RecentStrings::default(),
            &mut SectionsAhead::default(),
        )
    }

    #[test]
    fn an_open_decodes_its_arguments_path_and_descriptor_into_one_shared_string() {
        let (ev, data) = open_record(b"/etc/shadow");
        let section = decode_alone(&ev, &data).expect("decodes");
        assert_eq!(section.name, "openat");
        assert_eq!(section.args.get("flags"), Some(&ArgValue::Unsigned(0)));
        let [path] = section.paths.as_slice() else {
            panic!("one path: {:?}", section.paths);
        };
        let [fd] = section.fds.as_slice() else {
            panic!("one descriptor: {:?}", section.fds);
        };
        assert_eq!((&*path.raw, &**path.path()), ("/etc/shadow", "/etc/shadow"));
        assert_eq!((fd.arg.as_ref(), fd.fd), ("ret", 3));
        let Some(ArgValue::Text(pathname)) = section.args.get("pathname") else {
            panic!("the pathname argument: {:?}", section.args);
        };
        let fd_path = fd.path.as_ref().expect("the file's path");
        // The absolute path is the raw one, held once.
        assert!(path.resolved.is_none());
        assert!(Arc::ptr_eq(&path.raw, path.path()));
        assert!(Arc::ptr_eq(&path.raw, pathname));
        assert!(Arc::ptr_eq(path.path(), fd_path));

        // A relative path is its own string, made absolute.
        let mut data = part(part_kind::BASE, 1, b"/tmp");
        data.extend(part(part_kind::PATH, 1, b"a/../b"));
        let ev = SyscallEvent {
            parts_len: u16::try_from(data.len()).expect("short"),
            ..ev
        };
        let section = decode_alone(&ev, &data).expect("decodes");
        assert_eq!(
            section.paths.first().map(|p| (&*p.raw, &**p.path())),
            Some(("a/../b", "/tmp/b"))
        );
    }

    #[test]
    fn recent_strings_are_shared_only_between_equal_bytes() {
        let mut strings = RecentStrings::default();
        let first = strings.get(b"/usr/lib/x86_64-linux-gnu/libc.so.6");
        let again = strings.get(b"/usr/lib/x86_64-linux-gnu/libc.so.6");
        assert!(Arc::ptr_eq(&first, &again));

        // Every string gets its own text, whichever slot it shares.
        let many: Vec<(String, Arc<str>)> = (0..4 * RECENT_STRINGS)
            .map(|i| {
                let text = format!("/tmp/file-{i}");
                let got = strings.get(text.as_bytes());
                (text, got)
            })
            .collect();
        for (text, got) in &many {
            assert_eq!(**got, **text);
            assert_eq!(*strings.get(text.as_bytes()), **text);
        }

        // Invalid UTF-8 is replaced, and the replacement is never found by
        // other bytes that read the same.
        let bad = strings.get(b"/tmp/\xff");
        assert_eq!(&*bad, "/tmp/\u{fffd}");
        assert_eq!(&*strings.get("/tmp/\u{fffd}".as_bytes()), "/tmp/\u{fffd}");
        assert_eq!(&*strings.get(b"/tmp/\xfe"), "/tmp/\u{fffd}");

        // A long string is not kept.
        let long = "/x".repeat(MAX_RECENT_LEN);
        let a = strings.get(long.as_bytes());
        let b = strings.get(long.as_bytes());
        assert_eq!(*a, *long);
        assert!(!Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn sections_allocated_ahead_each_hold_their_own_record() {
        let mut strings = RecentStrings::default();
        let mut sections = SectionsAhead::default();
        let paths: Vec<String> = (0..3 * SECTIONS_AHEAD)
            .map(|i| format!("/srv/{i}"))
            .collect();
        let decoded: Vec<Arc<Syscall>> = paths
            .iter()
            .map(|path| {
                let (ev, data) = open_record(path.as_bytes());
                decode(&ev, &data, &mut strings, &mut sections).expect("decodes")
            })
            .collect();
        for (section, path) in decoded.iter().zip(&paths) {
            assert_eq!(&**section.paths[0].path(), path.as_str());
            assert_eq!(
                section.args.get("pathname"),
                Some(&ArgValue::Text(path.as_str().into()))
            );
            assert_eq!(section.fds[0].path.as_deref(), Some(path.as_str()));
        }
        let mut places: Vec<*const Syscall> = decoded.iter().map(|s| &raw const **s).collect();
        places.sort_unstable();
        places.dedup();
        assert_eq!(
            places.len(),
            decoded.len(),
            "each section its own allocation"
        );
    }

    #[test]
    fn records_with_the_same_path_share_its_string() {
        let (ev, data) = open_record(b"/etc/hosts");
        let mut strings = RecentStrings::default();
        let mut sections = SectionsAhead::default();
        let first = decode(&ev, &data, &mut strings, &mut sections).expect("decodes");
        let second = decode(&ev, &data, &mut strings, &mut sections).expect("decodes");
        let path = |section: &Syscall| section.paths.first().expect("a path").path().clone();
        assert_eq!(&*path(&second), "/etc/hosts");
        assert!(Arc::ptr_eq(&path(&first), &path(&second)));
        assert_eq!(first, second);
        // The descriptor and the path lie in the section, not in
        // allocations of their own.
        assert!(!second.fds.spilled() && !second.paths.spilled());
        // The arguments in name order, the path's value its string.
        let names: Vec<&str> = second.args.keys().map(|k| k.as_ref()).collect();
        assert_eq!(names, ["dirfd", "flags", "mode", "pathname"]);
        assert_eq!(
            second.args.get("pathname"),
            Some(&ArgValue::Text(path(&second)))
        );
    }

    #[test]
    fn parts_that_overrun_the_record_are_an_error() {
        let data = [3u8, 0, 10, 0, b'/'];
        assert!(matches!(
            split_parts(&data, &mut Parts::new()),
            Err(SyscallDecodeError::PartsOverrun(0))
        ));
    }
}
