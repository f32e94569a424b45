//! Containment actions taken when a rule matches.

pub mod kernel_kill;
