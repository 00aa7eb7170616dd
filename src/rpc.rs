//! The admin API: JSON-RPC 2.0 over HTTP `POST /`, with go-ethereum's method shapes.
//!
//! | method | params | result |
//! |---|---|---|
//! | `admin_nodeInfo` | | `{id, name, enode, enr, ip, ports{discovery, listener}, listenAddr, protocols}` |
//! | `admin_peers` | | `[{enode, id, name, caps, network{localAddress, remoteAddress, inbound, trusted, static}, protocols}]` |
//! | `admin_addPeer` | `enode://…` or `enr:…` | `true`: kept connected as a static node |
//! | `admin_removePeer` | node URL | `true`: forgotten as static, disconnected |
//! | `admin_addTrustedPeer` | node URL | `true`: admitted even when full |
//! | `net_peerCount` | | hex quantity, e.g. `"0x3"` |
//! | `net_listening` | | `true` |
//! | `web3_clientVersion` | | the Hello client id |
//! | `rpc_modules` | | `{admin, net, rpc, web3}` with versions, and `eth` with a chain |
//! | `eth_blockNumber` | | the store head's number, hex quantity |
//! | `eth_chainId` | | the chain spec's chain id, hex quantity |
//! | `eth_syncing` | | `false`, or `{startingBlock, currentBlock, highestBlock}` |
//! | `eth_getBlockByNumber` | quantity or `latest`/`earliest`, `fullTx` | block or null |
//! | `eth_getBlockByHash` | hash, `fullTx` | block or null |
//!
//! The `eth_*` methods need a chain ([`Api::with_chain`]); without one they are unknown
//! (-32601). Blocks have go-ethereum's header fields, `size`, `totalDifficulty`,
//! `uncles` and `withdrawals`; `transactions` are hashes even with `fullTx` set (the
//! store keeps no senders or receipts).
//!
//! Errors are JSON-RPC error objects ([`Error::code`]): -32700 unparsable JSON, -32600 a
//! malformed request or batch (empty, over [`Config::max_batch`]), -32601 unknown method,
//! -32602 bad params (an invalid node URL), -32603 the discovery service stopped.
//!
//! The HTTP layer ([`http`]) bounds headers, body ([`http::Limits::max_body_bytes`],
//! 413), time and connections. As the API can add peers, requests whose `Host` header is
//! not an IP address or in [`Config::allowed_hosts`] get 403, so a web page cannot
//! reach it through DNS rebinding; a `Content-Type` other than `application/json` gets
//! 415, so a cross-site form post is refused too (go-ethereum's `--http.vhosts` and
//! content-type checks). A `Host`, `Origin` or `Authorization` header sent twice or not
//! in visible ASCII gets 403 (a check must not read it as absent).
//!
//! `admin_*` methods need the API's secret ([`Config::admin_token`]) as
//! `Authorization: Bearer <token>`; without it they fail with -32001, and a wrong token
//! gets 401. `devp2p node --rpc` writes a fresh token to `<datadir>/rpc.cookie` (mode
//! 0600) at every start, as bitcoind's cookie file: whoever can read the data directory
//! may administer the node, e.g.
//! `curl -H "Authorization: Bearer $(cat DATADIR/rpc.cookie)" -H 'Content-Type: application/json' ...`.
//! In-process callers of [`Api::call`] and [`Api::handle`] have full access.
//!
//! JSON-RPC is written by hand on `serde_json` instead of `jsonrpsee`: its server adds
//! about 110 s to a clean build on two cores (hyper alone adds 12 s), for nine methods.

mod admin;
mod eth;
pub mod http;
mod slots;

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tracing::debug;

use crate::chain::Store;
use crate::{server, sync};
use http::{Endpoint, Limits, Reply};

/// JSON-RPC error codes (JSON-RPC 2.0 spec, section 5.1).
mod code {
    pub const PARSE: i64 = -32700;
    /// Implementation-defined server error (JSON-RPC 2.0 reserves -32000..-32099).
    pub const SERVER: i64 = -32000;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL: i64 = -32603;
    /// An `admin_*` call without the API's secret (implementation-defined server error).
    pub const UNAUTHORIZED: i64 = -32001;
}

/// Methods with their names as logged; anything else is logged only by length.
const METHODS: &[&str] = &[
    "admin_nodeInfo",
    "admin_peers",
    "admin_addPeer",
    "admin_removePeer",
    "admin_addTrustedPeer",
    "net_peerCount",
    "net_listening",
    "web3_clientVersion",
    "rpc_modules",
    "eth_blockNumber",
    "eth_chainId",
    "eth_syncing",
    "eth_getBlockByNumber",
    "eth_getBlockByHash",
];

/// A failed call, answered as a JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The body is not JSON.
    #[error("parse error")]
    Parse,
    /// The JSON is not a valid request or batch.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// No such method.
    #[error("the method does not exist or is not available")]
    MethodNotFound,
    /// The params are missing, extra or malformed.
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// A service the call needs has stopped.
    #[error("internal error: {0}")]
    Internal(String),
    /// The call was understood but refused (e.g. a transaction the pool rejects): code
    /// -32000, go-ethereum's generic server error, with the reason as the message.
    #[error("{0}")]
    Refused(String),
    /// An `admin_*` method called without the API's secret: code -32001.
    #[error("admin methods need the API secret (Authorization: Bearer, see rpc.cookie)")]
    Unauthorized,
}

impl Error {
    /// The JSON-RPC error code.
    pub fn code(&self) -> i64 {
        match self {
            Error::Parse => code::PARSE,
            Error::InvalidRequest(_) => code::INVALID_REQUEST,
            Error::MethodNotFound => code::METHOD_NOT_FOUND,
            Error::InvalidParams(_) => code::INVALID_PARAMS,
            Error::Internal(_) => code::INTERNAL,
            Error::Refused(_) => code::SERVER,
            Error::Unauthorized => code::UNAUTHORIZED,
        }
    }
}

/// API settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Answered by `web3_clientVersion` and as `name` in `admin_nodeInfo`; pass the
    /// server's `rlpx.client_id`. Default: [`rlpx::Config`]'s default client id.
    pub client_id: String,
    /// Host names accepted in the `Host` header besides IP addresses. Default
    /// `["localhost"]` (go-ethereum's `--http.vhosts` default); `"*"` accepts any.
    pub allowed_hosts: Vec<String>,
    /// Most calls in one batch. Default 100 (go-ethereum allows 1000 for far cheaper
    /// calls; ours fan out to the server task).
    pub max_batch: usize,
    /// HTTP bounds. Default [`Limits::default`] (1 MiB bodies).
    pub limits: Limits,
    /// The secret `admin_*` calls over HTTP must present (`Authorization: Bearer
    /// <token>`). Default `None`: admin methods are refused over HTTP.
    pub admin_token: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            client_id: rlpx::Config::default().client_id,
            allowed_hosts: vec!["localhost".to_string()],
            max_batch: 100,
            limits: Limits::default(),
            admin_token: None,
        }
    }
}

/// The admin API over a running server and, when it runs, the discovery service.
pub struct Api {
    server: server::Handle,
    discovery: Option<discovery::Handle>,
    config: Config,
    store: Option<Arc<Store>>,
    sync: Option<sync::Handle>,
    eth: Option<protocols::eth::Handle>,
}

impl Api {
    /// An API over `server` and `discovery`.
    pub fn new(
        server: server::Handle,
        discovery: Option<discovery::Handle>,
        config: Config,
    ) -> Self {
        Self {
            server,
            discovery,
            config,
            store: None,
            sync: None,
            eth: None,
        }
    }

    /// Adds the chain methods (`eth_*`) over `store` and, when it runs, the sync task.
    pub fn with_chain(mut self, store: Arc<Store>, sync: Option<sync::Handle>) -> Self {
        self.store = Some(store);
        self.sync = sync;
        self
    }

    /// Adds the transaction methods (`eth_sendRawTransaction`, `txpool_status`) over the
    /// eth protocol's pool.
    pub fn with_eth(mut self, eth: protocols::eth::Handle) -> Self {
        self.eth = Some(eth);
        self
    }

    /// Runs one method; `params` is the request's `params` member, if any.
    pub async fn call(&self, method: &str, params: Option<&Value>) -> Result<Value, Error> {
        if let Some(answer) = eth::call(self, method, params) {
            return answer;
        }
        if let Some(answer) = eth::call_pool(self, method, params) {
            return answer;
        }
        admin::call(self, method, params).await
    }

    /// Answers a request body (one request or a batch) with full access; `None` when
    /// every request was a notification and nothing is to be sent back.
    pub async fn handle(&self, body: &[u8]) -> Option<Value> {
        self.handle_with(body, true).await
    }

    /// [`Api::handle`], with `admin_*` methods refused unless `admin`.
    async fn handle_with(&self, body: &[u8], admin: bool) -> Option<Value> {
        let Ok(request) = serde_json::from_slice::<Value>(body) else {
            return Some(failure(Value::Null, &Error::Parse));
        };
        match request {
            Value::Array(batch) => {
                if batch.is_empty() {
                    return Some(failure(Value::Null, &Error::InvalidRequest("empty batch")));
                }
                if batch.len() > self.config.max_batch {
                    let e = Error::InvalidRequest("batch too large");
                    return Some(failure(Value::Null, &e));
                }
                let mut answers = Vec::with_capacity(batch.len());
                for r in batch {
                    answers.extend(self.one(r, admin).await);
                }
                (!answers.is_empty()).then_some(Value::Array(answers))
            }
            single => self.one(single, admin).await,
        }
    }

    /// Answers one request object; `None` for a valid notification.
    async fn one(&self, request: Value, admin: bool) -> Option<Value> {
        let Value::Object(mut req) = request else {
            return Some(failure(
                Value::Null,
                &Error::InvalidRequest("not an object"),
            ));
        };
        let id = req.remove("id");
        let notification = id.is_none();
        let id = match id {
            None => Value::Null,
            Some(id @ (Value::Null | Value::Number(_) | Value::String(_))) => id,
            Some(_) => {
                let e = Error::InvalidRequest("id must be a string, number or null");
                return Some(failure(Value::Null, &e));
            }
        };
        if req.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return Some(failure(
                id,
                &Error::InvalidRequest("jsonrpc must be \"2.0\""),
            ));
        }
        let Some(Value::String(method)) = req.remove("method") else {
            return Some(failure(
                id,
                &Error::InvalidRequest("method must be a string"),
            ));
        };
        let params = req.remove("params");
        if params
            .as_ref()
            .is_some_and(|p| !matches!(p, Value::Array(_) | Value::Object(_)))
        {
            let e = Error::InvalidRequest("params must be an array or object");
            return Some(failure(id, &e));
        }
        let result = if method.starts_with("admin_") && !admin {
            Err(Error::Unauthorized)
        } else {
            self.call(&method, params.as_ref()).await
        };
        match (&result, METHODS.contains(&method.as_str())) {
            (Ok(_), true) => debug!(target: "rpc", method, "call"),
            (Err(e), true) => debug!(target: "rpc", method, code = e.code(), "call failed"),
            (_, false) => debug!(target: "rpc", len = method.len(), "unknown method"),
        }
        if notification {
            return None;
        }
        Some(match result {
            Ok(v) => json!({ "jsonrpc": "2.0", "id": id, "result": v }),
            Err(e) => failure(id, &e),
        })
    }

    /// Whether a `Host` header passes [`Config::allowed_hosts`].
    fn host_allowed(&self, host: &http::Header) -> bool {
        let host = match host {
            // HTTP/1.0 clients may omit Host; browsers never do.
            http::Header::Absent => return true,
            http::Header::Invalid => return false,
            http::Header::Value(h) => h.as_str(),
        };
        let name = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => host.rsplit_once(':').map_or(host, |(h, _)| h),
        };
        name.parse::<IpAddr>().is_ok()
            || self
                .config
                .allowed_hosts
                .iter()
                .any(|a| a == "*" || a.eq_ignore_ascii_case(name))
    }

    /// Answers one HTTP request.
    async fn http(&self, req: http::Request) -> Reply {
        if req.path != "/" {
            return Reply::status(StatusCode::NOT_FOUND);
        }
        if req.method != Method::POST {
            return Reply::method_not_allowed("POST");
        }
        if !self.host_allowed(&req.host) {
            debug!(target: "rpc", "refused Host header");
            return Reply::status(StatusCode::FORBIDDEN);
        }
        // A browser page may POST to 127.0.0.1 without a preflight when the request has
        // no Content-Type (a `Blob` body); requiring JSON, and refusing any cross-site
        // `Origin`, keeps web pages from driving the admin API (go-ethereum does the same).
        if req.origin != http::Header::Absent {
            debug!(target: "rpc", "refused request with an Origin header");
            return Reply::status(StatusCode::FORBIDDEN);
        }
        let json_type = req.content_type.as_deref().is_some_and(|t| {
            let media = t.split(';').next().unwrap_or_default().trim();
            media.eq_ignore_ascii_case("application/json")
        });
        if !json_type {
            return Reply::status(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
        let admin = match (&req.authorization, &self.config.admin_token) {
            (http::Header::Absent, _) => false,
            (http::Header::Value(v), Some(token)) if bearer_matches(v, token) => true,
            _ => {
                debug!(target: "rpc", "refused a wrong Authorization header");
                return Reply::status(StatusCode::UNAUTHORIZED);
            }
        };
        let body = match self.handle_with(&req.body, admin).await {
            Some(answer) => answer.to_string(),
            None => String::new(),
        };
        Reply::ok("application/json", body)
    }
}

/// Whether an `Authorization` value is `Bearer <token>`, compared in constant time so
/// the answer's timing tells nothing about the token.
fn bearer_matches(value: &str, token: &str) -> bool {
    let Some(given) = value.strip_prefix("Bearer ") else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An error response.
fn failure(id: Value, e: &Error) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": e.code(), "message": e.to_string() },
    })
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, api: Api, shutdown: impl Future<Output = ()>) {
    if let Ok(addr) = listener.local_addr() {
        debug!(target: "rpc", %addr, "admin RPC listening");
    }
    let limits = api.config.limits.clone();
    let api = Arc::new(api);
    let handler = move |req: http::Request| {
        let api = api.clone();
        async move { api.http(req).await }
    };
    http::serve(Endpoint::Rpc, listener, limits, handler, shutdown).await;
}
