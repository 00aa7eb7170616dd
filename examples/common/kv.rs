//! `kv/1`: a replicated key-value store as a custom subprotocol, shared by the examples
//! (`custom_protocol`, `full_node_with_custom_protocol`).
//!
//! - `Put [key, value]` (code 0): a new entry; stored and forwarded to every other peer
//!   that has not seen it (gossip, so an entry reaches peers we are not connected to).
//! - `Get [id, key]` (code 1): ask a peer for a key.
//! - `Value [id, found, value]` (code 2): the answer to the `Get` with the same id.
//!
//! Node-level state (the store, the peers' senders, pending requests) lives in [`Kv`];
//! each peer gets a handler task that talks to it through shared state — the shape the
//! `protocols::Subprotocol` API asks for.

use alloy_rlp::{RlpDecodable, RlpEncodable};
use bytes::Bytes;
use discovery::NodeId;
use protocols::{Handler, Subprotocol};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// Message codes of `kv/1`.
const PUT: u8 = 0;
const GET: u8 = 1;
const VALUE: u8 = 2;
/// Largest key or value accepted from a peer.
const MAX_ITEM: usize = 64 * 1024;
/// Most requests a peer may have waiting for an answer from us... and we from it.
const MAX_PENDING: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
struct Put {
    key: Bytes,
    value: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
struct Get {
    id: u64,
    key: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
struct Value {
    id: u64,
    found: bool,
    value: Bytes,
}

fn encode<T: alloy_rlp::Encodable>(m: &T) -> Bytes {
    let mut out = Vec::new();
    m.encode(&mut out);
    out.into()
}

#[derive(Default)]
struct State {
    store: HashMap<Bytes, Bytes>,
    peers: HashMap<NodeId, rlpx::ProtocolSender>,
    pending: HashMap<u64, oneshot::Sender<Option<Bytes>>>,
}

/// The node-level half of `kv/1`.
#[derive(Clone)]
pub(crate) struct Kv {
    state: Arc<Mutex<State>>,
    next_id: Arc<AtomicU64>,
    /// Counts stored entries: what [`Kv::wait`] waits on.
    stored: Arc<watch::Sender<u64>>,
    /// Peers with a `kv` session: what [`Kv::wait_peers`] waits on.
    sessions: Arc<watch::Sender<usize>>,
}

impl Default for Kv {
    fn default() -> Self {
        Self {
            state: Default::default(),
            next_id: Default::default(),
            stored: Arc::new(watch::channel(0).0),
            sessions: Arc::new(watch::channel(0).0),
        }
    }
}

/// Errors of [`Kv::get`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum GetError {
    /// We have no `kv` session with that peer.
    #[error("not connected to that peer")]
    NotConnected,
    /// The peer did not answer in time, or too many requests are waiting.
    #[error("no answer")]
    NoAnswer,
}

impl Kv {
    /// Stores `value` under `key` locally and gossips it to every peer.
    pub(crate) fn put(&self, key: &[u8], value: &[u8]) {
        let put = Put {
            key: Bytes::copy_from_slice(key),
            value: Bytes::copy_from_slice(value),
        };
        self.accept(put, None);
    }

    /// Waits until `key` is stored locally (put here or gossiped to us); returns its value.
    pub(crate) async fn wait(&self, key: &[u8]) -> Bytes {
        let mut stored = self.stored.subscribe();
        loop {
            if let Some(v) = self.local(key) {
                return v;
            }
            if stored.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Waits until `n` peers have a `kv` session with us (gossip reaches only them).
    pub(crate) async fn wait_peers(&self, n: usize) {
        let mut sessions = self.sessions.subscribe();
        let _ = sessions.wait_for(|&k| k >= n).await;
    }

    /// The local value of `key`.
    pub(crate) fn local(&self, key: &[u8]) -> Option<Bytes> {
        self.state.lock().ok()?.store.get(key).cloned()
    }

    /// Asks `peer` for `key`, waiting up to 5 s for the answer with our request id.
    pub(crate) async fn get(&self, peer: &NodeId, key: &[u8]) -> Result<Option<Bytes>, GetError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let sender = {
            let mut s = self.state.lock().map_err(|_| GetError::NoAnswer)?;
            if s.pending.len() >= MAX_PENDING {
                return Err(GetError::NoAnswer);
            }
            let sender = s.peers.get(peer).cloned().ok_or(GetError::NotConnected)?;
            s.pending.insert(id, tx);
            sender
        };
        let msg = encode(&Get {
            id,
            key: Bytes::copy_from_slice(key),
        });
        sender
            .send(GET, msg)
            .await
            .map_err(|_| GetError::NotConnected)?;
        let answer = tokio::time::timeout(Duration::from_secs(5), rx).await;
        if let Ok(mut s) = self.state.lock() {
            s.pending.remove(&id);
        }
        match answer {
            Ok(Ok(v)) => Ok(v),
            _ => Err(GetError::NoAnswer),
        }
    }

    /// Stores a new entry and forwards it to every peer but `from`.
    fn accept(&self, put: Put, from: Option<NodeId>) {
        let targets: Vec<rlpx::ProtocolSender> = {
            let Ok(mut s) = self.state.lock() else { return };
            if s.store.get(&put.key) == Some(&put.value) {
                return; // seen: gossip stops here
            }
            s.store.insert(put.key.clone(), put.value.clone());
            self.stored.send_modify(|n| *n += 1);
            s.peers
                .iter()
                .filter(|(id, _)| Some(**id) != from)
                .map(|(_, tx)| tx.clone())
                .collect()
        };
        let msg = encode(&put);
        for tx in targets {
            // A peer whose queue is full misses this gossip; it can still `Get` the key.
            let _ = tx.try_send(PUT, msg.clone());
        }
    }

    /// One peer's session: returns when the peer leaves or misbehaves.
    async fn serve(self, mut peer: rlpx::ProtocolHandle) {
        let id = NodeId::from_public_key(&peer.info().id);
        if let Ok(mut s) = self.state.lock() {
            s.peers.insert(id, peer.sender());
            self.sessions.send_replace(s.peers.len());
        }
        while let Some((code, data)) = peer.recv().await {
            let ok = match code {
                PUT => match alloy_rlp::decode_exact::<Put>(&data) {
                    Ok(p) if p.key.len() <= MAX_ITEM && p.value.len() <= MAX_ITEM => {
                        self.accept(p, Some(id));
                        true
                    }
                    _ => false,
                },
                GET => match alloy_rlp::decode_exact::<Get>(&data) {
                    Ok(g) => {
                        let value = self.local(&g.key);
                        let reply = Value {
                            id: g.id,
                            found: value.is_some(),
                            value: value.unwrap_or_default(),
                        };
                        peer.send(VALUE, encode(&reply)).await.is_ok()
                    }
                    Err(_) => false,
                },
                VALUE => match alloy_rlp::decode_exact::<Value>(&data) {
                    Ok(v) => {
                        let waiter = self
                            .state
                            .lock()
                            .ok()
                            .and_then(|mut s| s.pending.remove(&v.id));
                        // An answer to nothing we asked is a breach; a late one is not.
                        if let Some(w) = waiter {
                            let _ = w.send(v.found.then_some(v.value));
                        }
                        true
                    }
                    Err(_) => false,
                },
                _ => false,
            };
            if !ok {
                peer.disconnect(rlpx::DisconnectReason::SubprotocolError);
                break;
            }
        }
        if let Ok(mut s) = self.state.lock() {
            s.peers.remove(&id);
            self.sessions.send_replace(s.peers.len());
        }
    }
}

impl Subprotocol for Kv {
    fn protocols(&self) -> Vec<rlpx::Protocol> {
        vec![rlpx::Protocol::new("kv", 1, 3)]
    }
    fn handle(&self, peer: rlpx::ProtocolHandle) -> Handler {
        Box::pin(self.clone().serve(peer))
    }
}
