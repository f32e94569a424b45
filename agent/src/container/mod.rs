//! Container identity from the node alone: which container (runtime, id, pod,
//! QoS class) a cgroup belongs to, with no call to the runtime or the API
//! server.
//!
//! Two steps:
//!
//! 1. [`CgroupPaths`] turns a cgroup id into the cgroup's path below its mount,
//!    with kernfs file handles (two system calls) and a bounded cache; see
//!    [`resolve`] for how, and what happens without handles.
//! 2. [`parse_cgroup_path`] reads the identity from the path, which the
//!    kubelet and the runtimes name after the pod and the container; see
//!    [`identity`] for the table of layouts and the rules.
//!
//! [`ContainerResolver`] does both: [`ContainerResolver::identify`] for the
//! cgroup v2 ids that events carry, and [`ContainerResolver::identify_v1`] for
//! cgroup v1 hierarchies on hybrid nodes whose runtime uses only v1.
//!
//! A cgroup id that no longer resolves (its cgroup was removed before the
//! lookup) gives [`Identity::Unknown`], never [`Identity::Host`]: an exited
//! container's last events are not the host's.

mod cache;
pub mod identity;
pub mod resolve;

use std::collections::BTreeMap;

use crate::logging::error_chain;

pub use identity::{CgroupDriver, Container, Identity, Qos, Runtime, parse_cgroup_path};
pub use resolve::{
    CacheStats, CgroupPaths, CgroupVersion, DEFAULT_CAPACITY, DEFAULT_NEGATIVE_TTL,
    DEFAULT_WALK_LIMIT, Lookup, ResolveError, ResolveOptions,
};

/// cgroup ids to container identities, for the cgroup v2 mount and, opened on
/// first use, any cgroup v1 hierarchy.
///
/// # Examples
///
/// ```no_run
/// use guardrails::container::{ContainerResolver, Identity, ResolveOptions};
///
/// let mut resolver = ContainerResolver::new(ResolveOptions::default())?;
/// match resolver.identify(8812) {
///     Identity::Container(container) => println!("{} {}", container.runtime, container.id),
///     Identity::Host => println!("the host"),
///     Identity::Unknown => println!("gone before it was looked up"),
/// }
/// # Ok::<(), guardrails::container::ResolveError>(())
/// ```
#[derive(Debug)]
pub struct ContainerResolver {
    v2: CgroupPaths,
    /// By the name the caller used; `None` if the hierarchy could not be opened.
    v1: BTreeMap<String, Option<CgroupPaths>>,
    options: ResolveOptions,
    failures: u64,
}

/// What a [`ContainerResolver`] has counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolverStats {
    /// The cgroup v2 cache.
    pub v2: CacheStats,
    /// Each cgroup v1 hierarchy's cache, by the name it was asked for with.
    pub v1: BTreeMap<String, CacheStats>,
    /// Lookups that failed for another reason than the cgroup being gone
    /// (each gave [`Identity::Unknown`]).
    pub failures: u64,
}

impl ContainerResolver {
    /// A resolver for this node's cgroup v2 mount; v1 hierarchies are opened
    /// with the same options when first asked for.
    pub fn new(options: ResolveOptions) -> Result<Self, ResolveError> {
        Ok(Self::with_v2(CgroupPaths::v2(options.clone())?, options))
    }

    /// A resolver over `v2` (e.g. a mount found elsewhere).
    pub fn with_v2(v2: CgroupPaths, options: ResolveOptions) -> Self {
        Self {
            v2,
            v1: BTreeMap::new(),
            options,
            failures: 0,
        }
    }

    /// Who cgroup v2 id `cgroup_id` (as events carry it) belongs to.
    ///
    /// [`Identity::Unknown`] if the cgroup no longer exists or the lookup
    /// failed (logged at debug level and counted in [`ResolverStats::failures`]).
    pub fn identify(&mut self, cgroup_id: u64) -> Identity {
        let found = self.v2.path(cgroup_id);
        self.identity(found, "v2", cgroup_id)
    }

    /// Who cgroup `id` of the v1 hierarchy `hierarchy` belongs to. `hierarchy`
    /// is a controller or hierarchy name (`memory`, `pids`, `systemd`,
    /// `name=systemd`) or, starting with `/`, the hierarchy's mount point.
    ///
    /// The hierarchy is opened on first use; if it cannot be (not mounted, not
    /// cgroup v1), that is logged once as a warning and every id in it is
    /// [`Identity::Unknown`].
    pub fn identify_v1(&mut self, hierarchy: &str, id: u64) -> Identity {
        if !self.v1.contains_key(hierarchy) {
            let opened = self.open_v1(hierarchy);
            self.v1.insert(hierarchy.to_owned(), opened);
        }
        let Some(Some(paths)) = self.v1.get_mut(hierarchy) else {
            return Identity::Unknown;
        };
        let found = paths.path(id);
        self.identity(found, hierarchy, id)
    }

    /// What the caches have counted so far.
    pub fn stats(&self) -> ResolverStats {
        ResolverStats {
            v2: self.v2.stats(),
            v1: self
                .v1
                .iter()
                .filter_map(|(name, paths)| Some((name.clone(), paths.as_ref()?.stats())))
                .collect(),
            failures: self.failures,
        }
    }

    fn open_v1(&self, hierarchy: &str) -> Option<CgroupPaths> {
        let opened = if hierarchy.starts_with('/') {
            CgroupPaths::open(hierarchy.as_ref(), self.options.clone())
        } else {
            CgroupPaths::v1(hierarchy, self.options.clone())
        };
        match opened {
            Ok(paths) if paths.version() == CgroupVersion::V1 => Some(paths),
            Ok(paths) => {
                tracing::warn!(
                    hierarchy,
                    mount = %paths.mount().display(),
                    "not a cgroup v1 hierarchy; its cgroup ids will not be resolved"
                );
                None
            }
            Err(error) => {
                tracing::warn!(
                    hierarchy,
                    error = %error_chain(&error),
                    "cannot open cgroup v1 hierarchy; its cgroup ids will not be resolved"
                );
                None
            }
        }
    }

    fn identity(
        &mut self,
        found: Result<Option<std::sync::Arc<str>>, ResolveError>,
        hierarchy: &str,
        id: u64,
    ) -> Identity {
        match found {
            Ok(Some(path)) => parse_cgroup_path(&path),
            Ok(None) => Identity::Unknown,
            Err(error) => {
                self.failures += 1;
                tracing::debug!(
                    hierarchy,
                    cgroup_id = id,
                    error = %error_chain(&error),
                    "cannot resolve cgroup"
                );
                Identity::Unknown
            }
        }
    }
}
