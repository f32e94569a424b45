//! Loading the sensors object into the kernel and attaching its hooks.

use aya::{
    Btf, Ebpf, EbpfError, EbpfLoader,
    maps::{Array, HashMap, MapData, MapError, PerCpuArray, RingBuf},
    programs::{BtfTracePoint, Lsm, ProgramError},
};

use super::{
    hooks::{self, HOOKS, Sensor},
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
}

/// The maps handed out once the sensors are attached: those the event
/// reader owns, and those of the in-kernel kill.
pub struct SensorMaps {
    /// Event records.
    pub events: RingBuf<MapData>,
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
    attached: Vec<&'static str>,
}

impl Sensors {
    /// Loads the sensors object, configures it, and attaches the hooks of the
    /// requested sensors. The ring buffer and counters are handed out so that
    /// they outlive the hooks and can be drained after a detach.
    pub fn load(btf: &Btf, options: &LoadOptions) -> Result<(Self, SensorMaps), BpfError> {
        let mut ebpf = EbpfLoader::new()
            .btf(Some(btf))
            .map_max_entries(hooks::EVENTS_MAP, options.ring_buffer_bytes)
            .load(agent_ebpf::SENSORS)
            .map_err(BpfError::Load)?;

        write_config(&mut ebpf, options)?;
        let events = take_map(&mut ebpf, hooks::EVENTS_MAP, RingBuf::try_from)?;
        let counters = take_map(&mut ebpf, hooks::COUNTERS_MAP, PerCpuArray::try_from)?;
        let kill = KillMaps::new(
            take_map(&mut ebpf, hooks::KILL_CGROUPS_MAP, HashMap::try_from)?,
            take_map(&mut ebpf, hooks::KILL_EXES_MAP, HashMap::try_from)?,
            take_map(&mut ebpf, hooks::KILL_NAMES_MAP, HashMap::try_from)?,
            take_map(&mut ebpf, hooks::KILL_ARGS_MAP, Array::try_from)?,
            take_map(&mut ebpf, hooks::KILL_DENY_MAP, Array::try_from)?,
        );

        let mut attached = Vec::new();
        for hook in HOOKS
            .iter()
            .filter(|h| h.sensors.iter().any(|s| options.sensors.contains(s)))
        {
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
            attached.push(hook.tracepoint);
        }
        Ok((
            Self { ebpf, attached },
            SensorMaps {
                events,
                counters,
                kill,
            },
        ))
    }

    /// The tracepoints that hooks are attached to.
    pub fn attached(&self) -> &[&'static str] {
        &self.attached
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
