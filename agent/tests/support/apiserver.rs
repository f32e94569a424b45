//! A real kube-apiserver and etcd on loopback for the Kubernetes tests, with
//! no other part of a cluster.
//!
//! The binaries come from `GUARDRAILS_KUBE_APISERVER` (which `cargo xtask
//! test` sets; `cargo xtask kube-apiserver` builds it and prints its path) and
//! `GUARDRAILS_ETCD` (else `etcd` on PATH); `openssl` makes the service
//! account signing key. Outside CI a missing one skips the test with a
//! printed reason; under `CI=true` it fails the test.
//!
//! The server is Kubernetes 1.20 with a self-signed serving certificate that
//! clients verify (its CA is in every kubeconfig), an admin token in
//! `system:masters`, RBAC, and service account token signing, so the
//! TokenRequest API works without a controller manager. With no kubelet, no
//! scheduler and no controllers: a pod with `spec.nodeName` stays Pending
//! until a test sets its status ([`ApiServer::mark_pod_running`]), a delete
//! needs grace period 0 to remove a pod at once, the ServiceAccount admission
//! plugin is off (no `default` account is ever made), and CronJob is only
//! `batch/v1beta1`.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use k8s_openapi::api::{
    authentication::v1::{TokenRequest, TokenRequestSpec},
    core::v1::{Pod, ServiceAccount},
};
use kube::{
    Api, Client, Config,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use serde_json::json;

use super::{TempDir, free_port, in_path, spawn, tail, unique_hex};

/// How long etcd and kube-apiserver get to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// The issuer and audience of service account tokens.
const ISSUER: &str = "https://kubernetes.default.svc";

/// etcd and kube-apiserver as child processes, their data, certificates and
/// logs in a temporary directory; all of it goes when dropped.
pub struct ApiServer {
    port: u16,
    admin_token: String,
    binary: PathBuf,
    args: Vec<OsString>,
    etcd: Child,
    apiserver: Option<Child>,
    kubeconfigs: AtomicU32,
    /// Whether a panic message carried the logs already.
    logs_reported: bool,
    dir: TempDir,
}

impl ApiServer {
    /// Starts etcd and kube-apiserver on free loopback ports and waits until
    /// the server is ready. `None` when the binaries are missing, outside CI.
    pub async fn start() -> Option<Self> {
        let (binary, etcd_binary, openssl) = match prerequisites() {
            Ok(found) => found,
            Err(why) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "kube-apiserver test prerequisite missing in CI: {why}"
                );
                super::skipped(&why);
                return None;
            }
        };
        let dir = TempDir::new("apiserver");
        let etcd_port = free_port();
        let peer_port = free_port();
        let port = free_port();

        let etcd = spawn(
            Command::new(&etcd_binary)
                .args(["--name", "default", "--data-dir"])
                .arg(dir.path.join("etcd"))
                .arg(format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"))
                .arg(format!(
                    "--advertise-client-urls=http://127.0.0.1:{etcd_port}"
                ))
                .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
                .arg(format!(
                    "--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"
                ))
                .arg(format!(
                    "--initial-cluster=default=http://127.0.0.1:{peer_port}"
                ))
                .args(["--logger", "zap", "--log-outputs", "stderr"]),
            &dir.path.join("etcd.log"),
        );

        let admin_token = unique_hex(32);
        let tokens = dir.path.join("tokens.csv");
        std::fs::write(
            &tokens,
            format!("{admin_token},admin,admin,\"system:masters\"\n"),
        )
        .expect("write the token file");
        let signing_key = dir.path.join("service-account.key");
        let status = Command::new(&openssl)
            .args(["genrsa", "-out"])
            .arg(&signing_key)
            .arg("2048")
            .stderr(Stdio::null())
            .status()
            .expect("run openssl");
        assert!(status.success(), "openssl genrsa failed: {status}");

        let flag = |name: &str, path: &Path| {
            let mut arg = OsString::from(format!("--{name}="));
            arg.push(path);
            arg
        };
        let args = vec![
            OsString::from(format!("--etcd-servers=http://127.0.0.1:{etcd_port}")),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={port}").into(),
            // Advertised in the serving certificate; no endpoints for the
            // `kubernetes` service, which would refuse a loopback address.
            "--advertise-address=127.0.0.1".into(),
            "--endpoint-reconciler-type=none".into(),
            // A self-signed certificate and its CA, made at the first start
            // and reused at a restart.
            flag("cert-dir", &dir.path.join("certs")),
            flag("token-auth-file", &tokens),
            "--authorization-mode=RBAC".into(),
            format!("--service-account-issuer={ISSUER}").into(),
            format!("--api-audiences={ISSUER}").into(),
            flag("service-account-signing-key-file", &signing_key),
            flag("service-account-key-file", &signing_key),
            "--disable-admission-plugins=ServiceAccount".into(),
            // As in clusters whose kubelets run privileged pods (the
            // default), so that such pod specs are accepted.
            "--allow-privileged=true".into(),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            "--profiling=false".into(),
        ];
        let mut server = Self {
            port,
            admin_token,
            binary,
            args,
            etcd,
            apiserver: None,
            kubeconfigs: AtomicU32::new(0),
            logs_reported: false,
            dir,
        };
        server.spawn_apiserver();
        server.wait_until_ready().await;
        Some(server)
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The bearer token of `admin`, in group `system:masters`.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The CA of the serving certificate (PEM).
    pub fn ca_pem(&self) -> String {
        let path = self.dir.path.join("certs/apiserver.crt");
        let bundle = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        // The file holds the serving certificate, then the CA that signed it.
        let start = bundle
            .rfind("-----BEGIN CERTIFICATE-----")
            .unwrap_or_else(|| panic!("no certificate in {}", path.display()));
        bundle[start..].to_owned()
    }

    /// Writes a kubeconfig for this server with `token` as the bearer token
    /// and the serving certificate's CA, for a client or an agent process
    /// (`KUBECONFIG`); returns its path, inside the server's directory.
    pub fn kubeconfig(&self, token: &str) -> PathBuf {
        use base64::Engine as _;
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca_pem());
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": {
                "server": self.url(),
                "certificate-authority-data": ca,
            }}],
            "users": [{"name": "test", "user": {"token": token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
            "current-context": "test",
        });
        let n = self.kubeconfigs.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path.join(format!("kubeconfig-{n}.yaml"));
        let text = serde_yaml::to_string(&config).expect("serialize a kubeconfig");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// A client with `token`, made from [`Self::kubeconfig`].
    pub async fn client(&self, token: &str) -> Client {
        client_from_kubeconfig(&self.kubeconfig(token)).await
    }

    /// A client as `admin` (`system:masters`).
    pub async fn admin_client(&self) -> Client {
        self.client(&self.admin_token).await
    }

    /// A token of service account `namespace/name` (which must exist), made
    /// by the TokenRequest API, valid for an hour.
    pub async fn service_account_token(&self, namespace: &str, name: &str) -> String {
        let accounts: Api<ServiceAccount> = Api::namespaced(self.admin_client().await, namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec![ISSUER.to_owned()],
                expiration_seconds: Some(3600),
                ..TokenRequestSpec::default()
            },
            ..TokenRequest::default()
        };
        accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .unwrap_or_else(|e| panic!("TokenRequest for {namespace}/{name}: {e}"))
            .status
            .unwrap_or_else(|| panic!("TokenRequest for {namespace}/{name} has no status"))
            .token
    }

    /// Does what a kubelet would once the pod's containers started: phase
    /// Running and a status for each `(container name, container ID)`, where
    /// an ID is like `containerd://<64 hex>`.
    pub async fn mark_pod_running(&self, namespace: &str, pod: &str, containers: &[(&str, &str)]) {
        let pods: Api<Pod> = Api::namespaced(self.admin_client().await, namespace);
        let statuses: Vec<_> = containers
            .iter()
            .map(|(name, id)| {
                json!({
                    "name": name,
                    "containerID": id,
                    "image": "test",
                    "imageID": "",
                    "ready": true,
                    "restartCount": 0,
                    "started": true,
                    "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}},
                })
            })
            .collect();
        let patch = json!({"status": {"phase": "Running", "containerStatuses": statuses}});
        pods.patch_status(pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("patch the status of pod {namespace}/{pod}: {e}"));
    }

    /// Deletes a pod at once (grace period 0: there is no kubelet to
    /// confirm a graceful stop).
    pub async fn delete_pod(&self, namespace: &str, pod: &str) {
        let pods: Api<Pod> = Api::namespaced(self.admin_client().await, namespace);
        pods.delete(pod, &DeleteParams::default().grace_period(0))
            .await
            .unwrap_or_else(|e| panic!("delete pod {namespace}/{pod}: {e}"));
    }

    /// Stops kube-apiserver (SIGKILL), for an outage; etcd keeps the data.
    pub fn stop_apiserver(&mut self) {
        if let Some(mut child) = self.apiserver.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts kube-apiserver again after [`Self::stop_apiserver`], on the
    /// same port with the same certificates and keys, and waits until ready.
    pub async fn start_apiserver_again(&mut self) {
        assert!(self.apiserver.is_none(), "kube-apiserver is running");
        self.spawn_apiserver();
        self.wait_until_ready().await;
    }

    /// The last `lines` lines of kube-apiserver's log.
    pub fn apiserver_log_tail(&self, lines: usize) -> String {
        tail(&self.dir.path.join("apiserver.log"), lines)
    }

    fn spawn_apiserver(&mut self) {
        self.apiserver = Some(spawn(
            Command::new(&self.binary).args(&self.args),
            &self.dir.path.join("apiserver.log"),
        ));
    }

    /// Waits for the serving certificate, then for `/readyz` to answer `ok`
    /// to the admin; panics with the logs' last lines after a timeout or when
    /// a process exits.
    async fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut client = None;
        let mut last = String::from("no answer");
        loop {
            self.assert_running(&last);
            if Instant::now() >= deadline {
                panic!(
                    "kube-apiserver was not ready within {READY_TIMEOUT:?} ({last}); {}",
                    self.logs()
                );
            }
            if client.is_none() && self.dir.path.join("certs/apiserver.key").exists() {
                client = Some(self.admin_client().await);
            }
            if let Some(client) = &client {
                let request = http::Request::get("/readyz")
                    .body(Vec::new())
                    .expect("a /readyz request");
                match tokio::time::timeout(Duration::from_secs(5), client.request_text(request))
                    .await
                {
                    Ok(Ok(text)) if text.trim() == "ok" => return,
                    Ok(Ok(text)) => last = format!("/readyz said {text:?}"),
                    Ok(Err(e)) => last = format!("/readyz: {e}"),
                    Err(_) => last = "/readyz took more than 5 s".to_owned(),
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn assert_running(&mut self, last: &str) {
        if let Ok(Some(status)) = self.etcd.try_wait() {
            panic!("etcd exited with {status}; {}", self.logs());
        }
        if let Some(child) = &mut self.apiserver
            && let Ok(Some(status)) = child.try_wait()
        {
            panic!(
                "kube-apiserver exited with {status} ({last}); {}",
                self.logs()
            );
        }
    }

    /// The ends of both logs, for a panic message.
    fn logs(&mut self) -> String {
        self.logs_reported = true;
        format!(
            "etcd's log ends:\n{}\nkube-apiserver's log ends:\n{}",
            tail(&self.dir.path.join("etcd.log"), 5),
            self.apiserver_log_tail(40)
        )
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.logs_reported {
            eprintln!(
                "kube-apiserver's log ends:\n{}",
                self.apiserver_log_tail(30)
            );
        }
        self.stop_apiserver();
        let _ = self.etcd.kill();
        let _ = self.etcd.wait();
    }
}

/// A client from a kubeconfig file, as an agent given `KUBECONFIG` makes it.
pub async fn client_from_kubeconfig(path: &Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(path)
        .unwrap_or_else(|e| panic!("read kubeconfig {}: {e}", path.display()));
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("load kubeconfig {}: {e}", path.display()));
    Client::try_from(config).unwrap_or_else(|e| panic!("client from {}: {e}", path.display()))
}

/// The kube-apiserver, etcd and openssl binaries, or why one is missing.
fn prerequisites() -> Result<(PathBuf, PathBuf, PathBuf), String> {
    let apiserver = std::env::var_os("GUARDRAILS_KUBE_APISERVER")
        .map(PathBuf::from)
        .ok_or("GUARDRAILS_KUBE_APISERVER is not set (`cargo xtask test` sets it; `cargo xtask kube-apiserver` builds kube-apiserver and prints its path)")?;
    if !apiserver.is_file() {
        return Err(format!(
            "GUARDRAILS_KUBE_APISERVER is {}, which is not a file",
            apiserver.display()
        ));
    }
    let etcd = match std::env::var_os("GUARDRAILS_ETCD") {
        Some(path) => PathBuf::from(path),
        None => in_path("etcd").ok_or(
            "no etcd on PATH and GUARDRAILS_ETCD is not set (Debian's etcd-server has it)",
        )?,
    };
    if !etcd.is_file() {
        return Err(format!("etcd is {}, which is not a file", etcd.display()));
    }
    let openssl = in_path("openssl").ok_or("no openssl on PATH")?;
    Ok((apiserver, etcd, openssl))
}
