//! Containment: what the agent does about a violation, from monitor to
//! enforce.
//!
//! Data flows one way: the rules step raises violations, [`stage`] plans the
//! actions bound to each rule with [`policy`], checks them against the
//! safety limits, carries them out in enforce mode and emits one `action`
//! event per action, with its result, after the violation. The mechanisms:
//! [`kernel_kill`] (at exec) and [`pidfd`] kill, [`containment`] freezes
//! and isolates with state pinned in the kernel ([`ledger`]), [`label`]
//! marks the pod; [`cleanup`] undoes what containment left behind.

pub mod action;
pub mod cleanup;
pub mod config;
pub mod containment;
pub mod freeze;
pub mod isolate;
pub mod kernel_kill;
pub mod label;
pub mod ledger;
pub mod metrics;
pub mod pidfd;
pub mod policy;
pub mod ratelimit;
pub mod stage;

pub use action::{Action, Mode};
