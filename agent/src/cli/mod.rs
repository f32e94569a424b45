//! The `guardrails` command line: one binary, one subcommand per job.

pub mod rules;
pub mod rules_bench;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::logging::LogFormat;

/// Runtime Guardrails: Kubernetes runtime security on every node.
#[derive(Debug, Parser)]
#[command(name = "guardrails", version, propagate_version = true)]
pub struct Cli {
    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives.
    #[arg(long, global = true, default_value = "info", env = "GUARDRAILS_LOG")]
    pub log_level: String,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the node agent: load the sensors and stream events until SIGINT or SIGTERM.
    Agent(AgentArgs),
    /// Check rules files, or replay recorded events through rules.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Print the version, the event schema version and the kernel wire version.
    Version,
}

/// `guardrails rules ...`.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Load and compile rules files; report every problem with its file,
    /// line, column and rule, and exit non-zero if there is one.
    Check(RulesCheckArgs),
    /// Replay recorded events (the JSON lines of `agent --stdout`) through
    /// rules and print each violation as one JSON line.
    Test(RulesTestArgs),
    /// Benchmarks only: time loading the rules, then evaluating recorded
    /// events in memory, and print the figures as one JSON line.
    #[command(hide = true)]
    Bench(RulesBenchArgs),
}

/// `guardrails rules bench` (hidden; used by `cargo xtask bench rules`).
#[derive(Debug, Args)]
pub struct RulesBenchArgs {
    /// Rules files, loaded in order; may be repeated.
    #[arg(long = "rules", required = true)]
    pub rules: Vec<PathBuf>,
    /// Load the built-in default rules before the files.
    #[arg(long)]
    pub with_defaults: bool,
    /// Recorded events (the JSON lines of `agent --stdout`), read once
    /// before anything is timed.
    #[arg(long)]
    pub events: PathBuf,
    /// How long each timed evaluation loop runs, in seconds.
    #[arg(long, default_value_t = 1.0)]
    pub seconds: f64,
    /// Rounds of (empty rule set, the rules) loops; the best of each counts.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// How many times the rules are loaded and compiled; the median counts.
    #[arg(long, default_value_t = 11)]
    pub loads: usize,
    /// Threads for the multi-threaded loop, as the agent's rule workers.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Also time each enabled rule's condition and each field alone.
    #[arg(long)]
    pub profile: bool,
}

/// `guardrails rules check`.
#[derive(Debug, Args)]
pub struct RulesCheckArgs {
    /// Rules files, loaded in order (later files refine earlier ones).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Load the built-in default rules before the files, as the agent does.
    #[arg(long)]
    pub with_defaults: bool,
}

/// `guardrails rules test`.
#[derive(Debug, Args)]
pub struct RulesTestArgs {
    /// Rules files, loaded in order; may be repeated.
    #[arg(long = "rules", required = true)]
    pub rules: Vec<PathBuf>,
    /// Recorded events, one JSON object per line.
    #[arg(long)]
    pub events: PathBuf,
    /// Load the built-in default rules before the files.
    #[arg(long)]
    pub with_defaults: bool,
    /// Report only the first matching rule per event, as Falco's `first` mode.
    #[arg(long)]
    pub first: bool,
}

/// `guardrails agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Config file; when not given, /etc/guardrails/config.yaml is read if it exists.
    #[arg(long, env = "GUARDRAILS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print every event to stdout as one JSON object per line.
    #[arg(long)]
    pub stdout: bool,
    /// The node's name in events (overrides the config's node_name).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// A rules file to load after those of the config; may be repeated.
    #[arg(long = "rules")]
    pub rules: Vec<PathBuf>,
}
