//! The JSON-RPC server on jsonrpsee: HTTP `POST /` and WebSocket on the same port,
//! behind our connection limits ([`super::http::serve_with`]) and request checks.
//!
//! Each connection gets jsonrpsee's tower service behind [`check`], which answers what
//! the old hand-written server answered before any JSON is read: 404 off `/`, 405 for a
//! method other than `POST` (or a WebSocket upgrade), 403 for a `Host` not allowed or any
//! `Origin` (on upgrades too: browsers always send one, so no web page can open a socket
//! to the node), 415 for a body not typed JSON, 401 for a wrong bearer token, and 413 /
//! 408 for a body over the limit or too slow. A good bearer token marks the request (or
//! the whole WebSocket connection) [`Access::Admin`]; the [`Rpc`] middleware refuses
//! `admin_*` calls without it (-32001), bounds batches (-32600 past
//! [`Config::max_batch`](super::Config::max_batch)), counts running calls for
//! [`Conn`](super::conn::Conn) and logs each call.

use std::future::Future;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, StatusCode};
use jsonrpsee::server::middleware::rpc::{Batch, Notification, RpcServiceBuilder, RpcServiceT};
use jsonrpsee::server::{
    BatchRequestConfig, HttpBody, HttpResponse, MethodResponse, Methods, PingConfig, ServerConfig,
};
use jsonrpsee::types::{Id, Request};
use tower::Service as _;
use tracing::debug;

use super::conn::{Conn, Handoff};
use super::http::{self, Endpoint, Header};
use super::{Api, Error, METHODS};

/// What a request may call, decided from its `Authorization` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// Everything but `admin_*`.
    Public,
    /// Everything, with the API's secret.
    Admin,
}

/// Serves `methods` for `api` on `listener` until `shutdown` completes.
pub(super) async fn serve(
    listener: tokio::net::TcpListener,
    api: Arc<Api>,
    methods: Methods,
    shutdown: impl Future<Output = ()>,
) {
    let config = &api.config;
    let limits = config.limits.clone();
    let ws = ServerConfig::builder()
        .max_request_body_size(clamp(limits.max_body_bytes))
        .max_response_body_size(clamp(config.max_response_bytes))
        .max_connections(clamp(limits.max_connections))
        .max_subscriptions_per_connection(clamp(config.max_subscriptions))
        // Checked by the middleware, to answer -32600 as before.
        .set_batch_request_config(BatchRequestConfig::Unlimited)
        .set_message_buffer_capacity(clamp(config.max_queued_messages).max(1))
        .enable_ws_ping(PingConfig::new())
        .set_id_provider(super::pubsub::HexIds::default())
        .build();
    let (max_batch, max_response) = (config.max_batch, config.max_response_bytes);
    let builder = jsonrpsee::server::Server::builder()
        .set_config(ws)
        .set_rpc_middleware(RpcServiceBuilder::new().layer_fn(move |inner| Rpc {
            inner,
            max_batch,
            max_response,
        }))
        .to_service_builder();
    let (stop, handle) = jsonrpsee::server::stop_channel();
    let checks = api.clone();
    let make = move |conn: Arc<Conn>| {
        let svc = builder.clone().build(methods.clone(), stop.clone());
        let checks = checks.clone();
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let (mut svc, checks, conn) = (svc.clone(), checks.clone(), conn.clone());
            async move {
                let req = match check(&checks, req).await {
                    Ok(req) => req,
                    Err(reply) => return Ok::<_, jsonrpsee::core::BoxError>(reply),
                };
                let mut req = req;
                req.extensions_mut().insert(conn);
                let mut res = svc.call(req).await?;
                // jsonrpsee answers "null" over HTTP where nothing is to be answered.
                if res.extensions().get::<NoReply>().is_some() {
                    *res.body_mut() = HttpBody::empty();
                }
                Ok(res)
            }
        })
    };
    let max_in_flight = config.max_calls_in_flight;
    http::serve_with(
        Endpoint::Rpc,
        listener,
        limits,
        max_in_flight,
        make,
        shutdown,
    )
    .await;
    // Upgraded connections are jsonrpsee's: stop them too.
    let _ = handle.stop();
}

fn clamp(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The request checks, and the body read within the limits; the request to hand to
/// jsonrpsee, or the answer that refuses it.
async fn check(
    api: &Api,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Request<HttpBody>, HttpResponse<HttpBody>> {
    checked(api, req).await?.map_err(status_reply)
}

/// [`check`], with refusals as a status or (for a body that is not a JSON object or
/// array) a JSON-RPC error.
async fn checked(
    api: &Api,
    req: hyper::Request<Incoming>,
) -> Result<Result<hyper::Request<HttpBody>, StatusCode>, HttpResponse<HttpBody>> {
    Ok(match precheck(api, req).await {
        Err(status) => Err(status),
        Ok(Checked::Upgrade(req)) => Ok(*req),
        Ok(Checked::Post(body, access)) => {
            // jsonrpsee answers 400 to a body that does not start with `{` or `[`; the
            // API answers it as JSON-RPC: -32600 for other JSON, -32700 for the rest.
            let first = body.iter().find(|b| !b.is_ascii_whitespace());
            if !matches!(first, Some(b'{' | b'[')) {
                let e = match serde_json::from_slice::<serde_json::Value>(&body) {
                    Ok(_) => Error::InvalidRequest("not an object"),
                    Err(_) => Error::Parse,
                };
                let answer = serde_json::json!({
                    "jsonrpc": "2.0",
                    "id": null,
                    "error": { "code": e.code(), "message": e.to_string() },
                });
                let mut res = HttpResponse::new(HttpBody::from(answer.to_string()));
                res.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                return Err(res);
            }
            let mut out = hyper::Request::new(HttpBody::from(body.to_vec()));
            *out.method_mut() = Method::POST;
            out.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            out.extensions_mut().insert(access);
            Ok(out)
        }
    })
}

/// A request that passed the checks.
enum Checked {
    /// A WebSocket upgrade, for jsonrpsee as it came.
    Upgrade(Box<hyper::Request<HttpBody>>),
    /// A POST's body, read in full.
    Post(hyper::body::Bytes, Access),
}

async fn precheck(api: &Api, req: hyper::Request<Incoming>) -> Result<Checked, StatusCode> {
    if req.uri().path() != "/" {
        return Err(StatusCode::NOT_FOUND);
    }
    let upgrade = req.method() == Method::GET && is_upgrade(req.headers());
    if req.method() != Method::POST && !upgrade {
        return Err(StatusCode::METHOD_NOT_ALLOWED);
    }
    let headers = req.headers();
    if !api.host_allowed(&Header::of(headers, HOST)) {
        debug!(target: "rpc", "refused Host header");
        return Err(StatusCode::FORBIDDEN);
    }
    // A browser page may POST to 127.0.0.1 without a preflight when the request has
    // no Content-Type (a `Blob` body), and may open a WebSocket to any address;
    // requiring JSON, and refusing any `Origin`, keeps web pages from driving the API
    // (go-ethereum does the same).
    if Header::of(headers, hyper::header::ORIGIN) != Header::Absent {
        debug!(target: "rpc", upgrade, "refused request with an Origin header");
        return Err(StatusCode::FORBIDDEN);
    }
    let access = match (
        Header::of(headers, hyper::header::AUTHORIZATION),
        &api.config.admin_token,
    ) {
        (Header::Absent, _) => Access::Public,
        (Header::Value(v), Some(token)) if super::bearer_matches(&v, token) => Access::Admin,
        _ => {
            debug!(target: "rpc", "refused a wrong Authorization header");
            return Err(StatusCode::UNAUTHORIZED);
        }
    };
    if upgrade {
        let mut req = req.map(HttpBody::new);
        req.extensions_mut().insert(access);
        return Ok(Checked::Upgrade(Box::new(req)));
    }
    let read = http::read(req, &api.config.limits).await?;
    let json_type = read.content_type.as_deref().is_some_and(|t| {
        let media = t.split(';').next().unwrap_or_default().trim();
        media.eq_ignore_ascii_case("application/json")
    });
    if !json_type {
        return Err(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    Ok(Checked::Post(read.body, access))
}

/// Whether the request asks to become a WebSocket (RFC 6455 section 4.1: `Connection:
/// upgrade` and `Upgrade: websocket`).
fn is_upgrade(headers: &hyper::HeaderMap) -> bool {
    let has = |name, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has(hyper::header::CONNECTION, "upgrade") && has(hyper::header::UPGRADE, "websocket")
}

/// A plain-text refusal whose body is the status's reason phrase.
fn status_reply(status: StatusCode) -> HttpResponse<HttpBody> {
    let text = status.canonical_reason().unwrap_or("error");
    let mut res = HttpResponse::new(HttpBody::from(format!("{text}\n")));
    *res.status_mut() = status;
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::METHOD_NOT_ALLOWED {
        res.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
    }
    res
}

/// Marks an answer to notifications only: the HTTP body is left empty.
#[derive(Debug, Clone, Copy)]
struct NoReply;

/// The RPC middleware: admin access, batch bound, running-call count, logging.
#[derive(Clone)]
pub(super) struct Rpc<S> {
    inner: S,
    max_batch: usize,
    max_response: usize,
}

/// jsonrpsee's service as the middleware wraps it.
pub(super) trait Inner:
    RpcServiceT<
        MethodResponse = MethodResponse,
        BatchResponse = MethodResponse,
        NotificationResponse = MethodResponse,
    > + Send
    + Sync
    + Clone
    + 'static
{
}

impl<S> Inner for S where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Send
        + Sync
        + Clone
        + 'static
{
}

fn error_response(id: Id<'_>, e: &Error) -> MethodResponse {
    MethodResponse::error(id, jsonrpsee::types::ErrorObjectOwned::from(e.clone()))
}

impl<S: Inner> RpcServiceT for Rpc<S> {
    type MethodResponse = MethodResponse;
    type NotificationResponse = MethodResponse;
    type BatchResponse = MethodResponse;

    fn call<'a>(&self, req: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let inner = self.inner.clone();
        async move {
            let mut req = req;
            let running = req.extensions().get::<Arc<Conn>>().map(Conn::start_call);
            // The method keeps the call open until its answer is queued (see `conn`).
            let _running = Handoff::new(running);
            req.extensions_mut().insert(_running.clone());
            let method = req.method_name().to_owned();
            let admin = req.extensions().get::<Access>() == Some(&Access::Admin);
            let answer = if method.starts_with("admin_") && !admin {
                error_response(req.id(), &Error::Unauthorized)
            } else {
                inner.call(req).await
            };
            let known = METHODS.contains(&method.as_str());
            match (answer.as_error_code(), known) {
                (None, true) => debug!(target: "rpc", method, "call"),
                (Some(code), true) => debug!(target: "rpc", method, code, "call failed"),
                (_, false) => debug!(target: "rpc", len = method.len(), "unknown method"),
            }
            answer
        }
    }

    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let (inner, max) = (self.clone(), self.max_batch);
        async move {
            if batch.is_empty() {
                return error_response(Id::Null, &Error::InvalidRequest("empty batch"));
            }
            if batch.len() > max {
                return error_response(Id::Null, &Error::InvalidRequest("batch too large"));
            }
            // Each call goes through `call` above (admin check, counting, logging).
            inner.inner_batch(batch).await
        }
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl Future<Output = MethodResponse> + Send + 'a {
        // A notification is run like a call (as go-ethereum does) and its answer dropped.
        let this = self.clone();
        async move {
            let extensions = n.extensions().clone();
            let params = n.params().as_ref().map(|p| p.clone().into_owned());
            let mut req = Request::owned(n.method_name().to_owned(), params, Id::Null);
            *req.extensions_mut() = extensions.clone();
            let _ = this.call(req).await;
            let mut answer = MethodResponse::notification().with_extensions(extensions);
            answer.extensions_mut().insert(NoReply);
            answer
        }
    }
}

impl<S: Inner> Rpc<S> {
    /// jsonrpsee's batch handling over this middleware's `call` for each entry.
    async fn inner_batch(self, batch: Batch<'_>) -> MethodResponse {
        use jsonrpsee::server::BatchResponseBuilder;
        use jsonrpsee::server::middleware::rpc::BatchEntry;
        let mut out = BatchResponseBuilder::new_with_limit(self.max_response);
        let mut notified = false;
        for entry in batch {
            let answer = match entry {
                Ok(BatchEntry::Call(req)) => self.call(req).await,
                Ok(BatchEntry::Notification(n)) => {
                    notified = true;
                    self.notification(n).await;
                    continue;
                }
                Err(e) => {
                    let (e, id) = e.into_parts();
                    MethodResponse::error(id, e)
                }
            };
            if let Err(too_big) = out.append(answer) {
                return too_big;
            }
        }
        if out.is_empty() && notified {
            let mut answer = MethodResponse::notification();
            answer.extensions_mut().insert(NoReply);
            answer
        } else {
            MethodResponse::from_batch(out.finish())
        }
    }
}
