//! The tokio task driving the [`Downloader`]: it follows the eth peer table through its
//! events ([`eth::Handle::subscribe`]), sends the requests the downloader asks for
//! through [`eth::Handle`], imports through the chain [`Importer`] (off the runtime), and
//! feeds answers, results and timeouts back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use alloy_consensus::Header;
use alloy_primitives::B256;
use protocols::eth::{self, PeerEvent, PeerId, PeerInfo, RequestError};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::downloader::{
    Action, Config, Downloader, Failure, Imported, Local, PeerHead, RequestId, SyncStatus,
    matched_bodies,
};
use crate::chain::{Body, Importer, Store, store};

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

    /// Every change of the progress, as a watch: a slow reader sees the latest status,
    /// never a backlog.
    pub fn subscribe(&self) -> watch::Receiver<SyncStatus> {
        self.status.clone()
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
    /// The receipts fetcher ([`super::receipts`]), stopped with the sync.
    receipts: tokio::task::JoinHandle<()>,
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
        self.receipts.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.receipts.abort();
        if self.stop.is_some() {
            self.task.abort();
        }
    }
}

/// Starts syncing the store of `importer` from the peers behind `eth`, importing through
/// `importer` (the node's one [`Importer`], shared with block propagation).
pub fn spawn(eth: eth::Handle, importer: Importer, config: Config) -> Syncer {
    let announce = config.announce;
    let receipts =
        super::receipts_driver::spawn(eth.clone(), importer.clone(), config.request_timeout);
    let dl = Downloader::new(config, StoreView(importer.store().clone()));
    let (status_tx, status) = watch::channel(dl.status());
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(run(dl, eth, importer, announce, status_tx, stopped));
    Syncer {
        handle: Handle { status },
        stop: Some(stop),
        task,
        receipts,
    }
}

/// What the request and import tasks report back.
enum Msg {
    Headers(RequestId, Result<Vec<Header>, Failure>),
    /// An answer, and how many of its bodies matched their headers if checked.
    Bodies(RequestId, Result<Vec<Body>, Failure>, Option<usize>),
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
    // Subscribed before the table is read, so no change falls between the two (one seen
    // twice is harmless: `Peers` passes on only what changed).
    let mut events = Some(eth.subscribe());
    let mut peers = Peers::default();
    peers.reconcile(&eth.peers(), &mut dl, Instant::now().into_std());
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
            event = recv(&mut events) => {
                let now = Instant::now().into_std();
                match event {
                    Ok(PeerEvent::Joined(p) | PeerEvent::Updated(p)) => peers.joined(&p, &mut dl, now),
                    Ok(PeerEvent::Left(id)) => peers.left(&id, &mut dl, now),
                    Err(RecvError::Lagged(missed)) => {
                        // The oldest events are lost: the table says where things stand.
                        tracing::debug!(target: "sync", missed, "peer events lagged; re-reading the peers");
                        peers.reconcile(&eth.peers(), &mut dl, now);
                    }
                    Err(RecvError::Closed) => events = None,
                }
            }
            Some(msg) = rx.recv() => {
                let now = Instant::now().into_std();
                match msg {
                    Msg::Headers(id, r) => dl.on_headers(id, r, now),
                    Msg::Bodies(id, r, Some(matched)) => dl.on_checked_bodies(id, r, matched, now),
                    Msg::Bodies(id, r, None) => dl.on_bodies(id, r, now),
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

/// The next peer event; pending forever once the channel closed (`None`), which cannot
/// happen while we hold an [`eth::Handle`] but must not spin if it did.
async fn recv(events: &mut Option<broadcast::Receiver<PeerEvent>>) -> Result<PeerEvent, RecvError> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The peers as last passed to the downloader, so that it hears of each join, head change
/// and departure once (the initial read and the events may overlap).
#[derive(Default)]
struct Peers {
    known: HashMap<PeerId, PeerHead>,
}

impl Peers {
    /// `p` joined or its head moved.
    fn joined<L: Local>(&mut self, p: &PeerInfo, dl: &mut Downloader<L>, now: std::time::Instant) {
        let head = PeerHead {
            hash: p.status.head_hash,
            number: p.status.head_number,
        };
        if self.known.insert(p.id, head) != Some(head) {
            dl.peer_joined(p.id, head, now);
        }
    }

    /// `id` left.
    fn left<L: Local>(&mut self, id: &PeerId, dl: &mut Downloader<L>, now: std::time::Instant) {
        if self.known.remove(id).is_some() {
            dl.peer_left(id, now);
        }
    }

    /// Brings the set in line with the table `table`: at the start, and after lost events.
    fn reconcile<L: Local>(
        &mut self,
        table: &[PeerInfo],
        dl: &mut Downloader<L>,
        now: std::time::Instant,
    ) {
        let gone: Vec<PeerId> = self
            .known
            .keys()
            .filter(|id| !table.iter().any(|p| p.id == **id))
            .copied()
            .collect();
        for id in gone {
            self.left(&id, dl, now);
        }
        for p in table {
            self.joined(p, dl, now);
        }
    }
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
        Action::Bodies {
            id,
            peer,
            hashes,
            headers,
        } => {
            tasks.spawn(async move {
                let r = eth.request_bodies(&peer, hashes).await.map_err(failure);
                // Checked against their headers on a blocking thread (every transaction
                // hashed, the roots built), not in the loop that feeds the downloader.
                let msg = match r {
                    Ok(bodies) => {
                        let check = move || {
                            let matched = matched_bodies(&headers, &bodies);
                            (bodies, matched)
                        };
                        match tokio::task::spawn_blocking(check).await {
                            Ok((bodies, matched)) => Msg::Bodies(id, Ok(bodies), Some(matched)),
                            Err(_) => Msg::Bodies(id, Err(Failure::Gone), None),
                        }
                    }
                    Err(e) => Msg::Bodies(id, Err(e), None),
                };
                let _ = tx.send(msg);
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
                // Every body was matched to its header on arrival (`round`).
                let result = match importer.import_matched(blocks).await.result {
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

#[cfg(test)]
mod tests {
    use super::*;
    use protocols::eth::PeerStatus;
    use protocols::eth::forkid::ForkId;

    /// A local chain at genesis.
    struct Genesis;

    impl Local for Genesis {
        fn head(&self) -> (u64, B256) {
            (0, B256::ZERO)
        }
        fn canonical_hash(&self, number: u64) -> Option<B256> {
            (number == 0).then_some(B256::ZERO)
        }
    }

    fn info(i: u8, head: u64) -> PeerInfo {
        let key = secp256k1::SecretKey::from_byte_array([i; 32]).expect("valid key");
        PeerInfo {
            id: secp256k1::PublicKey::from_secret_key_global(&key),
            status: PeerStatus {
                version: 69,
                fork_id: ForkId {
                    hash: [0; 4],
                    next: 0,
                },
                head_hash: B256::repeat_byte(i ^ head as u8),
                head_number: Some(head),
                earliest: Some(0),
                total_difficulty: None,
            },
        }
    }

    fn heads(dl: &Downloader<Genesis>) -> HashMap<PeerId, Option<u64>> {
        dl.peers
            .iter()
            .map(|(id, p)| (*id, p.head.number))
            .collect()
    }

    /// After lost events (`Lagged`) the table is read again: a peer that left unseen is
    /// dropped, one that joined unseen is added, a head that moved unseen is updated; and
    /// the events that overlap the read change nothing.
    #[test]
    fn lost_peer_events_are_made_up_from_the_table() {
        let now = std::time::Instant::now();
        let mut dl = Downloader::new(Config::default(), Genesis);
        let mut peers = Peers::default();
        let (a, b) = (info(1, 10), info(2, 20));
        peers.reconcile(&[a.clone(), b.clone()], &mut dl, now);
        // The Joined events of the peers the first read already saw.
        peers.joined(&a, &mut dl, now);
        peers.joined(&b, &mut dl, now);
        assert_eq!(
            heads(&dl),
            HashMap::from([(a.id, Some(10)), (b.id, Some(20))])
        );

        let (a2, c) = (info(1, 30), info(3, 5));
        peers.reconcile(&[a2.clone(), c.clone()], &mut dl, now);
        assert_eq!(
            heads(&dl),
            HashMap::from([(a.id, Some(30)), (c.id, Some(5))])
        );
        // The lost Left of `b`, had it come after all, and a repeated update.
        peers.left(&b.id, &mut dl, now);
        peers.joined(&a2, &mut dl, now);
        assert_eq!(
            heads(&dl),
            HashMap::from([(a.id, Some(30)), (c.id, Some(5))])
        );
    }
}
