//! The harness of the kernel tests: a real agent as a child process, a fresh
//! cgroup per test, and real processes started in it. [`apiserver`] starts a
//! real kube-apiserver for the Kubernetes tests; [`alertmanager`] a real
//! Alertmanager and [`webhook`] an HTTP server that records what it is sent,
//! for the alert outputs' tests.
#![allow(dead_code, reason = "each test binary uses part of the harness")]
#![expect(
    clippy::print_stderr,
    reason = "the harness reports to the test runner"
)]

pub mod alertmanager;
pub mod apiserver;
pub mod cluster;
pub mod http;
pub mod webhook;

use std::{
    ffi::CString,
    fs::File,
    io::{BufRead, BufReader},
    net::TcpListener,
    os::unix::{ffi::OsStrExt, fs::MetadataExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Condvar, Mutex, MutexGuard},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::Value;

/// Kernel tests run one at a time, whatever the test runner's threads.
static KERNEL: Mutex<()> = Mutex::new(());

/// Takes the kernel lock when this machine can run kernel tests. Outside CI a
/// missing prerequisite skips the test with a printed reason; under `CI=true`
/// it fails the test.
pub fn kernel_test() -> Option<MutexGuard<'static, ()>> {
    let missing = if unsafe_geteuid() != 0 {
        Some("not root")
    } else if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        Some("no kernel BTF at /sys/kernel/btf/vmlinux")
    } else if guardrails::cgroup::cgroup2_mount().is_err() {
        Some("no cgroup v2 mount")
    } else {
        None
    };
    if let Some(why) = missing {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "kernel test prerequisite missing in CI: {why}"
        );
        eprintln!("skipped: {why}");
        return None;
    }
    Some(
        KERNEL
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
    )
}

/// Says why a test did not run (outside CI only: callers assert that first).
pub fn skipped(why: &str) {
    eprintln!("skipped: {why}");
}

fn unsafe_geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// A unique pod UID in the dashed form Kubernetes gives it.
pub fn unique_pod_uid() -> String {
    let uid = unique_hex(32);
    format!(
        "{}-{}-{}-{}-{}",
        &uid[..8],
        &uid[8..12],
        &uid[12..16],
        &uid[16..20],
        &uid[20..]
    )
}

/// Creates `path` and the directories above it up to `mount`; returns the
/// ones it created, deepest first, for the caller to remove.
pub fn create_dirs(path: &Path, mount: &Path) -> Vec<PathBuf> {
    let mut created = Vec::new();
    let mut dir = path.to_path_buf();
    while dir != mount && !dir.exists() {
        created.push(dir.clone());
        dir.pop();
    }
    std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    created
}

/// A unique lowercase hex string of `len` characters.
pub fn unique_hex(len: usize) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut state = nanos
        ^ (u64::from(std::process::id()) << 32)
        ^ COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut out = String::new();
    while out.len() < len {
        // splitmix64
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.push_str(&format!("{:016x}", z ^ (z >> 31)));
    }
    out.truncate(len);
    out
}

/// How a test cgroup is named: like a container of a kubelet cgroup driver
/// and a runtime, or like a host service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// systemd driver, containerd: `kubepods.slice/kubepods-besteffort.slice/
    /// kubepods-besteffort-pod<uid>.slice/cri-containerd-<id>.scope`.
    Containerd,
    /// systemd driver, CRI-O: `.../kubepods-burstable-pod<uid>.slice/crio-<id>.scope`.
    CriO,
    /// cgroupfs driver: `kubepods/besteffort/pod<uid>/<id>`.
    Cgroupfs,
    /// A host service: `system.slice/guardrails-test-<hex>.service`.
    Host,
}

/// A fresh cgroup v2 directory below `<mount>/guardrails-tests`, named after a
/// [`Layout`], removed when dropped.
pub struct TestCgroup {
    pub path: PathBuf,
    pub id: u64,
    /// The container id in the name, for container layouts.
    pub container_id: Option<String>,
    /// The pod UID in the name (dashed), for container layouts.
    pub pod_uid: Option<String>,
    /// Directories this cgroup created, deepest first.
    created: Vec<PathBuf>,
    procs: CString,
}

impl TestCgroup {
    /// A containerd container in a besteffort pod, systemd driver.
    pub fn new() -> Self {
        Self::with_layout(Layout::Containerd)
    }

    pub fn with_layout(layout: Layout) -> Self {
        Self::with_pod_uid(layout, &unique_pod_uid())
    }

    /// A container of pod `pod_uid` (dashed), named after `layout`.
    pub fn with_pod_uid(layout: Layout, pod_uid: &str) -> Self {
        let mount = guardrails::cgroup::cgroup2_mount().expect("cgroup v2 is mounted");
        let root = mount.join("guardrails-tests");
        let dashed = pod_uid.to_owned();
        let underscored = dashed.replace('-', "_");
        let container_id = unique_hex(64);
        let (relative, container) = match layout {
            Layout::Containerd => (
                format!(
                    "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{underscored}.slice/cri-containerd-{container_id}.scope"
                ),
                true,
            ),
            Layout::CriO => (
                format!(
                    "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{underscored}.slice/crio-{container_id}.scope"
                ),
                true,
            ),
            Layout::Cgroupfs => (
                format!("kubepods/besteffort/pod{dashed}/{container_id}"),
                true,
            ),
            Layout::Host => (
                format!("system.slice/guardrails-test-{}.service", unique_hex(12)),
                false,
            ),
        };
        let path = root.join(&relative);
        let created = create_dirs(&path, &mount);
        let id = std::fs::metadata(&path).expect("stat the cgroup").ino();
        let procs =
            CString::new(path.join("cgroup.procs").as_os_str().as_bytes()).expect("no NUL in path");
        Self {
            path,
            id,
            container_id: container.then_some(container_id),
            pod_uid: container.then_some(dashed),
            created,
            procs,
        }
    }

    /// A command whose process joins this cgroup before it executes.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        let procs = self.procs.clone();
        // SAFETY: the closure runs between fork and exec and only makes
        // async-signal-safe system calls on memory prepared before the fork.
        unsafe {
            command.pre_exec(move || join_cgroup(&procs));
        }
        command
    }

    /// Like [`Self::command`], and the process then drops to `uid`/`gid`
    /// (after joining: an unprivileged user may not move itself).
    pub fn command_as(&self, program: impl AsRef<std::ffi::OsStr>, uid: u32, gid: u32) -> Command {
        let mut command = Command::new(program);
        let procs = self.procs.clone();
        // SAFETY: as in `command`; setgroups, setgid and setuid are
        // async-signal-safe system calls.
        unsafe {
            command.pre_exec(move || {
                join_cgroup(&procs)?;
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command
    }

    /// Forks a helper process that joins this cgroup, forks `children` children
    /// that each exit at once with `child_code`, waits for them, and exits with
    /// `helper_code`. Returns the helper's pid once it has been reaped. In this
    /// cgroup that makes exactly `2 * children + 1` events: one fork and one
    /// exit per child, and the helper's exit.
    pub fn fork_burst(&self, children: usize, child_code: i32, helper_code: i32) -> u32 {
        let procs = self.procs.clone();
        // SAFETY: the child only makes async-signal-safe system calls on
        // memory prepared before the fork, then _exits.
        let helper = unsafe { libc::fork() };
        assert!(helper >= 0, "fork failed");
        if helper == 0 {
            // SAFETY: we are the forked child; see `burst`.
            unsafe { burst(&procs, children, child_code, helper_code) };
        }
        let mut status = 0;
        // SAFETY: helper is our child.
        unsafe { libc::waitpid(helper, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "helper did not exit: {status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), helper_code, "the helper failed");
        helper as u32
    }
}

impl TestCgroup {
    /// Forks a child that joins this cgroup, runs `body` and exits with what
    /// it returns; waits for it and returns its pid. `body` runs in a forked
    /// child of a threaded process: it must only make system calls on memory
    /// prepared before (no allocation, no locks).
    pub fn run_in(&self, body: impl FnOnce() -> i32) -> u32 {
        let procs = self.procs.clone();
        // SAFETY: the child joins the cgroup and runs `body`, which by this
        // function's contract only makes async-signal-safe calls, then _exits.
        let child = unsafe { libc::fork() };
        assert!(child >= 0, "fork failed");
        if child == 0 {
            let code = if join_cgroup(&procs).is_ok() {
                body()
            } else {
                100
            };
            // SAFETY: we are the forked child.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: child is our child.
        unsafe { libc::waitpid(child, &mut status, 0) };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child in the cgroup failed: status {status:#x}"
        );
        child as u32
    }
}

impl TestCgroup {
    /// Whether a process in this cgroup completes a TCP connect to `addr`
    /// within a second (bash's `/dev/tcp`). A dropped SYN is retried, not
    /// refused, so without the limit it would hang.
    pub fn connects_to(&self, addr: std::net::SocketAddr) -> bool {
        let script = format!("exec 3<>/dev/tcp/{}/{}", addr.ip(), addr.port());
        self.command("timeout")
            .args(["1", "bash", "-c", &script])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run bash")
            .success()
    }
}

/// Whether this process, outside every test cgroup, completes a TCP connect
/// to `addr` within a second.
pub fn connects_from_here(addr: std::net::SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// The helper of [`TestCgroup::fork_burst`].
///
/// # Safety
/// Call only in a freshly forked child: it makes async-signal-safe system calls
/// and never returns.
unsafe fn burst(procs: &CString, children: usize, child_code: i32, helper_code: i32) -> ! {
    // SAFETY: fork, waitpid and _exit are async-signal-safe; the caller is a
    // forked child, which is what _exit is for.
    unsafe {
        if join_cgroup(procs).is_err() {
            libc::_exit(100);
        }
        for _ in 0..children {
            match libc::fork() {
                0 => libc::_exit(child_code),
                pid if pid > 0 => {
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
                _ => libc::_exit(101),
            }
        }
        libc::_exit(helper_code)
    }
}

/// Moves the calling process into the cgroup whose `cgroup.procs` is `procs`.
/// Only system calls: safe between fork and exec.
pub fn join_cgroup(procs: &CString) -> std::io::Result<()> {
    // SAFETY: procs is a NUL-terminated path; the buffer is a static byte.
    unsafe {
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let written = libc::write(fd, b"0".as_ptr().cast(), 1);
        libc::close(fd);
        if written != 1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // Kill what is left (cgroup.kill, Linux 5.14+), then remove every
        // directory this cgroup created, deepest first.
        let _ = std::fs::write(self.path.join("cgroup.kill"), "1");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(&self.path).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        for dir in self.created.iter().skip(1) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[derive(Default)]
struct Output {
    events: Vec<Value>,
    logs: Vec<String>,
    stdout_closed: bool,
}

/// The agent binary, running as a child with `--stdout --log-format json`.
pub struct Agent {
    child: Child,
    output: Arc<(Mutex<Output>, Condvar)>,
    /// The API's Unix socket: in the agent's own directory unless the
    /// config names one.
    pub socket: PathBuf,
    _config_dir: TempDir,
}

impl Agent {
    /// Starts the agent with `config` (YAML) and waits until its sensors are
    /// attached.
    pub fn start(config: &str) -> Self {
        Self::start_with_env(config, &[])
    }

    /// Like [`Self::start`], with environment variables set (`Some`) or
    /// removed (`None`) for the agent.
    pub fn start_with_env(config: &str, env: &[(&str, Option<&str>)]) -> Self {
        Self::launch(config, env, None)
    }

    /// Like [`Self::start`], with the agent itself in `cgroup`, as when it
    /// runs in a container.
    pub fn start_in(config: &str, cgroup: &TestCgroup) -> Self {
        Self::launch(config, &[], Some(cgroup))
    }

    /// Starts the agent as the last argument of `wrapper` (a program and
    /// its arguments that execute the rest of their command line, such as
    /// `setpriv`), and waits until its sensors are attached; `Err` with its
    /// logs when it exits first.
    pub fn try_start_wrapped(config: &str, wrapper: &[&str]) -> Result<Self, String> {
        Self::try_launch(config, &[], None, wrapper)
    }

    /// As [`Self::start_in`], the agent run by `wrapper` (such as `unshare
    /// --cgroup`), which is started in `cgroup`.
    pub fn start_in_wrapped(config: &str, cgroup: &TestCgroup, wrapper: &[&str]) -> Self {
        Self::try_launch(config, &[], Some(cgroup), wrapper).unwrap_or_else(|why| panic!("{why}"))
    }

    fn launch(config: &str, env: &[(&str, Option<&str>)], cgroup: Option<&TestCgroup>) -> Self {
        Self::try_launch(config, env, cgroup, &[]).unwrap_or_else(|why| panic!("{why}"))
    }

    fn try_launch(
        config: &str,
        env: &[(&str, Option<&str>)],
        cgroup: Option<&TestCgroup>,
        wrapper: &[&str],
    ) -> Result<Self, String> {
        let config_dir = TempDir::new("config");
        let config_path = config_dir.path.join("config.yaml");
        // Each agent gets its own API socket, so that no test meets another's.
        let mut parsed: serde_yaml::Value =
            serde_yaml::from_str(config).expect("the config is YAML");
        let api = parsed
            .as_mapping_mut()
            .expect("the config is a mapping")
            .entry("api".into())
            .or_insert_with(|| serde_yaml::Value::Mapping(Default::default()));
        let socket_key: serde_yaml::Value = "socket".into();
        let socket = match api.get(&socket_key).and_then(|s| s.as_str()) {
            Some(path) => PathBuf::from(path),
            None => {
                let path = config_dir.path.join("agent.sock");
                if let Some(api) = api.as_mapping_mut() {
                    api.insert(socket_key, path.display().to_string().into());
                }
                path
            }
        };
        let config = serde_yaml::to_string(&parsed).expect("serialize the config");
        std::fs::write(&config_path, config).expect("write the config");
        let binary = env!("CARGO_BIN_EXE_guardrails");
        let mut command = match (cgroup, wrapper.split_first()) {
            (Some(cgroup), None) => cgroup.command(binary),
            (Some(cgroup), Some((program, args))) => {
                let mut command = cgroup.command(program);
                command.args(args).arg(binary);
                command
            }
            (None, None) => Command::new(binary),
            (None, Some((program, args))) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary);
                command
            }
        };
        for (key, value) in env {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        let mut child = command
            .args([
                "--log-format",
                "json",
                "--log-level",
                "info",
                "agent",
                "--stdout",
                "--node-name",
                "test-node",
                "--config",
            ])
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the agent");
        let output = Arc::new((Mutex::new(Output::default()), Condvar::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let out = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let event: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
                out.0.lock().expect("lock").events.push(event);
                out.1.notify_all();
            }
            out.0.lock().expect("lock").stdout_closed = true;
            out.1.notify_all();
        });
        let out = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("agent: {line}");
                out.0.lock().expect("lock").logs.push(line);
                out.1.notify_all();
            }
        });
        let agent = Self {
            child,
            output,
            socket,
            _config_dir: config_dir,
        };
        agent.try_wait_until(
            Duration::from_secs(60),
            |o| o.logs.iter().any(|l| l.contains("sensors attached")),
            "the agent to attach its sensors",
        )?;
        Ok(agent)
    }

    /// The agent's process id (the wrapper's, which became the agent).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_until(&self, timeout: Duration, done: impl Fn(&Output) -> bool, what: &str) {
        self.try_wait_until(timeout, done, what)
            .unwrap_or_else(|why| panic!("{why}"));
    }

    fn try_wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&Output) -> bool,
        what: &str,
    ) -> Result<(), String> {
        // `done` may scan every event so far while holding the lock; run on
        // every printed line, that is quadratic and starves the reader of a
        // busy agent, so checks are paced instead.
        const CHECK_INTERVAL: Duration = Duration::from_millis(20);
        let deadline = Instant::now() + timeout;
        let (lock, cond) = &*self.output;
        loop {
            let checked = Instant::now();
            {
                let output = lock.lock().expect("lock");
                if done(&output) {
                    return Ok(());
                }
                if checked >= deadline {
                    return Err(format!(
                        "timed out waiting for {what}; logs:\n{}",
                        output.logs.join("\n")
                    ));
                }
                if output.stdout_closed {
                    return Err(format!(
                        "the agent exited while waiting for {what}; logs:\n{}",
                        output.logs.join("\n")
                    ));
                }
                drop(cond.wait_timeout(output, deadline - checked).expect("lock"));
            }
            let next_check = (checked + CHECK_INTERVAL).min(deadline);
            std::thread::sleep(next_check.saturating_duration_since(Instant::now()));
        }
    }

    /// The address the agent serves `/metrics` on, from its log.
    pub fn metrics_address(&self) -> String {
        let output = self.output.0.lock().expect("lock");
        output
            .logs
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|log| log["message"] == "serving /metrics")
            .and_then(|log| log["address"].as_str().map(str::to_owned))
            .expect("the agent logs where it serves /metrics")
    }

    /// `GET /metrics`, as `(series, value)` pairs.
    pub fn scrape(&self) -> Vec<(String, f64)> {
        use std::io::{Read, Write};
        let mut stream =
            std::net::TcpStream::connect(self.metrics_address()).expect("connect to /metrics");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: agent\r\n\r\n")
            .expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse().ok()?))
            })
            .collect()
    }

    /// Waits until the exec of process `pid` has been printed, then returns
    /// the events so far.
    pub fn wait_for_exec(&self, pid: u32) -> Vec<Value> {
        self.wait_for_events(&format!("the exec of {pid}"), |events| {
            events
                .iter()
                .any(|e| e["kind"] == "process_exec" && e["process"]["pid"] == pid)
        })
    }

    /// Waits until a log line satisfies `done`.
    pub fn wait_for_log(&self, what: &str, done: impl Fn(&str) -> bool) {
        self.wait_until(
            Duration::from_secs(20),
            |o| o.logs.iter().any(|l| done(l)),
            what,
        );
    }

    /// The log lines so far.
    pub fn logs(&self) -> Vec<String> {
        self.output.0.lock().expect("lock").logs.clone()
    }

    /// Waits until the events so far satisfy `done`, then returns them.
    pub fn wait_for_events(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        self.wait_until(Duration::from_secs(20), |o| done(&o.events), what);
        self.output.0.lock().expect("lock").events.clone()
    }

    /// Stops the agent with SIGTERM and returns every event it printed and
    /// how it exited.
    pub fn stop(self) -> (Vec<Value>, ExitStatus) {
        self.stop_and_collect(libc::SIGTERM)
    }

    /// Stops the agent with `signal` and returns how it exited.
    pub fn stop_with(self, signal: i32) -> ExitStatus {
        self.stop_and_collect(signal).1
    }

    fn stop_and_collect(mut self, signal: i32) -> (Vec<Value>, ExitStatus) {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        let status = self.child.wait().expect("wait for the agent");
        self.wait_until(
            Duration::from_secs(10),
            |o| o.stdout_closed,
            "stdout to close",
        );
        let events = std::mem::take(&mut self.output.0.lock().expect("lock").events);
        (events, status)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary directory, removed when dropped.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(hint: &str) -> Self {
        let path = std::env::temp_dir().join(format!("guardrails-test-{hint}-{}", unique_hex(12)));
        std::fs::create_dir_all(&path).expect("create a temp dir");
        Self { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The agent's config for a test: only `cgroup` in scope, every event woken at once.
pub fn config_for(cgroup: &TestCgroup) -> String {
    format!(
        "apiVersion: guardrails.dev/v1alpha1\nscope:\n  cgroups: [{:?}]\ntransport:\n  wakeup_bytes: 0\n  drain_interval_ms: 20\nmetrics:\n  address: 127.0.0.1:0\n",
        cgroup.path.display().to_string()
    )
}

/// Events about processes in `cgroup`.
pub fn in_cgroup<'a>(events: &'a [Value], cgroup: &TestCgroup) -> impl Iterator<Item = &'a Value> {
    let id = cgroup.id;
    events
        .iter()
        .filter(move |e| e["process"]["cgroup_id"].as_u64() == Some(id))
}

/// The first event of `kind` about process `pid` in `cgroup`.
pub fn find<'a>(
    events: &'a [Value],
    cgroup: &TestCgroup,
    kind: &str,
    pid: u32,
) -> Option<&'a Value> {
    in_cgroup(events, cgroup).find(|e| e["kind"] == kind && e["process"]["pid"] == pid)
}

/// Checks every event against the published JSON schema.
pub fn assert_schema_valid(events: &[Value]) {
    let schema: Value = serde_json::from_str(include_str!("../../schema/event.v1.schema.json"))
        .expect("the schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    for event in events {
        let errors: Vec<String> = validator
            .iter_errors(event)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "event does not match the schema: {errors:?}\n{event}"
        );
    }
}

/// A C string of a path or text (tests never pass a NUL).
pub fn cstring(text: impl AsRef<std::ffi::OsStr>) -> CString {
    CString::new(text.as_ref().as_bytes()).expect("no NUL")
}

/// Opens a new pseudo-terminal; returns its master descriptor and the path
/// of its terminal side.
pub fn open_pty() -> (i32, CString) {
    // SAFETY: plain calls on a descriptor this function owns; ptsname_r
    // writes at most the buffer's length.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(master >= 0, "posix_openpt failed");
        assert_eq!(libc::grantpt(master), 0, "grantpt");
        assert_eq!(libc::unlockpt(master), 0, "unlockpt");
        let mut name = [0u8; 128];
        assert_eq!(
            libc::ptsname_r(master, name.as_mut_ptr().cast(), name.len()),
            0,
            "ptsname_r"
        );
        let len = name.iter().position(|&b| b == 0).expect("a NUL");
        (master, CString::new(&name[..len]).expect("a path"))
    }
}

/// An overlay mount in a temporary directory, like a container's root: a
/// lower layer holding `from-image` (a copy of /bin/true), an upper layer
/// for what is written; unmounted when dropped.
pub struct Overlay {
    /// The merged view.
    pub merged: PathBuf,
    target: CString,
}

impl Overlay {
    /// Mounts it below `dir`.
    pub fn mount(dir: &Path) -> Self {
        let [lower, upper, work, merged] = ["lower", "upper", "work", "merged"].map(|d| {
            let path = dir.join(d);
            std::fs::create_dir(&path).expect("mkdir");
            path
        });
        std::fs::copy("/bin/true", lower.join("from-image")).expect("copy into the lower layer");
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        );
        let (source, target, data) = (cstring("overlay"), cstring(&merged), cstring(options));
        // SAFETY: mount with valid C strings.
        let mounted = unsafe {
            libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                source.as_ptr(),
                0,
                data.as_ptr().cast(),
            )
        };
        assert_eq!(
            mounted,
            0,
            "mount overlay: {}",
            std::io::Error::last_os_error()
        );
        Self { merged, target }
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        // SAFETY: umount2 with a valid C string.
        unsafe { libc::umount2(self.target.as_ptr(), libc::MNT_DETACH) };
    }
}

/// A copy of /bin/true to run from a memfd named `name` (fileless
/// execution), prepared before a fork so that [`MemfdExec::run`] allocates
/// nothing in the forked child.
pub struct MemfdExec {
    program: Vec<u8>,
    name: CString,
}

impl MemfdExec {
    /// Reads /bin/true.
    pub fn new(name: &str) -> Self {
        Self {
            program: std::fs::read("/bin/true").expect("read /bin/true"),
            name: cstring(name),
        }
    }

    /// Creates the memfd, writes the program, forks a child that executes
    /// it (argv\[0\] `fileless`) and waits: 0 when the child succeeded.
    pub fn run(&self) -> i32 {
        let argv = [c"fileless".as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null::<libc::c_char>()];
        // SAFETY: memfd_create, write, fork, execveat on memory prepared
        // before the fork.
        unsafe {
            let fd = libc::memfd_create(self.name.as_ptr(), 0);
            if fd < 0
                || libc::write(fd, self.program.as_ptr().cast(), self.program.len())
                    != self.program.len() as isize
            {
                return 1;
            }
            let child = libc::fork();
            if child == 0 {
                libc::syscall(
                    libc::SYS_execveat,
                    fd,
                    c"".as_ptr(),
                    argv.as_ptr(),
                    envp.as_ptr(),
                    libc::AT_EMPTY_PATH,
                );
                libc::_exit(127);
            }
            let mut status = 0;
            libc::waitpid(child, &mut status, 0);
            i32::from(status != 0)
        }
    }
}

/// An executable named `name` on PATH.
pub fn in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a free loopback port")
        .port()
}

/// Starts `command` with its output appended to `log`. The child is killed
/// if the thread that started it ends first (a test runner killed midway).
pub fn spawn(command: &mut Command, log: &Path) -> Child {
    let file = File::options()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
    let stderr = file.try_clone().expect("duplicate a log descriptor");
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("start {:?}: {e}", command.get_program()))
}

/// The last `lines` lines of a file, or why it could not be read.
pub fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("({}: {e})", path.display()),
    }
}
