//! The gRPC API (`guardrails.v1`, see `proto/guardrails/v1/agent.proto`):
//! event streams with server-side filters and resume, status, and rules.
//!
//! - [`hub`]: sequence numbers, the replay buffer and each stream's queue;
//! - [`filter`] and [`mask`]: what a stream receives;
//! - [`service`]: the RPCs;
//! - this module: the transports. A Unix socket by default, owner-only; TCP
//!   on request, with TLS and client certificates (rustls), or plaintext
//!   only with `insecure_plaintext`. The standard health service and server
//!   reflection (v1 and v1alpha) are served beside the API.

pub mod filter;
pub mod hub;
pub mod mask;
pub mod queue;
pub mod service;
pub mod stream;

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use proto::v1::agent_service_server::AgentServiceServer;
use tokio::net::{TcpListener, UnixListener};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::config::ApiConfig;

/// Why the API could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The socket's directory or the socket could not be made.
    #[error("cannot listen on the API socket {path}")]
    Socket {
        /// The socket.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// Another process serves the socket already.
    #[error("another process already serves the API socket {0}")]
    InUse(PathBuf),
    /// The TCP address could not be bound.
    #[error("cannot listen for the API on {address}")]
    Tcp {
        /// The address.
        address: std::net::SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// TCP was asked for without certificates and without the insecure flag.
    #[error(
        "api.tcp needs api.tls.cert, api.tls.key and api.tls.client_ca (clients must present a \
         certificate), or api.insecure_plaintext: true"
    )]
    TlsMissing,
    /// A certificate or key file could not be read.
    #[error("cannot read {path}")]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The server could not be set up.
    #[error("setting up the API server")]
    Transport(#[from] tonic::transport::Error),
    /// Reflection could not read the descriptors.
    #[error("setting up server reflection")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The API's runtime, its thread or its listeners could not be set up.
    #[error("starting the API's threads")]
    Runtime(#[source] std::io::Error),
}

/// The bound listeners, ready to serve.
#[derive(Debug)]
pub struct Listeners {
    unix: Option<(UnixListener, PathBuf)>,
    tcp: Option<(TcpListener, Option<ServerTlsConfig>)>,
}

impl Listeners {
    /// Where the API listens, for the log.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some((_, path)) = &self.unix {
            parts.push(format!("unix:{}", path.display()));
        }
        if let Some((listener, tls)) = &self.tcp
            && let Ok(address) = listener.local_addr()
        {
            let scheme = if tls.is_some() { "https" } else { "http" };
            parts.push(format!("{scheme}://{address}"));
        }
        parts.join(", ")
    }
}

/// Binds what the config asks for, before anything is loaded, so that a
/// taken socket or a missing certificate fails the start.
pub async fn bind(config: &ApiConfig) -> Result<Listeners, ApiError> {
    let unix = if config.socket.as_os_str().is_empty() {
        None
    } else {
        Some((bind_socket(&config.socket).await?, config.socket.clone()))
    };
    let tcp = match config.tcp {
        None => None,
        Some(address) => {
            let tls = if config.insecure_plaintext {
                tracing::warn!(%address, "the API is served on TCP without TLS or client authentication (api.insecure_plaintext)");
                None
            } else {
                Some(tls_config(config)?)
            };
            let listener = TcpListener::bind(address)
                .await
                .map_err(|source| ApiError::Tcp { address, source })?;
            Some((listener, tls))
        }
    };
    Ok(Listeners { unix, tcp })
}

async fn bind_socket(path: &Path) -> Result<UnixListener, ApiError> {
    let error = |source| ApiError::Socket {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(error)?;
    }
    if path.exists() {
        // A socket nobody answers on is left from a previous run.
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(ApiError::InUse(path.to_owned()));
        }
        std::fs::remove_file(path).map_err(error)?;
    }
    let listener = UnixListener::bind(path).map_err(error)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(error)?;
    Ok(listener)
}

fn tls_config(config: &ApiConfig) -> Result<ServerTlsConfig, ApiError> {
    let tls = &config.tls;
    let (Some(cert), Some(key), Some(ca)) = (&tls.cert, &tls.key, &tls.client_ca) else {
        return Err(ApiError::TlsMissing);
    };
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|source| ApiError::TlsFile {
            path: path.clone(),
            source,
        })
    };
    Ok(ServerTlsConfig::new()
        .identity(Identity::from_pem(read(cert)?, read(key)?))
        .client_ca_root(Certificate::from_pem(read(ca)?)))
}

/// The nice value of the API's threads.
const API_NICE: libc::c_int = 19;

/// Threads that serve the API. One: with two, a stream's task and its
/// connection's task were woken on different threads, so on a shared CPU
/// every write to a client cost a switch between them (measured on one
/// client reading a burst: 7 % more events per second with one thread, and
/// a tenth less of the agent's CPU per event).
const API_THREADS: usize = 1;

/// Serves the API on `listeners` until `shutdown`, on threads of its own
/// that run at the lowest scheduling priority (nice 19), below the
/// pipeline's:
/// when CPU is short, the streams fall behind, and each client is told what
/// it lost, before the pipeline falls behind the kernel, whose losses no
/// rule and no client would see.
pub fn spawn(
    listeners: Listeners,
    api: service::AgentApi,
    shutdown: CancellationToken,
) -> Result<ApiThread, ApiError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(API_THREADS)
        .thread_name("guardrails-api")
        .on_thread_start(lower_priority)
        .enable_all()
        .build()
        .map_err(ApiError::Runtime)?;
    let listeners = listeners.move_to(&runtime).map_err(ApiError::Runtime)?;
    std::thread::Builder::new()
        .name("guardrails-api".into())
        .spawn(move || {
            lower_priority();
            runtime.block_on(async move {
                if let Err(e) = serve(listeners, api, shutdown).await {
                    tracing::error!(error = %e, "the gRPC API stopped");
                }
            });
        })
        .map(ApiThread)
        .map_err(ApiError::Runtime)
}

/// The API's thread, waited for when the agent stops: until it ends, the
/// streams are still sending what the agent published before the stop.
#[derive(Debug)]
pub struct ApiThread(std::thread::JoinHandle<()>);

impl ApiThread {
    /// Waits up to `grace` for the API to end (after the shutdown token and
    /// [`hub::Hub::close`]); whether it did.
    pub async fn wait(self, grace: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        while !self.0.is_finished() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        if self.0.join().is_err() {
            tracing::error!("the gRPC API's thread panicked");
        }
        true
    }
}

impl Listeners {
    /// The same listeners, registered with `runtime` instead of the one
    /// they were bound on.
    fn move_to(self, runtime: &tokio::runtime::Runtime) -> std::io::Result<Self> {
        let _entered = runtime.enter();
        Ok(Self {
            unix: match self.unix {
                Some((listener, path)) => {
                    Some((UnixListener::from_std(listener.into_std()?)?, path))
                }
                None => None,
            },
            tcp: match self.tcp {
                Some((listener, tls)) => Some((TcpListener::from_std(listener.into_std()?)?, tls)),
                None => None,
            },
        })
    }
}

/// Lowers the calling thread's scheduling priority (on Linux, nice values
/// are per thread). Failing leaves it as it was: the API still works.
fn lower_priority() {
    // SAFETY: setpriority only reads its integer arguments; `0` names the
    // calling thread.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, API_NICE) } != 0 {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "cannot lower the API thread's priority"
        );
    }
}

/// Serves the API on `listeners` until `shutdown`.
async fn serve(
    listeners: Listeners,
    api: service::AgentApi,
    shutdown: CancellationToken,
) -> Result<(), ApiError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<AgentServiceServer<service::AgentApi>>()
        .await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let router = |builder: Server| {
        let mut builder = builder;
        builder
            .add_service(health_service.clone())
            .add_service(reflection_v1.clone())
            .add_service(reflection_v1alpha.clone())
            .add_service(AgentServiceServer::new(api.clone()))
    };
    let mut tasks = tokio::task::JoinSet::new();
    let mut socket = None;
    if let Some((listener, path)) = listeners.unix {
        socket = Some(path);
        let stop = shutdown.clone();
        let router = router(Server::builder());
        tasks.spawn(async move {
            router
                .serve_with_incoming_shutdown(UnixListenerStream::new(listener), stop.cancelled())
                .await
        });
    }
    if let Some((listener, tls)) = listeners.tcp {
        let builder = match tls {
            Some(tls) => Server::builder().tls_config(tls)?,
            None => Server::builder(),
        };
        let stop = shutdown.clone();
        let router = router(builder);
        tasks.spawn(async move {
            router
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stop.cancelled())
                .await
        });
    }
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the API server failed"),
            Err(e) => tracing::error!(error = %e, "the API server task failed"),
        }
    }
    // Gone with the agent, so that a client says "not running" rather than
    // "connection refused".
    if let Some(path) = socket
        && let Err(e) = std::fs::remove_file(&path)
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove the API socket");
    }
    Ok(())
}
