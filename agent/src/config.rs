//! The agent's configuration: one YAML file, validated in full before anything
//! is loaded into the kernel or any port is bound.
//!
//! ```yaml
//! apiVersion: guardrails.dev/v1alpha1
//! node_name: worker-1            # --node-name or $NODE_NAME win; default: host name
//! sensors:
//!   process: true                # fork, exec, exit
//!   file: true                   # open, creat, link, symlink, rename, unlink, chmod, mkdir
//!   network: true                # socket, connect, accept, bind, listen, sendto, sendmsg
//!   descriptors: true            # dup, dup2, dup3, fcntl(F_DUPFD)
//!   privilege: true              # set*id, capset, ptrace, modules, mount, namespaces, memfd, bpf
//!   benchmark: false             # benchmarks only: getppid
//! transport:
//!   ring_buffer_bytes: 8388608   # a power of two, at least one page
//!   wakeup_bytes: null           # wake the reader once this much waits; default: an eighth of the ring
//!   drain_interval_ms: 50        # and drain at least this often
//!   queue_capacity: 65536        # decoded events waiting for the outputs
//! scope:
//!   cgroups: []                  # cgroup v2 directories; empty: the whole node
//! process_tree:
//!   max_entries: 65536           # live and recently exited processes kept
//!   exit_grace_ms: 5000          # how long an exited process stays
//!   max_ancestors: 16            # ancestors listed in each event
//! metrics:
//!   enabled: true
//!   address: 127.0.0.1:9464      # GET /metrics, Prometheus text format
//! kubernetes:
//!   mode: auto                   # auto: use a cluster when one is configured; off; required
//!   kubeconfig: null             # default: $KUBECONFIG, ~/.kube/config, then in-cluster
//!   pod_wait_ms: 1000            # an event waits this long for a pod not yet known
//!   deleted_grace_ms: 30000      # a deleted pod's containers resolve this long
//!   max_pods: 1024               # pods of this node cached
//!   max_namespaces: 10000        # namespaces whose labels are cached
//!   blast_cache_ttl_ms: 30000    # Services, NetworkPolicies, workloads read for violations
//!   request_timeout_ms: 2000     # how long a violation waits for those reads
//! api:
//!   enabled: true
//!   socket: /run/guardrails/agent.sock  # owner-only; "" turns the socket off
//!   tcp: null                    # e.g. 0.0.0.0:7443: TLS with client certificates
//!   tls: {cert: null, key: null, client_ca: null}
//!   insecure_plaintext: false    # serve TCP without TLS (tests, loopback only)
//!   replay_events: 8192          # recent events kept for clients that resume
//!   client_queue: 8192           # events queued per stream; beyond it, dropped for it
//!   max_clients: 64              # streams at once
//! containment:                   # see docs/containment.md
//!   mode: monitor                # monitor, warn or enforce, unless more specific
//!   bindings: []                 # [{rules: [..], tags: [..], actions: [kill], mode: enforce}]
//!   namespaces: {}               # {payments: enforce}: the platform's mode there
//!   namespace_label: guardrails.dev/mode   # a namespace raises its own mode with it
//!   protected_namespaces: [kube-system]    # never acted in
//!   act_on_host: false           # act on processes outside containers
//!   rate_limit: {actions: 10, per_seconds: 60}   # per container
//!   isolate: {allow: [{protocol: udp, port: 53}, {protocol: tcp, port: 53}]}
//!   label: {labels: {guardrails.dev/quarantine: "true"}, annotations: {}}
//!   pin_dir: /sys/fs/bpf/guardrails
//! alerts:                        # see docs/alerts.md
//!   team: {pod_label: team, namespace_label: team}
//!   group_wait_ms: 2000          # a new incident's first alert waits this long
//!   group_interval_ms: 30000     # then it is updated at most this often
//!   resolve_after_ms: 300000     # and resolved once quiet this long
//!   outputs: {}                  # by name: {type: alertmanager, url: http://am:9093, route: {...}}
//! ```
//!
//! Unknown keys and bad values are rejected with the file, line and key named.
//! Later features add their sections here.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Deserializer, de};

use crate::bpf::hooks::{Sensor, SyscallHook};

/// The only `apiVersion` this agent reads.
pub const API_VERSION: &str = "guardrails.dev/v1alpha1";

/// Where the agent looks when `--config` is not given. Its absence means defaults.
pub const DEFAULT_PATH: &str = "/etc/guardrails/config.yaml";

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML or does not fit the schema.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending key or value.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong, naming the key.
        message: String,
    },
}

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Must be [`API_VERSION`].
    #[serde(rename = "apiVersion")]
    pub api_version: ApiVersion,
    /// The node's name in events, unless `--node-name` or `$NODE_NAME` is set;
    /// defaults to the host name.
    #[serde(default)]
    pub node_name: Option<String>,
    /// Which sensors run.
    #[serde(default)]
    pub sensors: SensorsConfig,
    /// How events travel from the kernel to the agent.
    #[serde(default)]
    pub transport: TransportConfig,
    /// Which processes are observed.
    #[serde(default)]
    pub scope: ScopeConfig,
    /// The process tree that gives every event its ancestry.
    #[serde(default)]
    pub process_tree: ProcessTreeConfig,
    /// The Prometheus endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Detective rules.
    #[serde(default)]
    pub rules: RulesConfig,
    /// Pod metadata from the kube API.
    #[serde(default)]
    pub kubernetes: KubernetesConfig,
    /// The gRPC API.
    #[serde(default)]
    pub api: ApiConfig,
    /// What the agent does about violations.
    #[serde(default)]
    pub containment: crate::actions::config::ContainmentConfig,
    /// On-call alerts.
    #[serde(default)]
    pub alerts: crate::alerts::config::AlertsConfig,
}

/// The gRPC API's transports and buffers.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Serve the API at all.
    pub enabled: bool,
    /// The Unix socket (owner-only permissions); empty: none.
    pub socket: PathBuf,
    /// A TCP address to serve on as well: TLS with client certificates,
    /// unless `insecure_plaintext`.
    pub tcp: Option<std::net::SocketAddr>,
    /// The TCP transport's certificates.
    pub tls: TlsConfig,
    /// Serve TCP without TLS or client authentication.
    pub insecure_plaintext: bool,
    /// Recent events kept for clients that resume.
    pub replay_events: u64,
    /// Events queued per stream; beyond it they are dropped for that stream
    /// and counted.
    pub client_queue: Positive,
    /// Streams served at once.
    pub max_clients: Positive,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            socket: PathBuf::from("/run/guardrails/agent.sock"),
            tcp: None,
            tls: TlsConfig::default(),
            insecure_plaintext: false,
            replay_events: 8_192,
            client_queue: Positive(8_192),
            max_clients: Positive(64),
        }
    }
}

/// PEM files for the TCP transport.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// The server's certificate chain.
    pub cert: Option<PathBuf>,
    /// The server's private key.
    pub key: Option<PathBuf>,
    /// The CA that client certificates must chain to.
    pub client_ca: Option<PathBuf>,
}

/// Whether the agent reads pod metadata from a cluster.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KubeMode {
    /// With a cluster when a kubeconfig or in-cluster config exists;
    /// standalone (node data only) otherwise.
    #[default]
    Auto,
    /// Standalone: never contact an API server.
    Off,
    /// Fail the start when no cluster is configured.
    Required,
}

/// The kube API client and its caches.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    /// Whether to use a cluster.
    pub mode: KubeMode,
    /// A kubeconfig file; without it `$KUBECONFIG`, `~/.kube/config`, then
    /// the in-cluster service account are tried.
    pub kubeconfig: Option<PathBuf>,
    /// How long an event waits for a pod (or container) the watch has not
    /// brought yet before it goes out marked `unresolved`.
    pub pod_wait_ms: u64,
    /// How long a deleted pod's containers still resolve.
    pub deleted_grace_ms: u64,
    /// Pods cached; a node runs a few hundred at most.
    pub max_pods: Positive,
    /// Namespaces whose labels are cached.
    pub max_namespaces: Positive,
    /// How long Services, NetworkPolicies and workloads read for a
    /// violation's blast radius are reused (and not asked again).
    pub blast_cache_ttl_ms: u64,
    /// How long a violation waits for those reads.
    pub request_timeout_ms: Positive,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            mode: KubeMode::Auto,
            kubeconfig: None,
            pod_wait_ms: 1_000,
            deleted_grace_ms: 30_000,
            max_pods: Positive(1_024),
            max_namespaces: Positive(10_000),
            blast_cache_ttl_ms: 30_000,
            request_timeout_ms: Positive(2_000),
        }
    }
}

/// Which rules are loaded and how they run.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Load the built-in default rules first.
    pub defaults: bool,
    /// Rules files (Falco's format), loaded in order after the defaults;
    /// `--rules` adds more after these.
    pub files: Vec<PathBuf>,
    /// Rule names to disable.
    pub disable_rules: Vec<String>,
    /// Tags whose rules to disable.
    pub disable_tags: Vec<String>,
    /// Rule names to enable, also rules their file disables.
    pub enable_rules: Vec<String>,
    /// Tags whose rules to enable.
    pub enable_tags: Vec<String>,
    /// `all`: every matching rule raises a violation; `first`: only the
    /// first in load order.
    pub mode: crate::rules::MatchMode,
    /// Threads that evaluate rules once batches of events queue up (a
    /// quarter of `transport.queue_capacity` waiting); each takes a batch at
    /// a time.
    pub workers: Positive,
    /// How often the rules files are checked for changes; 0 turns hot
    /// reload off.
    pub reload_interval_ms: u64,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            defaults: true,
            files: Vec::new(),
            disable_rules: Vec::new(),
            disable_tags: Vec::new(),
            enable_rules: Vec::new(),
            enable_tags: Vec::new(),
            mode: crate::rules::MatchMode::All,
            workers: Positive(2),
            reload_interval_ms: 1_000,
        }
    }
}

impl RulesConfig {
    /// The rule sources, with `extra` files (from `--rules`) after the
    /// config's.
    pub fn sources(&self, extra: &[PathBuf]) -> crate::rules::Sources {
        crate::rules::Sources {
            defaults: self.defaults,
            files: self.files.iter().chain(extra).cloned().collect(),
            selection: crate::rules::Selection {
                disable_rules: self.disable_rules.clone(),
                disable_tags: self.disable_tags.clone(),
                enable_rules: self.enable_rules.clone(),
                enable_tags: self.enable_tags.clone(),
            },
            mode: self.mode,
        }
    }
}

/// Where `/metrics` is served.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `/metrics` at all.
    pub enabled: bool,
    /// The address to listen on (`host:port`; port 0 picks a free one).
    pub address: std::net::SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            address: std::net::SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

/// Bounds of the process tree.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessTreeConfig {
    /// Processes kept, live and recently exited; beyond it the oldest exited,
    /// then the oldest live, are evicted and counted.
    pub max_entries: Positive,
    /// How long an exited process stays, so that its children and its last
    /// events still resolve.
    pub exit_grace_ms: u64,
    /// Ancestors listed in each event, parent first.
    pub max_ancestors: u64,
}

impl Default for ProcessTreeConfig {
    fn default() -> Self {
        Self {
            max_entries: Positive(65_536),
            exit_grace_ms: 5_000,
            max_ancestors: 16,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            api_version: ApiVersion,
            node_name: None,
            sensors: SensorsConfig::default(),
            transport: TransportConfig::default(),
            scope: ScopeConfig::default(),
            process_tree: ProcessTreeConfig::default(),
            metrics: MetricsConfig::default(),
            rules: RulesConfig::default(),
            kubernetes: KubernetesConfig::default(),
            api: ApiConfig::default(),
            containment: Default::default(),
            alerts: Default::default(),
        }
    }
}

/// The `apiVersion` key; only [`API_VERSION`] deserializes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApiVersion;

impl<'de> Deserialize<'de> for ApiVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        if value == API_VERSION {
            Ok(Self)
        } else {
            Err(de::Error::custom(format_args!(
                "apiVersion: unsupported value `{value}`, expected `{API_VERSION}`"
            )))
        }
    }
}

/// Sensors, each on or off; all are on by default.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SensorsConfig {
    /// Process fork, exec and exit.
    pub process: bool,
    /// File opens, creation, links, renames, removal, permission changes.
    pub file: bool,
    /// Socket creation, connect, accept, bind, listen, datagram destinations,
    /// TCP state changes.
    pub network: bool,
    /// Descriptor duplication.
    pub descriptors: bool,
    /// set*id, capset, ptrace, modules, mounts, namespaces, memfd, bpf, userfaultfd.
    pub privilege: bool,
    /// Benchmarks only: getppid(2). Off by default.
    pub benchmark: bool,
    /// Where the syscall sensors attach: `auto` (the default: to the exit
    /// tracepoint of each reported syscall where tracefs has one for every
    /// one of them, else to `sys_exit`), `per_syscall` (to those that have
    /// one, leaving out the others), or `sys_exit` (one program on every
    /// syscall's exit).
    pub syscall_hook: SyscallHook,
}

impl Default for SensorsConfig {
    fn default() -> Self {
        Self {
            process: true,
            file: true,
            network: true,
            descriptors: true,
            privilege: true,
            benchmark: false,
            syscall_hook: SyscallHook::default(),
        }
    }
}

impl SensorsConfig {
    /// The sensors that are on.
    pub fn enabled(&self) -> Vec<Sensor> {
        Sensor::ALL
            .into_iter()
            .filter(|sensor| match sensor {
                Sensor::Process => self.process,
                Sensor::File => self.file,
                Sensor::Network => self.network,
                Sensor::Descriptors => self.descriptors,
                Sensor::Privilege => self.privilege,
                Sensor::Benchmark => self.benchmark,
            })
            .collect()
    }
}

/// The ring buffer between the kernel and the agent, and the queue after it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TransportConfig {
    /// Size of the kernel ring buffer.
    pub ring_buffer_bytes: RingBufferBytes,
    /// The kernel wakes the reader once this many bytes wait (0: every event);
    /// unset, an eighth of the ring buffer (see [`TransportConfig::wakeup_bytes`]).
    pub wakeup_bytes: Option<u64>,
    /// The reader drains the ring buffer at least this often, whatever waits.
    pub drain_interval_ms: Positive,
    /// Decoded events waiting for the outputs; beyond it they are dropped and counted.
    pub queue_capacity: Positive,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            ring_buffer_bytes: RingBufferBytes(8 << 20),
            wakeup_bytes: None,
            drain_interval_ms: Positive(50),
            queue_capacity: Positive(65_536),
        }
    }
}

impl TransportConfig {
    /// How many waiting bytes make the kernel wake the reader. A wake-up is
    /// an interrupt the kernel raises on the CPU that wrote the record (on a
    /// virtual machine, an exit to the hypervisor, which took about 10 µs on
    /// the benchmark machine), so a busy node should take few of them: the
    /// reader drains continuously once data flows, and the drain timer
    /// bounds the delay on a quiet node. An eighth of the ring leaves seven
    /// eighths to absorb a burst while the reader wakes.
    pub fn wakeup_bytes(&self) -> u64 {
        self.wakeup_bytes
            .unwrap_or(u64::from(self.ring_buffer_bytes.0) / 8)
    }
}

/// A ring buffer size: a power of two and at least one page, as the kernel requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingBufferBytes(pub u32);

impl<'de> Deserialize<'de> for RingBufferBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = u64::deserialize(deserializer)?;
        let page = page_size();
        match u32::try_from(value) {
            Ok(v) if v.is_power_of_two() && u64::from(v) >= page => Ok(Self(v)),
            _ => Err(de::Error::custom(format_args!(
                "ring_buffer_bytes: {value} is not a power of two of at least {page} bytes \
                 (the page size) and at most 2^31"
            ))),
        }
    }
}

/// A number that must be at least 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Positive(pub u64);

impl<'de> Deserialize<'de> for Positive {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match u64::deserialize(deserializer)? {
            0 => Err(de::Error::custom("must be at least 1")),
            v => Ok(Self(v)),
        }
    }
}

/// Which processes are observed.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ScopeConfig {
    /// cgroup v2 directories (absolute, or relative to the cgroup v2 mount);
    /// only processes in them or below are reported. Empty: every process.
    #[serde(default)]
    pub cgroups: Vec<PathBuf>,
}

impl Config {
    /// Reads the file at `path`; `None` reads [`DEFAULT_PATH`] if it exists and
    /// gives the defaults otherwise.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let (path, required) = match path {
            Some(path) => (path, true),
            None => (Path::new(DEFAULT_PATH), false),
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Parses `text`, naming `path` in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        serde_yaml::from_str(text).map_err(|e| {
            let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            ConfigError::Invalid {
                path: path.to_owned(),
                line,
                column,
                message: Message(&e).to_string(),
            }
        })
    }
}

/// serde_yaml's message without the " at line L column C" it appends, since
/// [`ConfigError::Invalid`] puts the position first.
struct Message<'a>(&'a serde_yaml::Error);

impl fmt::Display for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string();
        let text = match (self.0.location(), text.rfind(" at line ")) {
            (Some(_), Some(at)) => &text[..at],
            _ => &text,
        };
        f.write_str(text)
    }
}

/// The kernel's page size.
pub(crate) fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/guardrails/config.yaml"))
    }

    #[test]
    fn a_file_with_only_the_api_version_gives_the_defaults() {
        let config = parse("apiVersion: guardrails.dev/v1alpha1\n").expect("valid");
        assert_eq!(config, Config::default());
    }

    #[test]
    fn a_misconfigured_alert_output_is_named_with_its_file_and_line() {
        let text = "apiVersion: guardrails.dev/v1alpha1\nalerts:\n  outputs:\n    oncall:\n      type: alertmanager\n      url: http://127.0.0.1:9093\n    hook:\n      type: webhook\n      url: 127.0.0.1:8080/hook\n";
        let err = parse(text).expect_err("a bad URL").to_string();
        assert!(err.starts_with("/etc/guardrails/config.yaml:8:"), "{err}");
        assert!(err.contains("alerts.outputs.hook:"), "{err}");
        assert!(err.contains("must start with http"), "{err}");
        // A check across an output's keys is named after the output.
        let text = "apiVersion: guardrails.dev/v1alpha1\nalerts:\n  outputs:\n    archive:\n      type: file\n      path: /var/log/alerts.jsonl\n      url: http://127.0.0.1:9093\n";
        let err = parse(text).expect_err("a key of another type").to_string();
        assert!(err.starts_with("/etc/guardrails/config.yaml:"), "{err}");
        assert!(
            err.contains("output \"archive\": `url` is not a key of file outputs"),
            "{err}"
        );
        let text = "apiVersion: guardrails.dev/v1alpha1\nalerts:\n  outputs:\n    oncall:\n      type: alertmanager\n      url: http://127.0.0.1:9093\n      severity: high\n";
        let err = parse(text).expect_err("an unknown key").to_string();
        assert!(err.contains("alerts.outputs.oncall"), "{err}");
        assert!(err.contains("unknown field `severity`"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_named_with_its_file_and_line() {
        let err = parse("apiVersion: guardrails.dev/v1alpha1\ntransport:\n  ring_bytes: 4096\n")
            .expect_err("unknown key");
        let text = err.to_string();
        assert!(text.starts_with("/etc/guardrails/config.yaml:3:"), "{text}");
        assert!(text.contains("unknown field `ring_bytes`"), "{text}");
        assert!(
            !text.contains(" at line "),
            "the position is given once: {text}"
        );
    }

    #[test]
    fn the_syscall_hook_is_auto_unless_set() {
        let default = parse("apiVersion: guardrails.dev/v1alpha1\n").expect("valid");
        assert_eq!(default.sensors.syscall_hook, SyscallHook::Auto);
        let set =
            parse("apiVersion: guardrails.dev/v1alpha1\nsensors:\n  syscall_hook: sys_exit\n")
                .expect("valid");
        assert_eq!(set.sensors.syscall_hook, SyscallHook::SysExit);
        let text = parse("apiVersion: guardrails.dev/v1alpha1\nsensors:\n  syscall_hook: kprobe\n")
            .expect_err("unknown hook")
            .to_string();
        assert!(text.contains(":3:"), "{text}");
        assert!(
            text.contains(
                "unknown variant `kprobe`, expected one of `auto`, `per_syscall`, `sys_exit`"
            ),
            "{text}"
        );
    }

    #[test]
    fn an_unknown_sensor_is_rejected_and_the_known_ones_listed() {
        let err = parse(
            "apiVersion: guardrails.dev/v1alpha1\nsensors:\n  process: true\n  bogus: true\n",
        )
        .expect_err("unknown sensor");
        let text = err.to_string();
        assert!(text.contains(":4:"), "{text}");
        assert!(
            text.contains(
                "unknown field `bogus`, expected one of `process`, `file`, `network`, \
                 `descriptors`, `privilege`, `benchmark`, `syscall_hook`"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_missing_or_wrong_api_version_is_rejected() {
        assert!(
            parse("sensors:\n  process: true\n")
                .expect_err("missing")
                .to_string()
                .contains("apiVersion")
        );
        let err = parse("apiVersion: v2\n").expect_err("wrong");
        assert!(err.to_string().contains("unsupported value `v2`"), "{err}");
    }

    #[test]
    fn a_ring_buffer_size_that_the_kernel_would_refuse_is_rejected_at_parse_time() {
        for bad in ["1000", "100", "4294967296"] {
            let text = format!(
                "apiVersion: guardrails.dev/v1alpha1\ntransport:\n  ring_buffer_bytes: {bad}\n"
            );
            let err = parse(&text).expect_err(bad).to_string();
            assert!(
                err.contains(":3:") && err.contains("ring_buffer_bytes"),
                "{err}"
            );
        }
        let ok =
            parse("apiVersion: guardrails.dev/v1alpha1\ntransport:\n  ring_buffer_bytes: 16384\n");
        assert_eq!(
            ok.expect("valid").transport.ring_buffer_bytes,
            RingBufferBytes(16384)
        );
    }

    #[test]
    fn the_wakeup_threshold_follows_the_ring_unless_it_is_given() {
        let head = "apiVersion: guardrails.dev/v1alpha1\ntransport:\n  ring_buffer_bytes: 16384\n";
        let default = parse(head).expect("valid");
        assert_eq!(default.transport.wakeup_bytes(), 2048);
        assert_eq!(Config::default().transport.wakeup_bytes(), 1 << 20);
        for (given, expected) in [("0", 0), ("65536", 65536)] {
            let config = parse(&format!("{head}  wakeup_bytes: {given}\n")).expect("valid");
            assert_eq!(config.transport.wakeup_bytes(), expected, "{given}");
        }
    }

    #[test]
    fn a_named_config_file_that_is_missing_is_an_error_not_the_defaults() {
        let missing = Path::new("/nonexistent/guardrails.yaml");
        assert!(matches!(
            Config::load(Some(missing)),
            Err(ConfigError::Read { .. })
        ));
    }
}
