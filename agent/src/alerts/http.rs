//! One HTTP/1.1 client for the HTTP outputs: plain `http` or `https` with
//! the system's root certificates, a time limit per request, and errors
//! sorted into those worth retrying and those that are not.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// No answer: refused, timed out, TLS failed. Retried.
    #[error("{0}")]
    Unreachable(String),
    /// The destination answered with an error it may recover from (5xx,
    /// 429). Retried.
    #[error("answered {status}: {body}")]
    Unavailable {
        /// The HTTP status.
        status: u16,
        /// The start of the answer.
        body: String,
    },
    /// The destination refused the request itself (other 4xx); sending it
    /// again would not help, so it is dropped and counted.
    #[error("refused with {status}: {body}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The start of the answer.
        body: String,
    },
    /// A file could not be written. Retried.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl DeliveryError {
    /// Whether sending again may succeed.
    pub fn retryable(&self) -> bool {
        !matches!(self, DeliveryError::Refused { .. })
    }
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// A client shared by the HTTP outputs.
#[derive(Clone, Debug)]
pub struct HttpClient {
    client: Client<Connector, Full<Bytes>>,
}

/// Bytes of an error answer kept for the log.
const ANSWER_SHOWN: usize = 200;

impl HttpClient {
    /// A client trusting the system's roots; without any, `https` outputs
    /// fail to connect and say so, and `http` ones work.
    pub fn new() -> Result<Self, rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::warn!(%error, "reading the system's root certificates");
        }
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            tracing::warn!("no system root certificates; https alert outputs cannot connect");
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// POSTs `body` to `url` with `headers`, within `timeout`.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(), DeliveryError> {
        let mut request = hyper::Request::post(url).header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request =
            request
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| DeliveryError::Refused {
                    status: 0,
                    body: format!("cannot build the request: {e}"),
                })?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| DeliveryError::Unreachable(crate::logging::error_chain(&e)))?;
            let status = response.status();
            let answer = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            if status.is_success() {
                return Ok(());
            }
            let body = String::from_utf8_lossy(&answer[..answer.len().min(ANSWER_SHOWN)])
                .trim()
                .to_owned();
            let status = status.as_u16();
            if status >= 500 || status == 429 || status == 408 {
                Err(DeliveryError::Unavailable { status, body })
            } else {
                Err(DeliveryError::Refused { status, body })
            }
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(DeliveryError::Unreachable(format!(
                    "no answer within {} ms",
                    timeout.as_millis()
                )))
            })
    }
}
