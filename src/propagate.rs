//! Block propagation (eth/68 NewBlock and NewBlockHashes): blocks that arrive from peers,
//! or that the node imports itself (`devp2p node --replay`), are validated, imported and
//! passed on: the full block to sqrt(n) random eth/68 peers that do not know it, the hash
//! to the others. A block whose parent we lack is queued (at most [`MAX_QUEUED`], up to
//! [`MAX_QUEUE_DIST`] ahead of our head) until its parent arrives or our head passes it;
//! the missing blocks of a block or announcement up to [`MAX_FETCH_AHEAD`] ahead are
//! fetched from its sender, and if that fails from the next peer that announced it (at
//! most [`MAX_FETCHING`] fetches at once, [`MAX_FETCHING_PER_PEER`] started by one
//! announcer). Farther gaps are the downloader's. Transactions an imported block includes
//! leave the pool.
//!
//! Who may move our head by gossip is the [`Gossip`] policy (`docs/fork-choice.md`): on the
//! public post-merge networks nobody (blocks come from the consensus layer; a peer sending
//! NewBlock or NewBlockHashes is disconnected, as go-ethereum does), on private networks
//! only the peers the operator names (producers and their relays). Everything else a peer
//! sends is dropped before it costs a queue slot, a fetch or an import, and nothing is
//! relayed before the store accepted it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::io::BufReader;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy_primitives::{B256, U256};
use protocols::eth::{self, BlockId, ETH69, GetBlockHeaders, PeerId};
use tokio::sync::mpsc;

use crate::chain::{Block, Store, store};

/// How far ahead of our head an announced block may be for us to fetch it.
pub const MAX_FETCH_AHEAD: u64 = 4;

/// How far ahead of our head a block whose parent we lack may be to be queued
/// (go-ethereum's fetcher `maxQueueDist`).
pub const MAX_QUEUE_DIST: u64 = 32;
/// Blocks queued waiting for their parent, at most: bounds memory against a peer sending
/// orphans (go-ethereum allows 64 per peer; this is for all peers).
pub const MAX_QUEUED: usize = 64;
/// Estimated memory of the queued blocks, at most ([`block_memory`]): 64 mainnet blocks
/// take a few MiB; 32 MiB leaves room for large ones without letting orphans hold much.
pub const MAX_QUEUED_BYTES: usize = 32 << 20;
/// Queued blocks from one peer, at most: an honest peer is at most a few blocks ahead of
/// us ([`MAX_QUEUE_DIST`] for one that raced ahead), so others keep their share.
pub const MAX_QUEUED_PER_PEER: usize = 16;
/// Fetches one announcer may have started and not finished: an honest peer announces the
/// next block or the few it knows we lack ([`MAX_FETCH_AHEAD`]).
pub const MAX_FETCHING_PER_PEER: usize = MAX_FETCH_AHEAD as usize;

/// Announced blocks fetched at once, at most: bounds the tasks a peer announcing made-up
/// hashes can start.
pub const MAX_FETCHING: usize = 64;
/// Announcers remembered per block being fetched (alternatives if the first fails).
const MAX_ANNOUNCERS: usize = 8;

/// Blocks remembered in the received counter (oldest forgotten).
const COUNTER_LIMIT: usize = 4096;

/// Who may move our head through block gossip (NewBlock, NewBlockHashes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gossip {
    /// Nobody: the public post-merge networks, where the eth spec leaves block propagation
    /// to the consensus layer. A peer that sends NewBlock or NewBlockHashes is disconnected
    /// with `SubprotocolError` (go-ethereum's answer since it dropped pre-merge support),
    /// and we send none.
    Refused,
    /// These peers (the producers, and the relays between them and us): their blocks are
    /// validated, imported and relayed; the gossip of any other peer is ignored.
    From(HashSet<PeerId>),
}

impl Gossip {
    /// The policy for a chain: [`Gossip::Refused`] on public presets, else blocks from
    /// `sources` only.
    pub fn for_chain(public: bool, sources: impl IntoIterator<Item = PeerId>) -> Self {
        if public {
            Gossip::Refused
        } else {
            Gossip::From(sources.into_iter().collect())
        }
    }
}

/// What the policy says of one peer's block gossip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Handle it.
    Accept,
    /// Drop it quietly (not a source of ours; relaying is no offence).
    Ignore,
    /// Drop it and disconnect the peer (block gossip on a network without it).
    Disconnect,
}

/// The memory a decoded block holds (its struct and heap, by the decoded capacities:
/// [`eth::size::block_size`]); a 14-byte typed transaction decodes into a few hundred bytes
/// of structure, so this, not the wire size, is what the queue is bounded by.
pub fn block_memory(block: &Block) -> usize {
    std::mem::size_of::<Block>() + eth::size::block_size(block)
}

/// The peers that announced a block being fetched.
#[derive(Default)]
struct Announcers {
    /// Not asked yet, in order of announcement.
    waiting: Vec<PeerId>,
    /// Asked already (first the one being asked).
    tried: Vec<PeerId>,
}

/// Blocks waiting for their parent: (number, hash) → (sender, block).
/// Each with its [`block_memory`], measured once when queued.
type Queue = BTreeMap<(u64, B256), (Option<PeerId>, Block, usize)>;

/// The propagation component. Cheap to clone.
#[derive(Clone)]
pub struct Propagator {
    inner: Arc<Inner>,
}

struct Inner {
    eth: eth::Handle,
    store: Arc<Store>,
    gossip: Mutex<Gossip>,
    /// NewBlock messages received per block hash.
    received: Mutex<HashMap<B256, u32>>,
    /// Announced blocks being fetched: the peers that announced them, tried in turn
    /// until one delivers, each at most once.
    fetching: Mutex<HashMap<B256, Announcers>>,
    /// Blocks waiting for their parent, by (number, hash), with their sender.
    queued: Mutex<Queue>,
    /// Serialises imports, so a block and its child are handled in order.
    import: tokio::sync::Mutex<()>,
}

/// What happened to a block handed to [`Propagator::import_local`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Imported and propagated.
    Imported,
    /// Already stored.
    Known,
    /// Its parent is not stored.
    UnknownParent,
}

fn random() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

impl Propagator {
    /// A propagator importing into `store` and sending through `eth`, taking blocks from
    /// peers as `gossip` allows.
    pub fn new(eth: eth::Handle, store: Arc<Store>, gossip: Gossip) -> Self {
        Self {
            inner: Arc::new(Inner {
                eth,
                store,
                gossip: Mutex::new(gossip),
                received: Mutex::new(HashMap::new()),
                fetching: Mutex::new(HashMap::new()),
                queued: Mutex::new(BTreeMap::new()),
                import: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Runs a task handling the block events of `events` (other events are dropped);
    /// ends when the stream closes.
    pub fn spawn(
        eth: eth::Handle,
        store: Arc<Store>,
        gossip: Gossip,
        mut events: mpsc::Receiver<eth::Event>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let p = Self::new(eth, store, gossip);
        let q = p.clone();
        let task = tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                q.on_event(ev).await;
            }
        });
        (p, task)
    }

    /// Adds `peer` to the sources of [`Gossip::From`] (no effect under
    /// [`Gossip::Refused`]).
    pub fn allow(&self, peer: PeerId) {
        if let Gossip::From(set) = &mut *self.gossip() {
            set.insert(peer);
        }
    }

    fn gossip(&self) -> std::sync::MutexGuard<'_, Gossip> {
        self.inner.gossip.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the policy says of block gossip from `peer`.
    pub fn verdict(&self, peer: &PeerId) -> Verdict {
        match &*self.gossip() {
            Gossip::Refused => Verdict::Disconnect,
            Gossip::From(set) if set.contains(peer) => Verdict::Accept,
            Gossip::From(_) => Verdict::Ignore,
        }
    }

    /// Whether blocks are relayed at all (not under [`Gossip::Refused`]).
    pub fn relays(&self) -> bool {
        !matches!(*self.gossip(), Gossip::Refused)
    }

    /// Applies the policy to a block event before it is queued for [`Propagator::on_event`]:
    /// returns it when it is to be handled; a refused sender is disconnected here (in the
    /// background). Other events pass through.
    pub fn admit(&self, ev: eth::Event) -> Option<eth::Event> {
        let peer = match &ev {
            eth::Event::NewBlock { peer, .. } | eth::Event::NewBlockHashes { peer, .. } => *peer,
            _ => return Some(ev),
        };
        match self.verdict(&peer) {
            Verdict::Accept => Some(ev),
            Verdict::Ignore => {
                tracing::trace!(target: "sync", peer = %rlpx::peer::short_id(&peer), "block gossip from a peer that is no source ignored");
                None
            }
            Verdict::Disconnect => {
                tracing::debug!(target: "sync", peer = %rlpx::peer::short_id(&peer), "block gossip on a network without it: disconnecting");
                self.penalise(peer, rlpx::DisconnectReason::SubprotocolError);
                None
            }
        }
    }

    /// How many NewBlock messages carrying `hash` arrived.
    pub fn full_blocks_received(&self, hash: &B256) -> u32 {
        let received = self
            .inner
            .received
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        received.get(hash).copied().unwrap_or(0)
    }

    /// Handles one eth event: NewBlock is imported and propagated before this returns;
    /// NewBlockHashes of near blocks start a fetch in the background.
    pub async fn on_event(&self, ev: eth::Event) {
        let Some(ev) = self.admit(ev) else {
            return;
        };
        match ev {
            eth::Event::NewBlock { peer, block, .. } => {
                let hash = block.header.hash_slow();
                {
                    let mut r = self
                        .inner
                        .received
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    if r.len() >= COUNTER_LIMIT && !r.contains_key(&hash) {
                        r.clear();
                    }
                    *r.entry(hash).or_default() += 1;
                }
                self.on_block(Some(peer), *block, true).await;
            }
            eth::Event::NewBlockHashes { peer, hashes } => {
                for (hash, number) in hashes {
                    self.on_announcement(peer, hash, number);
                }
            }
            _ => {}
        }
    }

    /// Imports and propagates a block the node produced or replayed.
    /// Queued blocks waiting for it are imported after it.
    pub async fn import_local(&self, block: Block) -> Result<Outcome, store::Error> {
        let (number, hash) = (block.header.number, block.header.hash_slow());
        let outcome = self.import_and_propagate(None, block).await?;
        if outcome == Outcome::Imported {
            for (from, child) in self.take_children(hash, number) {
                self.on_block(from, child, true).await;
            }
        }
        Ok(outcome)
    }

    /// Disconnects `peer` with `reason` (a bad block or headers, an announcement it does
    /// not honour), in the background: the peer's command queue may be full, and the
    /// event loop must not wait on it.
    fn penalise(&self, peer: PeerId, reason: rlpx::DisconnectReason) {
        let eth = self.inner.eth.clone();
        tokio::spawn(async move {
            let _ = eth.disconnect(&peer, reason).await;
        });
    }

    /// Announced blocks being fetched.
    pub fn fetching(&self) -> usize {
        self.inner
            .fetching
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Blocks waiting for their parent.
    pub fn queued(&self) -> usize {
        self.queue().len()
    }

    /// Estimated memory of the blocks waiting for their parent ([`block_memory`]).
    pub fn queued_bytes(&self) -> usize {
        self.queue().values().map(|(_, _, size)| size).sum()
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.inner.queued.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a block whose parent we lack, if it is near enough ahead; drops stale ones.
    fn enqueue(&self, from: Option<PeerId>, hash: B256, block: Block) {
        let Ok(head) = self.inner.store.head() else {
            return;
        };
        let number = block.header.number;
        if number <= head.number || number > head.number + MAX_QUEUE_DIST {
            return;
        }
        let mut q = self.queue();
        q.retain(|(n, _), _| *n > head.number);
        let from_peer = q.values().filter(|(f, _, _)| *f == from).count();
        if from.is_some() && from_peer >= MAX_QUEUED_PER_PEER {
            return;
        }
        let size = block_memory(&block);
        q.insert((number, hash), (from, block, size));
        // Full: forget the farthest ahead (the least likely to connect soon).
        let mut bytes: usize = q.values().map(|(_, _, size)| size).sum();
        while q.len() > MAX_QUEUED || bytes > MAX_QUEUED_BYTES {
            match q.pop_last() {
                Some((_, (_, _, size))) => bytes = bytes.saturating_sub(size),
                None => break,
            }
        }
    }

    /// The queued children of `parent`, taken out of the queue.
    fn take_children(&self, parent: B256, number: u64) -> Vec<(Option<PeerId>, Block)> {
        let mut q = self.queue();
        let keys: Vec<_> = q
            .range((number + 1, B256::ZERO)..=(number + 1, B256::repeat_byte(0xff)))
            .filter(|(_, (_, b, _))| b.header.parent_hash == parent)
            .map(|(k, _)| *k)
            .collect();
        keys.iter()
            .filter_map(|k| q.remove(k))
            .map(|(from, block, _)| (from, block))
            .collect()
    }

    /// Imports `block` (and the queued blocks it unblocks). `fetch_missing`: a missing
    /// parent is fetched from the sender (not for blocks that are themselves a fetch's
    /// result: that fetch failed, and asking again would loop).
    async fn on_block(&self, from: Option<PeerId>, block: Block, fetch_missing: bool) {
        // Imported blocks release their queued children, in order.
        let mut work = vec![(from, block)];
        while let Some((from, block)) = work.pop() {
            let number = block.header.number;
            let hash = block.header.hash_slow();
            if self.on_one_block(from, hash, block, fetch_missing).await {
                work.extend(self.take_children(hash, number));
            }
        }
    }

    /// Imports one block; true when it is now stored.
    async fn on_one_block(
        &self,
        from: Option<PeerId>,
        hash: B256,
        block: Block,
        fetch_missing: bool,
    ) -> bool {
        let number = block.header.number;
        // Queued when the parent is missing; a gap of a few blocks is fetched from the
        // sender, a bigger one left to the downloader.
        if matches!(
            self.inner.store.header_by_hash(&block.header.parent_hash),
            Ok(None)
        ) {
            self.enqueue(from, hash, block);
            if let Some(peer) = from.filter(|_| fetch_missing) {
                self.on_announcement(peer, hash, number);
            }
            return false;
        }
        match self.import_and_propagate(from, block).await {
            // Not reached: the parent was just found, and stored blocks are never removed.
            Ok(Outcome::UnknownParent) => false,
            Ok(_) => true,
            Err(store::Error::BadBlock { hash, reason, .. }) => {
                tracing::debug!(target: "sync", number, %hash, %reason, "bad propagated block");
                if let Some(peer) = from {
                    let why = if reason.is_permanent() {
                        rlpx::DisconnectReason::BreachOfProtocol
                    } else {
                        // Another fork, a clock far ahead, or our side budget full: not
                        // proof of malice, but nothing to keep the peer for.
                        rlpx::DisconnectReason::UselessPeer
                    };
                    self.penalise(peer, why);
                }
                false
            }
            Err(e) => {
                tracing::warn!(target: "sync", number, error = %e, "block import failed");
                false
            }
        }
    }

    async fn import_and_propagate(
        &self,
        from: Option<PeerId>,
        block: Block,
    ) -> Result<Outcome, store::Error> {
        let inner = &self.inner;
        let _guard = inner.import.lock().await;
        let hash = block.header.hash_slow();
        if inner.store.header_by_hash(&hash)?.is_some() {
            return Ok(Outcome::Known);
        }
        if inner
            .store
            .header_by_hash(&block.header.parent_hash)?
            .is_none()
        {
            return Ok(Outcome::UnknownParent);
        }
        // Validated and imported before anything is sent (nothing unaccepted is relayed),
        // off the runtime: validation hashes every transaction and the commit fsyncs.
        let number = block.header.number;
        let store = inner.store.clone();
        let block = tokio::task::spawn_blocking(move || {
            store
                .insert_blocks(std::slice::from_ref(&block))
                .map(|_| block)
        })
        .await
        .map_err(|_| store::Error::Corrupt("import task failed"))??;
        inner
            .eth
            .remove_transactions(block.body.transactions.iter().map(|t| *t.tx_hash()));
        if !self.relays() {
            return Ok(Outcome::Imported);
        }
        let td = inner.store.total_difficulty(&hash)?.unwrap_or(U256::ZERO);
        let peers: Vec<_> = inner
            .eth
            .peers()
            .into_iter()
            .map(|p| p.id)
            .filter(|id| Some(*id) != from && !inner.eth.knows_block(id, &hash))
            .collect();
        let mut full: Vec<PeerId> = peers
            .iter()
            .copied()
            .filter(|id| inner.eth.version(id).is_some_and(|v| v < ETH69))
            .collect();
        let fan_out = (peers.len() as f64).sqrt().ceil() as usize;
        // Partial Fisher-Yates: the first `fan_out` are a random choice.
        for i in 0..full.len().min(fan_out) {
            let j = i + (random() as usize) % (full.len() - i);
            full.swap(i, j);
        }
        full.truncate(fan_out);
        for id in &full {
            inner.eth.send_new_block(id, &block, td);
        }
        for id in peers.iter().filter(|id| !full.contains(id)) {
            inner.eth.send_new_block_hashes(id, hash, number);
        }
        tracing::debug!(target: "sync", number, %hash, full = full.len(), peers = peers.len(), "block propagated");
        Ok(Outcome::Imported)
    }

    fn on_announcement(&self, peer: PeerId, hash: B256, number: u64) {
        let Ok(head) = self.inner.store.head() else {
            return;
        };
        if number <= head.number || number > head.number + MAX_FETCH_AHEAD {
            return;
        }
        {
            let mut fetching = self
                .inner
                .fetching
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let full = fetching.len() >= MAX_FETCHING
                || fetching
                    .values()
                    .filter(|a| a.tried.first() == Some(&peer))
                    .count()
                    >= MAX_FETCHING_PER_PEER;
            match fetching.get_mut(&hash) {
                // Already being fetched: remember this announcer as an alternative.
                Some(a) => {
                    let known = a.waiting.contains(&peer) || a.tried.contains(&peer);
                    if !known && a.waiting.len() + a.tried.len() < MAX_ANNOUNCERS {
                        a.waiting.push(peer);
                    }
                    return;
                }
                None if full => return,
                None => {
                    fetching.insert(
                        hash,
                        Announcers {
                            waiting: Vec::new(),
                            tried: vec![peer],
                        },
                    );
                }
            }
        }
        let p = self.clone();
        tokio::spawn(async move {
            let mut next = Some(peer);
            while let Some(peer) = next {
                if p.fetch(peer, hash, number).await {
                    break;
                }
                // Failed (timeout, missing, bad data): the next announcer not yet asked.
                let mut fetching = p.inner.fetching.lock().unwrap_or_else(|e| e.into_inner());
                next = fetching.get_mut(&hash).and_then(|a| {
                    let n = (!a.waiting.is_empty()).then(|| a.waiting.remove(0))?;
                    a.tried.push(n);
                    Some(n)
                });
            }
            p.inner
                .fetching
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&hash);
        });
    }

    /// Fetches block `hash` (number `number`) and the missing blocks before it (at most
    /// [`MAX_FETCH_AHEAD`]) from `peer`, and imports them in order. Returns whether
    /// nothing is left to do (the block is stored, or our head passed it).
    async fn fetch(&self, peer: PeerId, hash: B256, number: u64) -> bool {
        let inner = &self.inner;
        let Ok(head) = inner.store.head() else {
            return true;
        };
        if number <= head.number || matches!(inner.store.header_by_hash(&hash), Ok(Some(_))) {
            return true;
        }
        let req = GetBlockHeaders {
            origin: BlockId::Hash(hash),
            amount: (number - head.number).min(MAX_FETCH_AHEAD),
            skip: 0,
            reverse: true,
        };
        let mut headers = match inner.eth.request_headers(&peer, req).await {
            Ok(headers) => headers,
            Err(eth::RequestError::Timeout) => {
                // Announced and not served (eth spec: "bad form"): it held a fetch slot.
                self.penalise(peer, rlpx::DisconnectReason::UselessPeer);
                return false;
            }
            Err(_) => return false,
        };
        if headers.is_empty() && inner.eth.knows_block(&peer, &hash) {
            // It announced (or sent) this block and now denies having it.
            self.penalise(peer, rlpx::DisconnectReason::UselessPeer);
            return false;
        }
        // Newest first: the announced block, then each one's parent.
        let mut expected = (hash, number);
        for h in &headers {
            if (h.hash_slow(), h.number) != expected {
                self.penalise(peer, rlpx::DisconnectReason::BreachOfProtocol);
                return false;
            }
            expected = (h.parent_hash, h.number.saturating_sub(1));
        }
        headers.reverse();
        let hashes: Vec<B256> = headers.iter().map(|h| h.hash_slow()).collect();
        let Ok(bodies) = inner.eth.request_bodies(&peer, hashes).await else {
            return false;
        };
        if headers.is_empty() || bodies.len() != headers.len() {
            return false;
        }
        for (header, body) in headers.into_iter().zip(bodies) {
            let known = matches!(inner.store.header_by_hash(&header.hash_slow()), Ok(Some(_)));
            if !known {
                let block = Block { header, body };
                self.on_block(Some(peer), block, false).await;
            }
        }
        matches!(inner.store.header_by_hash(&hash), Ok(Some(_)))
    }
}

/// Parses a duration like `2s`, `500ms`, `1m` or `1.5s`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok()
}

/// Imports the blocks of the RLP file `path` one at a time, `interval` apart, through
/// `p` (so they propagate); blocks already stored are skipped without waiting. Returns
/// the number imported.
pub async fn replay(
    p: &Propagator,
    path: &Path,
    interval: Duration,
) -> Result<usize, crate::cmd::import::Error> {
    let file = std::fs::File::open(path).map_err(|source| crate::cmd::import::Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = crate::cmd::import::BlockReader::new(BufReader::new(file));
    let mut imported = 0;
    while let Some(block) = reader.next_block()? {
        let number = block.header.number;
        match p.import_local(block).await {
            Ok(Outcome::Imported) => {
                imported += 1;
                tracing::info!(target: "sync", number, "replayed block");
                tokio::time::sleep(interval).await;
            }
            Ok(Outcome::Known) => {}
            Ok(Outcome::UnknownParent) => {
                tracing::warn!(target: "sync", number, "replay: parent unknown, skipped")
            }
            Err(e) => {
                tracing::warn!(target: "sync", number, error = %e, "replay: block rejected")
            }
        }
    }
    Ok(imported)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("3x"), None);
    }
}
