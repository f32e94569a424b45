//! `guardrails agent`: wires the sensors, the reader and the outputs, and
//! takes them down in order on SIGINT or SIGTERM.
//!
//! Shutdown order: detach the hooks (no new records), let the reader drain what
//! is left and report the final losses, close the queue, let the outputs flush.

use std::{sync::Arc, time::Duration};

use aya::Btf;
use tokio::{
    signal::unix::SignalKind,
    sync::{mpsc, watch},
};
use tokio_util::sync::CancellationToken;

use crate::{
    actions::{
        containment::Containment,
        policy::{Myself, Policy},
        stage::{ActionStage, Actors, DenyExec, binds_deny_exec},
    },
    api::{
        hub::{Hub, HubLimits},
        service::{AgentApi, Identity},
    },
    bpf::{BpfError, Sensors, features, loader::LoadOptions},
    cgroup::{self, CgroupError},
    config::Config,
    container::{ContainerResolver, ResolveOptions},
    enrich::Enricher,
    events::{
        clock::{self, BootClock},
        decode::Decoder,
        event::NodeName,
        reader::{BATCH_EVENTS, Reader},
    },
    kube::{self as kube_api, KubeError},
    metrics::{self, Metrics},
    outputs,
    process::TreeLimits,
    rules::{
        RuleSet,
        reload::{ResourceLink, RulesTask},
        resources::PlatformModes,
        stage,
    },
};

/// How long the outputs get to flush after the reader has stopped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the agent stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The kernel's BTF could not be read.
    #[error("reading the kernel's BTF from /sys/kernel/btf/vmlinux")]
    Btf(#[from] aya::BtfError),
    /// A scope cgroup could not be resolved.
    #[error("scope")]
    Scope(#[from] CgroupError),
    /// Loading or attaching the sensors failed.
    #[error(transparent)]
    Bpf(#[from] BpfError),
    /// Signals or the ring buffer could not be polled.
    #[error("{what}")]
    Io {
        /// What was being set up.
        what: &'static str,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The metrics address could not be bound.
    #[error("cannot listen for /metrics on {address}")]
    Metrics {
        /// The configured address.
        address: std::net::SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The rules did not load; nothing was attached.
    #[error("the rules did not load:\n{0}")]
    Rules(#[from] crate::rules::diag::RulesError),
    /// `kubernetes.mode` asks for a cluster that cannot be used.
    #[error("pod metadata")]
    Kube(#[from] KubeError),
    /// The alert outputs could not be set up.
    #[error(transparent)]
    Alerts(#[from] crate::alerts::AlertsError),
    /// The gRPC API could not be served.
    #[error(transparent)]
    Api(#[from] crate::api::ApiError),
    /// The event reader stopped on its own.
    #[error("the event reader stopped unexpectedly")]
    ReaderStopped,
}

/// Options of `guardrails agent` that are not in the config file.
#[derive(Clone, Debug, Default)]
pub struct AgentOptions {
    /// Print events to stdout.
    pub stdout: bool,
    /// Node name from the command line or environment.
    pub node_name: Option<String>,
    /// Rules files from the command line, loaded after the config's.
    pub rules: Vec<std::path::PathBuf>,
}

/// Runs the agent until SIGINT or SIGTERM.
pub async fn run(config: Config, options: AgentOptions) -> Result<(), DaemonError> {
    let io = |what| move |source| DaemonError::Io { what, source };
    let mut sigint = tokio::signal::unix::signal(SignalKind::interrupt())
        .map_err(io("installing the SIGINT handler"))?;
    let mut sigterm = tokio::signal::unix::signal(SignalKind::terminate())
        .map_err(io("installing the SIGTERM handler"))?;

    let node = options
        .node_name
        .or(config.node_name.clone())
        .unwrap_or_else(host_name);
    let scope = scope_ids(&config)?;
    // Bound before anything is loaded, so that a taken port fails the start
    // without touching the kernel.
    let metrics_listener = if config.metrics.enabled {
        let listener = metrics::bind(config.metrics.address)
            .await
            .map_err(|source| DaemonError::Metrics {
                address: config.metrics.address,
                source,
            })?;
        Some(listener)
    } else {
        None
    };
    let api_listeners = if config.api.enabled {
        Some(crate::api::bind(&config.api).await?)
    } else {
        None
    };
    let metrics = Arc::new(Metrics::default());
    let started = std::time::Instant::now();
    // Served from the start, so that /readyz says "not ready" while the
    // programs load.
    let shutdown = CancellationToken::new();
    if let Some(listener) = metrics_listener {
        if let Ok(address) = listener.local_addr() {
            tracing::info!(%address, probes = "/healthz, /readyz", "serving /metrics");
        }
        tokio::spawn(metrics::serve(listener, metrics.clone(), shutdown.clone()));
    }

    // Rules are checked before the kernel is touched: a bad file fails the
    // start with every problem listed.
    let rule_sources = config.rules.sources(&options.rules);
    let rules = RuleSet::load(&rule_sources)?;
    // A cluster that is configured but unusable fails the start too; none
    // at all means standalone.
    let kube_client = kube_api::connect(&config.kubernetes).await?;
    for warning in rules.warnings() {
        tracing::warn!("{warning}");
    }
    tracing::info!(
        rules = rules.rules().len(),
        enabled = rules.enabled(),
        defaults = rule_sources.defaults,
        files = ?rule_sources.files,
        "rules loaded"
    );
    metrics.set_rules_enabled(rules.enabled());
    let (rules_tx, rules_rx) = watch::channel(Arc::new(rules));
    let rules_rx_api = rules_rx.clone();
    raise_memlock_limit();

    let btf = Btf::from_sys_fs()?;
    let kernel = features::probe(&btf);
    tracing::info!(%kernel, "kernel features; the sensors use tracepoints, which need neither");

    let sensors = config.sensors.enabled();
    let load = LoadOptions {
        ring_buffer_bytes: config.transport.ring_buffer_bytes.0,
        wakeup_bytes: config.transport.wakeup_bytes(),
        scope: scope.clone(),
        sensors: sensors.clone(),
        syscall_hook: config.sensors.syscall_hook,
    };
    let (mut sensors_loaded, maps) = Sensors::load(&btf, &load)?;
    let kill_maps = maps.kill;
    metrics.set_ring_size(u64::from(load.ring_buffer_bytes));
    let policy = Policy::new(config.containment.clone(), myself());
    let wants_deny_exec = binds_deny_exec(&policy, &rules_rx.borrow());
    crate::rules::reload::log_blind_rules(&rules_rx.borrow(), sensors_loaded.unobserved_syscalls());
    let deny_exec = attach_deny_exec(&mut sensors_loaded, &btf, &kernel.lsm, wants_deny_exec);
    // The parsed kernel BTF is large and only needed to load.
    drop(btf);

    let enricher = enricher(&config);

    let capacity = usize::try_from(config.transport.queue_capacity.0).unwrap_or(usize::MAX);
    // The queue carries batches; its capacity is given in events.
    let (tx, rx) = mpsc::channel((capacity / BATCH_EVENTS).max(1));
    let decoder = Decoder::new(BootClock::now(), NodeName::for_run(&node));
    let reader = Reader::new(
        maps.events,
        maps.counters,
        decoder,
        enricher,
        tx,
        Duration::from_millis(config.transport.drain_interval_ms.0),
        metrics.clone(),
    )
    .map_err(io("polling the events ring buffer"))?;

    let mut reader_task = tokio::spawn(reader.run(shutdown.clone()));
    let batches = (capacity / BATCH_EVENTS).max(1);
    // decode → (pods) → rules → (blast radius) → outputs
    let kube_for_actions = kube_client.clone();
    let rule_resources = kube_client.as_ref().map(|client| {
        let (seen, verdicts) =
            crate::kube::rulesets::spawn(client.clone(), metrics.kube(), shutdown.clone());
        ResourceLink {
            seen,
            verdicts,
            platform: PlatformModes {
                default: config.containment.mode,
                namespaces: config.containment.namespaces.clone(),
            },
        }
    });
    let (rules_input, output_input, matched_tx) = match kube_client {
        Some(client) => {
            let (enriched_tx, enriched_rx) = mpsc::channel(batches);
            let (matched_tx, matched_rx) = mpsc::channel(batches);
            let (completed_tx, completed_rx) = mpsc::channel(batches);
            kube_api::spawn(
                client,
                &config.kubernetes,
                &node,
                rx,
                enriched_tx,
                matched_rx,
                completed_tx,
                metrics.kube(),
                shutdown.clone(),
            );
            (enriched_rx, completed_rx, matched_tx)
        }
        None => {
            let (matched_tx, matched_rx) = mpsc::channel(batches);
            (rx, matched_rx, matched_tx)
        }
    };
    let workers = stage::Workers {
        threads: usize::try_from(config.rules.workers.0).unwrap_or(1),
        // A quarter of the queue: well before events are dropped for it.
        from_backlog: (batches / 4).max(1),
    };
    // rules → containment → (blast radius) → outputs
    let (violations_tx, violations_rx) = mpsc::channel(batches);
    let stage_task = tokio::spawn(stage::run(
        rules_input,
        violations_tx,
        rules_rx.clone(),
        workers,
        metrics.clone(),
    ));
    let (contain_tx, contain_rx) = mpsc::channel(16);
    let actions = ActionStage::new(
        policy,
        Actors {
            kill_maps: Some(kill_maps),
            containment: open_containment(&config),
            kube: kube_for_actions,
            deny_exec,
        },
        node.as_str().into(),
        metrics.actions(),
    );
    let actions_task = tokio::spawn(actions.run(violations_rx, matched_tx, rules_rx, contain_rx));
    let hub = api_listeners.as_ref().map(|_| {
        Arc::new(
            Hub::new(
                run_id(),
                HubLimits {
                    replay_events: usize::try_from(config.api.replay_events).unwrap_or(usize::MAX),
                    client_queue: usize::try_from(config.api.client_queue.0).unwrap_or(usize::MAX),
                },
            )
            .with_metrics(metrics.clone()),
        )
    });
    let (alerts_input, alerts_task) =
        match crate::alerts::spawn(&config.alerts, &node, metrics.alerts())? {
            Some((input, task)) => (Some(input), Some(task)),
            None => (None, None),
        };
    let output_task = tokio::spawn(outputs::stdout::run(
        output_input,
        options.stdout,
        metrics.clone(),
        hub.clone(),
        alerts_input,
    ));
    let (commands_tx, commands_rx) = mpsc::channel(16);
    tokio::spawn(
        RulesTask {
            interval: (config.rules.reload_interval_ms > 0)
                .then(|| Duration::from_millis(config.rules.reload_interval_ms)),
            sources: rule_sources,
            tx: rules_tx,
            commands: commands_rx,
            metrics: metrics.clone(),
            resources: rule_resources,
            unobserved_syscalls: sensors_loaded.unobserved_syscalls().to_vec(),
        }
        .run(shutdown.clone()),
    );
    let mut api_running = None;
    if let (Some(listeners), Some(hub)) = (api_listeners, hub) {
        tracing::info!(listening = %listeners.describe(), run_id = hub.run_id(), "serving the gRPC API");
        let api = AgentApi {
            hub: hub.clone(),
            identity: Arc::new(Identity {
                node: node.clone(),
                sensors: sensors.iter().map(|s| s.name().to_owned()).collect(),
                tracepoints: sensors_loaded.attached().to_vec(),
                unobserved_syscalls: sensors_loaded
                    .unobserved_syscalls()
                    .iter()
                    .map(|&s| s.to_owned())
                    .collect(),
                started,
            }),
            metrics: metrics.clone(),
            rules: rules_rx_api,
            commands: commands_tx,
            max_clients: usize::try_from(config.api.max_clients.0).unwrap_or(usize::MAX),
            containment: contain_tx,
        };
        api_running = Some((hub, crate::api::spawn(listeners, api, shutdown.clone())?));
    }

    // Before the line that says the agent is ready: what the trim costs is
    // part of the start.
    release_freed_memory();
    tracing::info!(
        node,
        sensors = ?sensors.iter().map(|s| s.name()).collect::<Vec<_>>(),
        tracepoints = ?sensors_loaded.attached(),
        scope_cgroups = scope.len(),
        ring_buffer_bytes = load.ring_buffer_bytes,
        "sensors attached"
    );
    metrics.set_unobserved_syscalls(sensors_loaded.unobserved_syscalls());
    metrics.set_attached(true);

    let reader_stopped_early = tokio::select! {
        _ = sigint.recv() => { tracing::info!("SIGINT: shutting down"); false }
        _ = sigterm.recv() => { tracing::info!("SIGTERM: shutting down"); false }
        _ = &mut reader_task => true,
    };

    sensors_loaded.detach();
    metrics.set_attached(false);
    tracing::info!("sensors detached");
    shutdown.cancel();
    let tally = if reader_stopped_early {
        None
    } else {
        reader_task.await.ok()
    };
    match tokio::time::timeout(SHUTDOWN_GRACE, stage_task).await {
        Ok(Ok(t)) => tracing::info!(
            events = t.events,
            violations = t.violations,
            batches_on_workers = t.on_workers,
            verdicts_reused = t.verdicts_reused,
            "rules drained"
        ),
        Ok(Err(e)) => tracing::error!(error = %e, "the rules task failed"),
        Err(_) => tracing::error!("the rules did not drain within {SHUTDOWN_GRACE:?}"),
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, actions_task)
        .await
        .is_err()
    {
        tracing::error!("containment did not drain within {SHUTDOWN_GRACE:?}");
    }
    match tokio::time::timeout(SHUTDOWN_GRACE, output_task).await {
        Ok(Ok(delivered)) => tracing::info!(?delivered, "outputs flushed"),
        Ok(Err(e)) => tracing::error!(error = %e, "the output task failed"),
        Err(_) => tracing::error!("the outputs did not flush within {SHUTDOWN_GRACE:?}"),
    }
    if let Some(task) = alerts_task
        && tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err()
    {
        tracing::error!("alerting did not finish within {SHUTDOWN_GRACE:?}");
    }
    // Everything is published: the streams send what they hold, tell their
    // clients the agent is stopping, and end.
    if let Some((hub, thread)) = api_running {
        hub.close();
        if thread.wait(SHUTDOWN_GRACE).await {
            tracing::info!("the gRPC API stopped");
        } else {
            tracing::error!("the gRPC API did not stop within {SHUTDOWN_GRACE:?}");
        }
    }
    match tally {
        Some(t) => {
            tracing::info!(
                records = t.records,
                delivered = t.delivered,
                lost = t.lost(),
                ring_buffer_full = t.ring_buffer_full,
                decode_failed = t.decode_failed,
                queue_full = t.queue_full,
                "stopped"
            );
            Ok(())
        }
        None => Err(DaemonError::ReaderStopped),
    }
}

/// The process tree, seeded from /proc once the hooks are attached (so that a
/// process started in between is seen by either), and the container resolver.
fn enricher(config: &Config) -> Enricher {
    let tree = &config.process_tree;
    let limits = TreeLimits {
        max_entries: usize::try_from(tree.max_entries.0).unwrap_or(usize::MAX),
        exit_grace_ns: tree.exit_grace_ms.saturating_mul(1_000_000),
    };
    let containers = match ContainerResolver::new(ResolveOptions::default()) {
        Ok(resolver) => Some(resolver),
        Err(e) => {
            tracing::warn!(error = %e, "container identity is off: cannot open the cgroup v2 mount");
            None
        }
    };
    let max_ancestors = usize::try_from(tree.max_ancestors).unwrap_or(usize::MAX);
    let mut enricher = Enricher::new(limits, max_ancestors, containers);
    match enricher.seed(clock::boot_ns()) {
        Ok(seeded) => tracing::info!(?seeded, "process tree seeded from /proc"),
        Err(e) => tracing::warn!(error = %e, "cannot seed the process tree from /proc"),
    }
    enricher
}

/// Hands the heap memory freed at start back to the kernel. Loading the
/// programs parses the kernel's BTF and relocates against it, megabytes that
/// are freed once the programs are in; glibc keeps freed heap memory
/// resident, and had raised its mmap threshold past those blocks' size, so
/// the idle agent held about 20 MiB it no longer used.
fn release_freed_memory() {
    // SAFETY: malloc_trim only returns free memory of the allocator's own.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The pinned containment state, reopened as the last run left it; without
/// it, `freeze` and `isolate` fail with a reason and the rest works.
fn open_containment(config: &Config) -> Option<Containment> {
    let settings = &config.containment;
    match Containment::open(&settings.pin_dir, &settings.isolate.allow) {
        Ok(containment) => {
            match containment.list() {
                Ok(contained) if !contained.is_empty() => tracing::info!(
                    contained = contained.len(),
                    pin_dir = %settings.pin_dir.display(),
                    "containment from an earlier run is still in force"
                ),
                _ => {}
            }
            Some(containment)
        }
        Err(e) => {
            tracing::warn!(
                error = %crate::logging::error_chain(&e),
                pin_dir = %settings.pin_dir.display(),
                "freeze and isolate are unavailable"
            );
            None
        }
    }
}

/// The agent's own pid and cgroup, never acted on.
fn myself() -> Myself {
    let pid = std::process::id();
    let cgroup_id = own_cgroup(pid).unwrap_or_else(|| {
        tracing::warn!(
            "cannot find the agent's own cgroup; only its pid is protected from actions"
        );
        0
    });
    Myself { pid, cgroup_id }
}

/// The agent's cgroup v2 id. `/proc/self/cgroup` names it from the root of
/// the agent's cgroup namespace; in a container with a namespace of its own
/// that root is the container itself ("/"), so the directory is found
/// instead by which one lists the agent among its processes.
fn own_cgroup(pid: u32) -> Option<u64> {
    let mount = cgroup::cgroup2_mount().ok()?;
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = text.lines().find_map(|line| line.strip_prefix("0::"))?;
    let relative = std::path::Path::new(path.trim_start_matches('/'));
    let own_namespace = std::fs::read_link("/proc/self/ns/cgroup").ok();
    let host_namespace = std::fs::read_link("/proc/1/ns/cgroup").ok();
    if own_namespace.is_some()
        && own_namespace != host_namespace
        && let Some(found) = cgroup::find_process(&mount, pid)
    {
        tracing::info!(cgroup = %found.display(), "the agent runs in a cgroup namespace of its own; found its cgroup");
        return cgroup::cgroup_id(&mount, &found).ok();
    }
    cgroup::cgroup_id(&mount, relative).ok()
}

fn scope_ids(config: &Config) -> Result<Vec<u64>, DaemonError> {
    if config.scope.cgroups.is_empty() {
        return Ok(Vec::new());
    }
    let mount = cgroup::cgroup2_mount()?;
    let ids = config
        .scope
        .cgroups
        .iter()
        .map(|path| cgroup::cgroup_id(&mount, path))
        .collect::<Result<_, _>>()?;
    Ok(ids)
}

/// Attaches the BPF LSM hook of `deny-exec` where the kernel accepts BPF LSM
/// and a rule binds the action; anywhere else, or when it fails, deny-exec
/// rules kill at exec, and the reason is kept for the warning each such rule
/// gets.
fn attach_deny_exec(
    sensors: &mut Sensors,
    btf: &Btf,
    lsm: &features::Support,
    wanted: bool,
) -> DenyExec {
    match lsm {
        features::Support::Refused(why) => {
            DenyExec::Unavailable(format!("this kernel refuses ({why})"))
        }
        features::Support::Available if !wanted => DenyExec::Unavailable(
            "was not attached: no enabled rule bound deny-exec at start (restart the agent)"
                .to_owned(),
        ),
        features::Support::Available => match sensors.attach_deny_exec(btf) {
            Ok(()) => {
                tracing::info!("deny-exec refuses execs in the kernel with BPF LSM");
                DenyExec::Lsm
            }
            Err(e) => {
                let error = crate::logging::error_chain(&e);
                tracing::warn!(%error, "cannot attach the BPF LSM hook of deny-exec");
                DenyExec::Unavailable(format!("failed to attach ({error})"))
            }
        },
    }
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; newer ones ignore it.
fn raise_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct and has no other effect on memory.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot raise RLIMIT_MEMLOCK");
    }
}

/// A new id for this run of the agent, as in API cursors.
fn run_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .map(|id| id.trim().to_owned())
        .unwrap_or_else(|_| format!("{:x}", clock::boot_ns()))
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}
