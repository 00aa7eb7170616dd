//! The tokio task driving the [`Downloader`]: it watches the eth peer table, sends the
//! requests the downloader asks for through [`eth::Handle`], imports through the chain
//! [`Importer`] (off the runtime), and feeds answers, results and timeouts back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use alloy_consensus::Header;
use alloy_primitives::B256;
use protocols::eth::{self, PeerId, RequestError};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::downloader::{
    Action, Config, Downloader, Failure, Imported, Local, PeerHead, RequestId, SyncStatus,
};
use crate::chain::{Body, Importer, Store, store};

/// How often the eth peer table is read for joined and departed peers and new heads.
/// Half a second: prompt enough for a sync, cheap (one lock, a few entries).
const PEER_POLL: Duration = Duration::from_millis(500);

/// The store as the downloader's read-only view of the local chain.
struct StoreView(Arc<Store>);

impl Local for StoreView {
    fn head(&self) -> (u64, B256) {
        match self.0.head() {
            Ok(h) => (h.number, h.hash_slow()),
            Err(e) => {
                tracing::warn!(target: "sync", error = %e, "cannot read the head");
                (0, self.0.genesis_hash())
            }
        }
    }

    fn canonical_hash(&self, number: u64) -> Option<B256> {
        self.0.canonical_hash(number).ok().flatten()
    }
}

/// Reads the sync progress; cheap to clone.
#[derive(Clone, Debug)]
pub struct Handle {
    status: watch::Receiver<SyncStatus>,
}

impl Handle {
    /// The latest progress.
    pub fn status(&self) -> SyncStatus {
        *self.status.borrow()
    }

    /// Waits until the status satisfies `f` (or the driver stopped); returns it.
    pub async fn wait_for(&mut self, f: impl FnMut(&SyncStatus) -> bool) -> SyncStatus {
        if let Ok(s) = self.status.wait_for(f).await {
            return *s;
        }
        *self.status.borrow()
    }
}

/// The running sync task: stop it with [`Syncer::shutdown`] (dropping it stops it too).
pub struct Syncer {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Syncer {
    /// A handle on the progress.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Stops the task and waits for it (an import under way finishes; it is one store
    /// transaction either way).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        if self.stop.is_some() {
            self.task.abort();
        }
    }
}

/// Starts syncing the store of `importer` from the peers behind `eth`, importing through
/// `importer` (the node's one [`Importer`], shared with block propagation).
pub fn spawn(eth: eth::Handle, importer: Importer, config: Config) -> Syncer {
    let announce = config.announce;
    let dl = Downloader::new(config, StoreView(importer.store().clone()));
    let (status_tx, status) = watch::channel(dl.status());
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(run(dl, eth, importer, announce, status_tx, stopped));
    Syncer {
        handle: Handle { status },
        stop: Some(stop),
        task,
    }
}

/// What the request and import tasks report back.
enum Msg {
    Headers(RequestId, Result<Vec<Header>, Failure>),
    Bodies(RequestId, Result<Vec<Body>, Failure>),
    Imported {
        result: Imported,
        blocks: usize,
        last: (u64, B256),
        elapsed: Duration,
    },
}

fn failure(e: RequestError) -> Failure {
    match e {
        RequestError::Timeout => Failure::Timeout,
        _ => Failure::Gone,
    }
}

async fn run(
    mut dl: Downloader<StoreView>,
    eth: eth::Handle,
    importer: Importer,
    announce: bool,
    status: watch::Sender<SyncStatus>,
    mut stopped: oneshot::Receiver<()>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut tasks = JoinSet::new();
    let mut known: HashMap<PeerId, PeerHead> = HashMap::new();
    let mut poll = tokio::time::interval(PEER_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        while let Some(action) = dl.poll_action() {
            execute(action, &eth, &importer, &tx, &mut tasks);
        }
        status.send_if_modified(|s| {
            let new = dl.status();
            let changed = *s != new;
            *s = new;
            changed
        });
        let deadline = dl.next_timeout().map(Instant::from_std);
        tokio::select! {
            _ = &mut stopped => break,
            _ = poll.tick() => {
                let now = Instant::now().into_std();
                let peers = eth.peers();
                let gone: Vec<PeerId> = known
                    .keys()
                    .filter(|id| !peers.iter().any(|p| p.id == **id))
                    .copied()
                    .collect();
                for id in gone {
                    known.remove(&id);
                    dl.peer_left(&id, now);
                }
                for p in peers {
                    let head = PeerHead { hash: p.status.head_hash, number: p.status.head_number };
                    if known.insert(p.id, head) != Some(head) {
                        dl.peer_joined(p.id, head, now);
                    }
                }
            }
            Some(msg) = rx.recv() => {
                let now = Instant::now().into_std();
                match msg {
                    Msg::Headers(id, r) => dl.on_headers(id, r, now),
                    Msg::Bodies(id, r) => dl.on_bodies(id, r, now),
                    Msg::Imported { result, blocks, last, elapsed } => {
                        if matches!(result, Imported::Ok { .. }) {
                            tracing::info!(
                                target: "sync",
                                number = last.0,
                                hash = %last.1,
                                blocks,
                                elapsed = ?elapsed,
                                "Imported new chain segment"
                            );
                        }
                        let caught_up = matches!(result, Imported::Ok { .. });
                        dl.on_imported(result, now);
                        // Once the round is over, tell peers behind us (go-ethereum
                        // announces the head at the end of a sync, not per batch).
                        if caught_up && announce && !dl.status().syncing {
                            announce_head(&eth, last.1, last.0);
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                dl.handle_timeout(Instant::now().into_std());
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    tasks.abort_all();
}

fn execute(
    action: Action,
    eth: &eth::Handle,
    importer: &Importer,
    tx: &mpsc::UnboundedSender<Msg>,
    tasks: &mut JoinSet<()>,
) {
    let (eth, tx) = (eth.clone(), tx.clone());
    match action {
        Action::Headers { id, peer, req } => {
            tasks.spawn(async move {
                let r = eth.request_headers(&peer, req).await.map_err(failure);
                let _ = tx.send(Msg::Headers(id, r));
            });
        }
        Action::Bodies { id, peer, hashes } => {
            tasks.spawn(async move {
                let r = eth.request_bodies(&peer, hashes).await.map_err(failure);
                let _ = tx.send(Msg::Bodies(id, r));
            });
        }
        Action::Penalise { peer, reason } => {
            tasks.spawn(async move {
                let _ = eth.disconnect(&peer, reason).await;
            });
        }
        Action::Import { blocks } => {
            // Validated and stored off the runtime; included transactions leave the pool.
            let importer = importer.clone();
            tasks.spawn(async move {
                let started = std::time::Instant::now();
                let count = blocks.len();
                let last = blocks
                    .last()
                    .map(|b| (b.header.number, b.header.hash_slow()))
                    .unwrap_or_default();
                let result = match importer.import(blocks, None).await.result {
                    Ok(i) => Imported::Ok {
                        number: i.head_number,
                        hash: i.head_hash,
                    },
                    Err(store::Error::BadBlock { hash, .. }) => Imported::Bad { hash },
                    Err(e) => {
                        tracing::warn!(target: "sync", error = %e, "import failed");
                        Imported::Failed
                    }
                };
                let _ = tx.send(Msg::Imported {
                    result,
                    blocks: count,
                    last,
                    elapsed: started.elapsed(),
                });
            });
        }
    }
}

/// Announces our new head by hash to the peers that are not known to have it (go-ethereum
/// does the same after a sync), so peers behind us learn of it without waiting for a new
/// block. The peers we synced from have it as their head, or announced beyond it.
fn announce_head(eth: &eth::Handle, hash: B256, number: u64) {
    for p in eth.peers() {
        let has_it =
            p.status.head_hash == hash || p.status.head_number.is_some_and(|n| n >= number);
        if !has_it {
            eth.send_new_block_hashes(&p.id, hash, number);
        }
    }
}
