//! The chain the eth suite expects the node to have (go-ethereum's `ethtest.Chain`), read
//! from a directory in the format go-ethereum's `hivechain` writes: `genesis.json` and
//! `chain.rlp` (required), `accounts.json` (the funded accounts' keys) and `txinfo.json`
//! (optional; the cases that need them say so when they are missing).

use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::Path;

use alloy_consensus::Header;
use alloy_primitives::{Address, B256};
use protocols::eth::forkid::ForkId;
use protocols::eth::messages::{BlockId, GetBlockHeaders};
use secp256k1::SecretKey;
use serde::Deserialize;

use crate::chain::reader::BlockReader;
use crate::chain::{Spec, genesis};

/// One block of the test chain, as the suite needs it.
pub(crate) struct ChainBlock {
    pub(crate) header: Header,
    pub(crate) hash: B256,
    pub(crate) tx_count: usize,
}

/// A funded account (`accounts.json`: `{"0x…": {"key": "0x…", "nonce": N}}`).
#[derive(Deserialize)]
struct Account {
    key: String,
    #[serde(default)]
    nonce: u64,
}

/// `txinfo.json`: the block with a large receipt (eth/70 partial receipts), if any.
#[derive(Deserialize, Default)]
pub(crate) struct TxInfo {
    #[serde(rename = "tx-largereceipt")]
    pub(crate) large_receipt_block: Option<u64>,
}

/// The test chain: the genesis block, then every block of `chain.rlp`.
pub(crate) struct Chain {
    pub(crate) spec: Spec,
    pub(crate) blocks: Vec<ChainBlock>,
    /// Funded accounts, sorted by address (go-ethereum's `GetSender` order).
    pub(crate) senders: Vec<(Address, SecretKey, u64)>,
    pub(crate) tx_info: TxInfo,
}

impl Chain {
    /// Loads `dir` (go-ethereum's `NewChain`).
    pub(crate) fn load(dir: &Path) -> Result<Self, String> {
        let gen_path = dir.join("genesis.json");
        let genesis = genesis::load(&gen_path).map_err(|e| e.to_string())?;
        let spec = Spec::from_genesis("test", &genesis);
        let mut blocks = vec![ChainBlock {
            header: spec.genesis_header.clone(),
            hash: spec.genesis_hash,
            tx_count: 0,
        }];
        let rlp_path = dir.join("chain.rlp");
        let file =
            std::fs::File::open(&rlp_path).map_err(|e| format!("{}: {e}", rlp_path.display()))?;
        let mut reader = BlockReader::new(BufReader::new(file));
        while let Some(b) = reader
            .next_block()
            .map_err(|e| format!("{}: {e}", rlp_path.display()))?
        {
            let i = blocks.len();
            if b.header.number != i as u64 {
                return Err(format!(
                    "block at index {} has wrong number {}",
                    i - 1,
                    b.header.number
                ));
            }
            blocks.push(ChainBlock {
                hash: b.header.hash_slow(),
                tx_count: b.body.transactions.len(),
                header: b.header,
            });
        }
        let mut senders = Vec::new();
        let acc_path = dir.join("accounts.json");
        if acc_path.is_file() {
            let text = std::fs::read(&acc_path).map_err(|e| e.to_string())?;
            let accounts: BTreeMap<Address, Account> = serde_json::from_slice(&text)
                .map_err(|e| format!("{}: {e}", acc_path.display()))?;
            for (addr, a) in accounts {
                let hex_key = a.key.trim_start_matches("0x");
                let bytes: [u8; 32] = hex::decode(hex_key)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| format!("key of {addr}: not 32 hex bytes"))?;
                let key =
                    SecretKey::from_byte_array(bytes).map_err(|e| format!("key of {addr}: {e}"))?;
                senders.push((addr, key, a.nonce));
            }
        }
        let info_path = dir.join("txinfo.json");
        let tx_info = if info_path.is_file() {
            let text = std::fs::read(&info_path).map_err(|e| e.to_string())?;
            serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", info_path.display()))?
        } else {
            TxInfo::default()
        };
        Ok(Self {
            spec,
            blocks,
            senders,
            tx_info,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.blocks.len()
    }

    pub(crate) fn head(&self) -> &ChainBlock {
        &self.blocks[self.blocks.len() - 1] // ok: the genesis block is always there
    }

    /// go-ethereum's `Chain.ForkID`: `forkid.NewID(config, genesis, Len(), head time)` —
    /// the chain length (head + 1) as the head number, as go-ethereum passes it.
    pub(crate) fn fork_id(&self) -> ForkId {
        self.spec
            .fork_id(self.len() as u64, self.head().header.timestamp)
    }

    /// The headers a node with this chain returns for `req` (go-ethereum's
    /// `Chain.GetHeaders`): the origin is the last block matching its hash or number.
    pub(crate) fn get_headers(&self, req: &GetBlockHeaders) -> Result<Vec<&Header>, String> {
        if req.amount < 1 {
            return Err("no block headers requested".into());
        }
        let (hash, number) = match req.origin {
            BlockId::Hash(h) => (h, 0),
            BlockId::Number(n) => (B256::ZERO, n),
        };
        let origin = self
            .blocks
            .iter()
            .rposition(|b| b.hash == hash || b.header.number == number)
            .ok_or_else(|| {
                format!("no headers found for given origin number {number}, hash {hash}")
            })?;
        let mut out = vec![&self.blocks[origin].header];
        let mut n = origin;
        let step = usize::try_from(req.skip.saturating_add(1)).unwrap_or(usize::MAX);
        for _ in 1..req.amount {
            n = if req.reverse {
                n.checked_sub(step)
            } else {
                n.checked_add(step).filter(|&n| n < self.blocks.len())
            }
            .ok_or("request runs past the test chain")?;
            out.push(&self.blocks[n].header);
        }
        Ok(out)
    }
}
