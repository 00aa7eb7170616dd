//! One message arriving at a node: what its cores make of each kind (blocks and their
//! announcements, headers and bodies, transactions and their announcements).

use super::*;

impl Sim<'_> {
    pub(super) fn deliver(&mut self, from: u32, to: u32, msg: Msg) {
        if !self.connected(to, from) {
            return; // a connection closed while this was in flight
        }
        let (w, now) = (self.world, self.now());
        let (ti, fi) = (to as usize, from as usize);
        let from_id = self.ids[fi];
        let hostile = self.nodes[ti].hostile;
        match msg {
            Msg::NewBlock(b) => {
                self.out.block_full[b as usize][ti] += 1;
                self.learn(to, from, block_item(b));
                if hostile {
                    return self.heard(to, block_item(b));
                }
                // A stored block only bumps the core's copy counter: skip the clone.
                if self.nodes[ti].chain.has_block(&w.hashes[b as usize]) {
                    return;
                }
                let block = w.blocks[b as usize].clone();
                let node = &mut self.nodes[ti];
                node.core
                    .on_block(from_id, block, eth::Held::default(), now);
                self.drive(to, false);
            }
            Msg::NewBlockHashes(b) => {
                self.out.block_ann[b as usize][ti] += 1;
                self.learn(to, from, block_item(b));
                if hostile {
                    return self.heard(to, block_item(b));
                }
                let node = &mut self.nodes[ti];
                let hash = w.hashes[b as usize];
                node.core.on_announcement(from_id, hash, u64::from(b), now);
                self.drive(to, false);
            }
            Msg::GetBlockHeaders { fetch, req } => {
                if hostile {
                    return;
                }
                let chain = &self.nodes[ti].chain;
                let mut headers = Vec::new();
                if let (BlockId::Hash(h), true, 0) = (req.origin, req.reverse, req.skip)
                    && let Some(&top) = w.by_hash.get(&h)
                {
                    let lowest = top.saturating_sub(req.amount.min(64) as u32);
                    headers = (lowest + 1..=top)
                        .rev()
                        .take_while(|&k| chain.has_block(&w.hashes[k as usize]))
                        .collect();
                }
                let msg = Msg::BlockHeaders { fetch, headers };
                self.send(to, from, Duration::ZERO, msg);
            }
            Msg::BlockHeaders { fetch, headers } => {
                self.answered(to, from, fetch, false);
                let hs = headers
                    .iter()
                    .map(|&k| w.blocks[k as usize].header.clone())
                    .collect();
                let hash = w.hashes[fetch as usize];
                let node = &mut self.nodes[ti];
                node.core.on_headers(from_id, hash, Ok(hs), now);
                self.drive(to, false);
            }
            Msg::GetBlockBodies { fetch, blocks } => {
                if hostile {
                    return;
                }
                let chain = &self.nodes[ti].chain;
                let blocks = blocks
                    .into_iter()
                    .filter(|&k| chain.has_block(&w.hashes[k as usize]))
                    .collect();
                self.send(to, from, Duration::ZERO, Msg::BlockBodies { fetch, blocks });
            }
            Msg::BlockBodies { fetch, blocks } => {
                self.answered(to, from, fetch, true);
                for &k in &blocks {
                    self.out.block_full[k as usize][ti] += 1;
                }
                let bodies = blocks
                    .iter()
                    .map(|&k| w.blocks[k as usize].body.clone())
                    .collect();
                let hash = w.hashes[fetch as usize];
                let node = &mut self.nodes[ti];
                node.core.on_bodies(from_id, hash, Ok(bodies), now);
                self.drive(to, false);
            }
            Msg::Transactions(txs) => {
                for &t in &txs {
                    self.out.tx_full[t as usize][ti] += 1;
                    self.learn(to, from, tx_item(t));
                }
                if hostile {
                    return txs.iter().for_each(|&t| self.heard(to, tx_item(t)));
                }
                let node = &mut self.nodes[ti];
                node.fetcher
                    .arrived(txs.iter().map(|&t| w.tx_hashes[t as usize]));
                let new = txs.into_iter().filter(|t| !node.pool.contains(t)).collect();
                self.pool_txs(to, new, Some(from));
                self.schedule_tick(to);
            }
            Msg::TxHashes(txs) => {
                for &t in &txs {
                    self.out.tx_ann[t as usize][ti] += 1;
                    self.learn(to, from, tx_item(t));
                }
                if hostile {
                    return txs.iter().for_each(|&t| self.heard(to, tx_item(t)));
                }
                let node = &mut self.nodes[ti];
                let items = txs.iter().map(|&t| (w.tx_hashes[t as usize], w.tx_meta(t)));
                let pool = &node.pool;
                let have = |h: &B256| w.tx_by_hash.get(h).is_some_and(|t| pool.contains(t));
                node.fetcher.announce(from_id, items, have, now);
                self.schedule_tick(to);
            }
            Msg::GetPooledTxs { id, txs } => {
                if hostile {
                    return;
                }
                let pool = &self.nodes[ti].pool;
                let txs = txs.into_iter().filter(|t| pool.contains(t)).collect();
                self.send(to, from, Duration::ZERO, Msg::PooledTxs { id, txs });
            }
            Msg::PooledTxs { id, txs } => {
                for &t in &txs {
                    self.out.tx_full[t as usize][ti] += 1;
                    self.learn(to, from, tx_item(t));
                }
                let node = &mut self.nodes[ti];
                let hashes: Vec<B256> = txs.iter().map(|&t| w.tx_hashes[t as usize]).collect();
                node.fetcher.delivered(from_id, id, &hashes);
                let new = txs.into_iter().filter(|t| !node.pool.contains(t)).collect();
                self.pool_txs(to, new, Some(from));
                self.schedule_tick(to);
            }
        }
    }
}
