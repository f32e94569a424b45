//! Containment actions: freezing and isolating containers, with state pinned in the kernel.

pub mod cleanup;
pub mod containment;
pub mod freeze;
pub mod isolate;
pub mod ledger;
