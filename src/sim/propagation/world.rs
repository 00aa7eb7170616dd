//! The blocks and transactions a propagation run moves around, built once, and the wire
//! size of every eth message that carries them.
//!
//! Blocks are real [`Block`]s (headers linking parent hashes, bodies of legacy
//! transactions of the configured size), so the propagation core checks them as it
//! checks any block. Transactions carry a fixed stand-in signature: nothing in the sim
//! recovers senders (the block core and the fetcher never do), so real signatures would
//! cost key generation and signing without changing any outcome.
//!
//! Sizes are those of the real eth/68 encodings ([`Message::encode`],
//! [`eth::messages::encode_new_block`], or the same RLP lengths computed from the parts for
//! the messages carrying many blocks or transactions), plus the RLPx frame around them
//! ([`wire`]). Snappy compression is not applied: transaction payloads (the bulk of a
//! block) are high-entropy calldata and signatures that snappy barely shrinks.

use std::collections::HashMap;

use alloy_consensus::{Header, SignableTransaction, TxEnvelope, TxLegacy};
use alloy_primitives::{Address, B256, Bytes, Signature, TxKind, U256};
use alloy_rlp::Encodable;
use protocols::eth::messages::{BlockHashNumber, Message, NewPooledTransactionHashes, RequestPair};
use protocols::eth::{self, GetBlockHeaders};
use rand::Rng;
use rand::rngs::StdRng;

use crate::chain::{Block, Body};

/// Bytes RLPx adds around a message: the 16-byte frame header and its 16-byte MAC, the
/// 16-byte frame MAC (RLPx spec, "Framing"), plus the message-id byte and the padding of
/// the frame data to 16 bytes.
pub fn wire(payload: usize) -> usize {
    let data = 1 + payload;
    48 + data.div_ceil(16) * 16
}

/// Length of an RLP list with a payload of `payload` bytes.
fn list_len(payload: usize) -> usize {
    alloy_rlp::Header {
        list: true,
        payload_length: payload,
    }
    .length_with_payload()
}

/// Index of a block in [`World::blocks`] (0 is the genesis every node has).
pub type BlockIdx = u32;
/// Index of a gossiped transaction in [`World::txs`].
pub type TxIdx = u32;

/// Everything that is propagated, with the sizes of its parts.
#[derive(Debug)]
pub struct World {
    /// The chain, genesis first.
    pub blocks: Vec<Block>,
    /// Hash of each block.
    pub hashes: Vec<B256>,
    /// Block by hash.
    pub by_hash: HashMap<B256, BlockIdx>,
    header_len: Vec<usize>,
    body_len: Vec<usize>,
    new_block_len: Vec<usize>,
    /// The gossiped transactions (not in any block).
    pub txs: Vec<TxEnvelope>,
    /// Hash of each transaction.
    pub tx_hashes: Vec<B256>,
    /// Transaction by hash.
    pub tx_by_hash: HashMap<B256, TxIdx>,
    tx_len: Vec<usize>,
}

/// A legacy transaction with `data` bytes of calldata and a stand-in signature (module
/// docs); `nonce` makes each one unique.
fn transaction(nonce: u64, data: usize, rng: &mut StdRng) -> TxEnvelope {
    let mut input = vec![0u8; data];
    rng.fill(&mut input[..]);
    let tx = TxLegacy {
        chain_id: Some(1),
        nonce,
        gas_price: 10_000_000_000,
        gas_limit: 21_000 + 16 * data as u64,
        to: TxKind::Call(Address::repeat_byte(0x11)),
        value: U256::from(1),
        input: Bytes::from(input),
    };
    // r and s are arbitrary non-zero scalars: no one recovers a sender here.
    let sig = Signature::new(U256::from(nonce + 1), U256::from(nonce + 2), false);
    TxEnvelope::from(tx.into_signed(sig))
}

/// Calldata giving a legacy transaction of about `size` bytes (its other fields take
/// about 110).
fn calldata_for(size: usize) -> usize {
    size.saturating_sub(110)
}

impl World {
    /// A chain of `blocks` blocks of about `block_bytes` each, and `txs` gossiped
    /// transactions, transaction sizes uniform in `tx_bytes`.
    pub fn new(
        blocks: usize,
        block_bytes: usize,
        txs: usize,
        tx_bytes: (usize, usize),
        rng: &mut StdRng,
    ) -> World {
        let (lo, hi) = (tx_bytes.0.min(tx_bytes.1), tx_bytes.0.max(tx_bytes.1));
        let mut nonce = 0u64;
        let mut next_tx = |rng: &mut StdRng| {
            nonce += 1;
            transaction(nonce, calldata_for(rng.random_range(lo..=hi)), rng)
        };
        let mut chain = vec![Block::default()];
        for n in 1..=blocks as u64 {
            let parent_hash = chain[chain.len() - 1].header.hash_slow();
            let mut body = Body::default();
            let mut size = 0;
            while size < block_bytes {
                let tx = next_tx(rng);
                size += tx.length();
                body.transactions.push(tx);
            }
            let header = Header {
                number: n,
                parent_hash,
                timestamp: 12 * n,
                gas_limit: 36_000_000,
                ..Header::default()
            };
            chain.push(Block { header, body });
        }
        let gossip: Vec<TxEnvelope> = (0..txs).map(|_| next_tx(rng)).collect();
        let hashes: Vec<B256> = chain.iter().map(|b| b.header.hash_slow()).collect();
        let tx_hashes: Vec<B256> = gossip.iter().map(|t| *t.tx_hash()).collect();
        World {
            by_hash: hashes
                .iter()
                .enumerate()
                .map(|(i, h)| (*h, i as BlockIdx))
                .collect(),
            header_len: chain.iter().map(|b| b.header.length()).collect(),
            body_len: chain.iter().map(|b| b.body.length()).collect(),
            new_block_len: chain
                .iter()
                .map(|b| eth::messages::encode_new_block(b, U256::from(b.header.number)).len())
                .collect(),
            blocks: chain,
            hashes,
            tx_by_hash: tx_hashes
                .iter()
                .enumerate()
                .map(|(i, h)| (*h, i as TxIdx))
                .collect(),
            tx_hashes,
            tx_len: gossip.iter().map(|t| t.length()).collect(),
            txs: gossip,
        }
    }

    /// The announcement metadata of a transaction (type, size), as NewPooledTransactionHashes
    /// carries it.
    pub fn tx_meta(&self, t: TxIdx) -> eth::txfetch::Meta {
        eth::txfetch::Meta {
            kind: 0,
            size: self.tx_len[t as usize] as u32,
        }
    }

    /// Encoded size of each message, RLPx framing included.
    pub fn size(&self, m: &super::Msg) -> usize {
        use super::Msg;
        let id = |x: u64| x.length();
        let payload = match m {
            Msg::NewBlock(b) => self.new_block_len[*b as usize],
            Msg::NewBlockHashes(b) => {
                let b = *b as usize;
                let e = BlockHashNumber {
                    hash: self.hashes[b],
                    number: b as u64,
                };
                Message::NewBlockHashes(vec![e]).encode().len()
            }
            Msg::GetBlockHeaders { req, .. } => get_headers_len(*req),
            Msg::BlockHeaders { headers, .. } => {
                let inner: usize = headers.iter().map(|&b| self.header_len[b as usize]).sum();
                list_len(id(super::REQUEST_ID) + list_len(inner))
            }
            Msg::GetBlockBodies { blocks, .. } => {
                list_len(id(super::REQUEST_ID) + list_len(33 * blocks.len()))
            }
            Msg::BlockBodies { blocks, .. } => {
                let inner: usize = blocks.iter().map(|&b| self.body_len[b as usize]).sum();
                list_len(id(super::REQUEST_ID) + list_len(inner))
            }
            Msg::Transactions(txs) => list_len(self.txs_len(txs)),
            Msg::TxHashes(txs) => {
                let m = NewPooledTransactionHashes {
                    types: vec![0u8; txs.len()].into(),
                    sizes: txs
                        .iter()
                        .map(|&t| self.tx_len[t as usize] as u32)
                        .collect(),
                    hashes: txs.iter().map(|&t| self.tx_hashes[t as usize]).collect(),
                };
                Message::NewPooledTransactionHashes(m).encode().len()
            }
            Msg::GetPooledTxs { txs, .. } => {
                list_len(id(super::REQUEST_ID) + list_len(33 * txs.len()))
            }
            Msg::PooledTxs { txs, .. } => {
                list_len(id(super::REQUEST_ID) + list_len(self.txs_len(txs)))
            }
        };
        wire(payload)
    }

    fn txs_len(&self, txs: &[TxIdx]) -> usize {
        txs.iter().map(|&t| self.tx_len[t as usize]).sum()
    }
}

fn get_headers_len(req: GetBlockHeaders) -> usize {
    Message::GetBlockHeaders(RequestPair {
        request_id: super::REQUEST_ID,
        message: req,
    })
    .encode()
    .len()
}

#[cfg(test)]
mod tests {
    use super::super::{Msg, REQUEST_ID};
    use super::*;
    use rand::SeedableRng;

    fn pair<T>(message: T) -> RequestPair<T> {
        RequestPair {
            request_id: REQUEST_ID,
            message,
        }
    }

    /// The sizes computed from parts equal the real encodings.
    #[test]
    fn sizes_match_real_encodings() {
        let mut rng = StdRng::seed_from_u64(3);
        let w = World::new(3, 20_000, 5, (200, 500), &mut rng);
        let real = |m: Message| wire(m.encode().len());
        let headers: Vec<Header> = (1..=3).map(|i| w.blocks[i].header.clone()).collect();
        let bodies: Vec<Body> = (1..=3).map(|i| w.blocks[i].body.clone()).collect();

        assert_eq!(
            w.size(&Msg::BlockHeaders {
                fetch: 3,
                headers: vec![1, 2, 3]
            }),
            real(Message::BlockHeaders(pair(headers)))
        );
        assert_eq!(
            w.size(&Msg::BlockBodies {
                fetch: 3,
                blocks: vec![1, 2, 3]
            }),
            real(Message::BlockBodies(pair(bodies)))
        );
        assert_eq!(
            w.size(&Msg::GetBlockBodies {
                fetch: 3,
                blocks: vec![1, 2]
            }),
            real(Message::GetBlockBodies(pair(vec![
                w.hashes[1],
                w.hashes[2]
            ])))
        );
        assert_eq!(
            w.size(&Msg::Transactions(vec![0, 1, 4])),
            real(Message::Transactions(vec![
                w.txs[0].clone(),
                w.txs[1].clone(),
                w.txs[4].clone()
            ]))
        );
        assert_eq!(
            w.size(&Msg::GetPooledTxs {
                id: 1,
                txs: vec![0, 2]
            }),
            real(Message::GetPooledTransactions(pair(vec![
                w.tx_hashes[0],
                w.tx_hashes[2]
            ])))
        );
        let new_block = w.size(&Msg::NewBlock(2));
        assert!((20_000..22_000).contains(&new_block), "{new_block}");
        for t in &w.txs {
            assert!((190..=520).contains(&t.length()), "{}", t.length());
        }
        // Linked headers.
        assert_eq!(w.blocks[2].header.parent_hash, w.hashes[1]);
    }
}
