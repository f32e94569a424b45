//! Containment actions: freezing and isolating containers, with state pinned in the kernel.

pub mod freeze;
