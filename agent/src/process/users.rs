//! User and group names, as the process itself would see them: read from
//! `etc/passwd` and `etc/group` under the process's root directory
//! (`/proc/PID/root`), so that a container's uids resolve against its image
//! and a chroot's against its own files, not the node's.
//!
//! Names are kept in a bounded cache keyed by the root's identity
//! ([`RootId`]), the kind of id and the id; a miss reads and scans one file.
//! Answers that say "no such id" are kept too, since most container uids
//! have no name. Entries are refreshed after [`NameCache::MAX_AGE_NS`], so
//! that users added later resolve. When the cache is full, the oldest entry
//! goes and is counted.
//!
//! As Falco does, uid 0 and gid 0 are `root` wherever they run, even in an
//! image without these files.

use std::{
    collections::{HashMap, VecDeque},
    fs, io,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{RootId, procfs::root_id};

/// A user or a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// A uid, named in `etc/passwd`.
    User,
    /// A gid, named in `etc/group`.
    Group,
}

impl IdKind {
    fn file(self) -> &'static str {
        match self {
            Self::User => "etc/passwd",
            Self::Group => "etc/group",
        }
    }
}

/// The name of `id` in the text of a passwd or group file: the first line
/// whose third field is `id`. Both files have `name:password:id:...`; lines
/// that do not parse (comments, NIS `+` entries, blanks) are skipped.
pub fn find_name(text: &str, id: u32) -> Option<&str> {
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let _password = fields.next()?;
        let line_id: u32 = fields.next()?.trim().parse().ok()?;
        (line_id == id && !name.is_empty() && !name.starts_with(['#', '+', '-'])).then_some(name)
    })
}

/// The size and evictions of a [`NameCache`], for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NameCacheStats {
    /// Entries now, names and known absences.
    pub entries: usize,
    /// Entries removed to make room, since the cache was made.
    pub evictions: u64,
}

type Key = (RootId, IdKind, u32);

#[derive(Debug)]
struct Entry {
    name: Option<Arc<str>>,
    /// When it was read, `CLOCK_BOOTTIME` ns.
    read_at: u64,
    /// Tells this entry from an older one with the same key in `order`.
    generation: u64,
}

/// Names of uids and gids by root directory, bounded.
#[derive(Debug)]
pub struct NameCache {
    capacity: usize,
    entries: HashMap<Key, Entry>,
    /// Keys in the order they were read, oldest first, with their generation.
    order: VecDeque<(Key, u64)>,
    generation: u64,
    evictions: u64,
    /// The last process seen with each root, whose `/proc/PID/root` may
    /// still lead there when the process an event is about has exited.
    witnesses: HashMap<RootId, u32>,
    /// Where the node's own files are: the root of the initial process.
    host_root: PathBuf,
    host_id: Option<RootId>,
    proc_root: PathBuf,
    root_name: Arc<str>,
}

/// Where one name lookup reads from.
#[derive(Clone, Copy, Debug)]
pub struct Subject {
    /// The process's host pid.
    pub pid: u32,
    /// Its root directory, if known.
    pub root: Option<RootId>,
}

impl NameCache {
    /// The default number of entries.
    pub const DEFAULT_CAPACITY: usize = 4096;
    /// How long an answer is kept before the file is read again: 60 s.
    pub const MAX_AGE_NS: u64 = 60_000_000_000;

    /// A cache for the processes under `proc_root` (normally `/proc`), whose
    /// process 1 has the node's root, holding at most `capacity` entries.
    pub fn new(proc_root: &Path, capacity: usize) -> Self {
        let host_root = proc_root.join("1/root");
        let (host_root, host_id) = match root_id(&host_root) {
            Some(id) => (host_root, Some(id)),
            // Without the rights to look into process 1, the agent's own root.
            None => (PathBuf::from("/"), root_id(Path::new("/"))),
        };
        Self {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
            generation: 0,
            evictions: 0,
            witnesses: HashMap::new(),
            host_root,
            host_id,
            proc_root: proc_root.to_owned(),
            root_name: Arc::from("root"),
        }
    }

    /// The root directory of process `pid` now, remembering `pid` as a way
    /// into that root for later lookups.
    pub fn root_of(&mut self, pid: u32) -> Option<RootId> {
        let id = root_id(&self.proc_dir(pid).join("root"))?;
        if self.witnesses.len() >= self.capacity && !self.witnesses.contains_key(&id) {
            self.witnesses.clear();
        }
        self.witnesses.insert(id, pid);
        Some(id)
    }

    /// The name of `id` for `subject`, `now_ns` being the event's
    /// `CLOCK_BOOTTIME`. `None` when the id has no name there, or when the
    /// root could not be reached (then nothing is kept, so a later event
    /// tries again).
    pub fn name(
        &mut self,
        subject: Subject,
        kind: IdKind,
        id: u32,
        now_ns: u64,
    ) -> Option<Arc<str>> {
        if id == 0 {
            return Some(self.root_name.clone());
        }
        let root = subject.root.or(self.host_id)?;
        let key = (root, kind, id);
        if let Some(entry) = self.entries.get(&key)
            && now_ns.saturating_sub(entry.read_at) < Self::MAX_AGE_NS
        {
            return entry.name.clone();
        }
        let text = self.read(subject.pid, root, kind)?;
        let name = find_name(&text, id).map(Arc::from);
        self.insert(key, name.clone(), now_ns);
        name
    }

    /// Size and evictions so far.
    pub fn stats(&self) -> NameCacheStats {
        NameCacheStats {
            entries: self.entries.len(),
            evictions: self.evictions,
        }
    }

    fn proc_dir(&self, pid: u32) -> PathBuf {
        self.proc_root.join(pid.to_string())
    }

    /// The text of `kind`'s file under `root`: empty when the root has no such
    /// file; `None` when no way into the root is left.
    fn read(&self, pid: u32, root: RootId, kind: IdKind) -> Option<String> {
        let mut ways = vec![self.proc_dir(pid).join("root")];
        if let Some(&witness) = self.witnesses.get(&root)
            && witness != pid
        {
            ways.push(self.proc_dir(witness).join("root"));
        }
        if Some(root) == self.host_id {
            ways.push(self.host_root.clone());
        }
        for way in ways {
            // The way must still lead to that root: a pid may have exited, or
            // been reused by a process elsewhere.
            if root_id(&way) != Some(root) {
                continue;
            }
            match fs::read(way.join(kind.file())) {
                Ok(bytes) => return Some(String::from_utf8_lossy(&bytes).into_owned()),
                // Read the file, or know it is not there, only if the way
                // still led to that root while it was read.
                Err(error) if root_id(&way) == Some(root) => {
                    if error.kind() != io::ErrorKind::NotFound {
                        tracing::debug!(path = %way.join(kind.file()).display(), %error, "cannot read names");
                    }
                    return Some(String::new());
                }
                Err(_) => continue,
            }
        }
        None
    }

    fn insert(&mut self, key: Key, name: Option<Arc<str>>, now_ns: u64) {
        self.generation += 1;
        let generation = self.generation;
        let replaced = self
            .entries
            .insert(
                key,
                Entry {
                    name,
                    read_at: now_ns,
                    generation,
                },
            )
            .is_some();
        self.order.push_back((key, generation));
        // A refreshed key leaves its old place in `order` behind; dropped here
        // without counting, since nothing was lost.
        if replaced {
            self.order.retain(|(k, g)| *k != key || *g == generation);
        }
        while self.entries.len() > self.capacity {
            let Some((old, old_generation)) = self.order.pop_front() else {
                break;
            };
            if self
                .entries
                .get(&old)
                .is_some_and(|e| e.generation == old_generation)
            {
                self.entries.remove(&old);
                self.evictions += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/bash
# a comment:x:5:
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
+nis::7::::
broken line
ada:x:1000:1000:Ada,,,:/home/ada:/bin/bash
dup:x:1000:1000::/:/bin/sh
";

    const GROUP: &str = "root:x:0:\nadm:x:4:syslog,ada\nada:x:1000:\n";

    #[test]
    fn passwd_and_group_lines_give_the_first_name_of_an_id() {
        assert_eq!(find_name(PASSWD, 0), Some("root"));
        assert_eq!(find_name(PASSWD, 1), Some("daemon"));
        assert_eq!(find_name(PASSWD, 1000), Some("ada"));
        assert_eq!(find_name(PASSWD, 5), None, "comments are not users");
        assert_eq!(find_name(PASSWD, 7), None, "NIS entries are not users");
        assert_eq!(find_name(PASSWD, 4242), None);
        assert_eq!(find_name(GROUP, 4), Some("adm"));
        assert_eq!(find_name("", 1), None);
    }

    /// A fake `/proc` whose process `pid` has `root` as its root directory.
    fn fake_proc(dir: &Path, pid: u32, root: &Path) {
        let pid_dir = dir.join(pid.to_string());
        fs::create_dir_all(&pid_dir).expect("create the pid dir");
        let _ = fs::remove_file(pid_dir.join("root"));
        std::os::unix::fs::symlink(root, pid_dir.join("root")).expect("link root");
    }

    fn temp_dir(name: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("guardrails-users-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create the temp dir");
        path
    }

    #[test]
    fn names_come_from_the_processs_root_are_cached_and_evicted_oldest_first() {
        let base = temp_dir("cache");
        let proc_root = base.join("proc");
        let image = base.join("image");
        fs::create_dir_all(image.join("etc")).expect("create etc");
        fs::write(image.join("etc/passwd"), PASSWD).expect("write passwd");
        fs::write(image.join("etc/group"), GROUP).expect("write group");
        fake_proc(&proc_root, 1, Path::new("/"));
        fake_proc(&proc_root, 50, &image);

        let mut cache = NameCache::new(&proc_root, 2);
        let root = cache.root_of(50).expect("the image's root");
        let subject = Subject {
            pid: 50,
            root: Some(root),
        };
        let ada = cache.name(subject, IdKind::User, 1000, 0);
        assert_eq!(ada.as_deref(), Some("ada"));
        assert_eq!(
            cache.name(subject, IdKind::Group, 4, 0).as_deref(),
            Some("adm")
        );
        assert_eq!(
            cache.name(subject, IdKind::User, 0, 0).as_deref(),
            Some("root")
        );
        // Cached: the same shared name, even once the file changed.
        fs::write(image.join("etc/passwd"), "grace:x:1000:1000::/:/bin/sh\n").expect("rewrite");
        let again = cache.name(subject, IdKind::User, 1000, 1);
        assert!(Arc::ptr_eq(
            ada.as_ref().expect("ada"),
            again.as_ref().expect("ada")
        ));
        assert_eq!(
            cache.stats(),
            NameCacheStats {
                entries: 2,
                evictions: 0
            }
        );

        // A third id evicts the oldest entry, and says so.
        assert_eq!(cache.name(subject, IdKind::User, 4242, 2), None);
        assert_eq!(
            cache.stats(),
            NameCacheStats {
                entries: 2,
                evictions: 1
            }
        );
        // Past its age, an entry is read again.
        let later = NameCache::MAX_AGE_NS + 10;
        assert_eq!(
            cache.name(subject, IdKind::User, 1000, later).as_deref(),
            Some("grace")
        );

        // The process exited and its pid is now in another root: the witness
        // is gone too, so the name is not known, and nothing is kept.
        fake_proc(&proc_root, 50, Path::new("/"));
        let stats = cache.stats();
        assert_eq!(cache.name(subject, IdKind::User, 77, later), None);
        assert_eq!(cache.stats(), stats);
        let _ = fs::remove_dir_all(&base);
    }

    #[test]
    fn a_root_without_the_files_names_only_root() {
        let base = temp_dir("scratch");
        let proc_root = base.join("proc");
        let image = base.join("scratch");
        fs::create_dir_all(&image).expect("create the image");
        fake_proc(&proc_root, 1, Path::new("/"));
        fake_proc(&proc_root, 9, &image);
        let mut cache = NameCache::new(&proc_root, 16);
        let subject = Subject {
            pid: 9,
            root: cache.root_of(9),
        };
        assert_eq!(
            cache.name(subject, IdKind::User, 0, 0).as_deref(),
            Some("root")
        );
        assert_eq!(cache.name(subject, IdKind::User, 1, 0), None);
        assert_eq!(cache.name(subject, IdKind::Group, 1, 0), None);
        assert_eq!(cache.stats().entries, 2, "absences are kept");
        let _ = fs::remove_dir_all(&base);
    }
}
