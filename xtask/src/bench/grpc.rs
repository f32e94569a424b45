//! `cargo xtask bench grpc`: what the gRPC API's event streams deliver and
//! what they cost the pipeline, measured against baselines taken in the same
//! run.
//!
//! Every run starts the release agent (default rules), scoped to a fresh
//! cgroup v2 directory, with its API on a socket in a temporary directory. A
//! load generator in that cgroup, pinned to one CPU, makes the events; the
//! agent and a clients process (the hidden `grpc-clients` target, see
//! `grpc/clients.rs`; each stream on its own connection) share the other
//! CPUs. The loads and the clients are this tool built in release mode.
//!
//! 1. Live, getppid events (`sensors: {benchmark: true}`): a burst of
//!    getppid(2) calls with no stream open (the baseline), one reading
//!    client, and ten clients with different filters, with a per-stream queue
//!    (`api.client_queue`) larger than the burst; then one reading client
//!    alone and beside a stalled one (opened, never read), with the default
//!    queue and with the large one. The pipeline's throughput is the events
//!    the agent numbered for the API (its `GetStatus` sequence) per second,
//!    from the start of the burst until that number stopped growing; a
//!    client's is the events it received per second between its first and
//!    last message.
//! 2. Live, open events (file sensor): open(2)+close(2) of a file in a loop,
//!    with no stream and with one reading client.
//! 3. Replay: the agent keeps a load's events in its replay buffer; once it is
//!    idle, one client asks for the buffer only (`replay_only`): twice with
//!    whole events (each pass writes each event's JSON as it sends it: an
//!    event only one stream sends does not keep its JSON), once with a field
//!    mask, all three with the client on the
//!    CPU the load used (idle now), so that the agent's CPU does only the
//!    sending; then once more on the agent's CPU. For getppid events, open
//!    events, and the mix of a shell running /bin/true (forks, execs, exits
//!    and the dynamic loader's opens).
//!
//! The agent's CPU time is the sum of its threads' scheduler run times
//! (`/proc/PID/task/*/schedstat`, nanoseconds), read before and after each
//! run or pass.
//!
//! Nothing is asserted: the figures and the targets are printed side by side.

mod clients;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use serde_json::Value;

pub(super) use self::clients::{Preset, clients};
use super::common::{
    Agent, Cgroup, Machine, Tally, cgroup2_mount, change_percent, config_head, cpu_ns, loop_cpu,
    memory, monotonic_ns, unique, wait_timeout, wait_until_idle,
};

/// getppid calls per live burst.
const BURST_CALLS: u64 = 1_000_000;
/// The paced load of the stalled-client comparison: getppid calls, and
/// calls per second, a rate one reading client keeps up with, so that its
/// throughput is the stream's and not what the scheduler leaves it.
const PACED_CALLS: u64 = 300_000;
const PACED_RATE: u64 = 100_000;
/// Seconds of each live open/close loop.
const OPEN_SECONDS: f64 = 2.0;
/// getppid calls and seconds of open/close whose events fill the replay
/// buffer (more than it holds).
const REPLAY_CALLS: u64 = 400_000;
const REPLAY_OPEN_SECONDS: f64 = 2.0;
/// Runs of /bin/true for the exec mix.
const EXEC_ITERATIONS: u32 = 10_000;
/// Events the replay runs keep.
const REPLAY_EVENTS: u64 = 300_000;
/// The large per-stream queue: more than a burst makes, so that a reading
/// client loses nothing for lack of room.
const LARGE_QUEUE: u64 = 4_000_000;
/// The agent's default per-stream queue and replay buffer.
const DEFAULT_QUEUE: u64 = 8_192;
const DEFAULT_REPLAY: u64 = 8_192;
/// The ring buffer: 64 MiB, as the sensors benchmark's delivered runs.
const RING_BYTES: u64 = 64 << 20;
/// The reader's drain timer. The records a burst leaves below the kernel's
/// wake-up threshold wait for it; at the default 50 ms that wait, random
/// between runs, was as large as the differences between configurations
/// (the pipeline keeps up with the load in all of them).
const DRAIN_INTERVAL_MS: u64 = 2;
/// How long the agent may take to go idle after a replay load.
const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// Targets.
const ONE_CLIENT_PER_S: f64 = 500_000.0;
const TEN_CLIENTS_MAX_COST: f64 = 0.10;
/// How far the reading client's throughput beside a stalled one may be from
/// its throughput alone and still count as unchanged: run-to-run noise on a
/// shared machine is of that order.
const STALLED_TOLERANCE: f64 = 0.10;

/// The live configurations, each run once per round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setup {
    None,
    One,
    Ten,
    TenDefaultQueue,
    OneDefaultQueue,
    StalledDefaultQueue,
    Stalled,
    PacedOne,
    PacedStalled,
    OpenNone,
    OpenOne,
}

impl Setup {
    const ALL: [Self; 11] = [
        Self::None,
        Self::One,
        Self::Ten,
        Self::TenDefaultQueue,
        Self::OneDefaultQueue,
        Self::StalledDefaultQueue,
        Self::Stalled,
        Self::PacedOne,
        Self::PacedStalled,
        Self::OpenNone,
        Self::OpenOne,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::None => "getppid, no stream",
            Self::One => "getppid, 1 client",
            Self::Ten => "getppid, 10 clients",
            Self::TenDefaultQueue => "getppid, 10 clients, queue 8192",
            Self::OneDefaultQueue => "getppid, 1 client, queue 8192",
            Self::StalledDefaultQueue => "getppid, 1 + stalled, queue 8192",
            Self::Stalled => "getppid, 1 client + stalled",
            Self::PacedOne => "paced getppid, 1 client, queue 8192",
            Self::PacedStalled => "paced getppid, 1 + stalled, queue 8192",
            Self::OpenNone => "open, no stream",
            Self::OpenOne => "open, 1 client",
        }
    }

    fn presets(self) -> &'static [Preset] {
        match self {
            Self::None | Self::OpenNone => &[],
            Self::One | Self::OneDefaultQueue | Self::PacedOne | Self::OpenOne => &[Preset::All],
            Self::Ten | Self::TenDefaultQueue => &Preset::TEN,
            Self::StalledDefaultQueue | Self::Stalled | Self::PacedStalled => {
                &[Preset::All, Preset::Stalled]
            }
        }
    }

    fn queue(self) -> u64 {
        match self {
            Self::OneDefaultQueue
            | Self::TenDefaultQueue
            | Self::StalledDefaultQueue
            | Self::PacedOne
            | Self::PacedStalled => DEFAULT_QUEUE,
            _ => LARGE_QUEUE,
        }
    }

    fn load(self, target: &Path) -> Load<'_> {
        match self {
            Self::OpenNone | Self::OpenOne => Load::OpenClose {
                seconds: OPEN_SECONDS,
                path: target,
            },
            Self::PacedOne | Self::PacedStalled => Load::Getppid {
                calls: PACED_CALLS,
                rate: PACED_RATE,
            },
            _ => Load::Getppid {
                calls: BURST_CALLS,
                rate: 0,
            },
        }
    }
}

pub(super) fn grpc(rounds: u32) -> anyhow::Result<()> {
    ensure!(
        crate::is_root(),
        "the benchmark loads kernel programs and makes cgroups: run it as root"
    );
    ensure!(rounds > 0, "--rounds must be positive");
    crate::deps()?;
    let agent = crate::build_release_agent()?;
    // The loads and the clients run optimized: the clients share the
    // agent's CPU.
    let tools = crate::build_release_xtask()?;
    let mount = cgroup2_mount()?;
    let cpu = loop_cpu()?;
    let dir = TempDir::create()?;
    let target = dir.path.join("target");
    std::fs::write(&target, "x").with_context(|| format!("creating {}", target.display()))?;
    let socket = dir.path.join("agent.sock");
    let cgroup = Cgroup::create(&mount, "grpc")?;
    let bench = Bench {
        agent: &agent,
        tools: &tools,
        cgroup: &cgroup,
        cpu,
        socket: &socket,
    };

    let mut live = Live::default();
    for round in 1..=rounds {
        eprintln!("xtask: [1/3] round {round} of {rounds}: live streams");
        // Rotated each round, to spread drift over every configuration.
        let mut order = Setup::ALL;
        let shift = usize::try_from(round - 1).unwrap_or(0) % order.len();
        order.rotate_left(shift);
        for setup in order {
            let run = bench.live(setup, setup.load(&target))?;
            live.runs.push((setup, run));
        }
    }

    eprintln!("xtask: [2/3] replay to one client");
    let replays = vec![
        bench.replay(
            "getppid",
            Load::Getppid {
                calls: REPLAY_CALLS,
                rate: 0,
            },
        )?,
        bench.replay(
            "open",
            Load::OpenClose {
                seconds: REPLAY_OPEN_SECONDS,
                path: &target,
            },
        )?,
        bench.replay(
            "exec mix",
            Load::Exec {
                iterations: EXEC_ITERATIONS,
            },
        )?,
    ];
    eprintln!("xtask: [3/3] done");
    drop(cgroup);
    report(&Machine::read(), cpu, rounds, &live, &replays);
    Ok(())
}

// ---------------------------------------------------------------------------
// Loads

/// What makes the events: a child process in the cgroup, pinned to the loop's
/// CPU.
#[derive(Clone, Copy, Debug)]
enum Load<'a> {
    /// `bench getppid-loop`, one repetition, at `rate` calls per second (0:
    /// as fast as it can).
    Getppid { calls: u64, rate: u64 },
    /// `bench open-close-loop` on `path`.
    OpenClose { seconds: f64, path: &'a Path },
    /// `sh` running /bin/true that many times.
    Exec { iterations: u32 },
}

#[derive(Clone, Copy, Debug, Default)]
struct LoadRun {
    /// getppid calls, open+close pairs or runs of /bin/true.
    calls: u64,
    ns: u64,
}

impl LoadRun {
    #[expect(clippy::cast_precision_loss, reason = "a rate")]
    fn rate(self) -> f64 {
        self.calls as f64 / (self.ns as f64 / 1e9).max(1e-9)
    }
}

impl Load<'_> {
    fn run(self, exe: &Path, cgroup: &Cgroup, cpu: usize) -> anyhow::Result<LoadRun> {
        let mut command = match self {
            Self::Getppid { calls, rate } => {
                let mut command = Command::new(exe);
                command
                    .args(["bench", "getppid-loop", "--cgroup"])
                    .arg(&cgroup.path)
                    .args(["--cpu", &cpu.to_string()])
                    .args(["--calls", &calls.to_string()])
                    .args(["--rate", &rate.to_string()])
                    .args(["--reps", "1", "--warmup", "0"]);
                command
            }
            Self::OpenClose { seconds, path } => {
                let mut command = Command::new(exe);
                command
                    .args(["bench", "open-close-loop", "--cgroup"])
                    .arg(&cgroup.path)
                    .args(["--cpu", &cpu.to_string()])
                    .args(["--seconds", &seconds.to_string()])
                    .arg("--path")
                    .arg(path);
                command
            }
            Self::Exec { iterations } => {
                let mut command = Command::new(exe);
                command
                    .args(["bench", "exec-loop", "--cgroup"])
                    .arg(&cgroup.path)
                    .args(["--cpu", &cpu.to_string()])
                    .args(["--iterations", &iterations.to_string()]);
                command
            }
        };
        let output = command
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running {command:?}"))?;
        ensure!(
            output.status.success(),
            "{command:?} failed with {}",
            output.status
        );
        let text = String::from_utf8_lossy(&output.stdout);
        let numbers: Vec<&str> = text.split_whitespace().collect();
        let parse = |i: usize| -> anyhow::Result<u64> {
            numbers
                .get(i)
                .and_then(|n| n.parse().ok())
                .with_context(|| format!("the load printed {text:?}"))
        };
        Ok(match self {
            // `best_ns_per_call total_ns total_calls`
            Self::Getppid { .. } => LoadRun {
                calls: parse(2)?,
                ns: parse(1)?,
            },
            // `calls total_ns`
            Self::OpenClose { .. } | Self::Exec { .. } => LoadRun {
                calls: parse(0)?,
                ns: parse(1)?,
            },
        })
    }
}

/// The hidden `exec-loop` target: joins the cgroup, pins itself, then runs
/// /bin/sh, which runs /bin/true `iterations` times; prints `runs total_ns`.
pub(super) fn exec_loop(cgroup: &Path, cpu: usize, iterations: u32) -> anyhow::Result<()> {
    use std::io::Write as _;
    super::common::join_cgroup(cgroup)?;
    super::common::pin_to_cpu(cpu)?;
    let script = format!("i=0; while [ $i -lt {iterations} ]; do /bin/true; i=$((i+1)); done");
    let started = Instant::now();
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg(&script)
        .stdin(Stdio::null())
        .status()
        .context("running /bin/sh")?;
    let ns = started.elapsed().as_nanos();
    ensure!(status.success(), "the exec loop exited with {status}");
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{iterations} {ns}")
        .and_then(|()| stdout.flush())
        .context("writing the loop's figures")
}

// ---------------------------------------------------------------------------
// The clients process

/// The `grpc-clients` child.
struct Clients {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Clients {
    /// Starts it, pinned to `cpu` or else to the agent's CPUs, and waits
    /// until its streams are open.
    fn start(
        exe: &Path,
        socket: &Path,
        presets: &[Preset],
        replay: bool,
        cpu: Option<usize>,
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(exe);
        command
            .args(["bench", "grpc-clients", "--socket"])
            .arg(socket);
        for preset in presets {
            command.args(["--client", preset.name()]);
        }
        if replay {
            command.arg("--replay");
        }
        if let Some(cpu) = cpu {
            command.args(["--cpu", &cpu.to_string()]);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("running {} bench grpc-clients", exe.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("the clients' stdout")?;
        let mut clients = Self {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        };
        let mut line = String::new();
        clients
            .stdout
            .read_line(&mut line)
            .context("reading from the clients process")?;
        ensure!(
            line.trim() == "ready",
            "the clients process did not open its streams"
        );
        Ok(clients)
    }

    /// Tells it the load is over; waits for its figures.
    fn finish(mut self) -> anyhow::Result<Streams> {
        self.stdin.take();
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .context("reading the clients' figures")?;
        let status = wait_timeout(&mut self.child, Duration::from_secs(30))?;
        ensure!(status.success(), "the clients process exited with {status}");
        let value: Value = serde_json::from_str(&line)
            .with_context(|| format!("parsing the clients' figures {line:?}"))?;
        Ok(Streams::from_json(&value))
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        self.stdin.take();
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What one reading stream received.
#[derive(Clone, Debug, Default)]
struct Stream {
    preset: String,
    events: u64,
    json_bytes: u64,
    lost_messages: u64,
    lost_events: u64,
    opened_ns: u64,
    first_ns: u64,
    last_ns: u64,
    error: Option<String>,
}

impl Stream {
    /// Events per second between its first and last message.
    #[expect(clippy::cast_precision_loss, reason = "a rate")]
    fn rate(&self) -> f64 {
        let ns = self.last_ns.saturating_sub(self.first_ns).max(1);
        self.events.saturating_sub(1) as f64 / (ns as f64 / 1e9)
    }

    /// Events per second from the request to the last message (replay).
    #[expect(clippy::cast_precision_loss, reason = "a rate")]
    fn rate_from_open(&self) -> f64 {
        let ns = self.last_ns.saturating_sub(self.opened_ns).max(1);
        self.events as f64 / (ns as f64 / 1e9)
    }

    #[expect(clippy::cast_precision_loss, reason = "a mean")]
    fn mean_bytes(&self) -> f64 {
        self.json_bytes as f64 / self.events.max(1) as f64
    }
}

/// The clients process's figures.
#[derive(Clone, Debug, Default)]
struct Streams {
    readers: Vec<Stream>,
    /// The server's `sent` and `lost` of every stream, stalled ones included,
    /// in the order they were opened.
    server: Vec<(u64, u64)>,
    sequence_start: u64,
    sequence_end: u64,
    sequence_last_change_ns: u64,
    cpu_ns: u64,
    timed_out: bool,
}

impl Streams {
    fn from_json(value: &Value) -> Self {
        let n = |v: &Value, key: &str| v[key].as_u64().unwrap_or(0);
        let readers = value["clients"]
            .as_array()
            .map(|clients| {
                clients
                    .iter()
                    .map(|c| Stream {
                        preset: c["preset"].as_str().unwrap_or("?").to_owned(),
                        events: n(c, "events"),
                        json_bytes: n(c, "json_bytes"),
                        lost_messages: n(c, "lost_messages"),
                        lost_events: n(c, "lost_events"),
                        opened_ns: n(c, "opened_ns"),
                        first_ns: n(c, "first_ns"),
                        last_ns: n(c, "last_ns"),
                        error: c["error"].as_str().map(str::to_owned),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let server = value["server"]
            .as_array()
            .map(|s| s.iter().map(|c| (n(c, "sent"), n(c, "lost"))).collect())
            .unwrap_or_default();
        Self {
            readers,
            server,
            sequence_start: n(value, "sequence_start"),
            sequence_end: n(value, "sequence_end"),
            sequence_last_change_ns: n(value, "sequence_last_change_ns"),
            cpu_ns: n(value, "cpu_ns"),
            timed_out: value["timed_out"].as_bool().unwrap_or(false),
        }
    }
}

// ---------------------------------------------------------------------------
// Runs

struct Bench<'a> {
    agent: &'a Path,
    /// This tool built in release mode, for the loads and the clients.
    tools: &'a Path,
    cgroup: &'a Cgroup,
    /// The loads' CPU.
    cpu: usize,
    socket: &'a Path,
}

/// One live run: a load with the agent and a set of streams.
#[derive(Debug)]
struct LiveRun {
    load: LoadRun,
    /// When the load started (`CLOCK_MONOTONIC`).
    start_ns: u64,
    streams: Streams,
    tally: Tally,
    agent_cpu_ns: u64,
    agent_hwm_kib: u64,
}

impl LiveRun {
    /// Events the agent numbered for the API, per second from the start of
    /// the load until the number stopped growing.
    #[expect(clippy::cast_precision_loss, reason = "a rate")]
    fn pipeline_rate(&self) -> f64 {
        self.numbered() as f64 / self.drain_secs().max(1e-9)
    }

    fn numbered(&self) -> u64 {
        self.streams
            .sequence_end
            .saturating_sub(self.streams.sequence_start)
    }

    /// Seconds from the start of the load until the agent had numbered its
    /// last event.
    #[expect(clippy::cast_precision_loss, reason = "a duration")]
    fn drain_secs(&self) -> f64 {
        self.streams
            .sequence_last_change_ns
            .saturating_sub(self.start_ns) as f64
            / 1e9
    }

    #[expect(clippy::cast_precision_loss, reason = "a duration")]
    fn load_secs(&self) -> f64 {
        self.load.ns as f64 / 1e9
    }

    /// Whether the agent kept up with the load (it numbered its last event
    /// at most 5 % + 50 ms after the load ended): the load then bounds the
    /// figure.
    fn bounded_by_load(&self) -> bool {
        self.drain_secs() <= self.load_secs() * 1.05 + 0.05
    }

    /// The agent's CPU time per event it numbered.
    #[expect(clippy::cast_precision_loss, reason = "a figure")]
    fn agent_cpu_ns_per_event(&self) -> f64 {
        self.agent_cpu_ns as f64 / self.numbered().max(1) as f64
    }

    /// The clients process's CPU time per event the agent numbered.
    #[expect(clippy::cast_precision_loss, reason = "a figure")]
    fn clients_cpu_ns_per_event(&self) -> f64 {
        self.streams.cpu_ns as f64 / self.numbered().max(1) as f64
    }

    /// The (first) reading client's events per second.
    fn reader_rate(&self) -> f64 {
        self.streams.readers.first().map_or(0.0, Stream::rate)
    }

    fn reader(&self) -> Option<&Stream> {
        self.streams.readers.first()
    }

    fn lost_to_readers(&self) -> u64 {
        self.streams.readers.iter().map(|s| s.lost_events).sum()
    }
}

/// Every live run, with its configuration.
#[derive(Debug, Default)]
struct Live {
    runs: Vec<(Setup, LiveRun)>,
}

impl Live {
    fn of(&self, setup: Setup) -> impl Iterator<Item = &LiveRun> {
        self.runs
            .iter()
            .filter(move |(s, _)| *s == setup)
            .map(|(_, run)| run)
    }

    /// The run of `setup` with the highest `key`.
    fn best(&self, setup: Setup, key: impl Fn(&LiveRun) -> f64) -> Option<&LiveRun> {
        self.of(setup).max_by(|a, b| key(a).total_cmp(&key(b)))
    }

    /// `key` of every run of `setup`, in M/s.
    fn rates(&self, setup: Setup, key: impl Fn(&LiveRun) -> f64) -> String {
        self.of(setup)
            .map(|r| format!("{:.3}", key(r) / 1e6))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One pass over the replay buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    /// Whole events, the client on the loads' CPU, twice: the second finds
    /// the events in the cache.
    First,
    Second,
    /// With the `mask` preset's field mask, the client on the loads' CPU.
    Masked,
    /// Whole events, the client on the agent's CPU.
    Shared,
}

/// One replay run: a load, then passes over the buffer.
#[derive(Debug)]
struct ReplayRun {
    name: &'static str,
    load: LoadRun,
    tally: Tally,
    passes: Vec<(Pass, Stream, u64)>,
    agent_hwm_kib: u64,
}

impl ReplayRun {
    fn pass(&self, which: Pass) -> Option<&Stream> {
        self.passes
            .iter()
            .find(|(p, _, _)| *p == which)
            .map(|(_, s, _)| s)
    }

    fn rate(&self, which: Pass) -> f64 {
        self.pass(which).map_or(0.0, Stream::rate_from_open)
    }

    /// The agent's CPU per event in that pass.
    #[expect(clippy::cast_precision_loss, reason = "a figure")]
    fn agent_cpu_ns_per_event(&self, which: Pass) -> f64 {
        self.passes
            .iter()
            .find(|(p, _, _)| *p == which)
            .map_or(f64::NAN, |(_, s, ns)| *ns as f64 / s.events.max(1) as f64)
    }
}

impl Bench<'_> {
    fn config(&self, benchmark_sensor: bool, queue: u64, replay_events: u64) -> String {
        format!(
            "{}sensors:\n  benchmark: {benchmark_sensor}\ntransport:\n  ring_buffer_bytes: \
             {RING_BYTES}\n  drain_interval_ms: {DRAIN_INTERVAL_MS}\nmetrics:\n  enabled: false\nkubernetes:\n  mode: \"off\"\napi:\n  \
             socket: {:?}\n  client_queue: {queue}\n  replay_events: {replay_events}\n\
             scope:\n  cgroups: [{:?}]\n",
            config_head(),
            self.socket.display().to_string(),
            self.cgroup.path.display().to_string(),
        )
    }

    fn live(&self, setup: Setup, load: Load<'_>) -> anyhow::Result<LiveRun> {
        let benchmark_sensor = matches!(load, Load::Getppid { .. });
        let config = self.config(benchmark_sensor, setup.queue(), DEFAULT_REPLAY);
        let running = Agent::start(self.agent, &config)?;
        let pid = running.pid();
        let clients = Clients::start(self.tools, self.socket, setup.presets(), false, None)?;
        let cpu_before = cpu_ns(pid)?;
        let start_ns = monotonic_ns();
        let load = load.run(self.tools, self.cgroup, self.cpu)?;
        let streams = clients.finish()?;
        let cpu_after = cpu_ns(pid)?;
        let hwm = memory(pid)?.hwm_kib;
        let tally = running.stop()?;
        let run = LiveRun {
            load,
            start_ns,
            streams,
            tally,
            agent_cpu_ns: cpu_after.saturating_sub(cpu_before),
            agent_hwm_kib: hwm,
        };
        if run.streams.timed_out {
            eprintln!("xtask:   the clients had not caught up within their limit");
        }
        for stream in &run.streams.readers {
            if let Some(error) = &stream.error {
                bail!("{}: stream {} failed: {error}", setup.name(), stream.preset);
            }
        }
        let reader = run.reader().map_or_else(String::new, |s| {
            format!(
                "; client `{}` {:.3} M/s ({} events, {} lost)",
                s.preset,
                s.rate() / 1e6,
                s.events,
                s.lost_events
            )
        });
        eprintln!(
            "xtask:   {:<33} pipeline {:.3} M/s ({} events in {:.2} s, load {:.2} s at \
             {:.3} M/s, agent lost {}){reader}",
            setup.name(),
            run.pipeline_rate() / 1e6,
            run.numbered(),
            run.drain_secs(),
            run.load_secs(),
            run.load.rate() / 1e6,
            run.tally.lost,
        );
        Ok(run)
    }

    fn replay(&self, name: &'static str, load: Load<'_>) -> anyhow::Result<ReplayRun> {
        let benchmark_sensor = matches!(load, Load::Getppid { .. });
        let config = self.config(benchmark_sensor, LARGE_QUEUE, REPLAY_EVENTS);
        let running = Agent::start(self.agent, &config)?;
        let pid = running.pid();
        let load = load.run(self.tools, self.cgroup, self.cpu)?;
        wait_until_idle(pid, IDLE_LIMIT)?;
        let mut passes = Vec::new();
        for (pass, preset, cpu) in [
            (Pass::First, Preset::All, Some(self.cpu)),
            (Pass::Second, Preset::All, Some(self.cpu)),
            (Pass::Masked, Preset::Mask, Some(self.cpu)),
            (Pass::Shared, Preset::All, None),
        ] {
            let before = cpu_ns(pid)?;
            let streams =
                Clients::start(self.tools, self.socket, &[preset], true, cpu)?.finish()?;
            let agent_ns = cpu_ns(pid)?.saturating_sub(before);
            let stream = streams
                .readers
                .into_iter()
                .next()
                .context("the replay stream's figures")?;
            if let Some(error) = &stream.error {
                bail!("replay of {name}: the stream failed: {error}");
            }
            passes.push((pass, stream, agent_ns));
        }
        let hwm = memory(pid)?.hwm_kib;
        let tally = running.stop()?;
        let run = ReplayRun {
            name,
            load,
            tally,
            passes,
            agent_hwm_kib: hwm,
        };
        eprintln!(
            "xtask:   replay of {name}: {} events; {:.3} M/s, again {:.3} M/s, masked {:.3} M/s, \
             client on the agent's CPU {:.3} M/s",
            run.pass(Pass::First).map_or(0, |s| s.events),
            run.rate(Pass::First) / 1e6,
            run.rate(Pass::Second) / 1e6,
            run.rate(Pass::Masked) / 1e6,
            run.rate(Pass::Shared) / 1e6,
        );
        Ok(run)
    }
}

/// A directory under the temporary directory, removed on drop.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn create() -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "guardrails-bench-grpc-{}-{}",
            std::process::id(),
            unique()
        ));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------
// The report

#[expect(
    clippy::print_stdout,
    reason = "the report is the benchmark's output, on stdout"
)]
#[expect(clippy::cast_precision_loss, reason = "figures, not exact counts")]
#[expect(clippy::too_many_lines, reason = "one table")]
fn report(machine: &Machine, cpu: usize, rounds: u32, live: &Live, replays: &[ReplayRun]) {
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    let m = |rate: f64| format!("{:.3} M/s", rate / 1e6);
    let ratio = |a: f64, b: f64| format!("x{:.3}", a / b);
    let change = |a: f64, b: f64| format!("{:+.1} %", change_percent(a, b));
    let kib = |bytes: f64| format!("{:.1} KiB", bytes / 1024.0);
    let mib = |kib: u64| kib as f64 / 1024.0;
    let us = |ns: f64| format!("{:.2} us", ns / 1e3);

    println!();
    println!("Runtime Guardrails: gRPC API benchmark (cargo xtask bench grpc)");
    println!("  date     {}", machine.date);
    println!("  kernel   {}", machine.kernel);
    println!("  cpu      {} ({} CPUs)", machine.cpu_model, machine.cpus);
    println!(
        "  runs     loads pinned to CPU {cpu} in their own cgroup v2 directory; the agent \
         (default rules, scoped to that directory, ring buffer {} MiB, drain timer \
         {DRAIN_INTERVAL_MS} ms) and one clients process on the other CPUs; each stream on its \
         own connection to the Unix socket; {rounds} round(s), the best run of each \
         configuration",
        RING_BYTES >> 20
    );
    println!();
    println!(
        "{:<50} {:>14} {:>12} {:>22}  status",
        "figure", "measured", "vs baseline", "target"
    );
    let row = |name: &str, measured: String, delta: String, target: &str, status: &str| {
        println!("{name:<50} {measured:>14} {delta:>12} {target:>22}  {status}");
    };
    let bounded = |run: &LiveRun| {
        if run.bounded_by_load() {
            "(load-bound)"
        } else {
            ""
        }
    };

    println!(
        "live: getppid events (benchmark sensor), bursts of {BURST_CALLS} calls, \
         api.client_queue {LARGE_QUEUE}"
    );
    let none = live.best(Setup::None, LiveRun::pipeline_rate);
    let base = none.map_or(f64::NAN, LiveRun::pipeline_rate);
    if let Some(none) = none {
        row(
            "pipeline, no stream (baseline)",
            m(base),
            String::new(),
            "",
            bounded(none),
        );
        row(
            "  the load's getppid calls per second",
            m(none.load.rate()),
            String::new(),
            "",
            "",
        );
    }
    if let Some(one) = live.best(Setup::One, LiveRun::reader_rate) {
        let rate = one.reader_rate();
        let lost = one.lost_to_readers();
        row(
            "one client receives",
            m(rate),
            ratio(rate, base),
            ">= 0.5 M/s, 0 lost",
            met(rate >= ONE_CLIENT_PER_S && lost == 0),
        );
        row(
            "  events lost to it",
            lost.to_string(),
            String::new(),
            "0",
            met(lost == 0),
        );
        if let Some(s) = one.reader() {
            row(
                "  mean event (JSON)",
                kib(s.mean_bytes()),
                String::new(),
                "",
                "",
            );
            row(
                "  JSON received per second",
                format!("{:.1} MiB/s", s.mean_bytes() * rate / f64::from(1 << 20)),
                String::new(),
                "",
                "",
            );
        }
    }
    let one_pipeline = live.best(Setup::One, LiveRun::pipeline_rate);
    if let Some(p) = one_pipeline {
        row(
            "  pipeline with that client",
            m(p.pipeline_rate()),
            change(p.pipeline_rate(), base),
            "",
            "",
        );
        row(
            "  events the agent lost (ring buffer full)",
            p.tally.ring_buffer_full.to_string(),
            String::new(),
            "",
            "",
        );
    }
    // With queues larger than the burst the ten streams lose nothing and
    // the pipeline waits for them; with the default queue, streams that fall
    // behind lose events (counted and reported to them) instead.
    let ten_clients = |ten: &LiveRun, queue: u64| {
        let rate = ten.pipeline_rate();
        row(
            &format!("pipeline with ten clients, queue {queue}"),
            m(rate),
            change(rate, base),
            ">= -10 %",
            met(rate >= base * (1.0 - TEN_CLIENTS_MAX_COST)),
        );
        if let Some(p) = one_pipeline {
            row(
                "  against the pipeline with one client",
                String::new(),
                change(rate, p.pipeline_rate()),
                "",
                "",
            );
        }
        row(
            "  events the agent lost (ring buffer full)",
            ten.tally.ring_buffer_full.to_string(),
            String::new(),
            "",
            "",
        );
        for s in &ten.streams.readers {
            row(
                &format!("  client `{}`: events, lost, M/s", s.preset),
                format!("{}, {}, {:.3}", s.events, s.lost_events, s.rate() / 1e6),
                String::new(),
                "",
                "",
            );
        }
    };
    if let Some(ten) = live.best(Setup::Ten, LiveRun::pipeline_rate) {
        ten_clients(ten, LARGE_QUEUE);
    }
    if let Some(ten) = live.best(Setup::TenDefaultQueue, LiveRun::pipeline_rate) {
        ten_clients(ten, DEFAULT_QUEUE);
    }
    for setup in [Setup::None, Setup::One, Setup::Ten, Setup::TenDefaultQueue] {
        if let Some(run) = live.best(setup, LiveRun::pipeline_rate) {
            row(
                &format!("  CPU per numbered event, {}", setup.name()),
                format!(
                    "{} + {}",
                    us(run.agent_cpu_ns_per_event()),
                    us(run.clients_cpu_ns_per_event())
                ),
                String::new(),
                "agent + clients",
                "",
            );
        }
    }
    // A reading client alone and beside a stalled stream; `target` when the
    // comparison is the target's.
    let stalled_rows = |alone: &LiveRun, beside: &LiveRun, target: bool| {
        let a = alone.reader_rate();
        let b = beside.reader_rate();
        row(
            "reading client alone (baseline)",
            m(a),
            String::new(),
            "",
            "",
        );
        row(
            "reading client beside a stalled one",
            m(b),
            change(b, a),
            if target {
                "within 10 %"
            } else {
                "(information)"
            },
            if target {
                met((b - a).abs() <= a * STALLED_TOLERANCE)
            } else {
                ""
            },
        );
        row(
            "  events lost to the reading client: alone, beside",
            format!("{}, {}", alone.lost_to_readers(), beside.lost_to_readers()),
            String::new(),
            "",
            "",
        );
        if let Some(&(sent, lost)) = beside.streams.server.get(1) {
            row(
                "  stalled stream: sent, dropped (server)",
                format!("{sent}, {lost}"),
                String::new(),
                "",
                "",
            );
        }
        row(
            "  pipeline: alone, beside",
            format!(
                "{:.3}, {:.3}",
                alone.pipeline_rate() / 1e6,
                beside.pipeline_rate() / 1e6
            ),
            change(beside.pipeline_rate(), alone.pipeline_rate()),
            "",
            "",
        );
        row(
            "  agent VmHWM: alone, beside",
            format!(
                "{:.0}, {:.0} MiB",
                mib(alone.agent_hwm_kib),
                mib(beside.agent_hwm_kib)
            ),
            String::new(),
            "",
            "",
        );
    };
    let alone = live.best(Setup::PacedOne, LiveRun::reader_rate);
    let beside = live.best(Setup::PacedStalled, LiveRun::reader_rate);
    if let (Some(alone), Some(beside)) = (alone, beside) {
        println!(
            "live: getppid paced at {PACED_RATE} calls/s ({PACED_CALLS} calls), a reading client \
             beside a stalled one, api.client_queue {DEFAULT_QUEUE}"
        );
        stalled_rows(alone, beside, true);
    }
    let alone = live.best(Setup::OneDefaultQueue, LiveRun::reader_rate);
    let beside = live.best(Setup::StalledDefaultQueue, LiveRun::reader_rate);
    if let (Some(alone), Some(beside)) = (alone, beside) {
        println!("live: the same with bursts of {BURST_CALLS} calls, faster than one client reads");
        stalled_rows(alone, beside, false);
    }
    let alone = live.best(Setup::One, LiveRun::reader_rate);
    let beside = live.best(Setup::Stalled, LiveRun::reader_rate);
    if let (Some(alone), Some(beside)) = (alone, beside) {
        println!("live: the same with api.client_queue {LARGE_QUEUE}");
        let a = alone.reader_rate();
        let b = beside.reader_rate();
        row(
            "reading client beside a stalled one",
            m(b),
            change(b, a),
            "(information)",
            "",
        );
        if let Some(&(sent, lost)) = beside.streams.server.get(1) {
            row(
                "  stalled stream: sent, dropped (server)",
                format!("{sent}, {lost}"),
                String::new(),
                "",
                "",
            );
        }
        row(
            "  agent VmHWM: alone, beside",
            format!(
                "{:.0}, {:.0} MiB",
                mib(alone.agent_hwm_kib),
                mib(beside.agent_hwm_kib)
            ),
            String::new(),
            "",
            "",
        );
    }

    println!("live: open events (file sensor), open+close for {OPEN_SECONDS} s");
    let open_none = live.best(Setup::OpenNone, LiveRun::pipeline_rate);
    let open_base = open_none.map_or(f64::NAN, LiveRun::pipeline_rate);
    if let Some(none) = open_none {
        row(
            "pipeline, no stream (baseline)",
            m(open_base),
            String::new(),
            "",
            bounded(none),
        );
        row(
            "  the load's open+close per second",
            m(none.load.rate()),
            String::new(),
            "",
            "",
        );
    }
    if let Some(one) = live.best(Setup::OpenOne, LiveRun::reader_rate) {
        let rate = one.reader_rate();
        let lost = one.lost_to_readers();
        // One process opening a file on one CPU makes fewer events than the
        // target: a client that gets all of them as they come is bound by
        // the load, and the replay rows measure what it could take.
        let kept_up = lost == 0 && rate >= one.load.rate() * 0.95;
        row(
            "one client receives",
            m(rate),
            ratio(rate, open_base),
            ">= 0.5 M/s, 0 lost",
            if rate >= ONE_CLIENT_PER_S && lost == 0 {
                "met"
            } else if kept_up {
                "(load-bound; see replay)"
            } else {
                "NOT met"
            },
        );
        row(
            "  events lost to it",
            lost.to_string(),
            String::new(),
            "0",
            met(lost == 0),
        );
        if let Some(s) = one.reader() {
            row(
                "  mean event (JSON)",
                kib(s.mean_bytes()),
                String::new(),
                "",
                "",
            );
        }
        row(
            "  pipeline with that client",
            m(one.pipeline_rate()),
            change(one.pipeline_rate(), open_base),
            "",
            "",
        );
        row(
            "  CPU per numbered event (agent + clients)",
            format!(
                "{} + {}",
                us(one.agent_cpu_ns_per_event()),
                us(one.clients_cpu_ns_per_event())
            ),
            String::new(),
            "",
            "",
        );
    }

    println!(
        "replay: the agent's buffer (up to {REPLAY_EVENTS} events) to one client, the agent \
         otherwise idle, the client on CPU {cpu} unless said"
    );
    for replay in replays {
        let first = replay.rate(Pass::First);
        let events = replay.pass(Pass::First).map_or(0, |s| s.events);
        let bytes = replay.pass(Pass::First).map_or(0.0, Stream::mean_bytes);
        row(
            &format!("{} events, first pass", replay.name),
            m(first),
            String::new(),
            ">= 0.5 M/s",
            met(first >= ONE_CLIENT_PER_S),
        );
        row(
            "  events, mean JSON",
            format!("{events}, {}", kib(bytes)),
            String::new(),
            "",
            "",
        );
        row(
            "  agent CPU per event",
            us(replay.agent_cpu_ns_per_event(Pass::First)),
            String::new(),
            "",
            "",
        );
        row(
            "  second pass",
            m(replay.rate(Pass::Second)),
            ratio(replay.rate(Pass::Second), first),
            "",
            "",
        );
        row(
            "    agent CPU per event",
            us(replay.agent_cpu_ns_per_event(Pass::Second)),
            String::new(),
            "",
            "",
        );
        row(
            "  with a field mask (4 fields)",
            m(replay.rate(Pass::Masked)),
            ratio(replay.rate(Pass::Masked), first),
            "",
            "",
        );
        row(
            "    agent CPU per event",
            us(replay.agent_cpu_ns_per_event(Pass::Masked)),
            String::new(),
            "",
            "",
        );
        row(
            "  client on the agent's CPU",
            m(replay.rate(Pass::Shared)),
            ratio(replay.rate(Pass::Shared), replay.rate(Pass::Second)),
            "",
            "",
        );
    }

    println!();
    println!("rates per round (M/s):");
    for setup in Setup::ALL {
        let client = if setup.presets().is_empty() {
            String::new()
        } else {
            format!(
                "; first reading client [{}]",
                live.rates(setup, LiveRun::reader_rate)
            )
        };
        println!(
            "  {}: pipeline [{}]{client}",
            setup.name(),
            live.rates(setup, LiveRun::pipeline_rate)
        );
    }
    for (setup, run) in &live.runs {
        println!(
            "{}: load {} in {:.2} s; agent {} records, {} lost (ring_buffer_full {}, \
             queue_full {}); {} numbered in {:.2} s; agent CPU {:.2} s, VmHWM {:.0} MiB; clients \
             CPU {:.2} s",
            setup.name(),
            run.load.calls,
            run.load_secs(),
            run.tally.records,
            run.tally.lost,
            run.tally.ring_buffer_full,
            run.tally.queue_full,
            run.numbered(),
            run.drain_secs(),
            run.agent_cpu_ns as f64 / 1e9,
            mib(run.agent_hwm_kib),
            run.streams.cpu_ns as f64 / 1e9,
        );
    }
    for replay in replays {
        let first = replay.pass(Pass::First);
        println!(
            "replay of {}: load {} in {:.2} s; agent {} records, {} lost; first pass {} events \
             after {} lost message(s) for {} expired; masked events: mean JSON {}; agent VmHWM \
             {:.0} MiB",
            replay.name,
            replay.load.calls,
            replay.load.ns as f64 / 1e9,
            replay.tally.records,
            replay.tally.lost,
            first.map_or(0, |s| s.events),
            first.map_or(0, |s| s.lost_messages),
            first.map_or(0, |s| s.lost_events),
            kib(replay.pass(Pass::Masked).map_or(0.0, Stream::mean_bytes)),
            mib(replay.agent_hwm_kib),
        );
    }
    println!(
        "clients read each message and count it (the JSON is not parsed); a client's rate is its \
         events over the time between its first and last message (replay: from the request); \
         the pipeline's is the events the agent numbered over the time from the start of the \
         load until the last was numbered; load-bound: the agent kept up with the load"
    );
}
