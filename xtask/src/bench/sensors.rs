//! `cargo xtask bench sensors`: what the sensors cost, measured against a
//! baseline taken in the same run (shared machines are noisy, so only ratios
//! and differences mean anything).
//!
//! 1. Per-syscall overhead: a pinned loop of getppid(2) calls in a fresh cgroup
//!    v2 directory, with no agent, with a program that does nothing on the
//!    `sys_exit` (what that hook itself costs, the floor under its figures),
//!    with the agent attached but getppid filtered in
//!    the kernel (default sensors: `syscall_hook: auto`, the syscall program
//!    on each reported syscall's tracepoint, so no program runs for getppid:
//!    the kernel tests a bit of the syscall tracepoints' mask), the same with
//!    `syscall_hook: sys_exit` (one program on every syscall's exit), and
//!    with every call delivered as an event (`sensors: {benchmark: true}`),
//!    on either hook, the agent scoped to that cgroup.
//! 2. Userspace throughput: in the delivered run, events decoded per second
//!    and events lost, from the agent's `stopped` log line, and the agent's
//!    CPU time per event (all its threads, from the start of the loop to
//!    its exit): how many events one core decodes at that cost, since one
//!    loop on one CPU makes only about a million. The same again with the
//!    sensors' pipeline alone (decode, process tree, containers: no rules,
//!    no gRPC API), which is what this benchmark's target is about; the
//!    later stages are measured by the rules and gRPC benchmarks.
//! 3. The agent's RSS, idle and with 10,000 live processes.
//! 4. Exec-heavy work: a shell loop of fork+exec of /bin/true, with and
//!    without the agent (whole node; default config, and the syscall hook on
//!    `sys_exit`), alternating; then once more with the
//!    agent and `bpf_stats`, for what its kernel programs took of the loop,
//!    which the kernel times and the machine's noise does not move.
//!
//! The loops run in child processes (this binary re-executed with a hidden
//! target), never in the xtask process. Nothing is asserted: the figures and
//! the targets are printed side by side.

use std::{
    io::{BufRead, BufReader, Read, Write},
    path::Path,
    process::{Child, ChildStdin, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};

use super::common::{
    Agent, BpfFigures, BpfStatsOn, Cgroup, Machine, Memory, Tally, bpf_delta, bpf_program_ids,
    bpf_programs, cgroup2_mount, change_percent, config_head, cpu_ticks, join_cgroup, loop_cpu,
    memory, pin_to_cpu, rusage_cpu_ns, ticks_to_ns, wait_timeout,
};

/// getppid calls per repetition of the syscall loop.
const LOOP_CALLS: u64 = 3_000_000;
/// Repetitions of the syscall loop per child; the best counts.
const LOOP_REPS: u32 = 5;
/// Calls made before the timed repetitions.
const LOOP_WARMUP: u64 = 200_000;
/// Rounds of (bare, empty hook, filtered on either hook, delivered on either
/// hook),
/// to spread drift over all of them.
const LOOP_ROUNDS: u32 = 2;
/// Live processes for the RSS figure.
const SLEEPERS: usize = 10_000;
/// fork+exec of /bin/true per exec-heavy run.
const EXEC_ITERATIONS: u32 = 3_000;
/// Exec-heavy pairs of runs, one with and one without the agent, back to
/// back: the machine's drift over minutes is larger than the agent's cost,
/// so each run is compared with its neighbour and the pairs' median is the
/// figure.
const EXEC_PAIRS: u32 = 10;

/// The `sensors:` line that puts the syscall program on `sys_exit`, the
/// hook that also sees the syscalls a kernel is built without.
const SYS_EXIT_HOOK: &str = "  syscall_hook: sys_exit\n";

/// Ring buffer of the delivered run: 64 MiB.
const DELIVERED_RING_BYTES: u64 = 64 << 20;

pub(super) fn sensors() -> anyhow::Result<()> {
    ensure!(
        crate::is_root(),
        "the benchmark loads kernel programs and makes cgroups: run it as root"
    );
    crate::deps()?;
    let agent = crate::build_release_agent()?;
    let mount = cgroup2_mount()?;
    let cpu = loop_cpu()?;

    eprintln!(
        "xtask: [1/4] getppid loop: bare, empty hook, filtered, delivered ({LOOP_ROUNDS} rounds)"
    );
    let syscalls = syscall_overhead(&agent, &mount, cpu)?;
    eprintln!("xtask: [2/4] agent RSS, idle and with {SLEEPERS} live processes");
    let rss = rss_with_sleepers(&agent, &mount)?;
    eprintln!("xtask: [3/4] exec-heavy loop, {EXEC_PAIRS} pairs");
    let exec = exec_heavy(&agent, cpu)?;
    eprintln!("xtask: [4/4] done");

    report(&Machine::read(), cpu, &syscalls, &rss, &exec);
    Ok(())
}

// ---------------------------------------------------------------------------
// 1 and 2: the getppid loop

/// What one loop child measured.
#[derive(Clone, Copy, Debug)]
struct LoopRun {
    best_ns_per_call: f64,
    total_ns: u64,
    total_calls: u64,
}

#[derive(Debug)]
struct SyscallFigures {
    bare_ns: f64,
    empty_hook_ns: f64,
    filtered_ns: f64,
    /// Filtered, the syscall program on `sys_exit`.
    filtered_sys_exit_ns: f64,
    delivered_ns: f64,
    /// Delivered, the syscall program on `sys_exit`.
    delivered_sys_exit_ns: f64,
    /// Summed over the delivered runs.
    tally: Tally,
    /// getppid calls made in the delivered runs, warm-up included.
    delivered_calls: u64,
    /// Time the delivered loops ran.
    delivered_loop_ns: u64,
    /// From the start of each delivered loop child to the agent's exit (the
    /// agent drains its backlog after the loop), summed.
    delivered_until_stopped_ns: u64,
    /// The agent's CPU time (user+system, all threads) from the start of
    /// each delivered loop to its exit, summed.
    delivered_agent_cpu_ns: u64,
    /// The same runs with the sensors' pipeline alone: records and agent
    /// CPU time, summed.
    sensors_only: Tally,
    sensors_only_cpu_ns: u64,
}

/// What one delivered run measured.
struct DeliveredRun {
    run: LoopRun,
    tally: Tally,
    /// The agent's CPU time from the start of the loop to its exit.
    agent_cpu_ns: u64,
    /// From the start of the loop to the agent's exit.
    until_stopped: Duration,
}

/// Runs the loop with the agent started from `config`, every call
/// delivered, and stops the agent once the loop is done.
fn delivered_run(
    agent: &Path,
    config: &str,
    cgroup: &Cgroup,
    cpu: usize,
) -> anyhow::Result<DeliveredRun> {
    let running = Agent::start(agent, config)?;
    let cpu_at_start = ticks_to_ns(cpu_ticks(running.pid())?);
    let started = Instant::now();
    let run = run_loop(cgroup, cpu)?;
    // The agent is the only child reaped in between: the children's CPU
    // time grows by its whole life's, drain and shutdown included.
    let children_before = rusage_cpu_ns(libc::RUSAGE_CHILDREN);
    let tally = running.stop()?;
    let until_stopped = started.elapsed();
    let agent_cpu_ns = rusage_cpu_ns(libc::RUSAGE_CHILDREN)
        .saturating_sub(children_before)
        .saturating_sub(cpu_at_start);
    Ok(DeliveredRun {
        run,
        tally,
        agent_cpu_ns,
        until_stopped,
    })
}

/// The agent's CPU time per event it decoded, in ns.
#[expect(clippy::cast_precision_loss, reason = "figures, not exact counts")]
fn cpu_per_decoded(cpu_ns: u64, tally: &Tally) -> f64 {
    let decoded = tally.records.saturating_sub(tally.decode_failed);
    cpu_ns as f64 / decoded.max(1) as f64
}

fn syscall_overhead(agent: &Path, mount: &Path, cpu: usize) -> anyhow::Result<SyscallFigures> {
    let cgroup = Cgroup::create(mount, "getppid")?;
    let scope = format!(
        "scope:\n  cgroups: [{:?}]\n",
        cgroup.path.display().to_string()
    );
    let filtered_config = format!("{}{scope}", config_head());
    let filtered_sys_exit_config = format!("{}sensors:\n{SYS_EXIT_HOOK}{scope}", config_head());
    // Every call delivered, with `hook` among the sensors' lines.
    let delivered_with = |hook: &str| {
        format!(
            "{}sensors:\n  benchmark: true\n{hook}transport:\n  ring_buffer_bytes: {DELIVERED_RING_BYTES}\n{scope}",
            config_head()
        )
    };
    let delivered_config = delivered_with("");
    let delivered_sys_exit_config = delivered_with(SYS_EXIT_HOOK);
    let sensors_only_config =
        format!("{delivered_config}rules:\n  defaults: false\napi:\n  enabled: false\n");

    let mut figures = SyscallFigures {
        bare_ns: f64::INFINITY,
        empty_hook_ns: f64::INFINITY,
        filtered_ns: f64::INFINITY,
        filtered_sys_exit_ns: f64::INFINITY,
        delivered_ns: f64::INFINITY,
        delivered_sys_exit_ns: f64::INFINITY,
        tally: Tally::default(),
        delivered_calls: 0,
        delivered_loop_ns: 0,
        delivered_until_stopped_ns: 0,
        delivered_agent_cpu_ns: 0,
        sensors_only: Tally::default(),
        sensors_only_cpu_ns: 0,
    };
    for round in 1..=LOOP_ROUNDS {
        let best = |name: &str, run: LoopRun, figure: &mut f64| {
            eprintln!(
                "xtask:   round {round}: {name:<10}{:8.1} ns/call",
                run.best_ns_per_call
            );
            *figure = figure.min(run.best_ns_per_call);
        };
        best("bare", run_loop(&cgroup, cpu)?, &mut figures.bare_ns);

        let hook = EmptyHook::attach(agent)?;
        let empty_hook = run_loop(&cgroup, cpu)?;
        hook.detach()?;
        best("empty hook", empty_hook, &mut figures.empty_hook_ns);

        // The loop under an agent started with `config`.
        let under_agent = |config: &str| -> anyhow::Result<LoopRun> {
            let running = Agent::start(agent, config)?;
            let run = run_loop(&cgroup, cpu)?;
            running.stop()?;
            Ok(run)
        };
        best(
            "filtered",
            under_agent(&filtered_config)?,
            &mut figures.filtered_ns,
        );
        best(
            "sys_exit",
            under_agent(&filtered_sys_exit_config)?,
            &mut figures.filtered_sys_exit_ns,
        );
        best(
            "delivered, sys_exit",
            under_agent(&delivered_sys_exit_config)?,
            &mut figures.delivered_sys_exit_ns,
        );

        let DeliveredRun {
            run: delivered,
            tally,
            agent_cpu_ns,
            until_stopped,
        } = delivered_run(agent, &delivered_config, &cgroup, cpu)?;
        figures.delivered_agent_cpu_ns += agent_cpu_ns;
        eprintln!(
            "xtask:   round {round}: delivered {:8.1} ns/call, {} records, {} lost",
            delivered.best_ns_per_call, tally.records, tally.lost
        );
        figures.delivered_ns = figures.delivered_ns.min(delivered.best_ns_per_call);
        figures.tally.add(tally);
        figures.delivered_calls += delivered.total_calls;
        figures.delivered_loop_ns += delivered.total_ns;
        figures.delivered_until_stopped_ns +=
            u64::try_from(until_stopped.as_nanos()).unwrap_or(u64::MAX);

        let alone = delivered_run(agent, &sensors_only_config, &cgroup, cpu)?;
        eprintln!(
            "xtask:   round {round}: sensors only, agent {:.0} ns per event, {} records, {} lost",
            cpu_per_decoded(alone.agent_cpu_ns, &alone.tally),
            alone.tally.records,
            alone.tally.lost
        );
        figures.sensors_only.add(alone.tally);
        figures.sensors_only_cpu_ns += alone.agent_cpu_ns;
    }
    Ok(figures)
}

/// The agent's hidden `bench-empty-hook`: a program that does nothing,
/// attached to `sys_exit` until [`EmptyHook::detach`].
struct EmptyHook {
    child: Child,
}

impl EmptyHook {
    fn attach(agent: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(agent)
            .arg("bench-empty-hook")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {} bench-empty-hook", agent.display()))?;
        let mut line = String::new();
        let read = child
            .stdout
            .take()
            .context("bench-empty-hook's stdout")
            .and_then(|out| Ok(BufReader::new(out).read_line(&mut line)?));
        let hook = Self { child };
        read.context("reading bench-empty-hook's stdout")?;
        ensure!(
            line.trim() == "attached",
            "bench-empty-hook did not attach (it printed {line:?})"
        );
        Ok(hook)
    }

    fn detach(mut self) -> anyhow::Result<()> {
        drop(self.child.stdin.take());
        let status = self.child.wait().context("waiting for bench-empty-hook")?;
        ensure!(status.success(), "bench-empty-hook exited with {status}");
        Ok(())
    }
}

impl Drop for EmptyHook {
    fn drop(&mut self) {
        // Only when a measurement failed before detach: never leave it attached.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs the getppid loop in a child process in `cgroup`, pinned to `cpu`.
fn run_loop(cgroup: &Cgroup, cpu: usize) -> anyhow::Result<LoopRun> {
    let exe = std::env::current_exe().context("finding the xtask binary")?;
    let output = Command::new(&exe)
        .args(["bench", "getppid-loop", "--cgroup"])
        .arg(&cgroup.path)
        .arg("--cpu")
        .arg(cpu.to_string())
        .arg("--calls")
        .arg(LOOP_CALLS.to_string())
        .arg("--reps")
        .arg(LOOP_REPS.to_string())
        .arg("--warmup")
        .arg(LOOP_WARMUP.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {} bench getppid-loop", exe.display()))?;
    ensure!(
        output.status.success(),
        "the getppid loop failed with {}",
        output.status
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let mut fields = text.split_whitespace();
    let mut next = |what: &str| {
        fields
            .next()
            .with_context(|| format!("the getppid loop printed no {what}: {text:?}"))
    };
    Ok(LoopRun {
        best_ns_per_call: next("ns per call")?
            .parse()
            .context("parsing the loop's ns per call")?,
        total_ns: next("total time")?
            .parse()
            .context("parsing the loop's total time")?,
        total_calls: next("call count")?
            .parse()
            .context("parsing the loop's call count")?,
    })
}

/// The hidden `getppid-loop` target: runs in its own process.
pub(super) fn getppid_loop(
    cgroup: &Path,
    cpu: usize,
    calls: u64,
    reps: u32,
    warmup: u64,
    rate: u64,
) -> anyhow::Result<()> {
    ensure!(calls > 0 && reps > 0, "--calls and --reps must be positive");
    join_cgroup(cgroup)?;
    pin_to_cpu(cpu)?;
    let started = Instant::now();
    getppid_n(warmup);
    let mut best = Duration::MAX;
    for _ in 0..reps {
        let rep = Instant::now();
        if rate == 0 {
            getppid_n(calls);
        } else {
            getppid_paced(calls, rate);
        }
        best = best.min(rep.elapsed());
    }
    let total = started.elapsed();
    #[expect(clippy::cast_precision_loss, reason = "a figure, not an exact count")]
    let best_ns = best.as_nanos() as f64 / calls as f64;
    let total_calls = warmup + calls * u64::from(reps);
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{best_ns} {} {total_calls}", total.as_nanos())
        .and_then(|()| stdout.flush())
        .context("writing the loop's figures")
}

/// `calls` getppid(2) calls at `rate` per second: a millisecond's share at
/// the start of each millisecond.
fn getppid_paced(calls: u64, rate: u64) {
    let per_ms = rate.div_ceil(1000).max(1);
    let start = Instant::now();
    let mut done = 0;
    let mut ms = 0;
    while done < calls {
        let due = start + Duration::from_millis(ms);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let batch = per_ms.min(calls - done);
        getppid_n(batch);
        done += batch;
        ms += 1;
    }
}

fn getppid_n(calls: u64) {
    for _ in 0..calls {
        // SAFETY: getppid has no preconditions and cannot fail.
        std::hint::black_box(unsafe { libc::getppid() });
    }
}

// ---------------------------------------------------------------------------
// 3: RSS with 10,000 live processes

#[derive(Debug)]
struct RssFigures {
    idle: Memory,
    loaded: Memory,
    /// Records the agent read in that run (forks and exits of the sleepers
    /// among them): evidence that it saw them.
    records: u64,
}

fn rss_with_sleepers(agent: &Path, mount: &Path) -> anyhow::Result<RssFigures> {
    let running = Agent::start(agent, &config_head())?;
    std::thread::sleep(Duration::from_secs(2));
    let idle = memory(running.pid())?;
    let cgroup = Cgroup::create(mount, "sleepers")?;
    let sleepers = Sleepers::start(&cgroup, SLEEPERS)?;
    // Give the agent time to read every fork and settle.
    std::thread::sleep(Duration::from_secs(3));
    let loaded = memory(running.pid())?;
    sleepers.stop()?;
    drop(cgroup);
    let tally = running.stop()?;
    Ok(RssFigures {
        idle,
        loaded,
        records: tally.records,
    })
}

/// The helper holding the sleeping processes; closing its stdin makes it
/// kill and reap them.
struct Sleepers {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Sleepers {
    fn start(cgroup: &Cgroup, count: usize) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding the xtask binary")?;
        let mut child = Command::new(&exe)
            .args(["bench", "sleepers", "--cgroup"])
            .arg(&cgroup.path)
            .arg("--count")
            .arg(count.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("running {} bench sleepers", exe.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        // From here on, drop closes stdin and waits for the helper.
        let sleepers = Self { child, stdin };
        let mut line = String::new();
        if let Some(stdout) = stdout {
            BufReader::new(stdout)
                .read_line(&mut line)
                .context("reading from the sleepers helper")?;
        }
        ensure!(
            line.trim() == "ready",
            "the sleepers helper did not start its {count} processes"
        );
        Ok(sleepers)
    }

    fn stop(mut self) -> anyhow::Result<()> {
        self.stdin.take();
        let status = wait_timeout(&mut self.child, Duration::from_secs(60))?;
        ensure!(status.success(), "the sleepers helper exited with {status}");
        Ok(())
    }
}

impl Drop for Sleepers {
    fn drop(&mut self) {
        self.stdin.take();
        if wait_timeout(&mut self.child, Duration::from_secs(30)).is_err() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The hidden `sleepers` target: runs in its own, single-threaded process.
pub(super) fn sleepers(cgroup: &Path, count: usize) -> anyhow::Result<()> {
    join_cgroup(cgroup)?;
    let mut pids: Vec<libc::pid_t> = Vec::with_capacity(count);
    for _ in 0..count {
        // SAFETY: this process has one thread; the child only makes
        // async-signal-safe calls and never returns.
        match unsafe { libc::fork() } {
            0 => {
                // SAFETY: prctl and pause have no memory preconditions. The
                // child dies with its parent, or when killed.
                unsafe {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    loop {
                        libc::pause();
                    }
                }
            }
            pid if pid > 0 => pids.push(pid),
            _ => {
                let error = std::io::Error::last_os_error();
                kill_and_reap(&pids);
                return Err(error).context(format!("fork after {} children", pids.len()));
            }
        }
    }
    let mut stdout = std::io::stdout().lock();
    let told = writeln!(stdout, "ready").and_then(|()| stdout.flush());
    if told.is_ok() {
        // Until the parent closes our stdin (or dies).
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
    }
    kill_and_reap(&pids);
    told.context("telling the parent the sleepers are ready")
}

fn kill_and_reap(pids: &[libc::pid_t]) {
    for &pid in pids {
        // SAFETY: pid is our own unreaped child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    for &pid in pids {
        // SAFETY: as above; a null status pointer is allowed.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    }
}

// ---------------------------------------------------------------------------
// 4: exec-heavy work

#[derive(Debug)]
struct ExecFigures {
    /// The fastest run without the agent.
    without: Duration,
    /// The fastest run with it.
    with: Duration,
    /// Each pair's (with − without) / without, in percent, sorted.
    pair_overheads: Vec<f64>,
    /// The same with the agent's syscall program on `sys_exit`, against
    /// the same runs without.
    sys_exit_overheads: Vec<f64>,
    /// The agent's kernel programs over one more run with it, timed by the
    /// kernel (`bpf_stats`, which the pairs run without: it adds to each
    /// program's run).
    programs: BpfFigures,
    /// The same with the syscall program on `sys_exit`.
    programs_sys_exit: BpfFigures,
}

impl ExecFigures {
    /// The median of the pairs' overheads.
    fn median_overhead(&self) -> f64 {
        median(&self.pair_overheads)
    }
}

/// The median of sorted `values`; 0 for none.
fn median(values: &[f64]) -> f64 {
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn exec_heavy(agent: &Path, cpu: usize) -> anyhow::Result<ExecFigures> {
    // Warm the page cache and the dynamic loader's paths once.
    exec_loop(cpu)?;
    let sys_exit_config = format!("{}sensors:\n{SYS_EXIT_HOOK}", config_head());
    let mut without = Duration::MAX;
    let mut with = Duration::MAX;
    let mut pair_overheads = Vec::new();
    let mut sys_exit_overheads = Vec::new();
    for pair in 0..EXEC_PAIRS {
        // Without the agent, with it (default config), with it on
        // sys_exit; the order reversed every other time, to
        // spread drift over all three.
        let mut took = [Duration::ZERO; 3];
        let mut order = [0, 1, 2];
        if pair % 2 == 1 {
            order.reverse();
        }
        for run in order {
            let config = match run {
                0 => None,
                1 => Some(config_head()),
                _ => Some(sys_exit_config.clone()),
            };
            let running = config.map(|c| Agent::start(agent, &c)).transpose()?;
            took[run] = exec_loop(cpu)?;
            if let Some(running) = running {
                running.stop()?;
            }
            let label = ["without agent", "with agent", "with agent, sys_exit"][run];
            eprintln!("xtask:   {label:<24}{:?}", took[run]);
        }
        without = without.min(took[0]);
        with = with.min(took[1]);
        let [off, on, on_sys_exit] = took.map(|d| d.as_secs_f64());
        pair_overheads.push(change_percent(on, off));
        sys_exit_overheads.push(change_percent(on_sys_exit, off));
    }
    pair_overheads.sort_by(f64::total_cmp);
    sys_exit_overheads.sort_by(f64::total_cmp);
    let programs = exec_programs(agent, cpu, &config_head())?;
    let programs_sys_exit = exec_programs(agent, cpu, &sys_exit_config)?;
    Ok(ExecFigures {
        without,
        with,
        pair_overheads,
        sys_exit_overheads,
        programs,
        programs_sys_exit,
    })
}

/// What the agent's kernel programs cost the loop, measured by the kernel
/// over one run: unlike the loop's wall time, this does not move with the
/// machine's other tenants.
fn exec_programs(agent: &Path, cpu: usize, config: &str) -> anyhow::Result<BpfFigures> {
    let existing = bpf_program_ids()?;
    let running = Agent::start(agent, config)?;
    let stats = BpfStatsOn::enable()?;
    let before = bpf_programs()?;
    let took = exec_loop(cpu)?;
    let after = bpf_programs()?;
    drop(stats);
    let programs = bpf_delta(&before, &after, running.pid(), &existing);
    running.stop()?;
    eprintln!("xtask:   with agent and bpf_stats {took:?}");
    Ok(programs)
}

/// The shell loop, pinned to `cpu` (its children with it), as the other
/// loops are, so that its time does not depend on where the scheduler puts
/// it beside the agent.
fn exec_loop(cpu: usize) -> anyhow::Result<Duration> {
    let script = format!("i=0; while [ $i -lt {EXEC_ITERATIONS} ]; do /bin/true; i=$((i+1)); done");
    let started = Instant::now();
    let status = Command::new("taskset")
        .args(["--cpu-list", &cpu.to_string(), "/bin/sh", "-c", &script])
        .stdin(Stdio::null())
        .status()
        .context("running /bin/sh under taskset (util-linux)")?;
    let took = started.elapsed();
    ensure!(status.success(), "the exec loop exited with {status}");
    Ok(took)
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
    syscalls: &SyscallFigures,
    rss: &RssFigures,
    exec: &ExecFigures,
) {
    let s = syscalls;
    let empty_hook_delta = s.empty_hook_ns - s.bare_ns;
    let decoded = s.tally.records.saturating_sub(s.tally.decode_failed);
    let loop_secs = s.delivered_loop_ns as f64 / 1e9;
    let until_stopped_secs = s.delivered_until_stopped_ns as f64 / 1e9;
    let rate = decoded as f64 / loop_secs;
    let rate_until_stopped = decoded as f64 / until_stopped_secs;
    let offered = s.delivered_calls as f64 / loop_secs;
    let mib = |kib: u64| kib as f64 / 1024.0;
    let exec_overhead = exec.median_overhead();
    let best_overhead = change_percent(exec.with.as_secs_f64(), exec.without.as_secs_f64());
    let met = |ok: bool| if ok { "met" } else { "NOT met" };

    println!();
    println!("Runtime Guardrails: sensor benchmark (cargo xtask bench sensors)");
    println!("  date     {}", machine.date);
    println!("  kernel   {}", machine.kernel);
    println!("  cpu      {} ({} CPUs)", machine.cpu_model, machine.cpus);
    println!(
        "  loop     getppid(2), {LOOP_CALLS} calls x {LOOP_REPS} reps per run, best rep, \
         {LOOP_ROUNDS} rounds, pinned to CPU {cpu}, in its own cgroup v2 directory"
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
        "getppid, no agent (baseline)",
        format!("{:.1} ns", s.bare_ns),
        String::new(),
        "",
        "",
    );
    // A loop against the bare one and its target.
    let against = |name: &str, ns: f64, limit: f64| {
        let delta = ns - s.bare_ns;
        row(
            name,
            format!("{ns:.1} ns"),
            format!("{delta:+.1} ns"),
            &format!("<= +{limit:.0} ns"),
            met(delta <= limit),
        );
    };
    against(
        "getppid, agent attached, filtered in kernel",
        s.filtered_ns,
        50.0,
    );
    against(
        "getppid, every call delivered as an event",
        s.delivered_ns,
        200.0,
    );
    row(
        "the same with the hook on sys_exit:",
        String::new(),
        String::new(),
        "",
        "",
    );
    row(
        "  getppid, an empty program on sys_exit",
        format!("{:.1} ns", s.empty_hook_ns),
        format!("{empty_hook_delta:+.1} ns"),
        "",
        "",
    );
    against("  filtered in kernel", s.filtered_sys_exit_ns, 50.0);
    row(
        "    the sensors' program beyond the empty one",
        format!("{:+.1} ns", s.filtered_sys_exit_ns - s.empty_hook_ns),
        String::new(),
        "",
        "",
    );
    against("  every call delivered", s.delivered_sys_exit_ns, 200.0);
    let cpu_per_event = cpu_per_decoded(s.delivered_agent_cpu_ns, &s.tally);
    let one_core = 1e9 / cpu_per_event.max(f64::MIN_POSITIVE);
    row(
        "events decoded per second (during the loop)",
        format!("{:.2} M/s", rate / 1e6),
        String::new(),
        "",
        "",
    );
    row(
        "  the same, until the agent had drained",
        format!("{:.2} M/s", rate_until_stopped / 1e6),
        String::new(),
        "",
        "",
    );
    row(
        "  getppid calls the loop made per second",
        format!("{:.2} M/s", offered / 1e6),
        String::new(),
        "",
        "",
    );
    row(
        "  events lost",
        s.tally.lost.to_string(),
        String::new(),
        "0",
        met(s.tally.lost == 0),
    );
    row(
        "  agent CPU per event (rules and API on)",
        format!("{cpu_per_event:.0} ns"),
        String::new(),
        "",
        "",
    );
    row(
        "  events one core decodes at that cost",
        format!("{:.2} M/s", one_core / 1e6),
        String::new(),
        ">= 3 M/s, 0 lost",
        met(one_core >= 3e6 && s.tally.lost == 0),
    );
    let alone_per_event = cpu_per_decoded(s.sensors_only_cpu_ns, &s.sensors_only);
    let alone_one_core = 1e9 / alone_per_event.max(f64::MIN_POSITIVE);
    row(
        "  sensors only (no rules, no API): CPU/event",
        format!("{alone_per_event:.0} ns"),
        String::new(),
        "",
        "",
    );
    row(
        "  events one core decodes at that cost",
        format!("{:.2} M/s", alone_one_core / 1e6),
        format!("{} lost", s.sensors_only.lost),
        ">= 3 M/s, 0 lost",
        met(alone_one_core >= 3e6 && s.sensors_only.lost == 0),
    );
    row(
        "agent RSS, idle",
        format!("{:.1} MiB", mib(rss.idle.rss_kib)),
        String::new(),
        "",
        "",
    );
    row(
        &format!("agent RSS, {SLEEPERS} live processes"),
        format!("{:.1} MiB", mib(rss.loaded.rss_kib)),
        format!(
            "{:+.1} MiB",
            mib(rss.loaded.rss_kib) - mib(rss.idle.rss_kib)
        ),
        "< 64 MiB",
        met(mib(rss.loaded.rss_kib) < 64.0),
    );
    row(
        "  peak (VmHWM)",
        format!("{:.1} MiB", mib(rss.loaded.hwm_kib)),
        String::new(),
        "",
        "",
    );
    row(
        &format!("exec-heavy: {EXEC_ITERATIONS} x fork+exec /bin/true, median pair"),
        format!("{EXEC_PAIRS} pairs"),
        format!("{exec_overhead:+.1} %"),
        "<= +3 %",
        met(exec_overhead <= 3.0),
    );
    let sys_exit_overhead = median(&exec.sys_exit_overheads);
    row(
        "  the same, hook on sys_exit",
        format!("{EXEC_PAIRS} pairs"),
        format!("{sys_exit_overhead:+.1} %"),
        "<= +3 %",
        met(sys_exit_overhead <= 3.0),
    );
    row(
        "  pairs, lowest / highest",
        format!(
            "{:+.1} / {:+.1} %",
            exec.pair_overheads.first().copied().unwrap_or(0.0),
            exec.pair_overheads.last().copied().unwrap_or(0.0)
        ),
        String::new(),
        "",
        "",
    );
    row(
        "  fastest run with the agent",
        format!("{:.3} s", exec.with.as_secs_f64()),
        format!("{best_overhead:+.1} %"),
        "",
        "",
    );
    row(
        "  fastest run without (baseline)",
        format!("{:.3} s", exec.without.as_secs_f64()),
        String::new(),
        "",
        "",
    );
    for (name, programs) in [
        (
            "  kernel programs per fork+exec (bpf_stats)",
            &exec.programs,
        ),
        ("    the same, hook on sys_exit", &exec.programs_sys_exit),
    ] {
        let program_ns = programs.run_time_ns as f64;
        row(
            name,
            format!("{:.1} us", program_ns / f64::from(EXEC_ITERATIONS) / 1e3),
            format!(
                "{:+.1} %",
                100.0 * program_ns / exec.without.as_nanos().max(1) as f64
            ),
            "",
            "",
        );
    }
    println!();
    println!(
        "delivered runs: {} getppid calls in {loop_secs:.2} s of loop ({until_stopped_secs:.2} s \
         until the agent stopped); agent: {} records, {} delivered, {} lost \
         (ring_buffer_full {}, decode_failed {}, queue_full {}); ring buffer {} MiB; \
         events decoded and enriched, not printed (no --stdout)",
        s.delivered_calls,
        s.tally.records,
        s.tally.delivered,
        s.tally.lost,
        s.tally.ring_buffer_full,
        s.tally.decode_failed,
        s.tally.queue_full,
        DELIVERED_RING_BYTES >> 20,
    );
    println!(
        "RSS run: the agent read {} records (the {SLEEPERS} forks and exits among them); \
         idle VmHWM {:.1} MiB",
        rss.records,
        mib(rss.idle.hwm_kib)
    );
    println!(
        "exec-heavy: {EXEC_PAIRS} pairs of runs with and without the agent, back to back \
         (ABBA), the shell pinned to CPU {cpu}; each pair's overhead against its own baseline; \
         agent with default sensors, whole node; then one more run with the agent and \
         bpf_stats on: its {} programs ran {} times for {:.1} ms, set against the fastest run \
         without (the loop's own time varies by more than that from run to run on this machine); \
         with the hook on sys_exit, {} programs ran {} times for {:.1} ms",
        exec.programs.programs,
        exec.programs.run_cnt,
        exec.programs.run_time_ns as f64 / 1e6,
        exec.programs_sys_exit.programs,
        exec.programs_sys_exit.run_cnt,
        exec.programs_sys_exit.run_time_ns as f64 / 1e6,
    );
}
