//! Connecting the client commands (`events`, `status`, `rules list|enable|
//! disable`) to a running agent: over its Unix socket by default, or over TCP
//! with mutual TLS (or, only when asked explicitly, plain text).

use std::{fmt, path::PathBuf, time::Duration};

use clap::Args;
use proto::v1::agent_service_client::AgentServiceClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};

/// Where the agent serves its API unless its config says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/guardrails/agent.sock";

/// How long connecting over TCP may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the client commands reach the agent.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Connecting to the agent")]
pub struct ConnectArgs {
    /// The agent's Unix socket (the agent's `api.socket`).
    #[arg(long, value_name = "PATH", env = "GUARDRAILS_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Connect over TCP instead of the socket: `https://HOST:PORT` (with
    /// --ca, --cert and --key), or `http://HOST:PORT` (only with --insecure).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// The CA certificate (PEM) that signed the agent's server certificate.
    #[arg(long, value_name = "FILE", requires = "server")]
    pub ca: Option<PathBuf>,
    /// This client's certificate (PEM), which the agent checks against its client CA.
    #[arg(long, value_name = "FILE", requires = "server")]
    pub cert: Option<PathBuf>,
    /// This client's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "server")]
    pub key: Option<PathBuf>,
    /// The name the agent's certificate must carry, when it is not the URL's host.
    #[arg(long, value_name = "NAME", requires = "server")]
    pub tls_server_name: Option<String>,
    /// Allow an `http://` server: no encryption and no authentication.
    #[arg(long, requires = "server")]
    pub insecure: bool,
}

/// Where to connect, once the arguments are checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The agent's Unix socket.
    Socket(PathBuf),
    /// TCP with TLS, the server's certificate checked against `ca`, this
    /// client's certificate presented.
    Tls {
        /// `https://host:port`.
        url: String,
        /// The CA certificate file.
        ca: PathBuf,
        /// This client's certificate file.
        cert: PathBuf,
        /// This client's key file.
        key: PathBuf,
        /// The name to check the server's certificate against, if not the host.
        server_name: Option<String>,
    },
    /// Plain-text TCP (`--insecure`).
    Plain {
        /// `http://host:port`.
        url: String,
    },
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Socket(path) => write!(f, "{}", path.display()),
            Self::Tls { url, .. } | Self::Plain { url } => f.write_str(url),
        }
    }
}

/// Why a client command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Talking to the agent failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Writing the output failed.
    #[error("cannot write the output")]
    Output(#[source] std::io::Error),
    /// Ctrl-C could not be caught.
    #[error("cannot catch Ctrl-C")]
    Signals(#[source] std::io::Error),
}

/// Why a client command could not talk to the agent. Every message names the
/// socket or server and says what to check.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `--server` is not a URL this client can use.
    #[error("--server {url:?}: {why}")]
    BadServer {
        /// As given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// A plain-text server without `--insecure`.
    #[error(
        "refusing to connect to {url} without TLS: events and rule changes would travel \
         unencrypted and unauthenticated; use https:// with --ca, --cert and --key, \
         or add --insecure if that is really meant"
    )]
    InsecureRefused {
        /// The server.
        url: String,
    },
    /// A TLS file could not be read.
    #[error("cannot read the {what} {}", path.display())]
    ReadFile {
        /// Which file: `CA certificate`, `client certificate`, `client key`.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The agent's socket could not be connected to.
    #[error("cannot connect to the agent at {}: {why}", path.display())]
    Socket {
        /// The socket.
        path: PathBuf,
        /// What happened and what to check.
        why: String,
    },
    /// The agent's TCP server could not be connected to.
    #[error("cannot connect to the agent at {url}: {why}")]
    Server {
        /// The server.
        url: String,
        /// What happened and what to check.
        why: String,
    },
    /// A call failed after connecting.
    #[error("the agent at {target}: {why}")]
    Call {
        /// The socket or server.
        target: String,
        /// The status's code and message, and what to check.
        why: String,
        /// The status's code.
        code: tonic::Code,
    },
}

impl ConnectArgs {
    /// Checks the arguments: which target, and for TCP, that TLS is set up
    /// completely or refused explicitly.
    pub fn target(&self) -> Result<Target, ClientError> {
        let Some(url) = &self.server else {
            return Ok(Target::Socket(self.socket.clone()));
        };
        let bad = |why: &str| ClientError::BadServer {
            url: url.clone(),
            why: why.to_owned(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|_| bad("not a URL; expected https://HOST:PORT"))?;
        if uri.host().is_none() {
            return Err(bad("no host; expected https://HOST:PORT"));
        }
        if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
            return Err(bad("a path is not expected; give https://HOST:PORT only"));
        }
        match uri.scheme_str() {
            Some("https") => {
                if self.insecure {
                    return Err(bad(
                        "--insecure only allows http://; an https:// server's certificate is always verified",
                    ));
                }
                let missing: Vec<&str> = [
                    ("--ca", self.ca.is_none()),
                    ("--cert", self.cert.is_none()),
                    ("--key", self.key.is_none()),
                ]
                .into_iter()
                .filter_map(|(flag, absent)| absent.then_some(flag))
                .collect();
                if let (Some(ca), Some(cert), Some(key)) = (&self.ca, &self.cert, &self.key) {
                    Ok(Target::Tls {
                        url: url.clone(),
                        ca: ca.clone(),
                        cert: cert.clone(),
                        key: key.clone(),
                        server_name: self.tls_server_name.clone(),
                    })
                } else {
                    Err(bad(&format!(
                        "TLS needs {}: --ca is the CA that signed the agent's certificate, \
                         --cert and --key this client's certificate and key (the agent accepts \
                         only clients with a certificate)",
                        missing.join(", ")
                    )))
                }
            }
            Some("http") => {
                if self.ca.is_some() || self.cert.is_some() || self.key.is_some() {
                    return Err(bad(
                        "--ca, --cert and --key are for TLS; use an https:// URL",
                    ));
                }
                if self.insecure {
                    Ok(Target::Plain { url: url.clone() })
                } else {
                    Err(ClientError::InsecureRefused { url: url.clone() })
                }
            }
            _ => Err(bad(
                "expected https://HOST:PORT (or http://HOST:PORT with --insecure)",
            )),
        }
    }
}

/// A connection to an agent's API.
#[derive(Debug)]
pub struct Connection {
    client: AgentServiceClient<Channel>,
    target: Target,
}

impl Connection {
    /// Connects as `args` say; fails at once when the agent cannot be reached.
    pub async fn open(args: &ConnectArgs) -> Result<Self, ClientError> {
        let target = args.target()?;
        let channel = match &target {
            Target::Socket(path) => connect_socket(path).await?,
            Target::Tls {
                url,
                ca,
                cert,
                key,
                server_name,
            } => {
                let read = |what, path: &PathBuf| {
                    std::fs::read(path).map_err(|source| ClientError::ReadFile {
                        what,
                        path: path.clone(),
                        source,
                    })
                };
                let mut tls = ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(read("CA certificate", ca)?))
                    .identity(Identity::from_pem(
                        read("client certificate", cert)?,
                        read("client key", key)?,
                    ));
                if let Some(name) = server_name {
                    tls = tls.domain_name(name);
                }
                let endpoint =
                    tcp_endpoint(url)?
                        .tls_config(tls)
                        .map_err(|e| ClientError::Server {
                            url: url.clone(),
                            why: format!(
                                "the TLS files are not usable ({}); --ca and --cert must hold \
                                 PEM certificates, --key the PEM private key of --cert",
                                chain(&e)
                            ),
                        })?;
                connect_tcp(url, &endpoint, true).await?
            }
            Target::Plain { url } => connect_tcp(url, &tcp_endpoint(url)?, false).await?,
        };
        tracing::debug!(agent = %target, "connected");
        Ok(Self {
            client: AgentServiceClient::new(channel),
            target,
        })
    }

    /// The API client.
    pub fn client(&mut self) -> &mut AgentServiceClient<Channel> {
        &mut self.client
    }

    /// Where it is connected.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// A failed call as an error that names the agent and says what to check.
    pub fn call_error(&self, status: &tonic::Status) -> ClientError {
        // A failure of the connection (rather than an answer of the agent)
        // has causes, which say more than its message.
        let cause = std::error::Error::source(status).map(chain);
        let transport = cause.is_some();
        let message = match cause {
            Some(cause) if cause.starts_with(status.message()) => cause,
            Some(cause) if !cause.is_empty() => format!("{}: {cause}", status.message()),
            _ => status.message().to_owned(),
        };
        let tls = matches!(self.target, Target::Tls { .. });
        let why = match status.code() {
            tonic::Code::Unimplemented => format!(
                "it does not serve this call ({message}); is it an older version than this client?"
            ),
            tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => format!(
                "the request was refused ({message}); check the client certificate (--cert, --key)"
            ),
            // With TLS 1.3 the server checks the client's certificate after
            // the client considers the connection made: a refused
            // certificate shows as the first call failing.
            _ if transport && tls => format!(
                "the connection failed ({message}); if the agent closed it at once, it did not \
                 accept this client's certificate: check that --cert is signed by the agent's \
                 client CA; otherwise, is the agent still running?"
            ),
            _ if transport => {
                format!("the connection failed ({message}); is the agent still running?")
            }
            // The agent's own word that it stopped: nothing to ask.
            tonic::Code::Unavailable if message == crate::api::stream::STOPPING => message,
            tonic::Code::Unavailable => {
                format!("it is unavailable ({message}); is it still running?")
            }
            code => format!("{code:?}: {message}"),
        };
        ClientError::Call {
            target: self.target.to_string(),
            why,
            code: status.code(),
        }
    }
}

async fn connect_socket(path: &std::path::Path) -> Result<Channel, ClientError> {
    let socket = path.to_path_buf();
    // The URI is a placeholder: the connector ignores it and dials the socket.
    let endpoint = proto::codec::for_event_streams(Endpoint::from_static("http://[::]:50051"));
    endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|e| ClientError::Socket {
            path: path.to_path_buf(),
            why: socket_problem(path, &e),
        })
}

fn tcp_endpoint(url: &str) -> Result<Endpoint, ClientError> {
    Endpoint::from_shared(url.to_owned())
        .map(|e| proto::codec::for_event_streams(e).connect_timeout(CONNECT_TIMEOUT))
        .map_err(|e| ClientError::BadServer {
            url: url.to_owned(),
            why: chain(&e),
        })
}

async fn connect_tcp(url: &str, endpoint: &Endpoint, tls: bool) -> Result<Channel, ClientError> {
    endpoint.connect().await.map_err(|e| {
        let cause = chain(&e);
        let why = match io_error(&e).map(std::io::Error::kind) {
            Some(std::io::ErrorKind::ConnectionRefused) => format!(
                "{cause}; nothing listens there: is the agent running with its TCP API enabled on that port?"
            ),
            Some(std::io::ErrorKind::TimedOut) => format!(
                "{cause}; is the host reachable and the port open to this machine?"
            ),
            _ if tls => format!(
                "{cause}; check that the agent serves TLS there, that --ca signed its certificate \
                 and the certificate names the host (or --tls-server-name), and that the agent \
                 trusts --cert"
            ),
            _ => format!("{cause}; is the agent serving plain text there?"),
        };
        ClientError::Server {
            url: url.to_owned(),
            why,
        }
    })
}

/// What went wrong connecting to a socket, and what to check.
fn socket_problem(path: &std::path::Path, error: &tonic::transport::Error) -> String {
    use std::{io::ErrorKind, os::unix::fs::FileTypeExt};
    let kind = io_error(error).map(std::io::Error::kind);
    if kind == Some(ErrorKind::ConnectionRefused)
        && std::fs::metadata(path).is_ok_and(|m| !m.file_type().is_socket())
    {
        return "it is not a socket; pass the agent's socket (`api.socket` in its config) \
                with --socket PATH"
            .to_owned();
    }
    match kind {
        Some(ErrorKind::NotFound | ErrorKind::NotADirectory) => "no such socket; is the agent \
             running on this node? Its socket is `api.socket` in its config: pass --socket PATH \
             (or set GUARDRAILS_SOCKET) if it is elsewhere, or --server URL to connect over TCP"
            .to_owned(),
        Some(ErrorKind::PermissionDenied) => "permission denied; the socket is open to its owner \
             only: run this as root (for example with sudo) or as the agent's user"
            .to_owned(),
        Some(ErrorKind::ConnectionRefused) => "connection refused; nothing listens on it: the \
             agent is not running, or left the socket file behind when it stopped"
            .to_owned(),
        _ => format!(
            "{}; is the agent running, and is this its socket?",
            chain(error)
        ),
    }
}

/// The first I/O error among `error`'s causes.
fn io_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cause = e.source();
    }
    None
}

/// An error and its causes on one line, outermost first, without repeats.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        connect: ConnectArgs,
    }

    fn target(args: &[&str]) -> Result<Target, ClientError> {
        let cli = Cli::try_parse_from(std::iter::once("test").chain(args.iter().copied()))
            .expect("the arguments parse");
        cli.connect.target()
    }

    #[test]
    fn the_socket_is_the_default_and_can_be_moved() {
        // Only when the environment does not move it already.
        if std::env::var_os("GUARDRAILS_SOCKET").is_none() {
            assert_eq!(
                target(&[]).ok(),
                Some(Target::Socket(DEFAULT_SOCKET.into()))
            );
        }
        assert_eq!(
            target(&["--socket", "/tmp/a.sock"]).ok(),
            Some(Target::Socket("/tmp/a.sock".into()))
        );
    }

    #[test]
    fn https_needs_the_three_tls_files_and_says_which_are_missing() {
        let ok = target(&[
            "--server",
            "https://node-1:7443",
            "--ca",
            "ca.pem",
            "--cert",
            "c.pem",
            "--key",
            "k.pem",
        ]);
        assert!(matches!(ok, Ok(Target::Tls { .. })), "{ok:?}");
        let err = target(&["--server", "https://node-1:7443", "--ca", "ca.pem"])
            .expect_err("incomplete TLS")
            .to_string();
        assert!(err.contains("--cert, --key"), "{err}");
        assert!(!err.contains("--ca,"), "{err}");
    }

    #[test]
    fn plain_http_is_refused_without_insecure() {
        let err = target(&["--server", "http://node-1:7080"])
            .expect_err("refused")
            .to_string();
        assert!(
            err.starts_with("refusing to connect to http://node-1:7080 without TLS"),
            "{err}"
        );
        assert!(err.contains("--insecure"), "{err}");
        assert_eq!(
            target(&["--server", "http://node-1:7080", "--insecure"]).ok(),
            Some(Target::Plain {
                url: "http://node-1:7080".into()
            })
        );
    }

    #[test]
    fn mismatched_flags_and_bad_urls_are_refused() {
        for (args, expected) in [
            (
                &["--server", "https://n:1", "--insecure"][..],
                "--insecure only allows http://",
            ),
            (
                &["--server", "http://n:1", "--insecure", "--ca", "ca.pem"][..],
                "use an https:// URL",
            ),
            (
                &["--server", "node-1:7443"][..],
                "expected https://HOST:PORT",
            ),
            (
                &["--server", "https://n:1/api"][..],
                "a path is not expected",
            ),
            (&["--server", "ftp://n:1"][..], "expected https://HOST:PORT"),
        ] {
            let err = target(args).expect_err("refused").to_string();
            assert!(err.contains(expected), "{args:?}: {err}");
        }
    }

    #[test]
    fn tls_files_need_a_server() {
        let cli = Cli::try_parse_from(["test", "--ca", "ca.pem"]);
        assert!(cli.is_err());
    }

    #[test]
    fn a_chain_of_errors_is_one_line_without_repeats() {
        let inner = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let outer = ClientError::ReadFile {
            what: "CA certificate",
            path: "/x/ca.pem".into(),
            source: inner,
        };
        assert_eq!(
            chain(&outer),
            "cannot read the CA certificate /x/ca.pem: gone"
        );
        assert_eq!(
            io_error(&outer).map(std::io::Error::kind),
            Some(std::io::ErrorKind::NotFound)
        );
    }
}
