//! `cargo xtask bench sensors`: what the sensors cost, measured against a
//! baseline taken in the same run (shared machines are noisy, so only ratios
//! and differences mean anything).
//!
//! 1. Per-syscall overhead: a pinned loop of getppid(2) calls in a fresh cgroup
//!    v2 directory, with no agent, with the agent attached but getppid filtered
//!    in the kernel (default sensors), and with every call delivered as an
//!    event (`sensors: {benchmark: true}`), the agent scoped to that cgroup.
//! 2. Userspace throughput: in the delivered run, events decoded per second
//!    and events lost, from the agent's `stopped` log line.
//! 3. The agent's RSS, idle and with 10,000 live processes.
//! 4. Exec-heavy work: a shell loop of fork+exec of /bin/true, with and
//!    without the agent (whole node), alternating.
//!
//! The loops run in child processes (this binary re-executed with a hidden
//! target), never in the xtask process. Nothing is asserted: the figures and
//! the targets are printed side by side.

use std::os::unix::process::CommandExt;
use std::{
    ffi::OsStr,
    io::{BufRead, BufReader, Read, Write},
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use clap::Subcommand;
use serde_json::Value;

/// getppid calls per repetition of the syscall loop.
const LOOP_CALLS: u64 = 3_000_000;
/// Repetitions of the syscall loop per child; the best counts.
const LOOP_REPS: u32 = 5;
/// Calls made before the timed repetitions.
const LOOP_WARMUP: u64 = 200_000;
/// Rounds of (bare, filtered, delivered), to spread drift over all three.
const LOOP_ROUNDS: u32 = 2;
/// Live processes for the RSS figure.
const SLEEPERS: usize = 10_000;
/// fork+exec of /bin/true per exec-heavy run.
const EXEC_ITERATIONS: u32 = 3_000;
/// Exec-heavy runs with and without the agent, alternating.
const EXEC_PAIRS: u32 = 4;
/// How long a freshly started agent is left to settle (seeding its process
/// tree, resolving containers) before anything is measured.
const SETTLE: Duration = Duration::from_secs(1);
/// Ring buffer of the delivered run: 64 MiB.
const DELIVERED_RING_BYTES: u64 = 64 << 20;

/// `cargo xtask bench <target>`.
#[derive(Debug, Subcommand)]
pub enum BenchTarget {
    /// Sensor overhead per syscall, decode throughput, RSS with 10,000
    /// processes, exec-heavy overhead (root; builds the agent in release mode).
    Sensors,
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
}

/// Runs `target`.
pub fn run(target: BenchTarget) -> anyhow::Result<()> {
    match target {
        BenchTarget::Sensors => sensors(),
        BenchTarget::GetppidLoop {
            cgroup,
            cpu,
            calls,
            reps,
            warmup,
        } => getppid_loop(&cgroup, cpu, calls, reps, warmup),
        BenchTarget::Sleepers { cgroup, count } => sleepers(&cgroup, count),
    }
}

fn sensors() -> anyhow::Result<()> {
    ensure!(
        super::is_root(),
        "the benchmark loads kernel programs and makes cgroups: run it as root"
    );
    super::deps()?;
    let agent = super::build_release_agent()?;
    let mount = cgroup2_mount()?;
    let cpu = loop_cpu()?;

    eprintln!("xtask: [1/4] getppid loop: bare, filtered, delivered ({LOOP_ROUNDS} rounds)");
    let syscalls = syscall_overhead(&agent, &mount, cpu)?;
    eprintln!("xtask: [2/4] agent RSS, idle and with {SLEEPERS} live processes");
    let rss = rss_with_sleepers(&agent, &mount)?;
    eprintln!("xtask: [3/4] exec-heavy loop, {EXEC_PAIRS} pairs");
    let exec = exec_heavy(&agent)?;
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

/// The agent's counts at shutdown.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    records: u64,
    delivered: u64,
    lost: u64,
    ring_buffer_full: u64,
    decode_failed: u64,
    queue_full: u64,
}

impl Tally {
    fn from_log(line: &Value) -> Self {
        let field = |name: &str| line[name].as_u64().unwrap_or(0);
        Self {
            records: field("records"),
            delivered: field("delivered"),
            lost: field("lost"),
            ring_buffer_full: field("ring_buffer_full"),
            decode_failed: field("decode_failed"),
            queue_full: field("queue_full"),
        }
    }

    fn add(&mut self, other: Self) {
        self.records += other.records;
        self.delivered += other.delivered;
        self.lost += other.lost;
        self.ring_buffer_full += other.ring_buffer_full;
        self.decode_failed += other.decode_failed;
        self.queue_full += other.queue_full;
    }
}

#[derive(Debug)]
struct SyscallFigures {
    bare_ns: f64,
    filtered_ns: f64,
    delivered_ns: f64,
    /// Summed over the delivered runs.
    tally: Tally,
    /// getppid calls made in the delivered runs, warm-up included.
    delivered_calls: u64,
    /// Time the delivered loops ran.
    delivered_loop_ns: u64,
    /// From the start of each delivered loop child to the agent's exit (the
    /// agent drains its backlog after the loop), summed.
    delivered_until_stopped_ns: u64,
}

fn syscall_overhead(agent: &Path, mount: &Path, cpu: usize) -> anyhow::Result<SyscallFigures> {
    let cgroup = Cgroup::create(mount, "getppid")?;
    let scope = format!(
        "scope:\n  cgroups: [{:?}]\n",
        cgroup.path.display().to_string()
    );
    let filtered_config = format!("{}{scope}", config_head());
    let delivered_config = format!(
        "{}sensors:\n  benchmark: true\ntransport:\n  ring_buffer_bytes: {DELIVERED_RING_BYTES}\n{scope}",
        config_head()
    );

    let mut figures = SyscallFigures {
        bare_ns: f64::INFINITY,
        filtered_ns: f64::INFINITY,
        delivered_ns: f64::INFINITY,
        tally: Tally::default(),
        delivered_calls: 0,
        delivered_loop_ns: 0,
        delivered_until_stopped_ns: 0,
    };
    for round in 1..=LOOP_ROUNDS {
        let bare = run_loop(&cgroup, cpu)?;
        eprintln!(
            "xtask:   round {round}: bare      {:8.1} ns/call",
            bare.best_ns_per_call
        );
        figures.bare_ns = figures.bare_ns.min(bare.best_ns_per_call);

        let running = Agent::start(agent, &filtered_config)?;
        let filtered = run_loop(&cgroup, cpu)?;
        running.stop()?;
        eprintln!(
            "xtask:   round {round}: filtered  {:8.1} ns/call",
            filtered.best_ns_per_call
        );
        figures.filtered_ns = figures.filtered_ns.min(filtered.best_ns_per_call);

        let running = Agent::start(agent, &delivered_config)?;
        let started = Instant::now();
        let delivered = run_loop(&cgroup, cpu)?;
        let tally = running.stop()?;
        let until_stopped = started.elapsed();
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
    }
    Ok(figures)
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
fn getppid_loop(
    cgroup: &Path,
    cpu: usize,
    calls: u64,
    reps: u32,
    warmup: u64,
) -> anyhow::Result<()> {
    ensure!(calls > 0 && reps > 0, "--calls and --reps must be positive");
    join_cgroup(cgroup)?;
    pin_to_cpu(cpu)?;
    let started = Instant::now();
    getppid_n(warmup);
    let mut best = Duration::MAX;
    for _ in 0..reps {
        let rep = Instant::now();
        getppid_n(calls);
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

fn getppid_n(calls: u64) {
    for _ in 0..calls {
        // SAFETY: getppid has no preconditions and cannot fail.
        std::hint::black_box(unsafe { libc::getppid() });
    }
}

fn pin_to_cpu(cpu: usize) -> anyhow::Result<()> {
    // SAFETY: cpu_set_t is plain data, all zeroes is the empty set; CPU_SET
    // checks the index against the set's size; sched_setaffinity reads the set.
    let result = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    ensure!(
        result == 0,
        "sched_setaffinity to CPU {cpu}: {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

/// The CPU the loop is pinned to: the last one this process may run on, so
/// that the agent has the others.
fn loop_cpu() -> anyhow::Result<usize> {
    // SAFETY: as in `pin_to_cpu`; sched_getaffinity fills the set.
    let (result, set) = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let result = libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
        (result, set)
    };
    ensure!(
        result == 0,
        "sched_getaffinity: {}",
        std::io::Error::last_os_error()
    );
    (0..libc::CPU_SETSIZE as usize)
        .rev()
        // SAFETY: CPU_ISSET reads the set, bounds-checked against its size.
        .find(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .context("this process may run on no CPU")
}

/// The CPUs this process may run on but the loop's, for the agent, so that
/// the loop's figures count only the kernel's work; `None` on one CPU.
fn other_cpus() -> anyhow::Result<Option<libc::cpu_set_t>> {
    let loop_cpu = loop_cpu()?;
    // SAFETY: as in `loop_cpu`; CPU_CLR and CPU_COUNT are bounds-checked.
    let (result, set, count) = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let result = libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
        libc::CPU_CLR(loop_cpu, &mut set);
        let count = libc::CPU_COUNT(&set);
        (result, set, count)
    };
    ensure!(
        result == 0,
        "sched_getaffinity: {}",
        std::io::Error::last_os_error()
    );
    Ok((count > 0).then_some(set))
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

#[derive(Clone, Copy, Debug)]
struct Memory {
    rss_kib: u64,
    hwm_kib: u64,
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

fn memory(pid: u32) -> anyhow::Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .with_context(|| format!("no {name} in {path}"))
    };
    Ok(Memory {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
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
fn sleepers(cgroup: &Path, count: usize) -> anyhow::Result<()> {
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
    without: Duration,
    with: Duration,
}

fn exec_heavy(agent: &Path) -> anyhow::Result<ExecFigures> {
    // Warm the page cache and the dynamic loader's paths once.
    exec_loop()?;
    let mut without = Duration::MAX;
    let mut with = Duration::MAX;
    for pair in 0..EXEC_PAIRS {
        // Alternate the order, ABBA, to spread drift over both.
        for agent_on in [pair % 2 == 1, pair % 2 == 0] {
            if agent_on {
                let running = Agent::start(agent, &config_head())?;
                let took = exec_loop()?;
                running.stop()?;
                eprintln!("xtask:   with agent    {took:?}");
                with = with.min(took);
            } else {
                let took = exec_loop()?;
                eprintln!("xtask:   without agent {took:?}");
                without = without.min(took);
            }
        }
    }
    Ok(ExecFigures { without, with })
}

fn exec_loop() -> anyhow::Result<Duration> {
    let script = format!("i=0; while [ $i -lt {EXEC_ITERATIONS} ]; do /bin/true; i=$((i+1)); done");
    let started = Instant::now();
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg(&script)
        .stdin(Stdio::null())
        .status()
        .context("running /bin/sh")?;
    let took = started.elapsed();
    ensure!(status.success(), "the exec loop exited with {status}");
    Ok(took)
}

// ---------------------------------------------------------------------------
// The agent

fn config_head() -> String {
    "apiVersion: guardrails.dev/v1alpha1\nnode_name: bench\n".to_owned()
}

/// `guardrails agent` as a child, logging JSON on stderr; killed on drop.
struct Agent {
    child: Child,
    lines: Receiver<String>,
    log: Vec<String>,
    config: PathBuf,
}

impl Agent {
    /// Starts the agent with `config` (YAML), without `--stdout` (events are
    /// decoded, enriched and counted, not printed), and waits until its
    /// sensors are attached.
    fn start(binary: &Path, config: &str) -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "guardrails-bench-{}-{}.yaml",
            std::process::id(),
            unique()
        ));
        std::fs::write(&path, config).with_context(|| format!("writing {}", path.display()))?;
        let others = other_cpus()?;
        let mut command = Command::new(binary);
        command
            .args(["--log-format", "json", "--log-level", "info", "agent"])
            .arg("--config")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(set) = others {
            // SAFETY: between fork and exec the closure only calls
            // sched_setaffinity on a set prepared before the fork.
            unsafe {
                command.pre_exec(move || {
                    if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let spawned = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()));
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        };
        let (tx, lines) = mpsc::channel();
        if let Some(stderr) = child.stderr.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut agent = Self {
            child,
            lines,
            log: Vec::new(),
            config: path,
        };
        agent.wait_for("sensors attached", Duration::from_secs(120))?;
        std::thread::sleep(SETTLE);
        Ok(agent)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the log line whose message is `message` and returns it.
    fn wait_for(&mut self, message: &str, timeout: Duration) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let parsed = serde_json::from_str::<Value>(&line).ok();
                    self.log.push(line);
                    if let Some(value) = parsed
                        && value["message"] == message
                    {
                        return Ok(value);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    bail!(
                        "timed out waiting for the agent's `{message}`; its log:\n{}",
                        self.log.join("\n")
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    bail!(
                        "the agent exited before `{message}`; its log:\n{}",
                        self.log.join("\n")
                    )
                }
            }
        }
    }

    /// SIGTERM, then its counts from the `stopped` line.
    fn stop(mut self) -> anyhow::Result<Tally> {
        let pid = libc::pid_t::try_from(self.pid()).context("the agent's pid")?;
        // SAFETY: kill on our own child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let stopped = self.wait_for("stopped", Duration::from_secs(60))?;
        let status = wait_timeout(&mut self.child, Duration::from_secs(30))?;
        ensure!(status.success(), "the agent exited with {status}");
        Ok(Tally::from_log(&stopped))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // A no-op when it has been stopped and reaped.
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.config);
    }
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().context("waiting for a child")? {
            return Ok(status);
        }
        ensure!(
            Instant::now() < deadline,
            "child {} did not exit within {timeout:?}",
            child.id()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// cgroups

/// A fresh cgroup v2 directory, `<mount>/guardrails-bench/<name>-<unique>`;
/// on drop, whatever is left in it is killed and the directories removed.
struct Cgroup {
    path: PathBuf,
    parent: PathBuf,
}

impl Cgroup {
    fn create(mount: &Path, name: &str) -> anyhow::Result<Self> {
        let parent = mount.join("guardrails-bench");
        let path = parent.join(format!("{name}-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path, parent })
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // cgroup.kill: Linux 5.14 and later.
        let _ = std::fs::write(self.path.join("cgroup.kill"), "1");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::remove_dir(&self.path).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.path.exists() {
            eprintln!("xtask: could not remove {}", self.path.display());
        }
        // Fails while another run's cgroup is in it, which is fine.
        let _ = std::fs::remove_dir(&self.parent);
    }
}

fn join_cgroup(cgroup: &Path) -> anyhow::Result<()> {
    let procs = cgroup.join("cgroup.procs");
    std::fs::write(&procs, "0").with_context(|| format!("joining {}", procs.display()))
}

/// The cgroup2 mount point, from /proc/self/mountinfo.
fn cgroup2_mount() -> anyhow::Result<PathBuf> {
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    mountinfo
        .lines()
        .find_map(|line| {
            // "<id> <parent> <dev> <root> <mount point> <options> ... - <fstype> ..."
            let (before, after) = line.split_once(" - ")?;
            let fstype = after.split_whitespace().next()?;
            let mount_point = before.split_whitespace().nth(4)?;
            (fstype == "cgroup2").then(|| unescape_mount_path(mount_point))
        })
        .context("no cgroup v2 filesystem is mounted (looked in /proc/self/mountinfo)")
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_path(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let code = (bytes[i] == b'\\')
            .then(|| field.get(i + 1..i + 4))
            .flatten()
            .and_then(|octal| u8::from_str_radix(octal, 8).ok());
        match code {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(OsStr::from_bytes(&out))
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

// ---------------------------------------------------------------------------
// The report

#[derive(Debug)]
struct Machine {
    date: String,
    kernel: String,
    cpu_model: String,
    cpus: usize,
}

impl Machine {
    fn read() -> Self {
        let date = Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M:%S UTC"])
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map_or_else(
                || "unknown".to_owned(),
                |out| String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            );
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned());
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|line| line.starts_with("model name"))
                    .and_then(|line| line.split_once(':'))
                    .map(|(_, model)| model.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
        Self {
            date,
            kernel,
            cpu_model,
            cpus,
        }
    }
}

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
    let filtered_delta = s.filtered_ns - s.bare_ns;
    let delivered_delta = s.delivered_ns - s.bare_ns;
    let decoded = s.tally.records.saturating_sub(s.tally.decode_failed);
    let loop_secs = s.delivered_loop_ns as f64 / 1e9;
    let until_stopped_secs = s.delivered_until_stopped_ns as f64 / 1e9;
    let rate = decoded as f64 / loop_secs;
    let rate_until_stopped = decoded as f64 / until_stopped_secs;
    let offered = s.delivered_calls as f64 / loop_secs;
    let mib = |kib: u64| kib as f64 / 1024.0;
    let exec_overhead =
        (exec.with.as_secs_f64() - exec.without.as_secs_f64()) / exec.without.as_secs_f64() * 100.0;
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
    row(
        "getppid, agent attached, filtered in kernel",
        format!("{:.1} ns", s.filtered_ns),
        format!("{filtered_delta:+.1} ns"),
        "<= +50 ns",
        met(filtered_delta <= 50.0),
    );
    row(
        "getppid, every call delivered as an event",
        format!("{:.1} ns", s.delivered_ns),
        format!("{delivered_delta:+.1} ns"),
        "<= +200 ns",
        met(delivered_delta <= 200.0),
    );
    row(
        "events decoded per second (during the loop)",
        format!("{:.2} M/s", rate / 1e6),
        String::new(),
        ">= 3 M/s, 0 lost",
        met(rate >= 3e6 && s.tally.lost == 0),
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
        &format!("exec-heavy: {EXEC_ITERATIONS} x fork+exec /bin/true"),
        format!("{:.3} s", exec.with.as_secs_f64()),
        format!("{exec_overhead:+.1} %"),
        "<= +3 %",
        met(exec_overhead <= 3.0),
    );
    row(
        "  without the agent (baseline)",
        format!("{:.3} s", exec.without.as_secs_f64()),
        String::new(),
        "",
        "",
    );
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
        "exec-heavy: best of {EXEC_PAIRS} runs each, alternating; agent with default sensors, \
         whole node"
    );
}
