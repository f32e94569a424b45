//! The `alerts:` section of the config: how violations are grouped into
//! incidents, how often on-call hears about them, and where they go.
//!
//! Each output is checked where it stands, so that a bad URL or a key of
//! another output type is reported with the file, the line and the output's
//! name (`alerts.outputs.<name>`), and the agent does not start.

use std::{collections::BTreeMap, path::PathBuf};

use serde::Deserialize;

use crate::rules::Priority;

/// `alerts:` in the config file. Without outputs, nothing is aggregated.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Where the owning team is read from.
    pub team: TeamConfig,
    /// How long a new incident collects violations (and the action taken)
    /// before its first alert.
    pub group_wait_ms: u64,
    /// How often a firing incident's alert is updated while it recurs.
    pub group_interval_ms: u64,
    /// An incident resolves once it has not recurred for this long.
    pub resolve_after_ms: u64,
    /// Incidents tracked at once; violations of incidents beyond it are
    /// counted and not alerted.
    pub max_incidents: usize,
    /// Pods listed per incident; the rest are counted.
    pub max_pods: usize,
    /// Events kept as a sample per incident.
    pub samples: usize,
    /// Alert for rules whose actions are in `monitor` mode too (by default
    /// only `warn` and `enforce` alert, and rules without actions).
    pub alert_in_monitor_mode: bool,
    /// Links to each rule's runbook.
    pub runbooks: RunbookConfig,
    /// Alerts sent at most.
    pub rate_limit: AlertRateLimit,
    /// The destinations, by name.
    #[serde(deserialize_with = "output_names")]
    pub outputs: BTreeMap<String, OutputConfig>,
}

/// Output names appear in labels and logs: letters, digits, `_`, `-`, `.`.
/// An error inside an output that serde cannot place within it (a check
/// across its keys) is given the output's name here.
fn output_names<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, OutputConfig>, D::Error> {
    struct Outputs;

    impl<'de> serde::de::Visitor<'de> for Outputs {
        type Value = BTreeMap<String, OutputConfig>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of output names to outputs")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            use serde::de::Error;
            let mut outputs = BTreeMap::new();
            while let Some(name) = map.next_key::<String>()? {
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                {
                    return Err(A::Error::custom(format!(
                        "output name \"{name}\": use letters, digits, _, - and ."
                    )));
                }
                let output = map.next_value::<OutputConfig>().map_err(|e| {
                    let text = e.to_string();
                    if text.contains(&format!("outputs.{name}")) {
                        return e;
                    }
                    let text = text
                        .rfind(" at line ")
                        .map_or(text.as_str(), |at| &text[..at]);
                    A::Error::custom(format!("output \"{name}\": {text}"))
                })?;
                outputs.insert(name, output);
            }
            Ok(outputs)
        }
    }

    deserializer.deserialize_map(Outputs)
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            team: TeamConfig::default(),
            group_wait_ms: 2_000,
            group_interval_ms: 30_000,
            resolve_after_ms: 300_000,
            max_incidents: 1_000,
            max_pods: 20,
            samples: 3,
            alert_in_monitor_mode: false,
            runbooks: RunbookConfig::default(),
            rate_limit: AlertRateLimit::default(),
            outputs: BTreeMap::new(),
        }
    }
}

/// Which label names the team that owns a workload: the pod's first, then
/// its namespace's.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TeamConfig {
    /// A pod label; `null` skips it.
    pub pod_label: Option<String>,
    /// A namespace label; `null` skips it.
    pub namespace_label: Option<String>,
}

impl Default for TeamConfig {
    fn default() -> Self {
        Self {
            pod_label: Some("team".to_owned()),
            namespace_label: Some("team".to_owned()),
        }
    }
}

/// Runbook links: one per rule, else a template.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RunbookConfig {
    /// A URL in which `{rule}` is replaced by the rule's name, lower case,
    /// with every run of other characters than letters and digits made one
    /// `-`.
    pub url: Option<String>,
    /// Links by rule name; they win over the template.
    pub rules: BTreeMap<String, String>,
}

impl RunbookConfig {
    /// The runbook of `rule`, if any.
    pub fn link(&self, rule: &str) -> Option<String> {
        if let Some(link) = self.rules.get(rule) {
            return Some(link.clone());
        }
        self.url
            .as_ref()
            .map(|template| template.replace("{rule}", &slug(rule)))
    }
}

fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// Notifications allowed: per incident, and over all of them. What they
/// hold back is counted and said in the incident's next alert.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AlertRateLimit {
    /// Updates of one incident in `per_incident_seconds`.
    pub per_incident: u32,
    /// The per-incident window.
    pub per_incident_seconds: u32,
    /// Alerts of all incidents in `global_seconds`.
    pub global: u32,
    /// The global window.
    pub global_seconds: u32,
}

impl Default for AlertRateLimit {
    fn default() -> Self {
        Self {
            per_incident: 12,
            per_incident_seconds: 3600,
            global: 120,
            global_seconds: 60,
        }
    }
}

/// One destination, checked.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(try_from = "OutputSpec")]
pub struct OutputConfig {
    /// Where and how.
    pub kind: OutputKind,
    /// Which incidents it receives.
    pub route: Route,
    /// Alerts waiting while it is slow or down, at most; beyond, the oldest
    /// are dropped and counted.
    pub queue: usize,
    /// How long one delivery may take.
    pub timeout_ms: u64,
    /// The first retry's delay; it doubles up to `max_backoff_ms`.
    pub backoff_ms: u64,
    /// The longest delay between retries.
    pub max_backoff_ms: u64,
}

/// The destination types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// Prometheus Alertmanager, v2 API.
    Alertmanager {
        /// Its base URL (`/api/v2/alerts` is appended).
        url: String,
        /// Labels added to every alert (e.g. `cluster`).
        labels: BTreeMap<String, String>,
    },
    /// An HTTP endpoint that receives each alert as JSON.
    Webhook {
        /// The URL posted to.
        url: String,
        /// The body's shape.
        format: WebhookFormat,
        /// The HMAC-SHA256 key; with it, each request is signed.
        secret: Option<Secret>,
        /// Extra request headers.
        headers: BTreeMap<String, String>,
    },
    /// JSON lines in a file, rotated by size.
    File {
        /// The file.
        path: PathBuf,
        /// Size at which it is rotated.
        max_bytes: u64,
        /// Rotated files kept (`path.1` is the newest).
        keep: u32,
    },
}

impl OutputKind {
    /// The type's name, as in the config.
    pub fn type_name(&self) -> &'static str {
        match self {
            OutputKind::Alertmanager { .. } => "alertmanager",
            OutputKind::Webhook {
                format: WebhookFormat::Json,
                ..
            } => "webhook",
            OutputKind::Webhook {
                format: WebhookFormat::Slack,
                ..
            } => "slack",
            OutputKind::File { .. } => "file",
        }
    }
}

/// A webhook's body.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// The alert as the JSON documented in docs/alerts.md.
    #[default]
    Json,
    /// A Slack incoming-webhook message (`text` and `blocks`).
    Slack,
}

/// Where a webhook's key comes from; never the config file itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Which incidents an output receives: all of the set conditions hold.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Route {
    /// The least severe priority sent, named as in rules (any case).
    #[serde(deserialize_with = "priority_name")]
    pub min_priority: Option<Priority>,
    /// Only these namespaces (`""` is the node itself).
    pub namespaces: Vec<String>,
    /// Only rules with one of these tags.
    pub tags: Vec<String>,
}

impl Route {
    /// Whether an incident of this kind goes to the output.
    pub fn admits(&self, priority: Priority, namespace: Option<&str>, tags: &[String]) -> bool {
        // Priorities are ordered most severe first.
        self.min_priority.is_none_or(|least| priority <= least)
            && (self.namespaces.is_empty()
                || self
                    .namespaces
                    .iter()
                    .any(|n| n == namespace.unwrap_or_default()))
            && (self.tags.is_empty() || self.tags.iter().any(|t| tags.contains(t)))
    }
}

fn priority_name<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Priority>, D::Error> {
    let name = String::deserialize(deserializer)?;
    Priority::from_name(&name).map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "unknown priority \"{name}\"; the priorities are emergency, alert, critical, error, warning, notice, informational and debug"
        ))
    })
}

/// An output as written: every key of every type, checked against its type.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputSpec {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, deserialize_with = "url_field")]
    url: Option<String>,
    #[serde(default, deserialize_with = "labels_field")]
    labels: Option<BTreeMap<String, String>>,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
    headers: Option<BTreeMap<String, String>>,
    path: Option<PathBuf>,
    max_bytes: Option<u64>,
    keep: Option<u32>,
    #[serde(default)]
    route: Route,
    queue: Option<usize>,
    timeout_ms: Option<u64>,
    backoff_ms: Option<u64>,
    max_backoff_ms: Option<u64>,
}

const OUTPUT_TYPES: &str = "alertmanager, webhook, slack and file";

impl TryFrom<OutputSpec> for OutputConfig {
    type Error = String;

    fn try_from(spec: OutputSpec) -> Result<Self, String> {
        const HTTP: &[&str] = &["alertmanager", "webhook", "slack"];
        const HOOKS: &[&str] = &["webhook", "slack"];
        const FILE: &[&str] = &["file"];
        if !["alertmanager", "webhook", "slack", "file"].contains(&spec.kind.as_str()) {
            return Err(format!(
                "unknown output type \"{}\"; the types are {OUTPUT_TYPES}",
                spec.kind
            ));
        }
        // The keys that only some types take, and which.
        let stray = [
            ("url", spec.url.is_some(), HTTP),
            ("timeout_ms", spec.timeout_ms.is_some(), HTTP),
            ("labels", spec.labels.is_some(), &["alertmanager"][..]),
            ("headers", spec.headers.is_some(), HOOKS),
            ("secret_env", spec.secret_env.is_some(), HOOKS),
            ("secret_file", spec.secret_file.is_some(), HOOKS),
            ("path", spec.path.is_some(), FILE),
            ("max_bytes", spec.max_bytes.is_some(), FILE),
            ("keep", spec.keep.is_some(), FILE),
        ]
        .into_iter()
        .find(|(_, set, types)| *set && !types.contains(&spec.kind.as_str()));
        if let Some((key, _, _)) = stray {
            return Err(format!("`{key}` is not a key of {} outputs", spec.kind));
        }
        let kind = match spec.kind.as_str() {
            "alertmanager" => OutputKind::Alertmanager {
                url: spec.url.ok_or("this output needs `url`")?,
                labels: spec.labels.unwrap_or_default(),
            },
            "webhook" | "slack" => OutputKind::Webhook {
                url: spec.url.ok_or("this output needs `url`")?,
                format: if spec.kind == "slack" {
                    WebhookFormat::Slack
                } else {
                    WebhookFormat::Json
                },
                secret: secret(spec.secret_env, spec.secret_file)?,
                headers: spec.headers.unwrap_or_default(),
            },
            // "file": the type was checked above.
            _ => {
                let path = spec.path.ok_or("a file output needs `path`")?;
                if !path.is_absolute() {
                    return Err(format!("path {:?} must be absolute", path.display()));
                }
                OutputKind::File {
                    path,
                    max_bytes: spec.max_bytes.unwrap_or(64 << 20).max(4096),
                    keep: spec.keep.unwrap_or(5),
                }
            }
        };
        let backoff_ms = spec.backoff_ms.unwrap_or(500).max(10);
        let max_backoff_ms = spec.max_backoff_ms.unwrap_or(30_000);
        if max_backoff_ms < backoff_ms {
            return Err(format!(
                "max_backoff_ms ({max_backoff_ms}) is below backoff_ms ({backoff_ms})"
            ));
        }
        let queue = spec.queue.unwrap_or(1_000);
        if queue == 0 {
            return Err("queue must hold at least one alert".to_owned());
        }
        Ok(Self {
            kind,
            route: spec.route,
            queue,
            timeout_ms: spec.timeout_ms.unwrap_or(5_000).max(1),
            backoff_ms,
            max_backoff_ms,
        })
    }
}

/// Checked where it stands, so that the error points at the line.
fn url_field<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    let url = String::deserialize(deserializer)?;
    http_url(url).map(Some).map_err(serde::de::Error::custom)
}

fn labels_field<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    let labels = BTreeMap::<String, String>::deserialize(deserializer)?;
    check_labels(labels)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// An absolute `http` or `https` URL with a host.
fn http_url(url: String) -> Result<String, String> {
    if !url.contains("://") {
        return Err(format!("url \"{url}\" must start with http:// or https://"));
    }
    let parsed: http::Uri = url
        .parse()
        .map_err(|e| format!("url \"{url}\" is not a URL: {e}"))?;
    match parsed.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(format!(
                "url \"{url}\": the scheme must be http or https, not {other}"
            ));
        }
        None => return Err(format!("url \"{url}\" must start with http:// or https://")),
    }
    if parsed.host().is_none_or(str::is_empty) {
        return Err(format!("url \"{url}\" has no host"));
    }
    Ok(url)
}

/// Alertmanager label names: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn check_labels(labels: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, String> {
    for name in labels.keys() {
        let mut chars = name.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "label name \"{name}\" is not valid: use letters, digits and _"
            ));
        }
    }
    Ok(labels)
}

fn secret(env: Option<String>, file: Option<PathBuf>) -> Result<Option<Secret>, String> {
    let key = match (env, file) {
        (Some(_), Some(_)) => return Err("give secret_env or secret_file, not both".to_owned()),
        (Some(name), None) => std::env::var(&name)
            .map_err(|_| format!("secret_env: the environment has no {name}"))?
            .into_bytes(),
        (None, Some(path)) => {
            std::fs::read(&path).map_err(|e| format!("secret_file {:?}: {e}", path.display()))?
        }
        (None, None) => return Ok(None),
    };
    // A trailing newline from `echo` or a mounted Secret is not part of the key.
    let trimmed = key.trim_ascii_end();
    if trimmed.is_empty() {
        return Err("the webhook secret is empty".to_owned());
    }
    Ok(Some(Secret(trimmed.to_vec())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(yaml: &str) -> Result<OutputConfig, String> {
        serde_yaml::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn each_type_reads_its_own_keys() {
        let am =
            output("type: alertmanager\nurl: http://127.0.0.1:9093\nlabels: {cluster: prod}\n")
                .expect("valid");
        assert_eq!(am.kind.type_name(), "alertmanager");
        let file =
            output("type: file\npath: /var/log/guardrails/alerts.jsonl\nkeep: 2\n").expect("valid");
        assert!(matches!(file.kind, OutputKind::File { keep: 2, .. }));
        let slack = output(
            "type: slack\nurl: https://hooks.example.com/x\nroute: {min_priority: WARNING}\n",
        )
        .expect("valid");
        assert_eq!(slack.kind.type_name(), "slack");
        assert_eq!(slack.route.min_priority, Some(Priority::Warning));
    }

    #[test]
    fn bad_outputs_say_what_is_wrong() {
        for (yaml, expected) in [
            (
                "type: alertmanager\nurl: localhost:9093\n",
                "must start with http",
            ),
            (
                "type: alertmanager\nurl: ftp://x\n",
                "scheme must be http or https",
            ),
            ("type: alertmanager\n", "needs `url`"),
            (
                "type: webhook\nurl: http://x\npath: /tmp/a\n",
                "`path` is not a key of webhook",
            ),
            (
                "type: file\npath: /tmp/a\nurl: http://x\n",
                "`url` is not a key of file",
            ),
            ("type: pager\n", "unknown output type \"pager\""),
            ("type: file\npath: alerts.jsonl\n", "must be absolute"),
            (
                "type: alertmanager\nurl: http://x\nurll: 1\n",
                "unknown field `urll`",
            ),
            (
                "type: alertmanager\nurl: http://x\nlabels: {a-b: c}\n",
                "label name \"a-b\"",
            ),
            (
                "type: webhook\nurl: http://x\nsecret_env: GUARDRAILS_NO_SUCH_VAR\n",
                "no GUARDRAILS_NO_SUCH_VAR",
            ),
            ("type: webhook\nurl: http://x\nqueue: 0\n", "at least one"),
            (
                "type: file\npath: /a\nroute: {min_priority: loud}\n",
                "unknown priority \"loud\"",
            ),
        ] {
            let error = output(yaml).expect_err(yaml);
            assert!(error.contains(expected), "{yaml}: {error}");
        }
    }

    #[test]
    fn routes_filter_by_priority_namespace_and_tag() {
        let route = Route {
            min_priority: Some(Priority::Warning),
            namespaces: vec!["shop".to_owned()],
            tags: vec!["mitre_execution".to_owned()],
        };
        let tags = vec!["mitre_execution".to_owned()];
        assert!(route.admits(Priority::Critical, Some("shop"), &tags));
        assert!(route.admits(Priority::Warning, Some("shop"), &tags));
        assert!(!route.admits(Priority::Notice, Some("shop"), &tags));
        assert!(!route.admits(Priority::Critical, Some("web"), &tags));
        assert!(!route.admits(Priority::Critical, Some("shop"), &[]));
        assert!(Route::default().admits(Priority::Debug, None, &[]));
    }

    #[test]
    fn runbooks_by_rule_or_template() {
        let runbooks = RunbookConfig {
            url: Some("https://runbooks.example/{rule}".to_owned()),
            rules: BTreeMap::from([("Special".to_owned(), "https://x/special".to_owned())]),
        };
        assert_eq!(
            runbooks.link("Read sensitive file untrusted").as_deref(),
            Some("https://runbooks.example/read-sensitive-file-untrusted")
        );
        assert_eq!(
            runbooks.link("Special").as_deref(),
            Some("https://x/special")
        );
        assert_eq!(RunbookConfig::default().link("x"), None);
    }
}
