//! The `guardrails` binary: parse the command line, start logging, load the
//! config, then run the subcommand.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use guardrails::{
    cli::{AgentArgs, Cli, Command},
    config::Config,
    daemon::{self, AgentOptions},
    events::SCHEMA_VERSION,
    logging,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = logging::init(&cli.log_level, cli.log_format) {
        #[expect(clippy::print_stderr, reason = "logging could not start")]
        {
            eprintln!("error: {e}");
        }
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Agent(args) => agent(args),
        Command::Version => {
            version();
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes, outermost first.
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn agent(args: AgentArgs) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let options = AgentOptions {
        stdout: args.stdout,
        node_name: args.node_name,
    };
    runtime.block_on(daemon::run(config, options))?;
    Ok(())
}

#[expect(clippy::print_stdout, reason = "the version is the command's output")]
fn version() {
    println!(
        "guardrails {} (event schema {SCHEMA_VERSION}, kernel wire {})",
        env!("CARGO_PKG_VERSION"),
        agent_common::WIRE_VERSION
    );
}
