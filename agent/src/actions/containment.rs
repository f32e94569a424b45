//! The containment handle: freezes and isolations of containers, recorded in
//! the pinned ledger so that they outlive the agent.
//!
//! Dropping a [`Containment`] (as an agent exit does) changes nothing in the
//! kernel: frozen cgroups stay frozen, pinned links stay attached, and the
//! next [`Containment::open`] on the same pin directory finds them in the
//! ledger. Every call blocks (a freeze waits for the kernel); async callers
//! run them on a blocking thread.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use super::{
    freeze::{self, FREEZE_TIMEOUT, FreezeError},
    isolate::{self, AllowRule, IsolateError, Isolation},
    ledger::{Contained, Entry, Ledger, LedgerError, PinDir, action_now},
};
use crate::cgroup::CgroupError;

/// Why a containment action failed.
#[derive(Debug, thiserror::Error)]
pub enum ContainError {
    /// The pin directory or the ledger is unusable.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The isolation programs could not be loaded. (Boxed: aya's errors are
    /// large, and every call returns this type.)
    #[error(transparent)]
    Load(Box<IsolateError>),
    /// The target's directory is not the cgroup its id names.
    #[error("cgroup {cgroup_id}: {path} is cgroup {found}")]
    WrongCgroup {
        /// The id asked for.
        cgroup_id: u64,
        /// The directory given.
        path: PathBuf,
        /// The id the directory has.
        found: u64,
    },
    /// The target's directory is not a cgroup v2 directory.
    #[error("cgroup {cgroup_id}")]
    Cgroup {
        /// The id asked for.
        cgroup_id: u64,
        /// What failed.
        #[source]
        source: CgroupError,
    },
    /// Freezing or thawing failed.
    #[error("cgroup {cgroup_id}")]
    Freeze {
        /// The cgroup.
        cgroup_id: u64,
        /// What failed.
        #[source]
        source: FreezeError,
    },
    /// Isolating or lifting failed.
    #[error("cgroup {cgroup_id}")]
    Isolate {
        /// The cgroup.
        cgroup_id: u64,
        /// What failed.
        #[source]
        source: Box<IsolateError>,
    },
    /// The ledger has no such containment.
    #[error("cgroup {cgroup_id} is not {what}")]
    NotContained {
        /// The cgroup.
        cgroup_id: u64,
        /// `frozen` or `isolated`.
        what: &'static str,
    },
}

/// The container to act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The cgroup v2 id (the inode of `cgroup_dir`).
    pub cgroup_id: u64,
    /// The absolute cgroup v2 directory.
    pub cgroup_dir: PathBuf,
    /// The container's id, for `status`.
    pub container_id: String,
    /// The rule that caused the action, for `status`.
    pub rule: String,
}

/// The loaded isolation programs and the pinned containment state.
#[derive(Debug)]
pub struct Containment {
    pin: PinDir,
    ledger: Ledger,
    isolation: Isolation,
    freeze_timeout: Duration,
}

impl Containment {
    /// Opens the containment state pinned under `pin_dir` (on bpffs), pinning
    /// fresh maps where there are none, and makes `allow` the allow-list of
    /// every isolation, present and future.
    pub fn open(pin_dir: &Path, allow: &[AllowRule]) -> Result<Self, ContainError> {
        let pin = PinDir::new(pin_dir);
        if pin.mount_bpffs_if_needed()? {
            tracing::info!(
                mount = super::ledger::BPFFS_MOUNT,
                "mounted the BPF filesystem"
            );
        }
        let (isolation, ledger) = Isolation::load(&pin, allow).map_err(|error| match error {
            IsolateError::Pins(error) => ContainError::Ledger(error),
            error => ContainError::Load(Box::new(error)),
        })?;
        let ledger = Ledger::from_map(&pin, ledger)?;
        let this = Self {
            pin,
            ledger,
            isolation,
            freeze_timeout: FREEZE_TIMEOUT,
        };
        for entry in this.ledger.entries()? {
            tracing::info!(
                cgroup_id = entry.cgroup_id,
                cgroup = %entry.cgroup_dir.display(),
                frozen = entry.frozen.is_some(),
                isolated = entry.isolated.is_some(),
                "containment found in the pinned ledger"
            );
        }
        Ok(this)
    }

    /// How long a freeze or thaw waits for the kernel ([`FREEZE_TIMEOUT`] by default).
    pub fn set_freeze_timeout(&mut self, timeout: Duration) {
        self.freeze_timeout = timeout;
    }

    /// The pin directory.
    pub fn pin_dir(&self) -> &Path {
        self.pin.root()
    }

    /// Freezes the target's cgroup, keeping its processes. Freezing a frozen
    /// cgroup keeps its first rule and time. The ledger records the freeze
    /// before the kernel is asked, so that a freeze that times out, or an
    /// agent that dies meanwhile, still leaves it for `thaw` or `cleanup`.
    pub fn freeze(&mut self, target: &Target) -> Result<(), ContainError> {
        check_target(target)?;
        let mut entry = self.entry_for(target)?;
        let before = entry.clone();
        if entry.frozen.is_none() {
            entry.frozen = Some(action_now(&target.rule));
            self.ledger.put(&entry)?;
        }
        let result = freeze::freeze_cgroup(&target.cgroup_dir, self.freeze_timeout);
        if let Err(FreezeError::Write { .. }) = &result {
            // Nothing was frozen: the ledger must not say so.
            self.ledger.put(&before)?;
        }
        result.map_err(|source| ContainError::Freeze {
            cgroup_id: target.cgroup_id,
            source,
        })?;
        tracing::info!(cgroup_id = target.cgroup_id, rule = %target.rule, "cgroup frozen");
        Ok(())
    }

    /// Thaws a cgroup this ledger froze. A cgroup that no longer exists is
    /// dropped from the ledger.
    pub fn thaw(&mut self, cgroup_id: u64) -> Result<(), ContainError> {
        let mut entry = self
            .ledger
            .get(cgroup_id)?
            .filter(|e| e.frozen.is_some())
            .ok_or(ContainError::NotContained {
                cgroup_id,
                what: "frozen",
            })?;
        if is_same_cgroup(&entry.cgroup_dir, cgroup_id) {
            freeze::thaw_cgroup(&entry.cgroup_dir, self.freeze_timeout)
                .map_err(|source| ContainError::Freeze { cgroup_id, source })?;
        }
        entry.frozen = None;
        self.ledger.put(&entry)?;
        tracing::info!(cgroup_id, "cgroup thawed");
        Ok(())
    }

    /// Cuts the target's network but for the allow-list, in both directions.
    /// Isolating an isolated cgroup keeps its first rule and time.
    pub fn isolate(&mut self, target: &Target) -> Result<(), ContainError> {
        check_target(target)?;
        let mut entry = self.entry_for(target)?;
        let before = entry.clone();
        if entry.isolated.is_none() {
            entry.isolated = Some(action_now(&target.rule));
            self.ledger.put(&entry)?;
        }
        if let Err(source) = self
            .isolation
            .attach(&self.pin, target.cgroup_id, &target.cgroup_dir)
        {
            self.ledger.put(&before)?;
            return Err(ContainError::Isolate {
                cgroup_id: target.cgroup_id,
                source: Box::new(source),
            });
        }
        tracing::info!(cgroup_id = target.cgroup_id, rule = %target.rule, "cgroup isolated");
        Ok(())
    }

    /// Restores the network of a cgroup this ledger isolated.
    pub fn lift(&mut self, cgroup_id: u64) -> Result<(), ContainError> {
        let mut entry = self
            .ledger
            .get(cgroup_id)?
            .filter(|e| e.isolated.is_some())
            .ok_or(ContainError::NotContained {
                cgroup_id,
                what: "isolated",
            })?;
        let isolate_error = |source| ContainError::Isolate {
            cgroup_id,
            source: Box::new(source),
        };
        isolate::detach(&self.pin, cgroup_id).map_err(isolate_error)?;
        self.isolation.forget(cgroup_id).map_err(isolate_error)?;
        entry.isolated = None;
        self.ledger.put(&entry)?;
        tracing::info!(cgroup_id, "cgroup isolation lifted");
        Ok(())
    }

    /// Everything contained, with the drops of each isolation.
    pub fn list(&self) -> Result<Vec<Contained>, ContainError> {
        let mut list = Vec::new();
        for entry in self.ledger.entries()? {
            let cgroup_id = entry.cgroup_id;
            let drops =
                self.isolation
                    .drops(cgroup_id)
                    .map_err(|source| ContainError::Isolate {
                        cgroup_id,
                        source: Box::new(source),
                    })?;
            list.push(entry.into_contained(drops));
        }
        list.sort_by_key(|c| c.cgroup_id);
        Ok(list)
    }

    /// What is contained in `cgroup_id`, if anything.
    pub fn get(&self, cgroup_id: u64) -> Result<Option<Contained>, ContainError> {
        let Some(entry) = self.ledger.get(cgroup_id)? else {
            return Ok(None);
        };
        let drops = self
            .isolation
            .drops(cgroup_id)
            .map_err(|source| ContainError::Isolate {
                cgroup_id,
                source: Box::new(source),
            })?;
        Ok(Some(entry.into_contained(drops)))
    }

    fn entry_for(&self, target: &Target) -> Result<Entry, ContainError> {
        Ok(self.ledger.get(target.cgroup_id)?.unwrap_or_else(|| {
            Entry::new(target.cgroup_id, &target.cgroup_dir, &target.container_id)
        }))
    }
}

/// Acting on the wrong cgroup would freeze or cut an innocent container: the
/// directory must be the cgroup v2 directory with the target's id.
fn check_target(target: &Target) -> Result<(), ContainError> {
    let found = crate::cgroup::cgroup_id(Path::new("/"), &target.cgroup_dir).map_err(|source| {
        ContainError::Cgroup {
            cgroup_id: target.cgroup_id,
            source,
        }
    })?;
    if found != target.cgroup_id {
        return Err(ContainError::WrongCgroup {
            cgroup_id: target.cgroup_id,
            path: target.cgroup_dir.clone(),
            found,
        });
    }
    Ok(())
}

/// Whether `dir` is still the cgroup `cgroup_id`: cgroup ids are never reused,
/// so a directory of the same path with another id is another cgroup.
pub(crate) fn is_same_cgroup(dir: &Path, cgroup_id: u64) -> bool {
    crate::cgroup::cgroup_id(Path::new("/"), dir).is_ok_and(|id| id == cgroup_id)
}
