//! The `guardrails` binary: parse the command line, start logging, load the
//! config, then run the subcommand.

use std::{
    io::{IsTerminal, Write},
    process::ExitCode,
};

use anyhow::Context;
use clap::Parser;
use guardrails::{
    cli::{
        AgentArgs, Cli, Command, EventsArgs, RulesCommand, contain, events, format, rules,
        rules_agent, rules_bench, status,
    },
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
        Command::Events(args) => return client_command(|| events_command(&args)),
        Command::Status(args) => {
            return client_command(|| block_on(status::run(&args, &mut std::io::stdout().lock())));
        }
        Command::Rules(command) => return rules_command(&command),
        Command::Thaw(args) => {
            return client_command(|| {
                block_on(contain::undo(&args, false, &mut std::io::stdout().lock()))
            });
        }
        Command::Lift(args) => {
            return client_command(|| {
                block_on(contain::undo(&args, true, &mut std::io::stdout().lock()))
            });
        }
        Command::Cleanup(args) => contain::cleanup(&args, &mut std::io::stdout().lock()),
        Command::Crds => guardrails::kube::crd::definitions()
            .context("rendering the CustomResourceDefinitions")
            .and_then(|text| {
                std::io::stdout()
                    .lock()
                    .write_all(text.as_bytes())
                    .context("writing to stdout")
            }),
        Command::Version => {
            version();
            Ok(())
        }
        Command::BenchEmptyHook => empty_hook(),
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
/// per line, so that editors and CI can read them. `list`, `enable` and
/// `disable` talk to a running agent.
fn rules_command(command: &RulesCommand) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    // Not locked throughout: a client command's logging writes to stderr too.
    let mut stderr = std::io::stderr();
    let result = match command {
        RulesCommand::Check(args) => rules::check(args, &mut stdout, &mut stderr),
        RulesCommand::Test(args) => rules::test(args, &mut stdout, &mut stderr),
        RulesCommand::Bench(args) => rules_bench::run(args, &mut stdout),
        RulesCommand::List(args) => {
            return client_command(|| block_on(rules_agent::list(args, &mut stdout)));
        }
        RulesCommand::Enable(args) => {
            return client_command(|| block_on(rules_agent::set_enabled(args, true, &mut stdout)));
        }
        RulesCommand::Disable(args) => {
            return client_command(|| block_on(rules_agent::set_enabled(args, false, &mut stdout)));
        }
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

/// Runs a command that talks to a running agent; its output goes to
/// stdout, an error to stderr as one line.
fn client_command(run: impl FnOnce() -> anyhow::Result<()>) -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a client command's future on a runtime of its own thread.
fn block_on<T, E>(future: impl Future<Output = Result<T, E>>) -> anyhow::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    Ok(runtime.block_on(future)?)
}

/// `guardrails events`: compact lines on a terminal, JSON lines otherwise,
/// unless `--output` says.
fn events_command(args: &EventsArgs) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let is_terminal = stdout.is_terminal();
    let mut printer = format::Printer::new(
        args.output
            .unwrap_or_else(|| format::default_format(is_terminal)),
        format::use_color(is_terminal, std::env::var_os("NO_COLOR").as_deref()),
        format::terminal_width(std::env::var("COLUMNS").ok().as_deref()),
    );
    block_on(events::run(
        args,
        &mut printer,
        &mut stdout.lock(),
        // Not locked throughout: logging writes to stderr too.
        &mut std::io::stderr(),
    ))
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

/// `guardrails bench-empty-hook` (hidden; used by `cargo xtask bench sensors`).
fn empty_hook() -> anyhow::Result<()> {
    let btf = aya::Btf::from_sys_fs().context("reading the kernel's BTF")?;
    let _attached = guardrails::bpf::features::attach_empty_sys_exit(&btf)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "attached")
        .and_then(|()| stdout.flush())
        .context("writing to stdout")?;
    // Attached until the benchmark closes our stdin.
    std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink()).context("reading stdin")?;
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
