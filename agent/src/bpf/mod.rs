//! Loading the kernel programs, handing out typed map handles, and learning
//! what the kernel accepts.
//!
//! The sensors object (`agent_ebpf::SENSORS`) holds every hook and one set of
//! shared maps. [`loader::Sensors::load`] sizes the ring buffer, writes the
//! config and scope maps, then attaches the hooks of the enabled sensors;
//! dropping the returned value detaches them all.

pub mod features;
pub mod hooks;
pub mod kfuncs;
pub mod loader;
pub mod ring;
pub mod syscalls;

pub use loader::{BpfError, Sensors};
