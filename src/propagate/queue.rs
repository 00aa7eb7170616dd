//! Blocks waiting for their parent (orphans), bounded in count, per sender and in
//! estimated memory; each block's memory is measured once, when it is queued.

use std::collections::{BTreeMap, HashMap};

use alloy_primitives::B256;
use protocols::eth::{self, PeerId};

use super::{MAX_QUEUE_DIST, MAX_QUEUED, MAX_QUEUED_BYTES, MAX_QUEUED_PER_PEER, block_memory};
use crate::chain::Block;

/// A queued block.
#[derive(Debug)]
pub(super) struct Orphan {
    /// Who sent it (`None`: not from a peer).
    pub(super) from: Option<PeerId>,
    pub(super) block: Block,
    /// Its [`block_memory`].
    size: usize,
    /// eth's count of the NewBlock bytes it holds, released when the block leaves.
    _held: eth::Held,
}

/// The orphan queue: (number, hash) → block, with its totals kept as it changes.
#[derive(Debug, Default)]
pub(super) struct Queue {
    blocks: BTreeMap<(u64, B256), Orphan>,
    bytes: usize,
    per_peer: HashMap<PeerId, usize>,
}

impl Queue {
    /// Blocks queued.
    pub(super) fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Their estimated memory.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether block `hash` number `number` is queued.
    pub(super) fn contains(&self, number: u64, hash: B256) -> bool {
        self.blocks.contains_key(&(number, hash))
    }

    /// Queues `block` if it is near enough ahead of `head` and its sender has room;
    /// when full, forgets the blocks farthest ahead (the least likely to connect soon),
    /// possibly this one. Returns whether it is queued.
    pub(super) fn insert(
        &mut self,
        from: Option<PeerId>,
        hash: B256,
        block: Block,
        held: eth::Held,
        head: u64,
    ) -> bool {
        let number = block.header.number;
        if number <= head || number > head.saturating_add(MAX_QUEUE_DIST) {
            return false;
        }
        self.prune(head);
        if self.blocks.contains_key(&(number, hash)) {
            return true;
        }
        if let Some(peer) = from
            && self.per_peer.get(&peer).copied().unwrap_or(0) >= MAX_QUEUED_PER_PEER
        {
            return false;
        }
        let size = block_memory(&block);
        self.add(
            (number, hash),
            Orphan {
                from,
                block,
                size,
                _held: held,
            },
        );
        while self.blocks.len() > MAX_QUEUED || self.bytes > MAX_QUEUED_BYTES {
            let Some((&key, _)) = self.blocks.last_key_value() else {
                break;
            };
            self.remove(&key);
        }
        self.contains(number, hash)
    }

    /// Forgets the blocks at or below `head` (their parent will never be imported as
    /// ours, or they are stored already).
    pub(super) fn prune(&mut self, head: u64) {
        while let Some((&key, _)) = self.blocks.first_key_value() {
            if key.0 > head {
                break;
            }
            self.remove(&key);
        }
    }

    /// The queued children of `parent` (number `number`), taken out of the queue.
    pub(super) fn take_children(&mut self, parent: B256, number: u64) -> Vec<(B256, Orphan)> {
        let Some(child) = number.checked_add(1) else {
            return Vec::new();
        };
        let keys: Vec<_> = self
            .blocks
            .range((child, B256::ZERO)..=(child, B256::repeat_byte(0xff)))
            .filter(|(_, o)| o.block.header.parent_hash == parent)
            .map(|(k, _)| *k)
            .collect();
        keys.iter()
            .filter_map(|k| self.remove(k).map(|o| (k.1, o)))
            .collect()
    }

    /// Takes block `hash` number `number` out, if queued.
    pub(super) fn remove(&mut self, key: &(u64, B256)) -> Option<Orphan> {
        let o = self.blocks.remove(key)?;
        self.bytes = self.bytes.saturating_sub(o.size);
        if let Some(peer) = o.from
            && let Some(n) = self.per_peer.get_mut(&peer)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_peer.remove(&peer);
            }
        }
        Some(o)
    }

    fn add(&mut self, key: (u64, B256), o: Orphan) {
        self.bytes = self.bytes.saturating_add(o.size);
        if let Some(peer) = o.from {
            *self.per_peer.entry(peer).or_default() += 1;
        }
        self.blocks.insert(key, o);
    }
}
