//! The `guardrails` command line: one binary, one subcommand per job.

pub mod client;
pub mod contain;
pub mod events;
pub mod format;
pub mod rules;
pub mod rules_agent;
pub mod rules_bench;
pub mod status;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum, builder::PossibleValuesParser};

pub use client::ConnectArgs;

use crate::{logging::LogFormat, rules::Priority};

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
    /// Print a running agent's events and violations, filtered on the agent.
    Events(Box<EventsArgs>),
    /// Print a running agent's version, sensors, rules, counters and clients.
    Status(StatusArgs),
    /// Check rules files, or replay recorded events through rules; list and
    /// switch the rules of a running agent.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Thaw a container that a `freeze` action froze.
    Thaw(ContainedArgs),
    /// Lift a container's network isolation.
    Lift(ContainedArgs),
    /// Undo everything containment left on this node, with the agent
    /// stopped: thaw frozen containers, detach and unpin the isolation
    /// programs, remove the pin directory.
    Cleanup(CleanupArgs),
    /// Print the CustomResourceDefinitions of the rules resources
    /// (ClusterRuleSet, RuleSet) as YAML, for `kubectl apply -f -`.
    Crds,
    /// Print the version, the event schema version and the kernel wire version.
    Version,
    /// Benchmarks only: attach a program that does nothing to the syscall
    /// sensors' hook, print `attached`, and hold it until stdin closes.
    #[command(hide = true)]
    BenchEmptyHook,
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
    /// List a running agent's rules: name, priority, enabled, tags.
    List(RulesListArgs),
    /// Enable a rule of a running agent until it restarts (also across
    /// rules-file reloads).
    Enable(RuleSwitchArgs),
    /// Disable a rule of a running agent until it restarts (also across
    /// rules-file reloads).
    Disable(RuleSwitchArgs),
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

/// The event kinds, as in events' `kind`.
pub const EVENT_KINDS: [&str; 8] = [
    "process_exec",
    "process_fork",
    "process_exit",
    "syscall",
    "tcp_state",
    "events_lost",
    "violation",
    "action",
];

/// `guardrails events`. Every filter is applied by the agent: a filter that
/// is given must match (AND); a repeated one matches any of its values (OR).
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// How to reach the agent.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Stream live events until Ctrl-C (after replaying those after
    /// --resume-after, if given); without it, print the events the agent
    /// still buffers and exit.
    #[arg(short, long)]
    pub follow: bool,
    /// Only events of this kind; may be repeated.
    #[arg(long = "kind", value_name = "KIND", value_parser = PossibleValuesParser::new(EVENT_KINDS))]
    pub kinds: Vec<String>,
    /// Only violations.
    #[arg(long)]
    pub violations: bool,
    /// Only violations at or above this priority: emergency, alert, critical,
    /// error, warning, notice, informational (or info), debug; any case.
    #[arg(long, value_name = "PRIORITY", value_parser = events::parse_priority)]
    pub min_priority: Option<Priority>,
    /// Only violations of this rule (its exact name); may be repeated.
    #[arg(long = "rule", value_name = "NAME")]
    pub rules: Vec<String>,
    /// Only violations of rules with this tag; may be repeated.
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Only events of pods in this namespace; may be repeated.
    #[arg(short = 'n', long = "namespace", value_name = "NAMESPACE")]
    pub namespaces: Vec<String>,
    /// Only events of this pod (its name); may be repeated.
    #[arg(long = "pod", value_name = "POD")]
    pub pods: Vec<String>,
    /// Only events of pods with this label; may be repeated: the pod must have all.
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE", value_parser = events::parse_label)]
    pub labels: Vec<(String, String)>,
    /// Only events of pods of this workload, `NAME` or `KIND/NAME`
    /// (`Deployment/web`); may be repeated.
    #[arg(long = "workload", value_name = "WORKLOAD")]
    pub workloads: Vec<String>,
    /// Only events of this container: its id, or a prefix of at least 12
    /// characters; may be repeated.
    #[arg(long = "container", value_name = "ID")]
    pub container_ids: Vec<String>,
    /// Only events of processes with this name (`comm`); may be repeated.
    #[arg(long = "process-name", value_name = "NAME")]
    pub process_names: Vec<String>,
    /// Only events of processes whose executable is this path, or is below it
    /// when it ends in `/`; may be repeated.
    #[arg(long = "process-path", value_name = "PATH")]
    pub process_paths: Vec<String>,
    /// Keep only this field of each event, a dotted path such as
    /// `process.pid`; may be repeated. `schema_version`, `kind` and `time`
    /// are always kept.
    #[arg(long = "field", value_name = "PATH")]
    pub fields: Vec<String>,
    /// Start after this event: `RUN_ID:SEQUENCE`, as printed when a previous
    /// `guardrails events` ended.
    #[arg(long, value_name = "RUN_ID:SEQUENCE", value_parser = events::parse_cursor)]
    pub resume_after: Option<proto::v1::Cursor>,
    /// Output: `json` (each event as received, one per line), `compact` (one
    /// line for people) or `table`; compact on a terminal, json otherwise.
    #[arg(short, long, value_enum, value_name = "FORMAT")]
    pub output: Option<EventsFormat>,
}

/// `guardrails events --output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EventsFormat {
    /// Each event's JSON exactly as received, one per line.
    Json,
    /// One line per event for people; coloured on a terminal unless NO_COLOR is set.
    Compact,
    /// Aligned columns, cut to the terminal's width ($COLUMNS, else 120).
    Table,
}

/// `guardrails status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// How to reach the agent.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Output: `text` (aligned lines) or `json` (one object).
    #[arg(short, long, value_enum, value_name = "FORMAT", default_value_t = StatusFormat::Text)]
    pub output: StatusFormat,
}

/// `guardrails status --output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    /// Aligned `key: value` lines.
    Text,
    /// One JSON object.
    Json,
}

/// `guardrails rules list`.
#[derive(Debug, Args)]
pub struct RulesListArgs {
    /// How to reach the agent.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Output: `table` (aligned columns) or `json` (one array).
    #[arg(short, long, value_enum, value_name = "FORMAT", default_value_t = RulesFormat::Table)]
    pub output: RulesFormat,
}

/// `guardrails rules list --output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RulesFormat {
    /// Aligned columns: NAME, PRIORITY, ENABLED, TAGS.
    Table,
    /// One JSON array of rules.
    Json,
}

/// `guardrails thaw` and `guardrails lift`.
#[derive(Debug, Args)]
pub struct ContainedArgs {
    /// The container: its id (at least 12 characters) or its cgroup v2 id,
    /// as `guardrails status` lists them.
    pub container: String,
    /// How to reach the agent.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `guardrails cleanup`.
#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// The pin directory (the config's `containment.pin_dir`).
    #[arg(long, default_value = crate::actions::config::DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
}

/// `guardrails rules enable` and `guardrails rules disable`.
#[derive(Debug, Args)]
pub struct RuleSwitchArgs {
    /// The rule's exact name (quote it: rule names have spaces).
    pub name: String,
    /// How to reach the agent.
    #[command(flatten)]
    pub connect: ConnectArgs,
}
