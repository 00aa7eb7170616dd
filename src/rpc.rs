//! The node's JSON-RPC 2.0 API over HTTP `POST /` and WebSocket on the same port, with
//! go-ethereum's method shapes.
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
//! | `eth_sendRawTransaction` | EIP-2718 bytes | the hash (needs [`Api::with_eth`]) |
//! | `txpool_status` | | `{pending, queued}` (needs [`Api::with_eth`]) |
//! | `eth_subscribe` | `"newHeads"` / `"newPendingTransactions"`, `full?` | subscription id (WebSocket only) |
//! | `eth_unsubscribe` | subscription id | `true` if it was active |
//!
//! Subscriptions ([`pubsub`]): `newHeads` sends the header (as in `eth_getBlockByNumber`,
//! without `size`, `totalDifficulty` and the body) of each block the [`Importer`] accepts
//! that is canonical after its import (needs [`Api::with_importer`]);
//! `newPendingTransactions` sends each newly pooled transaction's hash, or with `true` the
//! transaction object (needs [`Api::with_eth`]). Bounds and lag: see [`pubsub`] and
//! `docs/rpc.md`.
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
//! content-type checks); any `Origin` header gets 403, on WebSocket upgrades too. A
//! `Host`, `Origin` or `Authorization` header sent twice or not in visible ASCII gets 403
//! (a check must not read it as absent).
//!
//! `admin_*` methods need the API's secret ([`Config::admin_token`]) as
//! `Authorization: Bearer <token>`; without it they fail with -32001, and a wrong token
//! gets 401. `devp2p node --rpc` writes a fresh token to `<datadir>/rpc.cookie` (mode
//! 0600) at every start, as bitcoind's cookie file: whoever can read the data directory
//! may administer the node, e.g.
//! `curl -H "Authorization: Bearer $(cat DATADIR/rpc.cookie)" -H 'Content-Type: application/json' ...`.
//! The token sent with a WebSocket upgrade grants admin access for the whole connection.
//! In-process callers of [`Api::call`] have full access.
//!
//! JSON-RPC framing, batches and WebSocket subscriptions are jsonrpsee's (its `server`
//! feature only, no macros), as in reth; the connection limits, request checks and
//! method results are ours ([`server`]). Build cost and throughput: `docs/rpc.md`.

mod admin;
mod conn;
mod eth;
pub mod http;
pub mod pubsub;
mod server;
mod slots;

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use jsonrpsee::RpcModule;
use jsonrpsee::types::ErrorObjectOwned;
use serde_json::Value;
use tokio::net::TcpListener;
use tracing::debug;

use crate::chain::{Importer, Store};
use crate::{server as p2p, sync};
use http::Limits;

/// JSON-RPC error codes (JSON-RPC 2.0 spec, section 5.1).
mod code {
    pub(super) const PARSE: i64 = -32700;
    /// Implementation-defined server error (JSON-RPC 2.0 reserves -32000..-32099).
    pub(super) const SERVER: i64 = -32000;
    pub(super) const INVALID_REQUEST: i64 = -32600;
    pub(super) const METHOD_NOT_FOUND: i64 = -32601;
    pub(super) const INVALID_PARAMS: i64 = -32602;
    pub(super) const INTERNAL: i64 = -32603;
    /// An `admin_*` call without the API's secret (implementation-defined server error).
    pub(super) const UNAUTHORIZED: i64 = -32001;
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
    "eth_sendRawTransaction",
    "txpool_status",
    "eth_subscribe",
    "eth_unsubscribe",
];

/// The methods answered by [`Api::call`] (all of [`METHODS`] but the subscriptions).
const CALLS: usize = METHODS.len() - 2;

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
    /// Largest answer in bytes (a batch's in total); larger ones get error -32008.
    /// Default 4 MiB: a block of hashes is tens of KiB, a full transaction at most
    /// about 260 KiB.
    pub max_response_bytes: usize,
    /// Subscriptions a WebSocket connection may hold; more are refused (-32006).
    /// Default 64: a wallet or indexer needs two or three.
    pub max_subscriptions: usize,
    /// Outgoing messages (answers and notifications) queued per WebSocket connection;
    /// with the queue full, notifications are dropped (see [`pubsub`]). Default 64.
    pub max_queued_messages: usize,
    /// Calls a connection may have running; while it has that many, the server stops
    /// reading from it. Default 16 (an HTTP connection runs one at a time).
    pub max_calls_in_flight: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            client_id: rlpx::Config::default().client_id,
            allowed_hosts: vec!["localhost".to_string()],
            max_batch: 100,
            limits: Limits::default(),
            admin_token: None,
            max_response_bytes: 4 * 1024 * 1024,
            max_subscriptions: 64,
            max_queued_messages: 64,
            max_calls_in_flight: 16,
        }
    }
}

/// The admin API over a running server and, when it runs, the discovery service.
pub struct Api {
    server: p2p::Handle,
    discovery: Option<discovery::Handle>,
    config: Config,
    store: Option<Arc<Store>>,
    sync: Option<sync::Handle>,
    eth: Option<protocols::eth::Handle>,
    importer: Option<Importer>,
    /// Transaction objects rendered for subscriptions, shared by all of them.
    rendered: pubsub::Rendered,
}

impl Api {
    /// An API over `server` and `discovery`.
    pub fn new(server: p2p::Handle, discovery: Option<discovery::Handle>, config: Config) -> Self {
        Self {
            server,
            discovery,
            config,
            store: None,
            sync: None,
            eth: None,
            importer: None,
            rendered: pubsub::Rendered::default(),
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

    /// Adds `eth_subscribe("newHeads")` over the blocks `importer` accepts (those
    /// canonical after import, as read from its store).
    pub fn with_importer(mut self, importer: Importer) -> Self {
        self.importer = Some(importer);
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

impl From<Error> for ErrorObjectOwned {
    fn from(e: Error) -> Self {
        let code = i32::try_from(e.code()).unwrap_or(i32::MIN);
        ErrorObjectOwned::owned(code, e.to_string(), None::<()>)
    }
}

/// The methods of `api` as jsonrpsee serves them.
fn module(api: Arc<Api>) -> RpcModule<Api> {
    let mut module = RpcModule::from_arc(api);
    for &name in &METHODS[..CALLS] {
        let registered = module.register_async_method(name, move |params, api, ext| async move {
            let call = ext.get::<conn::Handoff>().and_then(conn::Handoff::take);
            conn::answer(call, run(&api, name, params).await)
        });
        // The names are distinct constants.
        debug_assert!(registered.is_ok(), "{name}");
    }
    pubsub::register(&mut module);
    module
}

/// Runs `name` with jsonrpsee's `params`.
async fn run(
    api: &Api,
    name: &str,
    params: jsonrpsee::types::Params<'_>,
) -> Result<Value, ErrorObjectOwned> {
    let params = match params.as_str() {
        None => None,
        Some(raw) => match serde_json::from_str::<Value>(raw) {
            Ok(v @ (Value::Array(_) | Value::Object(_))) => Some(v),
            Ok(_) => {
                let e = Error::InvalidRequest("params must be an array or object");
                return Err(ErrorObjectOwned::from(e));
            }
            Err(_) => return Err(Error::Parse.into()),
        },
    };
    api.call(name, params.as_ref())
        .await
        .map_err(ErrorObjectOwned::from)
}

/// Serves the API on `listener` (HTTP and WebSocket) until `shutdown` completes.
pub async fn serve(listener: TcpListener, api: Api, shutdown: impl Future<Output = ()>) {
    if let Ok(addr) = listener.local_addr() {
        debug!(target: "rpc", %addr, "JSON-RPC listening (HTTP and WebSocket)");
    }
    let api = Arc::new(api);
    let methods = module(api.clone()).into();
    server::serve(listener, api, methods, shutdown).await;
}
