//! `cargo xtask bench <target>`: measurements of the agent, printed beside
//! their targets; nothing is asserted. Each target is a module:
//!
//! - `sensors`: what the sensors cost per syscall, decode throughput, RSS,
//!   exec-heavy overhead;
//! - `rules`: loading and compiling rules, rule evaluation throughput on
//!   recorded events, and the whole agent with rules under an open/close
//!   flood.
//!
//! Loops run in child processes (this binary re-executed with a hidden
//! target), never in the xtask process.

mod common;
mod rules;
mod sensors;

use std::path::PathBuf;

use clap::Subcommand;

/// `cargo xtask bench <target>`.
#[derive(Debug, Subcommand)]
pub enum BenchTarget {
    /// Sensor overhead per syscall, decode throughput, RSS with 10,000
    /// processes, exec-heavy overhead (root; builds the agent in release mode).
    Sensors,
    /// Loading Falco's stable rules, rule evaluation throughput on a
    /// recorded mix of events, and the agent with those rules under an
    /// open/close flood (root; builds the agent in release mode).
    Rules {
        /// Also keep the recorded events in this file (JSON lines), to replay
        /// them later with `guardrails rules bench`.
        #[arg(long)]
        save_events: Option<PathBuf>,
    },
    /// Internal: join a cgroup, pin to a CPU, time loops of getppid(2) and
    /// print `best_ns_per_call total_ns total_calls`.
    #[command(hide = true)]
    GetppidLoop {
        #[arg(long)]
        cgroup: PathBuf,
        #[arg(long)]
        cpu: usize,
        #[arg(long)]
        calls: u64,
        #[arg(long)]
        reps: u32,
        #[arg(long)]
        warmup: u64,
    },
    /// Internal: join a cgroup, fork that many children that pause, print
    /// `ready`, and kill and reap them all when stdin closes.
    #[command(hide = true)]
    Sleepers {
        #[arg(long)]
        cgroup: PathBuf,
        #[arg(long)]
        count: usize,
    },
    /// Internal: join a cgroup, pin to a CPU, open and close `path` as fast
    /// as possible for `seconds`, and print `calls total_ns`.
    #[command(hide = true)]
    OpenCloseLoop {
        #[arg(long)]
        cgroup: PathBuf,
        #[arg(long)]
        cpu: usize,
        #[arg(long)]
        seconds: f64,
        #[arg(long)]
        path: PathBuf,
    },
}

/// Runs `target`.
pub fn run(target: BenchTarget) -> anyhow::Result<()> {
    match target {
        BenchTarget::Sensors => sensors::sensors(),
        BenchTarget::Rules { save_events } => rules::rules(save_events.as_deref()),
        BenchTarget::GetppidLoop {
            cgroup,
            cpu,
            calls,
            reps,
            warmup,
        } => sensors::getppid_loop(&cgroup, cpu, calls, reps, warmup),
        BenchTarget::Sleepers { cgroup, count } => sensors::sleepers(&cgroup, count),
        BenchTarget::OpenCloseLoop {
            cgroup,
            cpu,
            seconds,
            path,
        } => rules::open_close_loop(&cgroup, cpu, seconds, &path),
    }
}
