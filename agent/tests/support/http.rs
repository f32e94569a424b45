//! A small blocking HTTP/1.1 client, and the message framing it shares with
//! the [`super::webhook`] server: enough to talk to servers on loopback in a
//! test (no TLS, redirects or proxies). Header names come out lower-cased.

use std::{
    io::{self, BufRead, BufReader, Read, Write},
    net::{TcpStream, ToSocketAddrs},
    time::Duration,
};

use serde_json::Value;

/// How long connecting, and each read or write of a request, may take: a
/// test server that stops answering fails the request instead of the test
/// hanging.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A head larger than this is refused rather than buffered without end.
const MAX_HEAD: usize = 64 * 1024;

/// An answer to [`request`].
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    /// Names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
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
                "HTTP {} body is not JSON ({e}): {}",
                self.status,
                self.text()
            )
        })
    }
}

/// `GET url`.
pub fn get(url: &str) -> io::Result<Response> {
    request("GET", url, &[], &[])
}

/// `POST url` with `value` as a JSON body.
pub fn post_json(url: &str, value: &Value) -> io::Result<Response> {
    let body = serde_json::to_vec(value).expect("serialize a JSON body");
    request("POST", url, &[("Content-Type", "application/json")], &body)
}

/// Sends one request on a fresh connection (`Connection: close`) to an
/// `http://host:port/path?query` URL and reads the whole answer. The body
/// goes with a `Content-Length`, except for an empty GET or HEAD.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let (authority, target) = split_url(url)?;
    let addr = authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| invalid(format!("{authority} resolves to no address")))?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;

    let mut message =
        format!("{method} {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (name, value) in headers {
        message.push_str(&format!("{name}: {value}\r\n"));
    }
    if !(body.is_empty() && matches!(method, "GET" | "HEAD")) {
        message.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    message.push_str("\r\n");
    let mut bytes = message.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes)?;

    let mut reader = BufReader::new(stream);
    loop {
        let Head {
            start: status_line,
            headers,
        } = read_head(&mut reader)?
            .ok_or_else(|| eof("the server closed the connection without answering"))?;
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
        // An interim answer (100 Continue) precedes the real one.
        if (100..200).contains(&status) {
            continue;
        }
        let body = if method == "HEAD" || status == 204 || status == 304 {
            Vec::new()
        } else {
            read_body(&mut reader, &headers, true)?
        };
        return Ok(Response {
            status,
            headers,
            body,
        });
    }
}

/// `value` percent-encoded for a query string: everything but RFC 3986's
/// unreserved characters.
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The first header called `name` (any case) in `headers`, whose names are
/// lower-cased.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A message's start line (request or status line) and its headers.
#[derive(Debug)]
pub struct Head {
    pub start: String,
    /// Names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
}

/// Reads a start line and the headers after it, up to the empty line. `None`
/// when the peer closed the connection before a new message began, which is
/// how a keep-alive connection ends.
pub fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut read = 0;
    let mut line = String::new();
    // A client may send an empty line between messages (RFC 9112 2.2).
    let start = loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 {
            return Ok(None);
        }
        read += n;
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if !trimmed.is_empty() {
            break trimmed.to_owned();
        }
        if read > MAX_HEAD {
            return Err(invalid("only empty lines".to_owned()));
        }
    };
    let mut headers = Vec::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 {
            return Err(eof("the connection closed inside a message head"));
        }
        read += n;
        if read > MAX_HEAD {
            return Err(invalid(format!("a message head over {MAX_HEAD} bytes")));
        }
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            return Ok(Some(Head { start, headers }));
        }
        let (name, value) = trimmed
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header line {trimmed:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
}

/// Reads the body that `headers` announce: chunked, or `Content-Length`
/// bytes; with neither, a request has none and a response (`to_eof`) runs
/// to the end of the connection.
pub fn read_body(
    reader: &mut impl BufRead,
    headers: &[(String, String)],
    to_eof: bool,
) -> io::Result<Vec<u8>> {
    let chunked = header(headers, "transfer-encoding").is_some_and(|codings| {
        codings
            .rsplit(',')
            .next()
            .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
    });
    if chunked {
        return read_chunked(reader);
    }
    let mut body = Vec::new();
    if let Some(length) = header(headers, "content-length") {
        let length: u64 = length
            .parse()
            .map_err(|_| invalid(format!("bad Content-Length {length:?}")))?;
        reader.take(length).read_to_end(&mut body)?;
        if body.len() as u64 != length {
            return Err(eof("the connection closed inside a body"));
        }
    } else if to_eof {
        reader.read_to_end(&mut body)?;
    }
    Ok(body)
}

/// A chunked body, its trailers skipped.
fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(eof("the connection closed before a chunk"));
        }
        let size = line
            .trim_end_matches(['\r', '\n'])
            .split(';')
            .next()
            .map(str::trim)
            .and_then(|hex| usize::from_str_radix(hex, 16).ok())
            .ok_or_else(|| invalid(format!("bad chunk size line {line:?}")))?;
        if size == 0 {
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 {
                    return Err(eof("the connection closed inside the trailers"));
                }
                if line.trim_end_matches(['\r', '\n']).is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut end = [0; 2];
        reader.read_exact(&mut end)?;
        if &end != b"\r\n" {
            return Err(invalid("a chunk longer than its size".to_owned()));
        }
    }
}

/// `http://authority/target` split in two; the target is at least `/`.
fn split_url(url: &str) -> io::Result<(&str, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid(format!("not an http:// URL: {url}")))?;
    let at = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(at);
    Ok(if target.starts_with('/') {
        (authority, target.to_owned())
    } else {
        (authority, format!("/{target}"))
    })
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

fn eof(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, what.to_owned())
}
