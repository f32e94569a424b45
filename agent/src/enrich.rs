//! The step between decoding and the outputs: every event learns its
//! process's image, ancestry and session and group leaders from the process
//! tree, its user and group names from the files under the process's root,
//! and its container from the cgroup, without a network round trip.
//!
//! The [`Enricher`] is owned by the reader task: the tree is updated in the
//! same order as the kernel reported fork, exec and exit, so that a process
//! that exec'd and exited within a millisecond still has its ancestry.

use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::{
    container::{ContainerResolver, Identity},
    events::{
        EventKind,
        event::{Ancestor, ContainerInfo, Event, Leader, Process},
    },
    process::{
        ExeFile, ExecInfo, JobIds, ProcessTree, SeedStats, TreeLimits, TreeStats, seed_from_proc,
        seed_one,
        users::{IdKind, NameCache, NameCacheStats, Subject},
    },
};

/// The memory controller's v1 hierarchy, which container runtimes on hybrid
/// nodes always use; the kernel reports each task's cgroup in it.
const V1_HIERARCHY: &str = "memory";

/// Process tree and container identity for every event.
#[derive(Debug)]
pub struct Enricher {
    tree: ProcessTree,
    containers: Option<ContainerResolver>,
    /// What each cgroup resolved to, shared by its events; bounded by
    /// [`CONTAINER_INFO_CACHE`] (cleared when full).
    container_infos: FxHashMap<u64, Arc<ContainerInfo>>,
    max_ancestors: usize,
    names: NameCache,
    /// Processes looked up in `/proc` because the tree did not know them,
    /// so that each is read once; bounded by [`PROC_LOOKUPS`] (cleared when
    /// full).
    looked_up: FxHashSet<(u32, u64)>,
    /// Lineages by process, with the tree generation they were derived at;
    /// bounded by [`LINEAGES`] (cleared when full).
    lineages: FxHashMap<(u32, u64), (u64, Lineage)>,
    /// The last ancestry derived below each parent, by the parent's pid and
    /// start: siblings share it while it holds the same processes and
    /// images; bounded by [`LINEAGES`] (cleared when full).
    ancestries: FxHashMap<(u32, u64), Arc<[Ancestor]>>,
    /// The last enriched process of each of [`RECENT_THREADS`] slots, by
    /// thread id.
    recent: Box<[Option<Recent>]>,
}

/// Threads whose last enriched process is kept, one slot per thread id
/// modulo this: the decoder's slots, so that the section it hands back
/// enriched (`Decoder::keep_enriched`) is the one kept here for its thread.
const RECENT_THREADS: usize = crate::events::decode::THREAD_SECTIONS;

/// How long an enriched process is reused at most, so that names and
/// containers that resolve later are seen within this time: 1 s.
const REUSE_NS: u64 = 1_000_000_000;

/// A thread's last syscall event: the process section as decoded and as
/// enriched. The thread's next syscall event whose decoded section is equal
/// shares the enriched one, if the tree has not changed since and it is
/// recent: a thread making many syscalls then costs one shared reference
/// per event, not one per name, path and ancestry it carries.
#[derive(Debug)]
struct Recent {
    decoded: Arc<Process>,
    enriched: Arc<Process>,
    container: Option<Arc<ContainerInfo>>,
    generation: u64,
    at_ns: u64,
}

/// Processes whose lineage is kept for reuse.
const LINEAGES: usize = 4096;

/// What the tree says about a process's family.
#[derive(Clone, Debug)]
struct Lineage {
    sid: u32,
    pgid: u32,
    ancestors: Arc<[Ancestor]>,
    session_leader: Option<Leader>,
    group_leader: Option<Leader>,
}

/// Unknown processes remembered as looked up.
const PROC_LOOKUPS: usize = 16_384;

/// cgroups whose [`ContainerInfo`] is kept ready.
const CONTAINER_INFO_CACHE: usize = 16_384;

impl Enricher {
    /// An enricher with an empty tree. Without a resolver (no cgroup2 mount),
    /// events carry no container section.
    pub fn new(
        limits: TreeLimits,
        max_ancestors: usize,
        containers: Option<ContainerResolver>,
    ) -> Self {
        Self {
            tree: ProcessTree::new(limits),
            containers,
            container_infos: FxHashMap::default(),
            max_ancestors,
            names: NameCache::new(std::path::Path::new("/proc"), NameCache::DEFAULT_CAPACITY),
            looked_up: FxHashSet::default(),
            lineages: FxHashMap::default(),
            ancestries: FxHashMap::default(),
            recent: std::iter::repeat_with(|| None)
                .take(RECENT_THREADS)
                .collect(),
        }
    }

    /// Seeds the tree with the processes running now, from `/proc`.
    pub fn seed(&mut self, now_ns: u64) -> Result<SeedStats, crate::process::ProcfsError> {
        seed_from_proc(&mut self.tree, std::path::Path::new("/proc"), now_ns)
    }

    /// Updates the tree with `event` and fills in what the tree and the cgroup
    /// say about its process.
    pub fn enrich(&mut self, event: &mut Event) {
        let now = event.monotonic_ns;
        if let Some(tcp) = event.tcp_state.as_mut() {
            if let Some(owner) = tcp.owner.as_mut()
                && let Some(known) = self.tree.get(owner.pid, owner.start_ns)
            {
                owner.comm = Some(known.comm().to_owned());
                owner.exe = Some(known.exe().to_owned());
            }
            event.container = self.container(tcp.cgroup_id, None);
            return;
        }
        let Some(shared) = event.process.as_mut() else {
            return;
        };
        let recent_slot = (shared.tid as usize) % RECENT_THREADS;
        let reusable = event.kind == EventKind::Syscall;
        if reusable && let Some(recent) = &self.recent[recent_slot] {
            // The decoder hands a thread's repeated process section over
            // enriched already (`Decoder::keep_enriched`).
            let enriched_already = Arc::ptr_eq(&recent.enriched, shared);
            if recent.generation == self.tree.generation()
                && now.wrapping_sub(recent.at_ns) < REUSE_NS
                && (enriched_already
                    || Arc::ptr_eq(&recent.decoded, shared)
                    || recent.decoded == *shared)
            {
                if !enriched_already {
                    *shared = recent.enriched.clone();
                }
                event.container = recent.container.clone();
                return;
            }
            if enriched_already {
                // Enriched again from what the kernel sent, as any other.
                *shared = recent.decoded.clone();
            }
        }
        let decoded = reusable.then(|| shared.clone());
        let process = Arc::make_mut(shared);
        match event.kind {
            // A refused exec changed nothing: the process runs its old
            // program, which the tree keeps.
            EventKind::ProcessExec if event.kernel_deny.is_none() => {
                // The root is looked up now, while the new program most
                // likely still runs; if it already exited, it had the root
                // it had before the exec (exec does not change it).
                let root = self.names.root_of(process.pid).or_else(|| {
                    self.tree
                        .get(process.pid, process.start_ns)
                        .and_then(|known| known.image.root())
                });
                self.tree.on_exec(ExecInfo {
                    pid: process.pid,
                    ppid: process.ppid,
                    start_ns: process.start_ns,
                    comm: process.comm.to_string(),
                    exe: process.exe.clone().unwrap_or_default(),
                    args: process.args.clone().unwrap_or_default(),
                    cwd: process.cwd.clone().unwrap_or_default(),
                    uid: process.uid,
                    job: JobIds {
                        pgid: process.pgid,
                        sid: process.sid,
                        tty: process.tty,
                    },
                    exe_file: process.exe_ino.map(|ino| ExeFile {
                        ino,
                        mtime_ns: process.exe_mtime_ns.unwrap_or_default(),
                        ctime_ns: process.exe_ctime_ns.unwrap_or_default(),
                    }),
                    root,
                });
            }
            EventKind::ProcessFork => {
                if let Some(fork) = &event.fork {
                    self.tree
                        .on_fork(process.pid, fork.child_pid, fork.child_start_ns, now);
                }
            }
            _ => {}
        }

        match self
            .tree
            .get(process.pid, process.start_ns)
            .map(|k| k.start_ns)
        {
            None if event.kind != EventKind::ProcessExit
                && self.looked_up.insert((process.pid, process.start_ns)) =>
            {
                if self.looked_up.len() >= PROC_LOOKUPS {
                    self.looked_up.clear();
                }
                seed_one(
                    &mut self.tree,
                    std::path::Path::new("/proc"),
                    process.pid,
                    now,
                );
                self.tree.settle(process.pid, process.start_ns);
            }
            Some(start) if start != process.start_ns => {
                self.tree.settle(process.pid, process.start_ns);
            }
            _ => {}
        }
        let known = self.tree.get(process.pid, process.start_ns);
        if let Some(known) = known
            && process.exe.is_none()
        {
            process.exe = Some(known.image.exe_shared());
            process.args = Some(known.args().clone());
            process.cwd = Some(known.image.cwd_shared());
        }
        if let Some(file) = known.and_then(|known| known.image.exe_file())
            && process.exe_ino.is_none()
        {
            process.exe_ino = Some(file.ino);
            process.exe_mtime_ns = Some(file.mtime_ns);
            process.exe_ctime_ns = Some(file.ctime_ns);
        }
        let root = match known {
            Some(known) => known.image.root(),
            None => self.names.root_of(process.pid),
        };
        let lineage = self.lineage(
            process.pid,
            process.start_ns,
            process.sid,
            process.pgid,
            now,
        );
        process.ancestors = lineage.ancestors;
        process.session_leader = lineage.session_leader;
        process.group_leader = lineage.group_leader;
        self.name(process, root, now);

        event.container = self.container(process.cgroup_id, process.memory_cgroup_id);

        if event.kind == EventKind::ProcessExit {
            self.tree.on_exit(process.pid, process.start_ns, now);
        }
        if let (Some(decoded), Some(enriched)) = (decoded, &event.process) {
            self.recent[recent_slot] = Some(Recent {
                decoded,
                enriched: enriched.clone(),
                container: event.container.clone(),
                generation: self.tree.generation(),
                at_ns: now,
            });
        }
    }

    /// A process's ancestors and leaders, derived from the tree once and
    /// reused while the tree does not change (a process that makes many
    /// syscalls gets them without walking the tree each time).
    fn lineage(&mut self, pid: u32, start_ns: u64, sid: u32, pgid: u32, now: u64) -> Lineage {
        let generation = self.tree.generation();
        if let Some((at, lineage)) = self.lineages.get(&(pid, start_ns))
            && *at == generation
            && lineage.sid == sid
            && lineage.pgid == pgid
        {
            return lineage.clone();
        }
        let lineage = Lineage {
            sid,
            pgid,
            ancestors: self.ancestry(pid, start_ns),
            session_leader: self.leader(sid, now),
            group_leader: self.leader(pgid, now),
        };
        if self.lineages.len() >= LINEAGES {
            self.lineages.clear();
        }
        self.lineages
            .insert((pid, start_ns), (generation, lineage.clone()));
        lineage
    }

    /// A process's ancestors as the tree holds them now. The children of one
    /// parent (a shell's commands, a server's workers) share one ancestry
    /// while it names the same processes running the same images, so that
    /// their events hold it once and the outputs write its JSON once.
    fn ancestry(&mut self, pid: u32, start_ns: u64) -> Arc<[Ancestor]> {
        let walked = self.tree.ancestors(pid, start_ns, self.max_ancestors);
        let Some(parent) = walked.first() else {
            return Arc::from([]);
        };
        let parent = (parent.pid, parent.start_ns);
        if let Some(kept) = self.ancestries.get(&parent)
            && kept.len() == walked.len()
            && kept.iter().zip(&walked).all(|(kept, now)| {
                kept.pid == now.pid
                    && kept.start_ns == now.start_ns
                    && Arc::ptr_eq(&kept.image, &now.image)
            })
        {
            return kept.clone();
        }
        let ancestry: Arc<[Ancestor]> = walked
            .into_iter()
            .map(|a| Ancestor {
                pid: a.pid,
                start_ns: a.start_ns,
                image: a.image,
            })
            .collect();
        if self.ancestries.len() >= LINEAGES {
            self.ancestries.clear();
        }
        self.ancestries.insert(parent, ancestry.clone());
        ancestry
    }

    /// The leader of a session or process group, as the tree knows it.
    fn leader(&self, pid: u32, now: u64) -> Option<Leader> {
        // Kernel threads and the idle task have no session.
        if pid == 0 {
            return None;
        }
        self.tree.leader(pid, now).map(|leader| Leader {
            pid: leader.pid,
            image: leader.image.clone(),
        })
    }

    /// Names the process's user, group and login user.
    fn name(&mut self, process: &mut Process, root: Option<crate::process::RootId>, now: u64) {
        let subject = Subject {
            pid: process.pid,
            root,
        };
        process.user_name = self.names.name(subject, IdKind::User, process.uid, now);
        process.group_name = self.names.name(subject, IdKind::Group, process.gid, now);
        process.login_name = process
            .login_uid
            .and_then(|uid| self.names.name(subject, IdKind::User, uid, now));
    }

    /// The container of a cgroup, resolved once and then shared. `memory_id`
    /// is the task's memory-hierarchy cgroup on hybrid nodes, consulted when
    /// the v2 cgroup says host.
    fn container(&mut self, cgroup_id: u64, memory_id: Option<u64>) -> Option<Arc<ContainerInfo>> {
        let key = cgroup_id ^ memory_id.unwrap_or(0).rotate_left(32);
        if let Some(info) = self.container_infos.get(&key) {
            return Some(info.clone());
        }
        let resolver = self.containers.as_mut()?;
        let mut identity = resolver.identify(cgroup_id);
        if identity == Identity::Host
            && let Some(memory_id) = memory_id
        {
            let v1 = resolver.identify_v1(V1_HIERARCHY, memory_id);
            if matches!(v1, Identity::Container(_)) {
                identity = v1;
            }
        }
        // An unknown cgroup may still appear (its events raced its creation);
        // only settled answers are kept.
        let info = Arc::new(container_info(&identity));
        if identity != Identity::Unknown {
            if self.container_infos.len() >= CONTAINER_INFO_CACHE {
                self.container_infos.clear();
            }
            self.container_infos.insert(key, info.clone());
        }
        Some(info)
    }

    /// Removes exited processes past their grace period.
    pub fn collect_garbage(&mut self, now_ns: u64) {
        self.tree.gc(now_ns);
    }

    /// The tree's size and evictions.
    pub fn tree_stats(&self) -> TreeStats {
        self.tree.stats()
    }

    /// The user and group name cache's size and evictions.
    pub fn name_stats(&self) -> NameCacheStats {
        self.names.stats()
    }
}

fn container_info(identity: &Identity) -> ContainerInfo {
    match identity {
        Identity::Host => ContainerInfo {
            kind: "host".into(),
            ..ContainerInfo::default()
        },
        Identity::Unknown => ContainerInfo {
            kind: "unknown".into(),
            ..ContainerInfo::default()
        },
        Identity::Container(c) => ContainerInfo {
            kind: "container".into(),
            id: Some(c.id.clone()),
            runtime: Some(c.runtime.as_str().to_owned()),
            pod_uid: c.pod_uid.clone(),
            qos: c.qos.map(|q| q.as_str().to_owned()),
            cgroup_driver: Some(c.driver.as_str().to_owned()),
            monitor: c.monitor,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::event::{Fork, WallTime};

    /// Not a live process: `/proc` has nothing to add about it.
    const PID: u32 = 4_000_000;

    fn event(kind: EventKind, at_ns: u64, process: Process) -> Event {
        Event {
            process: Some(Arc::new(process)),
            ..Event::new(
                kind,
                WallTime(std::time::SystemTime::now()),
                at_ns,
                "node".into(),
            )
        }
    }

    fn decoded() -> Process {
        Process {
            pid: PID,
            tid: PID,
            ppid: 1,
            start_ns: 5,
            comm: "sh".into(),
            ..Process::default()
        }
    }

    fn enriched(enricher: &mut Enricher, kind: EventKind, at_ns: u64, process: Process) -> Event {
        let mut event = event(kind, at_ns, process);
        enricher.enrich(&mut event);
        event
    }

    fn enricher() -> Enricher {
        Enricher::new(
            TreeLimits {
                max_entries: 64,
                exit_grace_ns: 1_000_000_000,
            },
            16,
            None,
        )
    }

    fn section(event: &Event) -> &Arc<Process> {
        event.process.as_ref().expect("a process")
    }

    #[test]
    fn a_threads_calls_share_one_process_section_until_it_the_tree_or_the_time_changes() {
        let mut enricher = enricher();
        let exec = Process {
            exe: Some("/bin/sh".into()),
            args: Some(["sh"].into_iter().collect()),
            cwd: Some("/".into()),
            ..decoded()
        };
        enriched(&mut enricher, EventKind::ProcessExec, 10, exec);

        let first = enriched(&mut enricher, EventKind::Syscall, 20, decoded());
        let second = enriched(&mut enricher, EventKind::Syscall, 30, decoded());
        assert!(Arc::ptr_eq(section(&first), section(&second)));
        assert_eq!(section(&second).exe.as_deref(), Some("/bin/sh"));
        assert_eq!(section(&second).user_name.as_deref(), Some("root"));

        // A fork changes the tree: the next call is enriched again.
        fork(&mut enricher, 40, PID + 1);
        let third = enriched(&mut enricher, EventKind::Syscall, 50, decoded());
        assert!(!Arc::ptr_eq(section(&second), section(&third)));
        assert_eq!(section(&third).exe.as_deref(), Some("/bin/sh"));
        let fourth = enriched(&mut enricher, EventKind::Syscall, 60, decoded());
        assert!(Arc::ptr_eq(section(&third), section(&fourth)));

        // Not beyond REUSE_NS, so that names and containers that resolve
        // later are seen.
        let late = enriched(&mut enricher, EventKind::Syscall, 60 + REUSE_NS, decoded());
        assert!(!Arc::ptr_eq(section(&fourth), section(&late)));

        // What the kernel reports changed: a section of its own, enriched.
        let setuid = Process {
            euid: 1000,
            ..decoded()
        };
        let after = enriched(&mut enricher, EventKind::Syscall, 70 + REUSE_NS, setuid);
        assert!(!Arc::ptr_eq(section(&late), section(&after)));
        assert_eq!(section(&after).euid, 1000);
        assert_eq!(section(&after).exe.as_deref(), Some("/bin/sh"));
    }

    #[test]
    fn a_section_handed_back_enriched_is_kept_or_enriched_again_from_what_the_kernel_sent() {
        let mut enricher = enricher();
        let exec = |exe: &str| Process {
            exe: Some(exe.into()),
            args: Some(["sh"].into_iter().collect()),
            cwd: Some("/".into()),
            ..decoded()
        };
        enriched(&mut enricher, EventKind::ProcessExec, 10, exec("/bin/sh"));
        let first = enriched(&mut enricher, EventKind::Syscall, 20, decoded());

        // The decoder hands the thread's next call the section enriched.
        let handed_back = |at_ns: u64, section: &Arc<Process>| {
            let mut next = event(EventKind::Syscall, at_ns, Process::default());
            next.process = Some(section.clone());
            next
        };
        let mut again = handed_back(30, section(&first));
        enricher.enrich(&mut again);
        assert!(Arc::ptr_eq(section(&first), section(&again)));
        assert_eq!(again.container, first.container);

        // The process execs another program under the same command name:
        // the kernel's section of its calls is unchanged, the tree is not.
        enriched(&mut enricher, EventKind::ProcessExec, 40, exec("/bin/dash"));
        let mut after = handed_back(50, section(&again));
        enricher.enrich(&mut after);
        assert!(!Arc::ptr_eq(section(&again), section(&after)));
        assert_eq!(section(&after).exe.as_deref(), Some("/bin/dash"));
        assert_eq!(
            **section(&after),
            **section(&enriched(&mut enricher, EventKind::Syscall, 50, decoded()))
        );
    }

    fn fork(enricher: &mut Enricher, at_ns: u64, child_pid: u32) {
        let mut fork = event(EventKind::ProcessFork, at_ns, decoded());
        fork.fork = Some(Box::new(Fork {
            child_pid,
            child_ns_pid: child_pid,
            child_start_ns: at_ns,
        }));
        enricher.enrich(&mut fork);
    }

    fn child_ancestry(
        enricher: &mut Enricher,
        at_ns: u64,
        pid: u32,
        start_ns: u64,
    ) -> Arc<[Ancestor]> {
        let child = Process {
            pid,
            tid: pid,
            ppid: PID,
            start_ns,
            comm: "sh".into(),
            ..Process::default()
        };
        section(&enriched(enricher, EventKind::Syscall, at_ns, child))
            .ancestors
            .clone()
    }

    #[test]
    fn the_children_of_one_parent_share_one_ancestry_until_the_parent_execs() {
        let mut enricher = enricher();
        let shell = |exe: &str, args: &[&str]| Process {
            exe: Some(exe.into()),
            args: Some(args.iter().copied().collect()),
            cwd: Some("/".into()),
            ..decoded()
        };
        enriched(
            &mut enricher,
            EventKind::ProcessExec,
            10,
            shell("/bin/sh", &["sh"]),
        );
        fork(&mut enricher, 20, PID + 1);
        fork(&mut enricher, 30, PID + 2);

        let first = child_ancestry(&mut enricher, 40, PID + 1, 20);
        let second = child_ancestry(&mut enricher, 50, PID + 2, 30);
        assert_eq!(
            first.first().map(|a| (a.pid, a.image.exe())),
            Some((PID, "/bin/sh"))
        );
        assert!(Arc::ptr_eq(&first, &second), "siblings share the ancestry");

        // The parent runs another image: later children name it.
        enriched(
            &mut enricher,
            EventKind::ProcessExec,
            60,
            shell("/bin/bash", &["bash", "-c", "true"]),
        );
        fork(&mut enricher, 70, PID + 3);
        let third = child_ancestry(&mut enricher, 80, PID + 3, 70);
        assert!(!Arc::ptr_eq(&second, &third));
        assert_eq!(
            third.first().map(|a| (a.pid, a.image.exe())),
            Some((PID, "/bin/bash"))
        );
        assert_eq!(third.len(), second.len());
    }
}
