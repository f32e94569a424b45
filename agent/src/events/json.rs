//! Writing events as JSON for the outputs, reusing what recent events wrote.
//!
//! Most events repeat the process section of a recent one (a process makes
//! many calls between two changes of its state), and processes share their
//! ancestry and their pod's Kubernetes section. Those sections are most of an
//! event's JSON and most of the cost of writing it, so each thread keeps the
//! JSON it last wrote for a few of them and copies it when an event's section
//! is the same.
//!
//! Only [`write`] reuses. Other serializers, such as a stream's field mask,
//! walk the members of every section and must see the plain structure.

use std::{
    cell::{Cell, RefCell},
    sync::Arc,
    thread::LocalKey,
};

use bytes::Bytes;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use super::{
    Event,
    event::{Ancestor, ContainerInfo, Process},
    kubernetes::Kubernetes,
};

/// Sections of each kind kept per thread.
const KEPT: usize = 8;

/// A section whose JSON is longer is written each time rather than kept, so
/// that a thread keeps at most a few hundred KiB.
const MAX_KEPT_BYTES: usize = 16 << 10;

thread_local! {
    static REUSING: Cell<bool> = const { Cell::new(false) };
    static PROCESSES: RefCell<Recent<Arc<Process>>> = const { RefCell::new(Recent::new()) };
    static ANCESTRIES: RefCell<Recent<Arc<[Ancestor]>>> = const { RefCell::new(Recent::new()) };
    static CONTAINERS: RefCell<Recent<Arc<ContainerInfo>>> = const { RefCell::new(Recent::new()) };
    static PODS: RefCell<Recent<Arc<Kubernetes>>> = const { RefCell::new(Recent::new()) };
}

/// Appends `event`'s JSON to `out`.
pub fn write(event: &Event, out: impl std::io::Write) -> serde_json::Result<()> {
    let _reusing = Reusing::start();
    serde_json::to_writer(out, event)
}

/// Reuse is on while one lives, and off again after, even if writing
/// panicked.
struct Reusing {
    was: bool,
}

impl Reusing {
    fn start() -> Self {
        Self {
            was: REUSING.replace(true),
        }
    }
}

impl Drop for Reusing {
    fn drop(&mut self) {
        REUSING.set(self.was);
    }
}

/// `event`'s JSON (UTF-8), written through a buffer each thread keeps, so
/// that a long event costs one allocation rather than one per doubling;
/// shared by every output and stream that sends it.
pub fn to_text(event: &Event) -> serde_json::Result<Bytes> {
    thread_local! {
        static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    BUFFER.with_borrow_mut(|buffer| {
        buffer.clear();
        let written = write(event, &mut *buffer).map(|()| Bytes::copy_from_slice(buffer));
        // A burst of huge events should not pin their size for good.
        if buffer.capacity() > 1 << 20 {
            *buffer = Vec::new();
        }
        written
    })
}

/// The JSON of recently written sections, oldest replaced first.
struct Recent<K> {
    entries: Vec<(K, Box<RawValue>)>,
    next: usize,
}

impl<K> Recent<K> {
    const fn new() -> Self {
        Self {
            entries: Vec::new(),
            next: 0,
        }
    }

    fn find(&self, same: impl Fn(&K) -> bool) -> Option<&RawValue> {
        self.entries
            .iter()
            .find(|(key, _)| same(key))
            .map(|(_, json)| &**json)
    }

    fn keep(&mut self, key: K, json: Box<RawValue>) -> &RawValue {
        let slot = if self.entries.len() < KEPT {
            self.entries.push((key, json));
            self.entries.len() - 1
        } else {
            let slot = self.next % KEPT;
            self.entries[slot] = (key, json);
            slot
        };
        self.next = slot + 1;
        &self.entries[slot].1
    }
}

/// Writes `value` through `cache`: the kept JSON of a section for which
/// `same` holds, else `value` written now and kept under `key()`.
fn reuse<K, T, S>(
    cache: &'static LocalKey<RefCell<Recent<K>>>,
    value: &T,
    same: impl Fn(&K) -> bool,
    key: impl FnOnce() -> K,
    serializer: S,
) -> Result<S::Ok, S::Error>
where
    T: Serialize + ?Sized,
    S: Serializer,
{
    if !REUSING.get() {
        return value.serialize(serializer);
    }
    cache.with(|cell| {
        // A section inside a section of the same kind: write it plainly.
        let Ok(mut recent) = cell.try_borrow_mut() else {
            return value.serialize(serializer);
        };
        if let Some(json) = recent.find(same) {
            return json.serialize(serializer);
        }
        let written = serde_json::value::to_raw_value(value)
            .ok()
            .filter(|json| json.get().len() <= MAX_KEPT_BYTES);
        match written {
            Some(json) => recent.keep(key(), json).serialize(serializer),
            None => value.serialize(serializer),
        }
    })
}

/// `Event::process`: equal processes write the same JSON.
pub(super) fn process<S: Serializer>(
    process: &Option<Arc<Process>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    struct Section<'a>(&'a Arc<Process>);
    impl Serialize for Section<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let process = self.0;
            reuse(
                &PROCESSES,
                &**process,
                |kept| Arc::ptr_eq(kept, process) || **kept == **process,
                || process.clone(),
                serializer,
            )
        }
    }
    match process {
        Some(process) => serializer.serialize_some(&Section(process)),
        None => serializer.serialize_none(),
    }
}

/// `Process::ancestors`: shared by the events of a process and by the
/// processes of one lineage, so known by its allocation.
pub(super) fn ancestors<S: Serializer>(
    ancestors: &Arc<[Ancestor]>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    reuse(
        &ANCESTRIES,
        &**ancestors,
        |kept| Arc::ptr_eq(kept, ancestors),
        || ancestors.clone(),
        serializer,
    )
}

/// `Event::container`: shared by the events of a cgroup.
pub(super) fn container<S: Serializer>(
    container: &Option<Arc<ContainerInfo>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    shared(&CONTAINERS, container, serializer)
}

/// `Event::kubernetes`: shared by the events of a container.
pub(super) fn kubernetes<S: Serializer>(
    kubernetes: &Option<Arc<Kubernetes>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    shared(&PODS, kubernetes, serializer)
}

/// An optional section shared by many events, known by its allocation.
fn shared<T: Serialize + 'static, S: Serializer>(
    cache: &'static LocalKey<RefCell<Recent<Arc<T>>>>,
    section: &Option<Arc<T>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    struct Section<'a, T: 'static> {
        cache: &'static LocalKey<RefCell<Recent<Arc<T>>>>,
        value: &'a Arc<T>,
    }
    impl<T: Serialize> Serialize for Section<'_, T> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let value = self.value;
            reuse(
                self.cache,
                &**value,
                |kept| Arc::ptr_eq(kept, value),
                || value.clone(),
                serializer,
            )
        }
    }
    match section {
        Some(value) => serializer.serialize_some(&Section { cache, value }),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::events::{
        EventKind,
        event::WallTime,
        kubernetes::{Kubernetes, PodStatus},
    };

    fn event(process: Process) -> Event {
        Event {
            process: Some(Arc::new(process)),
            container: Some(Arc::new(ContainerInfo {
                kind: "host".into(),
                ..ContainerInfo::default()
            })),
            ..Event::new(
                EventKind::Syscall,
                WallTime::parse("2026-11-27T10:00:00.000000001Z").expect("a time"),
                7,
                "n1".into(),
            )
        }
    }

    fn process(pid: u32) -> Process {
        Process {
            pid,
            tid: pid,
            comm: "sh".into(),
            args: Some(["sh", "-c", "echo \"hi\""].into_iter().collect()),
            ancestors: Arc::from([Ancestor::new(1, "init", "/sbin/init", &["init"])]),
            ..Process::default()
        }
    }

    fn text(event: &Event) -> String {
        String::from_utf8(to_text(event).expect("writes").to_vec()).expect("UTF-8")
    }

    /// What `write` gives must be what plain serde gives, whatever it kept.
    fn assert_written_as_plain(event: &Event) {
        let plain = serde_json::to_string(event).expect("writes");
        assert_eq!(text(event), plain);
    }

    fn kept_processes() -> usize {
        PROCESSES.with_borrow(|recent| recent.entries.len())
    }

    #[test]
    fn an_unchanged_process_is_written_once_and_a_changed_one_again() {
        let mut first = event(process(10));
        assert_written_as_plain(&first);
        assert_written_as_plain(&first);
        assert_eq!(kept_processes(), 1, "the second event reused the first's");

        // Same process, another state: nothing stale may be written.
        first
            .process
            .as_mut()
            .map(Arc::make_mut)
            .expect("a process")
            .euid = 1000;
        assert_written_as_plain(&first);
        assert!(text(&first).contains(r#""euid":1000"#));
        first
            .process
            .as_mut()
            .map(Arc::make_mut)
            .expect("a process")
            .ancestors = Arc::from([Ancestor::new(1, "systemd", "/lib/systemd/systemd", &[])]);
        assert_written_as_plain(&first);
        assert!(text(&first).contains("systemd"));
        assert_eq!(kept_processes(), 3);
        assert!(!REUSING.get(), "only `write` reuses");
    }

    #[test]
    fn more_processes_than_are_kept_replace_the_oldest() {
        for round in 0..3_u64 {
            for pid in 0..u32::try_from(KEPT * 2).expect("small") {
                let mut e = event(process(pid));
                e.monotonic_ns = round;
                assert_written_as_plain(&e);
            }
        }
        assert_eq!(kept_processes(), KEPT);
    }

    #[test]
    fn shared_sections_are_known_by_their_allocation() {
        let mut e = event(process(10));
        assert_written_as_plain(&e);
        // An equal but separate container section is written on its own.
        e.container = Some(Arc::new(ContainerInfo {
            kind: "container".into(),
            id: Some("c0ffee".into()),
            ..ContainerInfo::default()
        }));
        assert_written_as_plain(&e);
        assert!(text(&e).contains("c0ffee"));
        let pod = |name: &str| {
            Arc::new(Kubernetes {
                status: PodStatus::Resolved,
                pod: Some(name.into()),
                namespace: Some("shop".into()),
                labels: BTreeMap::from([("app".into(), "cart".into())]),
                ..Kubernetes::unresolved()
            })
        };
        e.kubernetes = Some(pod("cart-1"));
        assert_written_as_plain(&e);
        e.kubernetes = Some(pod("cart-2"));
        assert_written_as_plain(&e);
        assert!(text(&e).contains("cart-2"));
        assert_eq!(PODS.with_borrow(|recent| recent.entries.len()), 2);
    }

    #[test]
    fn a_section_too_long_to_keep_is_written_each_time() {
        let long = "x".repeat(MAX_KEPT_BYTES);
        let mut p = process(10);
        p.args = Some([long.as_str()].into_iter().collect());
        let e = event(p);
        assert_written_as_plain(&e);
        assert_written_as_plain(&e);
        assert_eq!(kept_processes(), 0);
    }
}
