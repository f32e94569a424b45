//! A real Prometheus Alertmanager (0.25, API v2) on loopback for the alert
//! outputs' tests.
//!
//! The binary comes from `GUARDRAILS_ALERTMANAGER` (which `cargo xtask test`
//! sets), else Debian's `/usr/bin/prometheus-alertmanager`, else
//! `prometheus-alertmanager` or `alertmanager` on PATH. Outside CI a missing
//! one skips the test with a printed reason; under `CI=true` it fails the
//! test.
//!
//! Each instance has its own free port, configuration and storage, and no
//! cluster listener, so neither a system Alertmanager on 9093/9094 nor
//! another test's instance meets it.
//!
//! What the v2 API shows, read from Alertmanager 0.25:
//! - `GET /api/v2/alerts` returns only alerts that have not ended: one whose
//!   `endsAt` has passed (resolved) is left out whatever the query says, and
//!   `active`, `silenced` and `inhibited` only choose among the unresolved.
//!   So a resolved alert is seen as its absence here, or as a notification
//!   with `"status": "resolved"` at the webhook of [`Alertmanager::start_notifying`].
//! - A posted alert without `endsAt` gets `startsAt + resolve_timeout` (5
//!   minutes); without `startsAt`, the time it arrived. A batch with an
//!   alert whose `endsAt` is not after its `startsAt` is refused whole (400,
//!   "start time must be before end time"): a resolution must carry the
//!   alert's original `startsAt`.
//! - In a webhook notification a firing alert's `endsAt` is the zero time
//!   (`0001-01-01T00:00:00Z`), whatever was posted.
//! - Alerts live in memory only: after [`Alertmanager::stop`] and
//!   [`Alertmanager::start_again`] there are none until they are posted
//!   again (silences and the notification log are kept in the storage).

use std::{
    ffi::OsString,
    path::PathBuf,
    process::Child,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;

use super::{TempDir, free_port, http, in_path, spawn, tail};

/// How long Alertmanager gets to answer `/-/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Debian's path of the binary.
const DEBIAN_BINARY: &str = "/usr/bin/prometheus-alertmanager";

/// Alertmanager as a child process, its configuration, storage and log in a
/// temporary directory; all of it goes when dropped.
pub struct Alertmanager {
    port: u16,
    binary: PathBuf,
    args: Vec<OsString>,
    child: Option<Child>,
    /// Whether a panic message carried the log already.
    log_reported: bool,
    dir: TempDir,
}

impl Alertmanager {
    /// Starts Alertmanager on a free loopback port with one receiver that
    /// notifies nobody, and waits until it is ready. `None` when the binary
    /// is missing, outside CI.
    pub fn start() -> Option<Self> {
        Self::launch(None)
    }

    /// Like [`Self::start`], and its receiver also sends notifications to
    /// `webhook_url` (Alertmanager's webhook format), resolved ones too: how
    /// a test sees an alert end. Each alert is a group of its own, sent about
    /// a second after it arrives or changes.
    pub fn start_notifying(webhook_url: &str) -> Option<Self> {
        Self::launch(Some(webhook_url))
    }

    fn launch(webhook_url: Option<&str>) -> Option<Self> {
        let binary = match binary() {
            Ok(found) => found,
            Err(why) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "Alertmanager test prerequisite missing in CI: {why}"
                );
                super::skipped(&why);
                return None;
            }
        };
        let dir = TempDir::new("alertmanager");
        let config = dir.path.join("alertmanager.yml");
        std::fs::write(&config, config_yaml(webhook_url))
            .unwrap_or_else(|e| panic!("write {}: {e}", config.display()));
        let port = free_port();
        let flag = |name: &str, path: PathBuf| {
            let mut arg = OsString::from(format!("--{name}="));
            arg.push(path);
            arg
        };
        let args = vec![
            flag("config.file", config),
            flag("storage.path", dir.path.join("data")),
            format!("--web.listen-address=127.0.0.1:{port}").into(),
            // Empty: no gossip listener (0.0.0.0:9094 by default), which
            // would clash with another instance and wait for peers.
            "--cluster.listen-address=".into(),
            // Debug logs every alert received and notification sent, which
            // is what a failing test needs to see.
            "--log.level=debug".into(),
        ];
        let mut alertmanager = Self {
            port,
            binary,
            args,
            child: None,
            log_reported: false,
            dir,
        };
        alertmanager.spawn();
        alertmanager.wait_until_ready();
        Some(alertmanager)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops Alertmanager (SIGKILL), for an outage; the port number and the
    /// storage stay for [`Self::start_again`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts Alertmanager again after [`Self::stop`], on the same port with
    /// the same storage, and waits until it is ready. It has no alerts.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "Alertmanager is running");
        self.spawn();
        self.wait_until_ready();
    }

    /// The last `lines` lines of Alertmanager's log (of every run).
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log_path(), lines)
    }

    /// Posts `alerts`, a JSON array of alerts in the v2 API's shape (labels,
    /// annotations, startsAt, endsAt, generatorURL), as a client would;
    /// panics unless Alertmanager accepts them.
    pub fn post_alerts(&self, alerts: &Value) {
        let url = format!("{}/api/v2/alerts", self.url());
        let response = http::post_json(&url, alerts).unwrap_or_else(|e| panic!("POST {url}: {e}"));
        assert_eq!(
            response.status,
            200,
            "POST {url} answered {}: {}",
            response.status,
            response.text()
        );
    }

    /// The alerts that have not ended (see the module's notes) whose labels
    /// match every `(name, value)` of `filter` exactly, silenced and
    /// inhibited ones included, ordered by fingerprint. Panics when
    /// Alertmanager does not answer.
    pub fn alerts(&self, filter: &[(&str, &str)]) -> Vec<Value> {
        self.try_alerts(filter)
            .unwrap_or_else(|e| panic!("{e}; Alertmanager's log ends:\n{}", self.log_tail(20)))
    }

    /// Polls [`Self::alerts`] every 100 ms until `done` holds for what it
    /// returns, and returns that; panics with the last answer after
    /// `timeout`. An Alertmanager that does not answer yet (stopped, or
    /// starting again) is polled on.
    pub fn wait_for_alerts(
        &self,
        filter: &[(&str, &str)],
        timeout: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.try_alerts(filter) {
                Ok(alerts) if done(&alerts) => return alerts,
                Ok(alerts) => serde_json::to_string_pretty(&alerts)
                    .unwrap_or_else(|e| format!("(unprintable alerts: {e})")),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                panic!(
                    "Alertmanager's alerts matching {filter:?} were not as expected within {timeout:?}; the last answer:\n{last}\nAlertmanager's log ends:\n{}",
                    self.log_tail(20)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn try_alerts(&self, filter: &[(&str, &str)]) -> Result<Vec<Value>, String> {
        let mut url = format!(
            "{}/api/v2/alerts?active=true&silenced=true&inhibited=true",
            self.url()
        );
        for (name, value) in filter {
            // A matcher's value is a double-quoted string with `\` escapes.
            let quoted = value.replace('\\', r"\\").replace('"', "\\\"");
            let matcher = format!("{name}=\"{quoted}\"");
            url.push_str("&filter=");
            url.push_str(&http::encode_query_value(&matcher));
        }
        let response = http::get(&url).map_err(|e| format!("GET {url}: {e}"))?;
        if response.status != 200 {
            return Err(format!(
                "GET {url} answered {}: {}",
                response.status,
                response.text()
            ));
        }
        match serde_json::from_slice(&response.body) {
            Ok(Value::Array(alerts)) => Ok(alerts),
            _ => Err(format!(
                "GET {url} answered something else than a JSON array: {}",
                response.text()
            )),
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path.join("alertmanager.log")
    }

    fn spawn(&mut self) {
        self.child = Some(spawn(
            Command::new(&self.binary).args(&self.args),
            &self.log_path(),
        ));
    }

    /// Polls `/-/ready` until it answers 200; panics with the log's last
    /// lines after a timeout or when the process exits.
    fn wait_until_ready(&mut self) {
        let url = format!("{}/-/ready", self.url());
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::from("no answer");
        loop {
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                self.log_reported = true;
                panic!(
                    "Alertmanager exited with {status} ({last}); its log ends:\n{}",
                    self.log_tail(40)
                );
            }
            if Instant::now() >= deadline {
                self.log_reported = true;
                panic!(
                    "Alertmanager was not ready at {url} within {READY_TIMEOUT:?} ({last}); its log ends:\n{}",
                    self.log_tail(40)
                );
            }
            match http::get(&url) {
                Ok(response) if response.status == 200 => return,
                Ok(response) => {
                    last = format!("/-/ready answered {}: {}", response.status, response.text());
                }
                Err(e) => last = format!("/-/ready: {e}"),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.log_reported {
            eprintln!("Alertmanager's log ends:\n{}", self.log_tail(30));
        }
        self.stop();
    }
}

/// One route to one receiver. Every label groups (`...`), so each alert is
/// notified on its own; waits are short so that a test sees a notification
/// within a couple of seconds, and a repeat comes only after an hour.
fn config_yaml(webhook_url: Option<&str>) -> String {
    let mut config = String::from(
        "route:\n  receiver: tests\n  group_by: ['...']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: tests\n",
    );
    if let Some(url) = webhook_url {
        config.push_str(&format!(
            "    webhook_configs:\n      - url: '{url}'\n        send_resolved: true\n"
        ));
    }
    config
}

/// The Alertmanager binary, or why there is none.
fn binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("GUARDRAILS_ALERTMANAGER") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "GUARDRAILS_ALERTMANAGER is {}, which is not a file",
                path.display()
            ))
        };
    }
    let debian = PathBuf::from(DEBIAN_BINARY);
    if debian.is_file() {
        return Ok(debian);
    }
    in_path("prometheus-alertmanager")
        .or_else(|| in_path("alertmanager"))
        .ok_or_else(|| {
            format!(
                "no Alertmanager: GUARDRAILS_ALERTMANAGER is not set, there is no {DEBIAN_BINARY} and none on PATH (Debian's prometheus-alertmanager has it; `cargo xtask test` installs it)"
            )
        })
}
