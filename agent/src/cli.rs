//! The `guardrails` command line: one binary, one subcommand per job.

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
    /// Print the version, the event schema version and the kernel wire version.
    Version,
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
}
