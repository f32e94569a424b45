//! An HTTP/1.1 server on loopback that records every request it is sent and
//! answers each with one status, which a test may change while it runs (503
//! for a destination that is down). It serves several requests per
//! connection, as a pooling client sends them, with bodies framed by
//! `Content-Length` or chunked, and answers `Expect: 100-continue`.

use std::{
    io::{BufReader, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicBool, AtomicU16, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use serde_json::Value;

use super::http::{Head, header, read_body, read_head};

/// One request as the server read it.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    /// The request target: path and query.
    pub path: String,
    /// Names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    /// Decoded: without the chunked framing.
    pub body: Vec<u8>,
}

impl Received {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "the body of {} {} is not JSON ({e}): {}",
                self.method,
                self.path,
                self.text()
            )
        })
    }

    /// `METHOD path: body`, the body cut short, for a failure message.
    fn summary(&self) -> String {
        let text = self.text();
        let cut: String = text.chars().take(300).collect();
        let more = if cut.len() < text.len() { "..." } else { "" };
        format!("{} {}: {cut}{more}", self.method, self.path)
    }
}

struct Shared {
    status: AtomicU16,
    received: Mutex<Vec<Received>>,
    arrived: Condvar,
    stopping: AtomicBool,
    /// Each open connection, to shut it down at the end, and its thread.
    connections: Mutex<Vec<(TcpStream, JoinHandle<()>)>>,
}

/// The server; stops when dropped.
pub struct WebhookServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl WebhookServer {
    /// Listens on a free loopback port and answers every request with
    /// `status_code` (with an empty body).
    pub fn start(status_code: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("the listener's address");
        let shared = Arc::new(Shared {
            status: AtomicU16::new(status_code),
            received: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            stopping: AtomicBool::new(false),
            connections: Mutex::new(Vec::new()),
        });
        let state = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name("webhook-accept".to_owned())
            .spawn(move || accept(&listener, &state))
            .expect("start the webhook server's thread");
        Self {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:<port>`, without a path: the server takes any.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers requests from now on with `status_code`.
    pub fn set_status(&self, status_code: u16) {
        self.shared.status.store(status_code, Ordering::SeqCst);
    }

    /// Every request so far, in the order they were read.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("lock").clone()
    }

    /// Waits until at least `n` requests have come and returns all of them;
    /// panics with those that came when `timeout` passes first.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        let mut received = self.shared.received.lock().expect("lock");
        while received.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let seen: Vec<String> = received.iter().map(Received::summary).collect();
                panic!(
                    "the webhook server got {} of {n} requests within {timeout:?}:\n{}",
                    received.len(),
                    seen.join("\n")
                );
            }
            received = self
                .shared
                .arrived
                .wait_timeout(received, left)
                .expect("lock")
                .0;
        }
        received.clone()
    }
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // accept() blocks until a connection comes: make one.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let connections = std::mem::take(&mut *self.shared.connections.lock().expect("lock"));
        for (stream, thread) in connections {
            // Ends a read that waits for a client's next request.
            let _ = stream.shutdown(Shutdown::Both);
            let _ = thread.join();
        }
    }
}

fn accept(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        let state = shared.clone();
        let Ok(thread) = std::thread::Builder::new()
            .name("webhook-conn".to_owned())
            .spawn(move || serve(stream, &state))
        else {
            continue;
        };
        let mut connections = shared.connections.lock().expect("lock");
        connections.retain(|(_, thread)| !thread.is_finished());
        connections.push((handle, thread));
    }
}

/// Serves the requests of one connection until the client closes it, asks
/// to close it, or sends what cannot be read.
fn serve(stream: TcpStream, shared: &Shared) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        let Ok(Some(Head {
            start: request_line,
            headers,
        })) = read_head(&mut reader)
        else {
            return;
        };
        let mut parts = request_line.split(' ');
        let (Some(method), Some(path), Some(version)) = (parts.next(), parts.next(), parts.next())
        else {
            let _ = writer.write_all(&response(400, true));
            return;
        };
        if header(&headers, "expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
            && writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err()
        {
            return;
        }
        let Ok(body) = read_body(&mut reader, &headers, false) else {
            let _ = writer.write_all(&response(400, true));
            return;
        };
        let connection = header(&headers, "connection").unwrap_or("");
        let close = if version == "HTTP/1.0" {
            !connection.eq_ignore_ascii_case("keep-alive")
        } else {
            connection
                .split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("close"))
        };
        let received = Received {
            method: method.to_owned(),
            path: path.to_owned(),
            headers,
            body,
        };
        // Recorded before the answer goes, so that a client which has its
        // answer finds its request among those a test reads.
        shared.received.lock().expect("lock").push(received);
        shared.arrived.notify_all();
        let status = shared.status.load(Ordering::SeqCst);
        if writer.write_all(&response(status, close)).is_err() || close {
            return;
        }
    }
}

/// An answer with no body.
fn response(status: u16, close: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    // RFC 9110 8.6: no Content-Length on 1xx and 204 answers.
    if status >= 200 && status != 204 {
        head.push_str("Content-Length: 0\r\n");
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}
