//! The agent's kernel programs, compiled from `bpf/` by `build.rs` and embedded.
//!
//! [`SENSORS`] holds every sensor hook linked into one object with one set of
//! shared maps; [`CONTAIN`] holds the containment programs and maps, which are
//! pinned and outlive the agent; [`PROBE`] holds programs that are only loaded to learn which
//! program types the running kernel accepts.
#![deny(missing_docs)]

#[repr(C, align(8))]
struct Aligned<B: ?Sized>(B);

static SENSORS_OBJECT: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/sensors.bpf.o")));
static CONTAIN_OBJECT: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/contain.bpf.o")));
static PROBE_OBJECT: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/probe.bpf.o")));

/// The sensors object (ELF, with BTF), 8-byte aligned as the ELF parser wants.
pub static SENSORS: &[u8] = &SENSORS_OBJECT.0;

/// The containment object (ELF, with BTF): the isolation programs, the
/// allow-list, the drop counters and the ledger. Never linked with the sensors.
pub static CONTAIN: &[u8] = &CONTAIN_OBJECT.0;

/// The feature-probe object (ELF, with BTF).
pub static PROBE: &[u8] = &PROBE_OBJECT.0;
