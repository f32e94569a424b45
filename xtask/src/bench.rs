//! `cargo xtask bench <target>`: measurements of the agent, printed beside
//! their targets; nothing is asserted. Each target is a module:
//!
//! - `sensors`: what the sensors cost per syscall, decode throughput, RSS,
//!   exec-heavy overhead;
//! - `rules`: loading and compiling rules, rule evaluation throughput on
//!   recorded events, and the whole agent with rules under an open/close
//!   flood;
//! - `grpc`: events over the gRPC API's Unix socket: what one client
//!   receives, what ten clients with different filters and a stalled client
//!   cost, and the replay buffer sent to one client;
//! - `start`: the agent's start (exec to programs attached) and stop, which
//!   bound how long a rolling update leaves a node without its programs.
//!
//! Loops run in child processes (this binary re-executed with a hidden
//! target), never in the xtask process.

mod common;
mod grpc;
mod rules;
mod sensors;
mod start;

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
    /// Events over the gRPC API: one client's throughput (getppid and open
    /// events, live and from the replay buffer), ten clients with different
    /// filters against none, a reading client beside a stalled one (root;
    /// builds the agent in release mode).
    Grpc {
        /// Rounds of the live runs; the best of each configuration counts.
        #[arg(long, default_value_t = 2)]
        rounds: u32,
    },
    /// The agent's start and stop times, which bound a rolling update's gap
    /// (root; builds the agent in release mode).
    Start,
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
        /// Calls per second, spread evenly; 0 for as fast as it can.
        #[arg(long, default_value_t = 0)]
        rate: u64,
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
    /// Internal: join a cgroup, pin to a CPU, run /bin/true from /bin/sh
    /// `iterations` times, and print `iterations total_ns`.
    #[command(hide = true)]
    ExecLoop {
        #[arg(long)]
        cgroup: PathBuf,
        #[arg(long)]
        cpu: usize,
        #[arg(long)]
        iterations: u32,
    },
    /// Internal: open streams of the agent's API on `socket`, one per
    /// `--client`, print `ready`, read until stdin closes and the streams
    /// are idle (with `--replay`: until the replay ends), and print the
    /// figures as JSON; pinned to `cpu`, or else to the agent's CPUs.
    #[command(hide = true)]
    GrpcClients {
        #[arg(long)]
        socket: PathBuf,
        #[arg(long = "client", value_enum)]
        clients: Vec<grpc::Preset>,
        #[arg(long)]
        replay: bool,
        #[arg(long)]
        cpu: Option<usize>,
    },
}

/// Runs `target`.
pub fn run(target: BenchTarget) -> anyhow::Result<()> {
    // `cargo run` gives this process an LD_LIBRARY_PATH of build directories.
    // The loads would inherit it: every program a shell loop runs would have
    // its dynamic loader search those directories first, a dozen failed
    // opens per exec that a host's processes do not make and the agent
    // would see. The loads and the agent run with the host's environment.
    //
    // SAFETY: nothing else runs yet: no thread has been spawned, so none
    // reads the environment while it changes.
    unsafe { std::env::remove_var("LD_LIBRARY_PATH") };
    match target {
        BenchTarget::Sensors => sensors::sensors(),
        BenchTarget::Rules { save_events } => rules::rules(save_events.as_deref()),
        BenchTarget::Grpc { rounds } => grpc::grpc(rounds),
        BenchTarget::Start => start::start(),
        BenchTarget::GetppidLoop {
            cgroup,
            cpu,
            calls,
            reps,
            warmup,
            rate,
        } => sensors::getppid_loop(&cgroup, cpu, calls, reps, warmup, rate),
        BenchTarget::Sleepers { cgroup, count } => sensors::sleepers(&cgroup, count),
        BenchTarget::OpenCloseLoop {
            cgroup,
            cpu,
            seconds,
            path,
        } => rules::open_close_loop(&cgroup, cpu, seconds, &path),
        BenchTarget::ExecLoop {
            cgroup,
            cpu,
            iterations,
        } => grpc::exec_loop(&cgroup, cpu, iterations),
        BenchTarget::GrpcClients {
            socket,
            clients,
            replay,
            cpu,
        } => grpc::clients(&socket, &clients, replay, cpu),
    }
}
