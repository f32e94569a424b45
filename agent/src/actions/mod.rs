//! Containment: what the agent does about a violation, from monitor to
//! enforce.
//!
//! Data flows one way: the rules step raises violations, [`stage`] plans the
//! actions bound to each rule with [`policy`], checks them against the
//! safety limits, carries them out in enforce mode and emits one `action`
//! event per action, with its result, after the violation.

pub mod action;
pub mod config;
pub mod pidfd;
pub mod policy;
pub mod ratelimit;

pub use action::{Action, Mode};
