//! `cargo xtask bench start`: how long a node is without the agent's
//! programs during a rolling update. The old agent detaches its programs as
//! the first step of its shutdown; the new one attaches them as the last
//! step of its start. The gap is at least the old one's time from SIGTERM to
//! exit plus the new one's time from exec to attached (the kubelet's own
//! steps come on top).

use std::time::{Duration, Instant};

use anyhow::ensure;

use super::common::{Agent, config_head};

/// Starts and stops measured.
const RUNS: usize = 7;

pub(super) fn start() -> anyhow::Result<()> {
    ensure!(
        crate::is_root(),
        "the benchmark loads kernel programs: run it as root"
    );
    crate::deps()?;
    let binary = crate::build_release_agent()?;
    // The DaemonSet's shape: the whole node, every sensor, the default
    // rules, the API and /metrics.
    let dir = std::env::temp_dir().join(format!("guardrails-bench-start-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = format!(
        "{}metrics:\n  address: 127.0.0.1:0\napi:\n  socket: {:?}\ncontainment:\n  pin_dir: {:?}\n",
        config_head(),
        dir.join("agent.sock").display().to_string(),
        dir.join("pins").display().to_string(),
    );
    let mut starts = Vec::new();
    let mut stops = Vec::new();
    for run in 0..RUNS {
        eprintln!("xtask: start and stop {}/{RUNS}", run + 1);
        let agent = Agent::start(&binary, &config)?;
        starts.push(agent.attached_after);
        let stopping = Instant::now();
        agent.stop()?;
        stops.push(stopping.elapsed());
    }
    let _ = std::fs::remove_dir_all(&dir);
    report(&mut starts, &mut stops);
    Ok(())
}

#[expect(
    clippy::print_stdout,
    reason = "the figures are the benchmark's output"
)]
fn report(starts: &mut [Duration], stops: &mut [Duration]) {
    starts.sort_unstable();
    stops.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let median = |v: &[Duration]| v[v.len() / 2];
    let machine = super::common::Machine::read();
    println!();
    println!("Runtime Guardrails: start and stop (cargo xtask bench start)");
    println!("  date     {}", machine.date);
    println!("  kernel   {}", machine.kernel);
    println!("  cpu      {} ({} CPUs)", machine.cpu_model, machine.cpus);
    println!("  runs     {RUNS}, release build, whole node, every sensor, default rules");
    println!();
    println!("| figure | median | min | max |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, values) in [
        ("exec to sensors attached", &*starts),
        ("SIGTERM to exit (programs detached first)", &*stops),
    ] {
        println!(
            "| {name} | {:.0} ms | {:.0} ms | {:.0} ms |",
            ms(median(values)),
            ms(values[0]),
            ms(values[values.len() - 1])
        );
    }
    let gap = median(starts) + median(stops);
    println!(
        "| a node without programs in a rolling update, at least | {:.0} ms | | |",
        ms(gap)
    );
}
