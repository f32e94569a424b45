//! `cargo xtask bench rules`: what the rules cost.
//!
//! 1. Loading and compiling Falco's stable `falco_rules.yaml` (kept beside
//!    the project, never copied into it) plus our default rules: the median
//!    of several loads.
//! 2. Evaluation throughput on one thread, on a mix of events recorded in
//!    this run: the release agent with `--stdout`, scoped to a fresh cgroup,
//!    records a shell workload there (execs of common tools, opens and reads
//!    of many paths, TCP connects to a local listener); the hidden
//!    `guardrails rules bench` then replays the recording in memory (events
//!    are deserialized before anything is timed), against an empty rule set
//!    (the baseline) and against the rules, and again on as many threads as
//!    the agent has rule workers. It also times each rule and each field
//!    alone, to show where evaluation time goes.
//! 3. The whole agent with `falco_rules.yaml` under an open/close flood: one
//!    pinned process in a fresh cgroup opens and closes a file as fast as it
//!    can, without and with the agent (scoped to that cgroup, events counted,
//!    not printed); events received and lost, the agent's CPU time per event
//!    (utime+stime from /proc), the kernel programs' time per event
//!    (`bpf_stats`), the agent's RSS.
//!
//! Nothing is asserted: the figures and the targets are printed side by side.

use std::{
    ffi::{CString, OsStr},
    io::{Read as _, Write as _},
    net::TcpListener,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use serde_json::Value;

use super::common::{
    Agent, BpfFigures, BpfStatsOn, Cgroup, Machine, Memory, RulesTally, Tally, bpf_delta,
    bpf_program_ids, bpf_programs, cgroup2_mount, change_percent, config_head, cpu_ticks,
    join_cgroup, loop_cpu, memory, pin_to_cpu, ticks_to_ns, unique, wait_until_idle,
};

/// Falco's stable rules, relative to the workspace root.
const FALCO_RULES: &str = "../shared/compat/falco-rules/falco_rules.yaml";
/// Rounds of the recorded workload.
const WORKLOAD_ROUNDS: u32 = 20;
/// Loads of the rules for the load+compile figure.
const LOADS: usize = 11;
/// Seconds of each timed evaluation loop, and rounds of (baseline, rules).
const EVAL_SECONDS: f64 = 1.0;
const EVAL_ROUNDS: u32 = 3;
/// The agent's rule workers (its default).
const WORKERS: usize = 2;
/// Seconds of each open/close flood.
const FLOOD_SECONDS: f64 = 5.0;
/// How long the agent may take to go idle after the flood.
const DRAIN_LIMIT: Duration = Duration::from_secs(20);

/// Targets.
const LOAD_TARGET_MS: f64 = 50.0;
const EVAL_TARGET_PER_S: f64 = 3e6;
const CPU_TARGET_NS: f64 = 280.0;

/// The shell workload, run by bash in the recording cgroup: `$1` is the
/// listener's port, `$2` the rounds.
const WORKLOAD: &str = r#"
port=$1
rounds=$2
i=0
while [ "$i" -lt "$rounds" ]; do
  ls -l /etc >/dev/null
  cat /etc/hostname /etc/os-release >/dev/null
  id >/dev/null
  uname -a >/dev/null
  grep -c root /etc/passwd >/dev/null
  head -c 256 /etc/services >/dev/null
  sed -n 1p /etc/group >/dev/null
  date +%s >/dev/null
  env >/dev/null
  stat /etc/hosts >/dev/null
  head -q -c 64 /etc/* /etc/*/* /usr/lib/os-release /proc/self/status /proc/cpuinfo \
    /proc/meminfo >/dev/null 2>&1
  find /etc -maxdepth 2 -name '*.conf' >/dev/null 2>&1
  head -c 1 /etc/shadow >/dev/null 2>&1
  for c in 1 2 3 4 5; do
    exec 3<>"/dev/tcp/127.0.0.1/$port" && exec 3>&-
  done
  i=$((i + 1))
done
"#;

pub(super) fn rules(save_events: Option<&Path>) -> anyhow::Result<()> {
    ensure!(
        crate::is_root(),
        "the benchmark loads kernel programs and makes cgroups: run it as root"
    );
    crate::deps()?;
    let agent = crate::build_release_agent()?;
    let falco = crate::workspace_root().join(FALCO_RULES);
    let falco = falco
        .canonicalize()
        .with_context(|| format!("Falco's stable rules are expected at {}", falco.display()))?;
    let mount = cgroup2_mount()?;
    let cpu = loop_cpu()?;

    eprintln!("xtask: [1/4] recording a workload of execs, opens and connects");
    let recording = record(&agent, &mount)?;
    eprintln!(
        "xtask:   {} events recorded ({} records, {} lost)",
        recording.lines, recording.tally.records, recording.tally.lost
    );
    eprintln!("xtask: [2/4] loading the rules and replaying the recording");
    let replay = replay(&agent, &falco, &recording.path);
    if let Some(keep) = save_events {
        std::fs::copy(&recording.path, keep)
            .with_context(|| format!("saving the recording to {}", keep.display()))?;
    }
    let _ = std::fs::remove_file(&recording.path);
    let replay = replay?;
    eprintln!("xtask: [3/4] open/close flood, without and with the agent");
    let flood = flood(&agent, &falco, &mount, cpu)?;
    eprintln!("xtask: [4/4] done");
    report(&Machine::read(), cpu, &recording, &replay, &flood);
    Ok(())
}

// ---------------------------------------------------------------------------
// 1: the recording

#[derive(Debug)]
struct Recording {
    path: PathBuf,
    lines: u64,
    tally: Tally,
    took: Duration,
}

fn record(agent: &Path, mount: &Path) -> anyhow::Result<Recording> {
    let cgroup = Cgroup::create(mount, "record")?;
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a local listener")?;
    let port = listener
        .local_addr()
        .context("the listener's address")?
        .port();
    // Accepts and drops connections until the process ends.
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });
    let path = std::env::temp_dir().join(format!(
        "guardrails-bench-events-{}-{}.jsonl",
        std::process::id(),
        unique()
    ));
    let file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    // Rules off while recording: the raw events are what is replayed.
    let config = format!(
        "{}rules:\n  defaults: false\nscope:\n  cgroups: [{:?}]\n",
        config_head(),
        cgroup.path.display().to_string()
    );
    let recorded = (|| {
        let running = Agent::start_with(agent, &config, &[OsStr::new("--stdout")], Some(file))?;
        let started = Instant::now();
        // sh joins the cgroup, then becomes bash running the workload.
        let status = Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"echo 0 > "$1/cgroup.procs" && shift && exec bash -c "$@""#)
            .arg("sh")
            .arg(&cgroup.path)
            .arg(WORKLOAD)
            .arg("workload")
            .arg(port.to_string())
            .arg(WORKLOAD_ROUNDS.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .context("running the workload")?;
        let took = started.elapsed();
        ensure!(status.success(), "the workload exited with {status}");
        let tally = running.stop()?;
        Ok((tally, took))
    })();
    let (tally, took) = match recorded {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
    };
    let mut text = String::new();
    std::fs::File::open(&path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .with_context(|| format!("reading {}", path.display()))?;
    let lines = text.lines().filter(|l| !l.trim().is_empty()).count() as u64;
    ensure!(lines > 0, "the agent recorded no events of the workload");
    Ok(Recording {
        path,
        lines,
        tally,
        took,
    })
}

// ---------------------------------------------------------------------------
// 2: load, compile and evaluate (`guardrails rules bench`)

fn replay(agent: &Path, falco: &Path, events: &Path) -> anyhow::Result<Value> {
    let output = Command::new(agent)
        .args(["rules", "bench", "--with-defaults", "--profile", "--rules"])
        .arg(falco)
        .arg("--events")
        .arg(events)
        .args(["--seconds", &EVAL_SECONDS.to_string()])
        .args(["--rounds", &EVAL_ROUNDS.to_string()])
        .args(["--loads", &LOADS.to_string()])
        .args(["--workers", &WORKERS.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {} rules bench", agent.display()))?;
    ensure!(
        output.status.success(),
        "guardrails rules bench failed with {}",
        output.status
    );
    serde_json::from_slice(&output.stdout).context("parsing the figures of guardrails rules bench")
}

// ---------------------------------------------------------------------------
// 3: the open/close flood

#[derive(Debug)]
struct FloodFigures {
    bare: LoopRun,
    /// The agent with `falco_rules.yaml` and the defaults.
    rules: AgentFlood,
    /// The agent with no rules at all: what decoding and enriching cost.
    no_rules: AgentFlood,
}

/// One flood with the agent running.
#[derive(Debug)]
struct AgentFlood {
    with: LoopRun,
    tally: Tally,
    rules: RulesTally,
    cpu_ns: u64,
    bpf: BpfFigures,
    memory: Memory,
    idle_memory: Memory,
}

impl AgentFlood {
    #[expect(clippy::cast_precision_loss, reason = "a figure")]
    fn cpu_ns_per_event(&self) -> f64 {
        self.cpu_ns as f64 / self.tally.delivered.max(1) as f64
    }
}

#[derive(Clone, Copy, Debug)]
struct LoopRun {
    calls: u64,
    ns: u64,
}

impl LoopRun {
    #[expect(clippy::cast_precision_loss, reason = "a rate")]
    fn rate(self) -> f64 {
        self.calls as f64 / (self.ns as f64 / 1e9).max(1e-9)
    }
}

fn flood(agent: &Path, falco: &Path, mount: &Path, cpu: usize) -> anyhow::Result<FloodFigures> {
    let cgroup = Cgroup::create(mount, "flood")?;
    let target = std::env::temp_dir().join(format!(
        "guardrails-bench-flood-{}-{}",
        std::process::id(),
        unique()
    ));
    std::fs::write(&target, "x").with_context(|| format!("creating {}", target.display()))?;
    let measured = flood_in(agent, falco, &cgroup, cpu, &target);
    let _ = std::fs::remove_file(&target);
    measured
}

fn flood_in(
    agent: &Path,
    falco: &Path,
    cgroup: &Cgroup,
    cpu: usize,
    target: &Path,
) -> anyhow::Result<FloodFigures> {
    let bare = open_close(cgroup, cpu, target)?;
    eprintln!(
        "xtask:   without agent       {:.2} M open+close/s",
        bare.rate() / 1e6
    );
    let scope = format!(
        "scope:\n  cgroups: [{:?}]\n",
        cgroup.path.display().to_string()
    );
    let stats = BpfStatsOn::enable()?;
    let rules = flood_with_agent(
        agent,
        &format!("{}{scope}", config_head()),
        &[OsStr::new("--rules"), falco.as_os_str()],
        cgroup,
        cpu,
        target,
    )?;
    eprintln!(
        "xtask:   agent with rules    {:.2} M open+close/s, {} records, {} lost",
        rules.with.rate() / 1e6,
        rules.tally.records,
        rules.tally.lost
    );
    let no_rules = flood_with_agent(
        agent,
        &format!("{}rules:\n  defaults: false\n{scope}", config_head()),
        &[],
        cgroup,
        cpu,
        target,
    )?;
    eprintln!(
        "xtask:   agent without rules {:.2} M open+close/s, {} records, {} lost",
        no_rules.with.rate() / 1e6,
        no_rules.tally.records,
        no_rules.tally.lost
    );
    drop(stats);
    Ok(FloodFigures {
        bare,
        rules,
        no_rules,
    })
}

/// Starts the agent, runs the flood, waits until the agent is idle again
/// (it has drained), and stops it.
fn flood_with_agent(
    agent: &Path,
    config: &str,
    args: &[&OsStr],
    cgroup: &Cgroup,
    cpu: usize,
    target: &Path,
) -> anyhow::Result<AgentFlood> {
    let before_ids = bpf_program_ids()?;
    let running = Agent::start_with(agent, config, args, None)?;
    let pid = running.pid();
    let idle_memory = memory(pid)?;
    let bpf_before = bpf_programs()?;
    let cpu_before = cpu_ticks(pid)?;
    let with = open_close(cgroup, cpu, target)?;
    let last = wait_until_idle(pid, DRAIN_LIMIT)?;
    let bpf_after = bpf_programs()?;
    let memory = memory(pid)?;
    let (tally, rules) = running.stop_with_rules()?;
    let ticks = last.saturating_sub(cpu_before);
    Ok(AgentFlood {
        with,
        tally,
        rules,
        cpu_ns: ticks_to_ns(ticks),
        bpf: bpf_delta(&bpf_before, &bpf_after, pid, &before_ids),
        memory,
        idle_memory,
    })
}

fn open_close(cgroup: &Cgroup, cpu: usize, target: &Path) -> anyhow::Result<LoopRun> {
    let exe = std::env::current_exe().context("finding the xtask binary")?;
    let output = Command::new(&exe)
        .args(["bench", "open-close-loop", "--cgroup"])
        .arg(&cgroup.path)
        .args(["--cpu", &cpu.to_string()])
        .args(["--seconds", &FLOOD_SECONDS.to_string()])
        .arg("--path")
        .arg(target)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {} bench open-close-loop", exe.display()))?;
    ensure!(
        output.status.success(),
        "the open/close loop failed with {}",
        output.status
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    match (fields.next(), fields.next()) {
        (Some(Ok(calls)), Some(Ok(ns))) => Ok(LoopRun { calls, ns }),
        _ => anyhow::bail!("the open/close loop printed {text:?}"),
    }
}

/// The hidden `open-close-loop` target: runs in its own process.
pub(super) fn open_close_loop(
    cgroup: &Path,
    cpu: usize,
    seconds: f64,
    path: &Path,
) -> anyhow::Result<()> {
    join_cgroup(cgroup)?;
    pin_to_cpu(cpu)?;
    let path = CString::new(path.as_os_str().as_bytes()).context("the path has a NUL byte")?;
    let duration = Duration::from_secs_f64(seconds.clamp(0.1, 600.0));
    // Warm-up, untimed.
    open_close_n(&path, 10_000)?;
    let started = Instant::now();
    let mut calls = 0u64;
    while started.elapsed() < duration {
        open_close_n(&path, 1_000)?;
        calls += 1_000;
    }
    let ns = started.elapsed().as_nanos();
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{calls} {ns}")
        .and_then(|()| stdout.flush())
        .context("writing the loop's figures")
}

fn open_close_n(path: &CString, n: u32) -> anyhow::Result<()> {
    for _ in 0..n {
        // SAFETY: path is a valid NUL-terminated string; the descriptor is
        // closed right away and never used otherwise.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        ensure!(fd >= 0, "open: {}", std::io::Error::last_os_error());
        // SAFETY: fd is ours, open.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The report

#[expect(
    clippy::print_stdout,
    reason = "the report is the benchmark's output, on stdout"
)]
#[expect(clippy::cast_precision_loss, reason = "figures, not exact counts")]
fn report(
    machine: &Machine,
    cpu: usize,
    recording: &Recording,
    replay: &Value,
    flood: &FloodFigures,
) {
    let num = |key: &str| replay[key].as_f64().unwrap_or(f64::NAN);
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    let mib = |kib: u64| kib as f64 / 1024.0;
    let load_ms = num("load_ms_median");
    let rate = num("events_per_s");
    let baseline = num("baseline_events_per_s");
    let workers_rate = num("workers_events_per_s");
    let warm = num("warm_events_per_s");
    let warm_baseline = num("warm_baseline_events_per_s");
    let f = &flood.rules;
    let n = &flood.no_rules;
    let bare = flood.bare.rate();
    let cpu_ns = f.cpu_ns_per_event();
    let bpf_ns = f.bpf.run_time_ns as f64 / f.tally.records.max(1) as f64;
    let slowdown = |run: &AgentFlood| change_percent(run.with.rate(), bare);
    println!();
    println!("Runtime Guardrails: rules benchmark (cargo xtask bench rules)");
    println!("  date     {}", machine.date);
    println!("  kernel   {}", machine.kernel);
    println!("  cpu      {} ({} CPUs)", machine.cpu_model, machine.cpus);
    println!(
        "  rules    falco_rules.yaml (stable) + the default rules: {} rules, {} enabled",
        replay["rules"], replay["enabled"]
    );
    println!(
        "  events   {} recorded in {:.2} s from a workload of execs, opens and connects \
         ({} replayed, {} skipped); types: {}",
        recording.lines,
        recording.took.as_secs_f64(),
        replay["events"],
        replay["skipped"],
        type_summary(&replay["event_types"]),
    );
    println!(
        "  flood    open+close of one file, {FLOOD_SECONDS} s per run, pinned to CPU {cpu}, \
         in its own cgroup v2 directory; the agent on the other CPUs"
    );
    println!();
    println!(
        "{:<44} {:>14} {:>14} {:>20}  status",
        "figure", "measured", "vs baseline", "target"
    );
    let row = |name: &str, measured: String, delta: String, target: &str, status: &str| {
        println!("{name:<44} {measured:>14} {delta:>14} {target:>20}  {status}");
    };
    row(
        &format!("load+compile, median of {LOADS} (CPU)"),
        format!("{load_ms:.1} ms"),
        String::new(),
        "< 50 ms",
        met(load_ms < LOAD_TARGET_MS),
    );
    row(
        "  wall-clock, median",
        format!("{:.1} ms", num("load_wall_ms_median")),
        String::new(),
        "",
        "",
    );
    row(
        "  fastest / slowest load (CPU)",
        format!("{:.1} / {:.1}", num("load_ms_min"), num("load_ms_max")),
        String::new(),
        "",
        "",
    );
    row(
        "evaluation, 1 thread, empty rules (baseline)",
        format!("{:.2} M/s", baseline / 1e6),
        String::new(),
        "",
        "",
    );
    row(
        "evaluation, 1 thread, the rules",
        format!("{:.2} M/s", rate / 1e6),
        format!("x{:.3}", rate / baseline),
        ">= 3 M/s",
        met(rate >= EVAL_TARGET_PER_S),
    );
    row(
        "  the same per wall-clock second",
        format!("{:.2} M/s", num("wall_events_per_s") / 1e6),
        format!(
            "x{:.3}",
            num("wall_events_per_s") / num("wall_baseline_events_per_s")
        ),
        "",
        "",
    );
    row(
        "  events given a verdict kept for the call",
        format!("{:.1} %", num("verdicts_reused_share") * 100.0),
        String::new(),
        "",
        "",
    );
    row(
        "  every rule tested on every event",
        format!("{:.2} M/s", num("without_verdicts_events_per_s") / 1e6),
        format!("x{:.3}", num("without_verdicts_events_per_s") / baseline),
        "",
        "",
    );
    row(
        "  cache-warm slices: empty rules (baseline)",
        format!("{:.2} M/s", warm_baseline / 1e6),
        String::new(),
        "",
        "",
    );
    row(
        "  cache-warm slices: the rules",
        format!("{:.2} M/s", warm / 1e6),
        format!("x{:.3}", warm / warm_baseline),
        ">= 3 M/s",
        met(warm >= EVAL_TARGET_PER_S),
    );
    row(
        "  time per event, the rules",
        format!("{:.0} ns", num("ns_per_event")),
        format!(
            "{:+.0} ns",
            num("ns_per_event") - num("ns_per_event_baseline")
        ),
        "<= 333 ns",
        "",
    );
    row(
        &format!("evaluation, {WORKERS} threads (information)"),
        format!("{:.2} M/s", workers_rate / 1e6),
        format!("x{:.2}", workers_rate / rate),
        "",
        "",
    );
    row(
        "open+close, no agent (baseline)",
        format!("{:.2} M/s", bare / 1e6),
        String::new(),
        "",
        "",
    );
    row(
        "open+close, agent with the rules",
        format!("{:.2} M/s", f.with.rate() / 1e6),
        format!("{:+.1} %", slowdown(f)),
        "",
        "",
    );
    row(
        "  events received (records)",
        f.tally.records.to_string(),
        String::new(),
        "",
        "",
    );
    row(
        "  events evaluated by the rules",
        f.rules.events.to_string(),
        String::new(),
        "",
        "",
    );
    row(
        "  events lost",
        f.tally.lost.to_string(),
        String::new(),
        "0",
        met(f.tally.lost == 0),
    );
    row(
        "  agent CPU per event (utime+stime)",
        format!("{:.3} us", cpu_ns / 1e3),
        String::new(),
        "<= 0.28 us",
        met(cpu_ns <= CPU_TARGET_NS),
    );
    row(
        "  the same, agent without rules",
        format!("{:.3} us", n.cpu_ns_per_event() / 1e3),
        format!("{:+.3} us", (cpu_ns - n.cpu_ns_per_event()) / 1e3),
        "",
        "",
    );
    row(
        "  open+close, agent without rules",
        format!("{:.2} M/s", n.with.rate() / 1e6),
        format!("{:+.1} %", slowdown(n)),
        "",
        "",
    );
    row(
        "  kernel programs per event (bpf_stats)",
        format!("{:.3} us", bpf_ns / 1e3),
        String::new(),
        "",
        "",
    );
    row(
        "  agent RSS, after the flood",
        format!("{:.1} MiB", mib(f.memory.rss_kib)),
        format!(
            "{:+.1} MiB",
            mib(f.memory.rss_kib) - mib(f.idle_memory.rss_kib)
        ),
        "",
        "",
    );
    row(
        "  peak (VmHWM)",
        format!("{:.1} MiB", mib(f.memory.hwm_kib)),
        String::new(),
        "",
        "",
    );
    println!();
    println!(
        "replay: {} evaluations in the best single-thread loop ({} violations; {} per pass \
         over the recording); {:.2} candidate rules per event; each loop {EVAL_SECONDS} s, \
         best of {EVAL_ROUNDS} rounds; rates per second of the thread's CPU time (the 2-thread \
         figure per wall-clock second); cache-warm: each slice of {} events evaluated once \
         untimed, then 4 times timed; events deserialized before timing",
        replay["evaluated"],
        replay["violations"],
        replay["violations_per_pass"]["total"],
        num("candidates_per_event"),
        replay["warm_slice"],
    );
    println!(
        "flood with rules: agent {} records, {} delivered, {} lost (ring_buffer_full {}, decode_failed {}, \
         queue_full {}); rules: {} events, {} violations; agent CPU {:.2} s over the loop and \
         its drain; {} kernel programs ran {} times for {:.3} s; idle RSS {:.1} MiB; events \
         counted, not printed (no --stdout)",
        f.tally.records,
        f.tally.delivered,
        f.tally.lost,
        f.tally.ring_buffer_full,
        f.tally.decode_failed,
        f.tally.queue_full,
        f.rules.events,
        f.rules.violations,
        f.cpu_ns as f64 / 1e9,
        f.bpf.programs,
        f.bpf.run_cnt,
        f.bpf.run_time_ns as f64 / 1e9,
        mib(f.idle_memory.rss_kib),
    );
    println!(
        "flood without rules: agent {} records, {} lost; agent CPU {:.2} s; kernel programs \
         {:.3} us per event",
        n.tally.records,
        n.tally.lost,
        n.cpu_ns as f64 / 1e9,
        n.bpf.run_time_ns as f64 / n.tally.records.max(1) as f64 / 1e3,
    );
    print_profile(&replay["profile"], replay["events"].as_f64().unwrap_or(1.0));
}

#[expect(
    clippy::print_stdout,
    reason = "the report is the benchmark's output, on stdout"
)]
fn print_profile(profile: &Value, events: f64) {
    let Some(rules) = profile["rules"].as_array() else {
        return;
    };
    let total: f64 = rules.iter().filter_map(|r| r["ns_per_pass"].as_f64()).sum();
    println!();
    println!(
        "where evaluation time goes (each rule's condition alone, over the events of its types; \
         the event view alone costs {:.1} ns per event; values several rules share, such as \
         the descriptor, are derived again for each rule here, once per event in the agent):",
        profile["view_ns_per_event"].as_f64().unwrap_or(f64::NAN)
    );
    println!(
        "  {:>10} {:>7} {:>9} {:>9}  rule",
        "ns/event", "share", "tested", "matched"
    );
    for rule in rules.iter().take(10) {
        let ns = rule["ns_per_pass"].as_f64().unwrap_or(0.0);
        println!(
            "  {:>10.1} {:>6.1}% {:>9} {:>9}  {}",
            ns / events,
            ns / total * 100.0,
            rule["events"],
            rule["matched_per_pass"],
            rule["rule"].as_str().unwrap_or("?"),
        );
    }
    println!(
        "  {:>10.1}  all {} rules' conditions, per recorded event",
        total / events,
        rules.len()
    );
    let Some(fields) = profile["fields"].as_array() else {
        return;
    };
    println!("fields read alone over every event (the 10 slowest):");
    println!("  {:>10}  field (rules reading it)", "ns/event");
    for field in fields.iter().take(10) {
        let users: Vec<&str> = field["rules"]
            .as_array()
            .map(|u| u.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let shown = users.iter().take(3).copied().collect::<Vec<_>>().join("; ");
        let more = users.len().saturating_sub(3);
        println!(
            "  {:>10.1}  {} ({shown}{})",
            field["ns_per_event"].as_f64().unwrap_or(0.0),
            field["field"].as_str().unwrap_or("?"),
            if more > 0 {
                format!("; {more} more")
            } else {
                String::new()
            }
        );
    }
}

fn type_summary(types: &Value) -> String {
    types
        .as_array()
        .map(|types| {
            types
                .iter()
                .take(8)
                .map(|t| format!("{} {}", t[0].as_str().unwrap_or("?"), t[1]))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}
