//! The `guardrails` binary: parse the command line, start logging, load the
//! config, then run the subcommand.

use std::{io::Write, process::ExitCode};

use anyhow::Context;
use clap::Parser;
use guardrails::{
    cli::{AgentArgs, Cli, Command, RulesCommand, rules, rules_bench},
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
        Command::Rules(command) => return rules_command(&command),
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

/// Runs a rules command; its results go to stdout, problems to stderr, one
/// per line, so that editors and CI can read them.
fn rules_command(command: &RulesCommand) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    let result = match command {
        RulesCommand::Check(args) => rules::check(args, &mut stdout, &mut stderr),
        RulesCommand::Test(args) => rules::test(args, &mut stdout, &mut stderr),
        RulesCommand::Bench(args) => rules_bench::run(args, &mut stdout),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(rules::RulesCommandError::Rules(e)) => {
            for diagnostic in &e.0 {
                let _ = writeln!(stderr, "{diagnostic}");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            let _ = writeln!(stderr, "error: {e}");
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
        rules: args.rules,
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
