//! The client side of `bench grpc`, run as its own process (the hidden
//! `grpc-clients` target): several `StreamEvents` streams of the agent's API
//! over its Unix socket, each on its own connection, as separate consumers
//! would open them. Each reading stream counts what it receives (it does not
//! parse the events' JSON: the API's cost is what is measured) and notes when
//! its first and last message came; a stalled stream is opened and never
//! read. A last connection polls `GetStatus` to see when the agent's event
//! sequence stops growing.
//!
//! Protocol with the parent: the process prints `ready` once every stream is
//! open, then, when its stdin closes, reads on until nothing has arrived for
//! [`IDLE`] and prints its figures as one JSON line. With `--replay`, the
//! streams ask for the agent's replay buffer only and the figures are printed
//! once every stream has ended.

use std::{
    io::{Read as _, Write as _},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use proto::v1::{self, agent_service_client::AgentServiceClient, stream_events_response::Message};
use serde_json::{Value, json};
use tonic::transport::{Channel, Endpoint};

use crate::bench::common::{monotonic_ns, pin_to_cpu, pin_to_other_cpus, rusage_cpu_ns};

/// How long nothing must arrive, after stdin closed, before the figures are
/// taken.
const IDLE: Duration = Duration::from_millis(500);
/// The longest the streams may take to catch up after stdin closed.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);
/// How often `GetStatus` is asked for the last sequence number.
const POLL: Duration = Duration::from_millis(2);

/// What a stream asks for. Every preset but `stalled` is read as fast as
/// the process can.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// Everything, whole events.
    All,
    /// Kind `syscall` (getppid and open events are syscalls).
    Syscalls,
    /// Process lifecycle kinds: exec, fork, exit.
    Lifecycle,
    /// Processes named like the load generator (this binary).
    Comm,
    /// Processes with other names (`nginx`, `postgres`).
    OtherComm,
    /// Everything, with a field mask (pid, comm, syscall name and result).
    Mask,
    /// Violations only.
    Violations,
    /// Violations of priority warning or higher with the tag `container`.
    Warnings,
    /// Executables under `/usr/sbin/` or `/opt/`.
    Paths,
    /// Syscalls of pods in namespace `default` (none here: no cluster).
    Namespace,
    /// Everything, never read.
    Stalled,
}

impl Preset {
    /// Ten different filters, as a node's consumers might hold them.
    pub const TEN: [Self; 10] = [
        Self::All,
        Self::Syscalls,
        Self::Lifecycle,
        Self::Comm,
        Self::OtherComm,
        Self::Mask,
        Self::Violations,
        Self::Warnings,
        Self::Paths,
        Self::Namespace,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Syscalls => "syscalls",
            Self::Lifecycle => "lifecycle",
            Self::Comm => "comm",
            Self::OtherComm => "other-comm",
            Self::Mask => "mask",
            Self::Violations => "violations",
            Self::Warnings => "warnings",
            Self::Paths => "paths",
            Self::Namespace => "namespace",
            Self::Stalled => "stalled",
        }
    }

    fn request(self, replay: bool) -> v1::StreamEventsRequest {
        let strings = |values: &[&str]| values.iter().map(|&v| v.to_owned()).collect();
        let mut filter = v1::EventFilter::default();
        let mut fields = Vec::new();
        match self {
            Self::All | Self::Stalled => {}
            Self::Syscalls => filter.kinds = strings(&["syscall"]),
            Self::Lifecycle => {
                filter.kinds = strings(&["process_exec", "process_fork", "process_exit"]);
            }
            Self::Comm => filter.process_names = vec![own_comm()],
            Self::OtherComm => filter.process_names = strings(&["nginx", "postgres"]),
            Self::Mask => {
                fields = strings(&["process.pid", "process.comm", "syscall.name", "syscall.ret"]);
            }
            Self::Violations => filter.violations_only = true,
            Self::Warnings => {
                filter.min_priority = v1::Priority::Warning.into();
                filter.tags = strings(&["container"]);
            }
            Self::Paths => filter.process_paths = strings(&["/usr/sbin/", "/opt/"]),
            Self::Namespace => {
                filter.kinds = strings(&["syscall"]);
                filter.namespaces = strings(&["default"]);
            }
        }
        v1::StreamEventsRequest {
            filter: Some(filter),
            fields,
            resume_after: None,
            replay_only: replay,
        }
    }
}

/// The kernel's name for processes of this binary (its first 15 bytes), as
/// events carry it in `process.comm`.
fn own_comm() -> String {
    let name = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "xtask".to_owned());
    name.chars()
        .scan(0, |bytes, c| {
            *bytes += c.len_utf8();
            (*bytes <= 15).then_some(c)
        })
        .collect()
}

/// One reading stream's counts, updated as messages arrive.
#[derive(Debug, Default)]
struct Counts {
    events: AtomicU64,
    json_bytes: AtomicU64,
    lost_messages: AtomicU64,
    lost_events: AtomicU64,
    first_ns: AtomicU64,
    last_ns: AtomicU64,
    ended: AtomicBool,
    error: Mutex<Option<String>>,
}

impl Counts {
    fn figures(&self, preset: Preset, opened_ns: u64) -> Value {
        let error = self.error.lock().map(|e| e.clone()).unwrap_or_default();
        json!({
            "preset": preset.name(),
            "events": self.events.load(Ordering::Relaxed),
            "json_bytes": self.json_bytes.load(Ordering::Relaxed),
            "lost_messages": self.lost_messages.load(Ordering::Relaxed),
            "lost_events": self.lost_events.load(Ordering::Relaxed),
            "opened_ns": opened_ns,
            "first_ns": self.first_ns.load(Ordering::Relaxed),
            "last_ns": self.last_ns.load(Ordering::Relaxed),
            "ended": self.ended.load(Ordering::Relaxed),
            "error": error,
        })
    }
}

/// The hidden `grpc-clients` target: runs in its own process, on `cpu` or
/// else on the agent's CPUs.
pub(crate) fn clients(
    socket: &Path,
    presets: &[Preset],
    replay: bool,
    cpu: Option<usize>,
) -> anyhow::Result<()> {
    match cpu {
        Some(cpu) => pin_to_cpu(cpu)?,
        None => pin_to_other_cpus()?,
    }
    // One thread, as the process is pinned.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building a runtime")?;
    let figures = runtime.block_on(run(socket.to_owned(), presets.to_vec(), replay))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{figures}")
        .and_then(|()| stdout.flush())
        .context("writing the clients' figures")
}

async fn connect(socket: &Path) -> anyhow::Result<AgentServiceClient<Channel>> {
    let path: PathBuf = socket.to_owned();
    // Opened as `guardrails events` opens it.
    let endpoint = Endpoint::try_from("http://localhost").context("an endpoint")?;
    let channel = proto::codec::for_event_streams(endpoint)
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(path).await?,
                ))
            }
        }))
        .await
        .with_context(|| format!("connecting to {}", socket.display()))?;
    Ok(AgentServiceClient::new(channel))
}

/// The agent's last sequence number, polled; when it last changed.
#[derive(Debug, Default)]
struct Sequence {
    last: AtomicU64,
    last_change_ns: AtomicU64,
}

async fn run(socket: PathBuf, presets: Vec<Preset>, replay: bool) -> anyhow::Result<Value> {
    let mut status = connect(&socket).await?;
    let first = status
        .get_status(v1::GetStatusRequest {})
        .await
        .context("GetStatus")?
        .into_inner();
    let sequence = Arc::new(Sequence::default());
    sequence.last.store(first.last_sequence, Ordering::Relaxed);
    sequence
        .last_change_ns
        .store(monotonic_ns(), Ordering::Relaxed);

    let mut readers = Vec::new();
    // Held open, never read, until the figures are taken.
    let mut stalled = Vec::new();
    for &preset in &presets {
        let mut client = connect(&socket).await?;
        let opened_ns = monotonic_ns();
        let stream = client
            .stream_events(preset.request(replay))
            .await
            .with_context(|| format!("StreamEvents ({})", preset.name()))?
            .into_inner();
        if preset == Preset::Stalled {
            stalled.push((client, stream));
            continue;
        }
        let counts = Arc::new(Counts::default());
        let task = tokio::spawn(read(stream, counts.clone()));
        readers.push((preset, opened_ns, counts, task));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let poller = tokio::spawn(poll(status.clone(), sequence.clone(), stop.clone()));
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "ready")
            .and_then(|()| stdout.flush())
            .context("telling the parent the streams are open")?;
    }
    let closed = Arc::new(AtomicU64::new(0));
    {
        let closed = closed.clone();
        std::thread::spawn(move || {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            closed.store(monotonic_ns(), Ordering::Relaxed);
        });
    }

    let mut timed_out = false;
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if replay {
            if readers
                .iter()
                .all(|(_, _, counts, _)| counts.ended.load(Ordering::Relaxed))
            {
                break;
            }
            continue;
        }
        let closed_ns = closed.load(Ordering::Relaxed);
        if closed_ns == 0 {
            continue;
        }
        let last_activity = readers
            .iter()
            .map(|(_, _, counts, _)| counts.last_ns.load(Ordering::Relaxed))
            .chain([closed_ns, sequence.last_change_ns.load(Ordering::Relaxed)])
            .max()
            .unwrap_or(closed_ns);
        let now = monotonic_ns();
        if now.saturating_sub(last_activity) > nanos(IDLE) {
            break;
        }
        if now.saturating_sub(closed_ns) > nanos(DRAIN_LIMIT) {
            timed_out = true;
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = poller.await;
    // The server's view of each stream, in the order they were opened.
    let server: Vec<Value> = status
        .get_status(v1::GetStatusRequest {})
        .await
        .context("GetStatus")?
        .into_inner()
        .clients
        .iter()
        .map(|c| json!({"id": c.id, "sent": c.sent, "lost": c.lost}))
        .collect();
    let mut clients = Vec::new();
    for (preset, opened_ns, counts, task) in readers {
        task.abort();
        clients.push(counts.figures(preset, opened_ns));
    }
    drop(stalled);
    Ok(json!({
        "presets": presets.iter().map(|p| p.name()).collect::<Vec<_>>(),
        "clients": clients,
        "server": server,
        "sequence_start": first.last_sequence,
        "sequence_end": sequence.last.load(Ordering::Relaxed),
        "sequence_last_change_ns": sequence.last_change_ns.load(Ordering::Relaxed),
        "cpu_ns": rusage_cpu_ns(libc::RUSAGE_SELF),
        "timed_out": timed_out,
    }))
}

async fn read(mut stream: tonic::Streaming<v1::StreamEventsResponse>, counts: Arc<Counts>) {
    loop {
        match stream.message().await {
            Ok(Some(response)) => {
                let now = monotonic_ns();
                let _ =
                    counts
                        .first_ns
                        .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
                counts.last_ns.store(now, Ordering::Relaxed);
                match response.message {
                    Some(Message::Event(event)) => {
                        counts.events.fetch_add(1, Ordering::Relaxed);
                        counts
                            .json_bytes
                            .fetch_add(event.json.len() as u64, Ordering::Relaxed);
                    }
                    Some(Message::Lost(lost)) => {
                        counts.lost_messages.fetch_add(1, Ordering::Relaxed);
                        counts.lost_events.fetch_add(lost.count, Ordering::Relaxed);
                    }
                    None => {}
                }
            }
            Ok(None) => break,
            Err(status) => {
                if let Ok(mut error) = counts.error.lock() {
                    *error = Some(status.to_string());
                }
                break;
            }
        }
    }
    counts.ended.store(true, Ordering::Relaxed);
}

async fn poll(
    mut status: AgentServiceClient<Channel>,
    sequence: Arc<Sequence>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        if let Ok(reply) = status.get_status(v1::GetStatusRequest {}).await {
            let last = reply.into_inner().last_sequence;
            if sequence.last.swap(last, Ordering::Relaxed) != last {
                sequence
                    .last_change_ns
                    .store(monotonic_ns(), Ordering::Relaxed);
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
