//! What the running kernel accepts, learned by loading small programs at start.
//! A refusal is reported in one line and never stops the agent: the sensors
//! use tp_btf tracepoints, which need neither fentry nor BPF LSM.

use std::fmt;

use aya::{
    Btf, Ebpf, EbpfError, EbpfLoader,
    programs::{BtfTracePoint, FEntry, Lsm, ProgramError},
};

use super::hooks::{SYS_EXIT_TRACEPOINT, probe};

/// Whether the kernel accepts one program type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Support {
    /// It loads.
    Available,
    /// The kernel refused it; the reason, such as `EPERM`.
    Refused(String),
}

impl fmt::Display for Support {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Available => f.write_str("available"),
            Self::Refused(why) => write!(f, "refused ({why})"),
        }
    }
}

/// The program types later features may want.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelFeatures {
    /// fentry/fexit programs.
    pub fentry: Support,
    /// BPF LSM programs (which also need `bpf` in the active LSM list to attach).
    pub lsm: Support,
}

impl fmt::Display for KernelFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fentry/fexit {}, BPF LSM {}", self.fentry, self.lsm)
    }
}

/// Loads each probe program and notes what the kernel says.
pub fn probe(btf: &Btf) -> KernelFeatures {
    let mut ebpf = match load_probe_object(btf) {
        Ok(ebpf) => ebpf,
        Err(e) => {
            let why = Support::Refused(reason(&e));
            return KernelFeatures {
                fentry: why.clone(),
                lsm: why,
            };
        }
    };
    let fentry = match ebpf
        .program_mut(probe::FENTRY_PROGRAM)
        .map(<&mut FEntry>::try_from)
    {
        Some(Ok(program)) => outcome(program.load(probe::FENTRY_FUNCTION, btf)),
        _ => Support::Refused("probe program missing".into()),
    };
    let lsm = match ebpf
        .program_mut(probe::LSM_PROGRAM)
        .map(<&mut Lsm>::try_from)
    {
        Some(Ok(program)) => match outcome(program.load(probe::LSM_HOOK, btf)) {
            Support::Available if !bpf_lsm_active() => {
                Support::Refused("loads, but `bpf` is not in the active LSM list".into())
            }
            support => support,
        },
        _ => Support::Refused("probe program missing".into()),
    };
    KernelFeatures { fentry, lsm }
}

/// Why the empty program could not be attached.
#[derive(Debug, thiserror::Error)]
pub enum EmptyHookError {
    /// The probe object was refused.
    #[error("loading the probe object")]
    Load(#[source] EbpfError),
    /// The program is not in the probe object.
    #[error(
        "program {} is missing from the probe object",
        probe::EMPTY_SYS_EXIT_PROGRAM
    )]
    Missing,
    /// The kernel refused to load or attach it.
    #[error(
        "attaching {} to {}",
        probe::EMPTY_SYS_EXIT_PROGRAM,
        SYS_EXIT_TRACEPOINT
    )]
    Program(#[source] ProgramError),
}

/// Benchmarks only: attaches a program that does nothing to the hook of the
/// syscall sensors; it stays attached while the returned object lives. What
/// a syscall costs with it attached is the floor under the sensors' cost.
pub fn attach_empty_sys_exit(btf: &Btf) -> Result<Ebpf, EmptyHookError> {
    let mut ebpf = load_probe_object(btf).map_err(EmptyHookError::Load)?;
    let program: &mut BtfTracePoint = ebpf
        .program_mut(probe::EMPTY_SYS_EXIT_PROGRAM)
        .ok_or(EmptyHookError::Missing)?
        .try_into()
        .map_err(EmptyHookError::Program)?;
    program
        .load(SYS_EXIT_TRACEPOINT, btf)
        .map_err(EmptyHookError::Program)?;
    program.attach().map_err(EmptyHookError::Program)?;
    Ok(ebpf)
}

/// The probe object, relocated against `btf`; each caller loads only the
/// programs it wants.
fn load_probe_object(btf: &Btf) -> Result<Ebpf, EbpfError> {
    EbpfLoader::new().btf(Some(btf)).load(agent_ebpf::PROBE)
}

fn outcome<E: std::error::Error + 'static>(result: Result<(), E>) -> Support {
    match result {
        Ok(()) => Support::Available,
        Err(e) => Support::Refused(reason(&e)),
    }
}

/// The errno name of the first OS error in `error`'s chain, else its message.
fn reason(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(code) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
        {
            return errno_name(code);
        }
        current = e.source();
    }
    error.to_string()
}

fn errno_name(code: i32) -> String {
    match code {
        libc::EPERM => "EPERM".into(),
        libc::EACCES => "EACCES".into(),
        libc::EINVAL => "EINVAL".into(),
        libc::ENOENT => "ENOENT".into(),
        libc::EOPNOTSUPP => "EOPNOTSUPP".into(),
        libc::E2BIG => "E2BIG".into(),
        other => std::io::Error::from_raw_os_error(other).to_string(),
    }
}

fn bpf_lsm_active() -> bool {
    std::fs::read_to_string("/sys/kernel/security/lsm")
        .map(|list| list.trim().split(',').any(|lsm| lsm == "bpf"))
        .unwrap_or(false)
}
