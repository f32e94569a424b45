//! What the benchmarks share: the agent as a child process, fresh cgroup v2
//! directories, CPU pinning, memory, the kernel programs' run time and the
//! machine's description.

use std::os::unix::process::CommandExt;
use std::{
    collections::{HashMap, HashSet},
    ffi::OsStr,
    io::{BufRead, BufReader},
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use serde_json::Value;

/// How long a freshly started agent is left to settle (seeding its process
/// tree, resolving containers) before anything is measured.
pub(super) const SETTLE: Duration = Duration::from_secs(1);

/// The agent's counts at shutdown.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Tally {
    pub(super) records: u64,
    pub(super) delivered: u64,
    pub(super) lost: u64,
    pub(super) ring_buffer_full: u64,
    pub(super) decode_failed: u64,
    pub(super) queue_full: u64,
}

impl Tally {
    pub(super) fn from_log(line: &Value) -> Self {
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

    pub(super) fn add(&mut self, other: Self) {
        self.records += other.records;
        self.delivered += other.delivered;
        self.lost += other.lost;
        self.ring_buffer_full += other.ring_buffer_full;
        self.decode_failed += other.decode_failed;
        self.queue_full += other.queue_full;
    }
}

pub(super) fn pin_to_cpu(cpu: usize) -> anyhow::Result<()> {
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
pub(super) fn loop_cpu() -> anyhow::Result<usize> {
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

/// Pins this process to the CPUs the agent runs on (all but the loop's);
/// nothing on a single CPU.
pub(super) fn pin_to_other_cpus() -> anyhow::Result<()> {
    let Some(set) = other_cpus()? else {
        return Ok(());
    };
    // SAFETY: sched_setaffinity reads the set, prepared above.
    let result =
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    ensure!(
        result == 0,
        "sched_setaffinity: {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

/// The CPUs this process may run on but the loop's, for the agent, so that
/// the loop's figures count only the kernel's work; `None` on one CPU.
pub(super) fn other_cpus() -> anyhow::Result<Option<libc::cpu_set_t>> {
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

#[derive(Clone, Copy, Debug)]
pub(super) struct Memory {
    pub(super) rss_kib: u64,
    pub(super) hwm_kib: u64,
}

pub(super) fn memory(pid: u32) -> anyhow::Result<Memory> {
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

/// How much `value` differs from `baseline`, in percent of the baseline.
pub(super) fn change_percent(value: f64, baseline: f64) -> f64 {
    (value - baseline) / baseline * 100.0
}

/// `CLOCK_MONOTONIC` in nanoseconds: comparable between processes, unlike
/// [`Instant`].
pub(super) fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    u64::try_from(now.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(now.tv_nsec).unwrap_or(0))
}

/// utime+stime of a process, in clock ticks, from /proc/PID/stat.
pub(super) fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command may hold spaces and parentheses: fields start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .with_context(|| format!("unexpected {path}: {stat:?}"))?;
    // Fields 3.. of stat(5); utime and stime are fields 14 and 15.
    let mut fields = rest.split_whitespace().skip(11);
    let mut next = || -> anyhow::Result<u64> {
        fields
            .next()
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("no utime/stime in {path}"))
    };
    Ok(next()? + next()?)
}

/// User+system CPU time from getrusage(`who`) (`RUSAGE_SELF`, or
/// `RUSAGE_CHILDREN` for the reaped children), in nanoseconds; 0 if it fails.
pub(super) fn rusage_cpu_ns(who: libc::c_int) -> u64 {
    // SAFETY: getrusage fills the rusage it is given; all-zero is a valid one.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid rusage to write.
    if unsafe { libc::getrusage(who, &mut usage) } != 0 {
        return 0;
    }
    let ns = |t: libc::timeval| {
        u64::try_from(t.tv_sec)
            .unwrap_or(0)
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::try_from(t.tv_usec).unwrap_or(0).saturating_mul(1_000))
    };
    ns(usage.ru_utime).saturating_add(ns(usage.ru_stime))
}

/// Nanoseconds process `pid`'s live threads have run, from each one's
/// `/proc/PID/task/TID/schedstat` (the scheduler's own count, where
/// /proc/PID/stat rounds to clock ticks of 10 ms, too coarse for a pass of a
/// few thousand events). Threads that have exited are not counted: use it
/// across a span the process's threads all outlive.
pub(super) fn cpu_ns(pid: u32) -> anyhow::Result<u64> {
    let tasks = format!("/proc/{pid}/task");
    let mut total = 0u64;
    for task in std::fs::read_dir(&tasks).with_context(|| format!("listing {tasks}"))? {
        let path = task
            .with_context(|| format!("listing {tasks}"))?
            .path()
            .join("schedstat");
        // A thread that exits between the listing and the read ran no more.
        let Ok(stat) = std::fs::read_to_string(&path) else {
            continue;
        };
        total += stat
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse::<u64>().ok())
            .with_context(|| format!("unexpected {}: {stat:?}", path.display()))?;
    }
    Ok(total)
}

/// Clock ticks (as /proc/PID/stat counts CPU time) in nanoseconds.
pub(super) fn ticks_to_ns(ticks: u64) -> u64 {
    ticks.saturating_mul(1_000_000_000) / clock_ticks_per_second()
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// Waits until process `pid` has used no CPU for 300 ms (it has drained its
/// work), or `limit` has passed; returns its utime+stime in ticks then.
pub(super) fn wait_until_idle(pid: u32, limit: Duration) -> anyhow::Result<u64> {
    let started = Instant::now();
    let mut last = cpu_ticks(pid)?;
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = cpu_ticks(pid)?;
        let idle = now == last;
        last = now;
        if idle || started.elapsed() > limit {
            return Ok(last);
        }
    }
}

// ---------------------------------------------------------------------------
// The agent

pub(super) fn config_head() -> String {
    "apiVersion: guardrails.dev/v1alpha1\nnode_name: bench\n".to_owned()
}

/// The rules step's counts at shutdown (its `rules drained` line).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct RulesTally {
    /// Events evaluated.
    pub(super) events: u64,
    /// Violations raised.
    pub(super) violations: u64,
}

/// `guardrails agent` as a child, logging JSON on stderr; killed on drop.
pub(super) struct Agent {
    child: Child,
    lines: Receiver<String>,
    log: Vec<String>,
    config: PathBuf,
    /// From the spawn to its `sensors attached` line.
    pub(super) attached_after: Duration,
}

impl Agent {
    /// Starts the agent with `config` (YAML), without `--stdout` (events are
    /// decoded, enriched and counted, not printed), and waits until its
    /// sensors are attached.
    pub(super) fn start(binary: &Path, config: &str) -> anyhow::Result<Self> {
        Self::start_with(binary, config, &[], None)
    }

    /// As [`Agent::start`], with more arguments for `guardrails agent` (such
    /// as `--rules` or `--stdout`) and its stdout sent to `stdout` (else
    /// discarded).
    pub(super) fn start_with(
        binary: &Path,
        config: &str,
        args: &[&OsStr],
        stdout: Option<std::fs::File>,
    ) -> anyhow::Result<Self> {
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
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout.map_or_else(Stdio::null, Stdio::from))
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
        let spawned_at = Instant::now();
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
            attached_after: Duration::ZERO,
        };
        agent.wait_for("sensors attached", Duration::from_secs(120))?;
        agent.attached_after = spawned_at.elapsed();
        std::thread::sleep(SETTLE);
        Ok(agent)
    }

    pub(super) fn pid(&self) -> u32 {
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
    pub(super) fn stop(self) -> anyhow::Result<Tally> {
        self.stop_with_rules().map(|(tally, _)| tally)
    }

    /// As [`Agent::stop`], with what the rules step reported at shutdown.
    pub(super) fn stop_with_rules(mut self) -> anyhow::Result<(Tally, RulesTally)> {
        let pid = libc::pid_t::try_from(self.pid()).context("the agent's pid")?;
        // SAFETY: kill on our own child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let stopped = self.wait_for("stopped", Duration::from_secs(60))?;
        let status = wait_timeout(&mut self.child, Duration::from_secs(30))?;
        ensure!(status.success(), "the agent exited with {status}");
        let rules = self
            .log
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|line| line["message"] == "rules drained")
            .map(|line| RulesTally {
                events: line["events"].as_u64().unwrap_or(0),
                violations: line["violations"].as_u64().unwrap_or(0),
            })
            .unwrap_or_default();
        Ok((Tally::from_log(&stopped), rules))
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

pub(super) fn wait_timeout(
    child: &mut Child,
    timeout: Duration,
) -> anyhow::Result<std::process::ExitStatus> {
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
pub(super) struct Cgroup {
    pub(super) path: PathBuf,
    pub(super) parent: PathBuf,
}

impl Cgroup {
    pub(super) fn create(mount: &Path, name: &str) -> anyhow::Result<Self> {
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

pub(super) fn join_cgroup(cgroup: &Path) -> anyhow::Result<()> {
    let procs = cgroup.join("cgroup.procs");
    std::fs::write(&procs, "0").with_context(|| format!("joining {}", procs.display()))
}

/// The cgroup2 mount point, from /proc/self/mountinfo.
pub(super) fn cgroup2_mount() -> anyhow::Result<PathBuf> {
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
pub(super) fn unescape_mount_path(field: &str) -> PathBuf {
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

pub(super) fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

// ---------------------------------------------------------------------------
// The report

#[derive(Debug)]
pub(super) struct Machine {
    pub(super) date: String,
    pub(super) kernel: String,
    pub(super) cpu_model: String,
    pub(super) cpus: usize,
}

impl Machine {
    pub(super) fn read() -> Self {
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

/// What the agent's kernel programs did between two snapshots.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct BpfFigures {
    /// Their run time, nanoseconds.
    pub(super) run_time_ns: u64,
    /// Their runs.
    pub(super) run_cnt: u64,
    /// How many programs.
    pub(super) programs: usize,
}

/// `kernel.bpf_stats_enabled` switched on; restored to what it was on drop.
pub(super) struct BpfStatsOn {
    previous: String,
}

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStatsOn {
    pub(super) fn enable() -> anyhow::Result<Self> {
        let previous = std::fs::read_to_string(BPF_STATS)
            .with_context(|| format!("reading {BPF_STATS}"))?
            .trim()
            .to_owned();
        std::fs::write(BPF_STATS, "1").with_context(|| format!("writing {BPF_STATS}"))?;
        Ok(Self { previous })
    }
}

impl Drop for BpfStatsOn {
    fn drop(&mut self) {
        if std::fs::write(BPF_STATS, &self.previous).is_err() {
            eprintln!("xtask: could not restore {BPF_STATS} to {}", self.previous);
        }
    }
}

/// One loaded program, as bpftool lists it.
#[derive(Clone, Debug)]
pub(super) struct Program {
    /// Its id.
    pub(super) id: u64,
    run_time_ns: u64,
    run_cnt: u64,
    pids: Option<Vec<u64>>,
}

/// The loaded programs.
pub(super) fn bpf_programs() -> anyhow::Result<Vec<Program>> {
    let output = Command::new(crate::bpftool())
        .args(["--json", "prog", "show"])
        .output()
        .context("running bpftool (install it with `cargo xtask deps`)")?;
    ensure!(
        output.status.success(),
        "bpftool prog show failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let list: Value =
        serde_json::from_slice(&output.stdout).context("parsing bpftool's JSON output")?;
    Ok(list
        .as_array()
        .map(|programs| {
            programs
                .iter()
                .filter_map(|p| {
                    Some(Program {
                        id: p["id"].as_u64()?,
                        run_time_ns: p["run_time_ns"].as_u64().unwrap_or(0),
                        run_cnt: p["run_cnt"].as_u64().unwrap_or(0),
                        pids: p["pids"]
                            .as_array()
                            .map(|pids| pids.iter().filter_map(|x| x["pid"].as_u64()).collect()),
                    })
                })
                .collect()
        })
        .unwrap_or_default())
}

/// The ids of the programs loaded now: taken before the agent starts, they
/// tell its programs from the others when bpftool cannot say (`bpf_delta`).
pub(super) fn bpf_program_ids() -> anyhow::Result<HashSet<u64>> {
    Ok(bpf_programs()?.into_iter().map(|p| p.id).collect())
}

/// The agent's programs' run time and runs between two snapshots: those
/// bpftool says the agent holds, or, when it cannot say, those loaded after
/// the agent started.
pub(super) fn bpf_delta(
    before: &[Program],
    after: &[Program],
    pid: u32,
    existing: &HashSet<u64>,
) -> BpfFigures {
    let before: HashMap<u64, &Program> = before.iter().map(|p| (p.id, p)).collect();
    let knows_pids = after.iter().any(|p| p.pids.is_some());
    let ours = |p: &Program| {
        if knows_pids {
            p.pids
                .as_ref()
                .is_some_and(|pids| pids.contains(&u64::from(pid)))
        } else {
            !existing.contains(&p.id)
        }
    };
    let mut figures = BpfFigures::default();
    for program in after.iter().filter(|p| ours(p)) {
        let (time0, cnt0) = before
            .get(&program.id)
            .map_or((0, 0), |p| (p.run_time_ns, p.run_cnt));
        figures.run_time_ns += program.run_time_ns.saturating_sub(time0);
        figures.run_cnt += program.run_cnt.saturating_sub(cnt0);
        figures.programs += 1;
    }
    figures
}
