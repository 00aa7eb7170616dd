//! A small, bounded HTTP/1.1 server on hyper, shared by the admin RPC endpoint
//! ([`crate::rpc::serve`]) and the Prometheus endpoint ([`crate::metrics::serve`]).
//!
//! Both endpoints may face hostile clients (a metrics port is often exposed to a
//! monitoring network), so every connection is bounded: request line and headers
//! ([`Limits::max_header_bytes`], answered with 431), time to send them and time between
//! keep-alive requests ([`Limits::header_timeout`]), body size (413) and body time (408),
//! concurrent connections ([`Limits::max_connections`]; further clients wait in the
//! kernel's accept backlog), connections per client address
//! ([`Limits::max_connections_per_ip`]; more are answered 503 and closed), slots kept for
//! loopback clients ([`Limits::reserved_local`], so the operator on the host gets in when
//! remote clients hold the rest) and total connection age. Handlers see a fully read body.

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::conn::{Conn, Guarded};
use super::slots::{Pool, Slots};
use tracing::{debug, warn};

/// Bounds applied to every connection and request.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most bytes of request line plus headers; more is answered with 431 and the
    /// connection closed. Default 8 KiB (what common servers accept; our clients send a
    /// few hundred bytes).
    pub max_header_bytes: usize,
    /// Most header fields in a request. Default 32.
    pub max_headers: usize,
    /// Most body bytes; more is answered with 413. Default 2 MiB: room for a full JSON-RPC
    /// batch, and for `eth_sendRawTransaction` of a blob transaction with 6 blobs in hex
    /// (about 1.6 MB); geth's default is 5 MiB.
    pub max_body_bytes: usize,
    /// Time allowed to send the request line and headers, counted from when the server
    /// starts waiting for them, so it also closes idle keep-alive connections
    /// (slowloris). Default 5 s: a client sends its headers in milliseconds, and an idle
    /// connection should not hold a slot for long.
    pub header_timeout: Duration,
    /// Time allowed to send the body once the headers are in; slower gets 408.
    /// Default 10 s.
    pub body_timeout: Duration,
    /// Connections served at once; further clients wait in the accept backlog until one
    /// ends. Default 64: far above a scraper or operator's needs, small in memory.
    pub max_connections: usize,
    /// Connections from one client address; more are answered 503 and closed. Default 8:
    /// a scraper needs one, an operator's tools a few, so one client cannot hold all 64.
    pub max_connections_per_ip: usize,
    /// Of [`Limits::max_connections`], slots only loopback clients may take (at least
    /// one). Default 4.
    pub reserved_local: usize,
    /// A connection is closed after this long whatever it is doing, which also bounds a
    /// client that stops reading its response and how long keep-alive holds a slot.
    /// Default 30 s.
    pub max_connection_age: Duration,
    /// A write to a client that makes no progress for this long fails the connection:
    /// a client that stops reading cannot hold its buffers and slot. Default 10 s
    /// (go-ethereum's WebSocket write timeout).
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 8 * 1024,
            max_headers: 32,
            max_body_bytes: 2 * 1024 * 1024,
            header_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(10),
            max_connections: 64,
            max_connections_per_ip: 8,
            reserved_local: 4,
            max_connection_age: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// The endpoint a server runs, for its tracing target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `target: "metrics"`.
    Metrics,
    /// `target: "rpc"`.
    Rpc,
}

/// A request with its body read in full (within [`Limits`]).
#[derive(Debug)]
pub(crate) struct Request {
    /// The method.
    pub method: Method,
    /// The path of the request target, without the query.
    pub path: String,
    /// The `Content-Type` header, if present and ASCII.
    pub content_type: Option<String>,
    /// The body.
    pub body: Bytes,
}

/// A header a security check depends on. Anything but one visible-ASCII value is
/// [`Header::Invalid`], never "absent": a second `Host` or a non-ASCII `Origin` must not
/// slip past a check that reads only the first or only valid ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Header {
    /// Not sent.
    Absent,
    /// Sent once, visible ASCII.
    Value(String),
    /// Sent more than once, or not visible ASCII.
    Invalid,
}

impl Header {
    pub(crate) fn of(headers: &hyper::HeaderMap, name: hyper::header::HeaderName) -> Self {
        let mut all = headers.get_all(name).iter();
        match (all.next(), all.next()) {
            (None, _) => Header::Absent,
            (Some(v), None) => match v.to_str() {
                Ok(s) => Header::Value(s.to_owned()),
                Err(_) => Header::Invalid,
            },
            (Some(_), Some(_)) => Header::Invalid,
        }
    }
}

/// What a handler answers.
#[derive(Debug)]
pub(crate) struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// `Content-Type` of the body.
    pub content_type: &'static str,
    /// `Allow` header, for 405.
    pub allow: Option<&'static str>,
    /// The body.
    pub body: Bytes,
}

impl Reply {
    /// A 200 answer.
    pub(crate) fn ok(content_type: &'static str, body: impl Into<Bytes>) -> Self {
        Self {
            status: StatusCode::OK,
            content_type,
            allow: None,
            body: body.into(),
        }
    }

    /// A plain-text error answer whose body is the status's reason phrase.
    pub(crate) fn status(status: StatusCode) -> Self {
        let text = status.canonical_reason().unwrap_or("error");
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            allow: None,
            body: Bytes::from(format!("{text}\n")),
        }
    }

    /// 405 with the allowed method.
    pub(crate) fn method_not_allowed(allow: &'static str) -> Self {
        Self {
            allow: Some(allow),
            ..Self::status(StatusCode::METHOD_NOT_ALLOWED)
        }
    }
}

/// Serves `handler` on `listener` until `shutdown` completes; then stops accepting and
/// drops every open connection.
pub(crate) async fn serve<H, F>(
    endpoint: Endpoint,
    listener: TcpListener,
    limits: Limits,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    let shared = Arc::new(limits.clone());
    let make = move |_conn: Arc<Conn>| {
        let (limits, handler) = (shared.clone(), handler.clone());
        service_fn(move |req| {
            let (limits, handler) = (limits.clone(), handler.clone());
            async move { Ok::<_, Infallible>(respond(req, &limits, handler).await) }
        })
    };
    serve_with(endpoint, listener, limits, 1, make, shutdown).await;
}

/// Serves on `listener` until `shutdown` completes, each connection with the service
/// `make` returns for it, within [`Limits`]; then stops accepting and drops every
/// connection not yet upgraded (upgraded ones, WebSockets, are the service's to stop).
/// `max_in_flight` bounds the calls a connection may have running (see [`Conn`]).
pub(crate) async fn serve_with<M, S, B>(
    endpoint: Endpoint,
    listener: TcpListener,
    limits: Limits,
    max_in_flight: usize,
    make: M,
    shutdown: impl Future<Output = ()>,
) where
    M: Fn(Arc<Conn>) -> S + Send + 'static,
    S: hyper::service::Service<hyper::Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limits = Arc::new(limits);
    let slots = Arc::new(Mutex::new(Slots::new(
        limits.max_connections,
        limits.reserved_local,
        limits.max_connections_per_ip,
    )));
    let freed = Arc::new(Notify::new());
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    'accept: loop {
        // Reap finished connections so the set stays as small as the slot count.
        while conns.try_join_next().is_some() {}
        // With no slot free, leave new clients in the backlog until a connection ends.
        while !lock(&slots).any_free() {
            tokio::select! {
                _ = &mut shutdown => break 'accept,
                _ = freed.notified() => {}
            }
        }
        let (stream, addr) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    log_warn(endpoint, &e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let pool = lock(&slots).admit(addr.ip());
        let pool = match pool {
            Ok(pool) => pool,
            Err(why) => {
                log_conn(endpoint, addr, refusal(why));
                // Best effort and without waiting: the client learns why it is closed.
                let _ = stream.try_write(SERVICE_UNAVAILABLE);
                continue;
            }
        };
        let slot = Slot {
            slots: slots.clone(),
            freed: freed.clone(),
            ip: addr.ip(),
            pool,
        };
        // The slot is held by the socket: an upgraded connection keeps it until it ends.
        let conn = Arc::new(Conn::new(slot, max_in_flight));
        let io = Guarded::new(stream, conn.clone(), limits.write_timeout);
        let service = make(conn);
        let limits = limits.clone();
        conns.spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_header_size(limits.max_header_bytes)
                .max_headers(limits.max_headers)
                // hyper's minimum; headers are bounded separately above.
                .max_buf_size(16 * 1024);
            let conn = builder
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            // The age limit ends a connection that is not upgraded; an upgraded one has
            // left this future (the WebSocket server bounds it with pings).
            match tokio::time::timeout(limits.max_connection_age, conn).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => log_conn(endpoint, addr, &e.to_string()),
                Err(_) => log_conn(endpoint, addr, "connection age limit reached"),
            }
        });
    }
    conns.shutdown().await;
}

/// Sent to a client refused a slot.
const SERVICE_UNAVAILABLE: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

fn refusal(why: super::slots::Refused) -> &'static str {
    match why {
        super::slots::Refused::PerIp => "refused: connections per address",
        super::slots::Refused::Full => "refused: only loopback slots left",
    }
}

fn lock(slots: &Mutex<Slots>) -> MutexGuard<'_, Slots> {
    // The critical sections cannot panic; a poisoned lock still holds valid counts.
    slots.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A connection's slot, returned when the connection ends.
#[derive(Debug)]
struct Slot {
    slots: Arc<Mutex<Slots>>,
    freed: Arc<Notify>,
    ip: IpAddr,
    pool: Pool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.slots).release(self.ip, self.pool);
        self.freed.notify_one();
    }
}

fn log_warn(endpoint: Endpoint, e: &std::io::Error) {
    match endpoint {
        Endpoint::Metrics => warn!(target: "metrics", error = %e, "accept failed"),
        Endpoint::Rpc => warn!(target: "rpc", error = %e, "accept failed"),
    }
}

fn log_conn(endpoint: Endpoint, addr: std::net::SocketAddr, error: &str) {
    // hyper's error texts are its own, not the client's bytes.
    match endpoint {
        Endpoint::Metrics => debug!(target: "metrics", %addr, error, "connection ended"),
        Endpoint::Rpc => debug!(target: "rpc", %addr, error, "connection ended"),
    }
}

async fn respond<H, F>(
    req: hyper::Request<Incoming>,
    limits: &Limits,
    handler: H,
) -> Response<Full<Bytes>>
where
    H: Fn(Request) -> F,
    F: Future<Output = Reply>,
{
    let reply = match read(req, limits).await {
        Ok(req) => handler(req).await,
        Err(status) => Reply::status(status),
    };
    let mut res = Response::new(Full::new(reply.body));
    *res.status_mut() = reply.status;
    res.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(reply.content_type),
    );
    if let Some(allow) = reply.allow {
        res.headers_mut()
            .insert(ALLOW, hyper::header::HeaderValue::from_static(allow));
    }
    res
}

/// Reads the body within the limits, or says which status refuses it.
pub(crate) async fn read(
    req: hyper::Request<Incoming>,
    limits: &Limits,
) -> Result<Request, StatusCode> {
    let (parts, body) = req.into_parts();
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v: &hyper::header::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    // Refuse a declared oversized body before reading any of it.
    let declared = header(CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return Err(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let collect = Limited::new(body, limits.max_body_bytes).collect();
    let body = match tokio::time::timeout(limits.body_timeout, collect).await {
        Err(_) => return Err(StatusCode::REQUEST_TIMEOUT),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(StatusCode::PAYLOAD_TOO_LARGE);
        }
        Ok(Err(_)) => return Err(StatusCode::BAD_REQUEST),
        Ok(Ok(c)) => c.to_bytes(),
    };
    Ok(Request {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        content_type: header(CONTENT_TYPE),
        body,
    })
}
