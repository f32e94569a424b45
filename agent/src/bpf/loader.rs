//! Loading the sensors object into the kernel and attaching its hooks.

use std::path::{Path, PathBuf};

use aya::{
    Btf, Ebpf, EbpfError, EbpfLoader,
    maps::{Array, HashMap, MapData, MapError, PerCpuArray},
    programs::{BtfTracePoint, Lsm, ProgramError, TracePoint},
};

use super::{
    hooks::{self, HOOKS, Sensor, SyscallHook},
    kfuncs,
    ring::{EventRing, RingError},
    syscalls::SYSCALLS,
};
use crate::actions::kernel_kill::KillMaps;

/// Why the sensors could not be loaded or attached.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// The object was refused as a whole (maps, BTF relocations).
    #[error("loading the sensors object")]
    Load(#[source] EbpfError),
    /// A map the agent needs is missing or of the wrong type.
    #[error("map {name}")]
    Map {
        /// The map's name.
        name: &'static str,
        /// What aya said.
        #[source]
        source: MapError,
    },
    /// The events ring buffer could not be mapped.
    #[error("the events ring buffer")]
    Ring(#[source] RingError),
    /// A map the agent needs is not in the object.
    #[error("map {0} is missing from the sensors object")]
    MissingMap(&'static str),
    /// A program is not in the object.
    #[error("program {0} is missing from the sensors object")]
    MissingProgram(&'static str),
    /// The kernel refused to load or attach a program.
    #[error("program {program} on tp_btf/{tracepoint}")]
    Program {
        /// The program's name.
        program: &'static str,
        /// Where it attaches.
        tracepoint: &'static str,
        /// What aya said, with the verifier's log when it refused the program.
        #[source]
        source: ProgramError,
    },
    /// The kernel refused to load or attach the BPF LSM program.
    #[error("program {program} on lsm/{hook}")]
    Lsm {
        /// The program's name.
        program: &'static str,
        /// The LSM hook.
        hook: &'static str,
        /// What aya said, with the verifier's log when it refused the program.
        #[source]
        source: ProgramError,
    },
}

/// What to load.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Size of the events ring buffer; a power of two of at least a page.
    pub ring_buffer_bytes: u32,
    /// The kernel wakes the reader once this many bytes wait.
    pub wakeup_bytes: u64,
    /// cgroup v2 ids in scope; empty means every process.
    pub scope: Vec<u64>,
    /// Sensors to attach.
    pub sensors: Vec<Sensor>,
    /// Where the syscall sensors' program attaches.
    pub syscall_hook: SyscallHook,
}

/// The maps handed out once the sensors are attached: those the event
/// reader owns, and those of the in-kernel kill.
pub struct SensorMaps {
    /// Event records.
    pub events: EventRing,
    /// Per-CPU counters of what the kernel lost.
    pub counters: PerCpuArray<MapData, u64>,
    /// The kill slots and the cgroups they are armed in; empty at load, so
    /// that nothing is killed until rules are set and cgroups armed.
    pub kill: KillMaps,
}

impl std::fmt::Debug for SensorMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SensorMaps").finish_non_exhaustive()
    }
}

/// The loaded and attached sensors. Dropping this detaches every hook.
#[derive(Debug)]
pub struct Sensors {
    ebpf: Ebpf,
    attached: Vec<String>,
    unobserved: Vec<&'static str>,
}

impl Sensors {
    /// Loads the sensors object, configures it, and attaches the hooks of the
    /// requested sensors. The ring buffer and counters are handed out so that
    /// they outlive the hooks and can be drained after a detach.
    pub fn load(btf: &Btf, options: &LoadOptions) -> Result<(Self, SensorMaps), BpfError> {
        // The programs that call kfuncs load only where they could be linked;
        // their twins without kfuncs stand in elsewhere.
        let linked = kfuncs::link(agent_ebpf::SENSORS, kfuncs::SENSOR_KFUNCS, btf)
            .inspect_err(|e| {
                tracing::info!(error = %e, "the sensors use no kfunc on this kernel");
            })
            .ok();
        let mut ebpf = EbpfLoader::new()
            .btf(Some(btf))
            .map_max_entries(hooks::EVENTS_MAP, options.ring_buffer_bytes)
            .load(linked.as_deref().unwrap_or(agent_ebpf::SENSORS))
            .map_err(BpfError::Load)?;
        let kfuncs_linked = linked.is_some();

        write_config(&mut ebpf, options)?;
        let events = ebpf
            .take_map(hooks::EVENTS_MAP)
            .ok_or(BpfError::MissingMap(hooks::EVENTS_MAP))
            .and_then(|map| EventRing::try_from(map).map_err(BpfError::Ring))?;
        let counters = take_map(&mut ebpf, hooks::COUNTERS_MAP, PerCpuArray::try_from)?;
        let kill = KillMaps::new(
            take_map(&mut ebpf, hooks::KILL_CGROUPS_MAP, HashMap::try_from)?,
            take_map(&mut ebpf, hooks::KILL_EXES_MAP, HashMap::try_from)?,
            take_map(&mut ebpf, hooks::KILL_NAMES_MAP, HashMap::try_from)?,
            take_map(&mut ebpf, hooks::KILL_ARGS_MAP, Array::try_from)?,
            take_map(&mut ebpf, hooks::KILL_DENY_MAP, Array::try_from)?,
        );

        let mut attached = Vec::new();
        let mut unobserved = Vec::new();
        for hook in HOOKS
            .iter()
            .filter(|h| h.sensors.iter().any(|s| options.sensors.contains(s)))
        {
            if hook.tracepoint == hooks::SYS_EXIT_TRACEPOINT
                && let Some(each) = attach_syscalls_where_asked(&mut ebpf, options, kfuncs_linked)
            {
                attached.push(format!(
                    "{}/sys_exit_* ({} syscalls)",
                    hooks::SYSCALL_TRACEPOINTS,
                    each.attached
                ));
                unobserved = each.missing;
                continue;
            }
            let error = |source| BpfError::Program {
                program: hook.program,
                tracepoint: hook.tracepoint,
                source,
            };
            let program: &mut BtfTracePoint = ebpf
                .program_mut(hook.program)
                .ok_or(BpfError::MissingProgram(hook.program))?
                .try_into()
                .map_err(error)?;
            program.load(hook.tracepoint, btf).map_err(error)?;
            program.attach().map_err(error)?;
            attached.push(hook.tracepoint.to_owned());
        }
        Ok((
            Self {
                ebpf,
                attached,
                unobserved,
            },
            SensorMaps {
                events,
                counters,
                kill,
            },
        ))
    }

    /// The tracepoints that hooks are attached to.
    pub fn attached(&self) -> &[String] {
        &self.attached
    }

    /// Syscalls that enabled sensors report but that no attached hook sees:
    /// on each syscall's tracepoint, those the kernel is built without
    /// (their calls all fail).
    pub fn unobserved_syscalls(&self) -> &[&'static str] {
        &self.unobserved
    }

    /// Loads and attaches the BPF LSM program that refuses the execs of
    /// deny slots. Until [`KillMaps::set_slots`] marks a slot as a deny slot
    /// it refuses nothing; only then does the exec hook leave that slot to
    /// it. Call it only where the kernel accepts BPF LSM
    /// ([`super::features`]): elsewhere the load fails.
    pub fn attach_deny_exec(&mut self, btf: &Btf) -> Result<(), BpfError> {
        let error = |source| BpfError::Lsm {
            program: hooks::DENY_EXEC_PROGRAM,
            hook: hooks::DENY_EXEC_HOOK,
            source,
        };
        let program: &mut Lsm = self
            .ebpf
            .program_mut(hooks::DENY_EXEC_PROGRAM)
            .ok_or(BpfError::MissingProgram(hooks::DENY_EXEC_PROGRAM))?
            .try_into()
            .map_err(error)?;
        program.load(hooks::DENY_EXEC_HOOK, btf).map_err(error)?;
        program.attach().map_err(error)?;
        Ok(())
    }

    /// Detaches every hook; the maps handed out stay readable.
    pub fn detach(self) {
        drop(self.ebpf);
    }
}

/// Attaches the syscall program to each reported syscall's tracepoint unless
/// `options.syscall_hook` asks for `sys_exit` or the kernel does not allow
/// it; `None` when the caller attaches it to `sys_exit` instead, the reason
/// logged. `kfuncs_linked`: the object's kfunc calls point at the kernel's.
fn attach_syscalls_where_asked(
    ebpf: &mut Ebpf,
    options: &LoadOptions,
    kfuncs_linked: bool,
) -> Option<EachSyscall> {
    if options.syscall_hook == SyscallHook::SysExit {
        return None;
    }
    match attach_each_syscall(ebpf, &options.sensors, kfuncs_linked) {
        Ok(each) => {
            tracing::info!(
                program = each.program,
                "the per-syscall program reads the saved registers {}",
                if each.program == hooks::SYS_EXIT_EACH_PROGRAM {
                    "through bpf_rdonly_cast"
                } else {
                    "with bpf_task_pt_regs on every call"
                }
            );
            if !each.missing.is_empty() {
                tracing::warn!(
                    syscalls = ?each.missing,
                    "no exit tracepoint for these syscalls (the kernel is built \
                     without them): their calls, which all fail, are not reported \
                     (`sensors.syscall_hook: sys_exit` reports them, at the cost of \
                     a program's entry on every syscall)"
                );
            }
            Some(each)
        }
        Err(e) => {
            tracing::warn!(
                error = %crate::logging::error_chain(&e),
                "cannot attach to each syscall's exit tracepoint; attaching to sys_exit, \
                 which runs a program on every syscall"
            );
            None
        }
    }
}

/// Why the syscall program could not attach to each syscall's tracepoint.
#[derive(Debug, thiserror::Error)]
pub enum EachSyscallError {
    /// Neither /sys/kernel/tracing nor /sys/kernel/debug/tracing holds tracefs.
    #[error("tracefs is not mounted at /sys/kernel/tracing or /sys/kernel/debug/tracing")]
    NoTracefs,
    /// tracefs has no per-syscall tracepoints (a kernel without
    /// `CONFIG_FTRACE_SYSCALLS`).
    #[error("{0} is missing")]
    NoSyscallTracepoints(PathBuf),
    /// The program is not in the object.
    #[error("program {0} is missing from the sensors object")]
    MissingProgram(&'static str),
    /// The kernel refused to load the program or attach it to a tracepoint.
    #[error("program {program} on tracepoint {tracepoint}")]
    Program {
        /// The program.
        program: &'static str,
        /// The tracepoint, `syscalls/sys_exit_<name>`.
        tracepoint: String,
        /// What aya said.
        #[source]
        source: ProgramError,
    },
}

/// The syscall program attached to each syscall's exit tracepoint.
#[derive(Debug)]
struct EachSyscall {
    /// Which of its variants.
    program: &'static str,
    /// Tracepoints attached.
    attached: usize,
    /// Syscalls of the enabled sensors that have no tracepoint.
    missing: Vec<&'static str>,
}

/// Attaches the syscall program to the exit tracepoint of each syscall the
/// enabled `sensors` report. A syscall whose tracepoint tracefs lacks is
/// one the kernel was built without (`init_module` without module
/// support): the kernel makes a tracepoint for every syscall it builds.
/// Such a syscall is left out. On an error, nothing stays attached.
fn attach_each_syscall(
    ebpf: &mut Ebpf,
    sensors: &[Sensor],
    kfuncs_linked: bool,
) -> Result<EachSyscall, EachSyscallError> {
    let category = tracefs_events()
        .ok_or(EachSyscallError::NoTracefs)?
        .join(hooks::SYSCALL_TRACEPOINTS);
    if !category.is_dir() {
        return Err(EachSyscallError::NoSyscallTracepoints(category));
    }
    let (present, missing): (Vec<_>, Vec<_>) = SYSCALLS
        .iter()
        .filter(|s| sensors.contains(&s.sensor))
        .map(|s| (s.name, format!("sys_exit_{}", s.tracepoint_name())))
        .partition(|(_, tracepoint)| category.join(tracepoint).is_dir());
    let missing: Vec<_> = missing.into_iter().map(|(name, _)| name).collect();
    let program = load_each_syscall_program(ebpf, kfuncs_linked)?;
    let attach = |each: &mut TracePoint| {
        for (_, tracepoint) in &present {
            each.attach(hooks::SYSCALL_TRACEPOINTS, tracepoint)
                .map_err(|source| EachSyscallError::Program {
                    program,
                    tracepoint: format!("{}/{tracepoint}", hooks::SYSCALL_TRACEPOINTS),
                    source,
                })?;
        }
        Ok(())
    };
    let each = each_syscall_program(ebpf, program)?;
    if let Err(e) = attach(each) {
        // Detaches what did attach, so that no call is reported twice by
        // the hook that replaces it.
        if let Err(unload) = each.unload() {
            tracing::debug!(error = %unload, "unloading the per-syscall program");
        }
        return Err(e);
    }
    Ok(EachSyscall {
        program,
        attached: present.len(),
        missing,
    })
}

/// Loads the per-syscall program: the one that reads the registers through
/// a kfunc where its calls are linked and the kernel accepts it, else its
/// twin with the helper. Returns the loaded one's name.
fn load_each_syscall_program(
    ebpf: &mut Ebpf,
    kfuncs_linked: bool,
) -> Result<&'static str, EachSyscallError> {
    if kfuncs_linked {
        match each_syscall_program(ebpf, hooks::SYS_EXIT_EACH_PROGRAM)?.load() {
            Ok(()) => return Ok(hooks::SYS_EXIT_EACH_PROGRAM),
            Err(e) => tracing::info!(
                error = %crate::logging::error_chain(&e),
                program = hooks::SYS_EXIT_EACH_PROGRAM,
                "the kernel refused the per-syscall program that calls kfuncs; \
                 loading the one without"
            ),
        }
    }
    let program = hooks::SYS_EXIT_EACH_COMPAT_PROGRAM;
    each_syscall_program(ebpf, program)?
        .load()
        .map_err(|source| EachSyscallError::Program {
            program,
            tracepoint: hooks::SYSCALL_TRACEPOINTS.to_owned(),
            source,
        })?;
    Ok(program)
}

fn each_syscall_program<'a>(
    ebpf: &'a mut Ebpf,
    program: &'static str,
) -> Result<&'a mut TracePoint, EachSyscallError> {
    ebpf.program_mut(program)
        .ok_or(EachSyscallError::MissingProgram(program))?
        .try_into()
        .map_err(|source| EachSyscallError::Program {
            program,
            tracepoint: hooks::SYSCALL_TRACEPOINTS.to_owned(),
            source,
        })
}

/// The `events` directory of tracefs, where it is mounted.
fn tracefs_events() -> Option<PathBuf> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .into_iter()
        .map(|root| Path::new(root).join("events"))
        .find(|events| events.is_dir())
}

fn write_config(ebpf: &mut Ebpf, options: &LoadOptions) -> Result<(), BpfError> {
    let map_error = |name| move |source| BpfError::Map { name, source };

    let mut scope: HashMap<_, u64, u8> = HashMap::try_from(
        ebpf.map_mut(hooks::SCOPE_MAP)
            .ok_or(BpfError::MissingMap(hooks::SCOPE_MAP))?,
    )
    .map_err(map_error(hooks::SCOPE_MAP))?;
    for id in &options.scope {
        scope
            .insert(id, 1, 0)
            .map_err(map_error(hooks::SCOPE_MAP))?;
    }

    let mut specs: Array<_, agent_common::SyscallSpec> = Array::try_from(
        ebpf.map_mut(hooks::SYSCALL_SPECS_MAP)
            .ok_or(BpfError::MissingMap(hooks::SYSCALL_SPECS_MAP))?,
    )
    .map_err(map_error(hooks::SYSCALL_SPECS_MAP))?;
    for syscall in SYSCALLS
        .iter()
        .filter(|s| options.sensors.contains(&s.sensor))
    {
        specs
            .set(syscall.nr, syscall.spec(), 0)
            .map_err(map_error(hooks::SYSCALL_SPECS_MAP))?;
    }

    let mut config: Array<_, agent_common::Config> = Array::try_from(
        ebpf.map_mut(hooks::CONFIG_MAP)
            .ok_or(BpfError::MissingMap(hooks::CONFIG_MAP))?,
    )
    .map_err(map_error(hooks::CONFIG_MAP))?;
    let value = agent_common::Config {
        agent_pid: std::process::id(),
        scope_enabled: u32::from(!options.scope.is_empty()),
        wakeup_bytes: options.wakeup_bytes,
    };
    config
        .set(0, value, 0)
        .map_err(map_error(hooks::CONFIG_MAP))
}

fn take_map<T>(
    ebpf: &mut Ebpf,
    name: &'static str,
    convert: impl FnOnce(aya::maps::Map) -> Result<T, MapError>,
) -> Result<T, BpfError> {
    let map = ebpf.take_map(name).ok_or(BpfError::MissingMap(name))?;
    convert(map).map_err(|source| BpfError::Map { name, source })
}
