//! The step between decoding and the outputs: every event learns its
//! process's image and ancestry from the process tree and its container from
//! the cgroup, without a network round trip.
//!
//! The [`Enricher`] is owned by the reader task: the tree is updated in the
//! same order as the kernel reported fork, exec and exit, so that a process
//! that exec'd and exited within a millisecond still has its ancestry.

use std::{collections::HashMap, sync::Arc};

use crate::{
    container::{ContainerResolver, Identity},
    events::{
        EventKind,
        event::{Ancestor, ContainerInfo, Event},
    },
    process::{ExecInfo, ProcessTree, SeedStats, TreeLimits, TreeStats, seed_from_proc},
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
    container_infos: HashMap<u64, Arc<ContainerInfo>>,
    max_ancestors: usize,
}

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
            container_infos: HashMap::new(),
            max_ancestors,
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
        let Some(process) = event.process.as_mut() else {
            return;
        };
        match event.kind {
            EventKind::ProcessExec => self.tree.on_exec(ExecInfo {
                pid: process.pid,
                ppid: process.ppid,
                start_ns: process.start_ns,
                comm: process.comm.clone(),
                exe: process.exe.clone().unwrap_or_default(),
                args: process.args.clone().unwrap_or_default(),
                cwd: process.cwd.clone().unwrap_or_default(),
                uid: process.uid,
            }),
            EventKind::ProcessFork => {
                if let Some(fork) = &event.fork {
                    self.tree
                        .on_fork(process.pid, fork.child_pid, fork.child_start_ns, now);
                }
            }
            _ => {}
        }

        if let Some(known) = self.tree.get(process.pid, process.start_ns)
            && process.exe.is_none()
        {
            process.exe = Some(known.exe().to_owned());
            process.args = Some(known.args().to_vec());
            process.cwd = Some(known.cwd().to_owned());
        }
        process.ancestors = self
            .tree
            .ancestors(process.pid, process.start_ns, self.max_ancestors)
            .iter()
            .map(|a| Ancestor {
                pid: a.pid,
                image: a.image.clone(),
            })
            .collect();

        event.container = self.container(process.cgroup_id, process.memory_cgroup_id);

        if event.kind == EventKind::ProcessExit {
            self.tree.on_exit(process.pid, process.start_ns, now);
        }
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
