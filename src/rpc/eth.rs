//! The chain methods: `eth_blockNumber`, `eth_chainId`, `eth_syncing`,
//! `eth_getBlockByNumber` and `eth_getBlockByHash` over the block store and the sync task,
//! and the pool methods `eth_sendRawTransaction` and `txpool_status`, in go-ethereum's
//! shapes.
//!
//! Blocks list their transactions by hash whether or not `fullTx` is set: the store has no
//! receipts or senders, so go-ethereum's full transaction objects (`from`, …) cannot be
//! built.

use alloy_consensus::Header;
use alloy_primitives::{B256, U256};
use serde_json::{Map, Value, json};

use super::admin::positional;
use super::{Api, Error};
use crate::chain::Store;

/// Dispatches a chain method; `None` when `method` is not one.
pub(super) fn call(
    api: &Api,
    method: &str,
    params: Option<&Value>,
) -> Option<Result<Value, Error>> {
    let names = [
        "eth_blockNumber",
        "eth_chainId",
        "eth_syncing",
        "eth_getBlockByNumber",
        "eth_getBlockByHash",
    ];
    if !names.contains(&method) {
        return None;
    }
    let Some(store) = api.store.as_deref() else {
        return Some(Err(Error::MethodNotFound));
    };
    Some(dispatch(api, store, method, params))
}

fn dispatch(
    api: &Api,
    store: &Store,
    method: &str,
    params: Option<&Value>,
) -> Result<Value, Error> {
    match method {
        "eth_blockNumber" => {
            positional(params, 0)?;
            Ok(quantity(store.head().map_err(internal)?.number))
        }
        "eth_chainId" => {
            positional(params, 0)?;
            Ok(quantity(store.spec().config.chain_id))
        }
        "eth_syncing" => {
            positional(params, 0)?;
            Ok(syncing(api, store)?)
        }
        "eth_getBlockByNumber" => {
            let (arg, full) = block_params(params)?;
            let number = match arg.as_str() {
                Some("latest" | "safe" | "finalized" | "pending") => {
                    store.head().map_err(internal)?.number
                }
                Some("earliest") => 0,
                Some(s) => parse_quantity(s)?,
                None => return Err(invalid("argument 0 must be a block number or tag")),
            };
            match store.canonical_hash(number).map_err(internal)? {
                Some(hash) => block(store, hash, full),
                None => Ok(Value::Null),
            }
        }
        "eth_getBlockByHash" => {
            let (arg, full) = block_params(params)?;
            let hash = arg
                .as_str()
                .and_then(|s| s.parse::<B256>().ok())
                .filter(|_| arg.as_str().is_some_and(|s| s.starts_with("0x")))
                .ok_or_else(|| invalid("argument 0 must be a 32-byte hex hash"))?;
            block(store, hash, full)
        }
        _ => Err(Error::MethodNotFound),
    }
}

/// Largest raw transaction accepted over RPC, as hex characters: a blob transaction with
/// its sidecar (6 blobs of 128 KiB plus commitments and proofs) and the 128 KiB of the rest.
const MAX_RAW_TX_HEX: usize = 2 * (7 * 128 * 1024 + 64 * 1024);

/// Dispatches a transaction-pool method; `None` when `method` is not one.
pub(super) fn call_pool(
    api: &Api,
    method: &str,
    params: Option<&Value>,
) -> Option<Result<Value, Error>> {
    if !["eth_sendRawTransaction", "txpool_status"].contains(&method) {
        return None;
    }
    let Some(eth) = api.eth.as_ref() else {
        return Some(Err(Error::MethodNotFound));
    };
    Some(match method {
        "eth_sendRawTransaction" => send_raw(eth, params),
        _ => positional(params, 0).map(|_| {
            // Without state every pooled transaction counts as pending (go-ethereum splits
            // pending and queued by account nonce, which we do not know).
            let stats = eth.pool().stats();
            json!({ "pending": quantity(stats.count), "queued": quantity(0) })
        }),
    })
}

/// `eth_sendRawTransaction(data)`: decodes an EIP-2718 transaction (blob transactions in
/// their network form with the sidecar), pools it and sends it to peers; answers its hash.
fn send_raw(eth: &protocols::eth::Handle, params: Option<&Value>) -> Result<Value, Error> {
    let args = positional(params, 1)?;
    let hex_data = args
        .first()
        .and_then(Value::as_str)
        .and_then(|s| s.strip_prefix("0x"))
        .ok_or_else(|| invalid("argument 0 must be 0x-prefixed hex data"))?;
    if hex_data.len() > MAX_RAW_TX_HEX {
        return Err(Error::Refused("oversized data".into()));
    }
    let bytes = hex::decode(hex_data).map_err(|_| invalid("argument 0 is not hex"))?;
    let tx = <protocols::eth::messages::PooledTransaction as alloy_eips::eip2718::Decodable2718>::decode_2718_exact(&bytes)
        .map_err(|e| Error::Refused(format!("invalid transaction: {e}")))?;
    let pooled = eth
        .submit_transaction(tx)
        .map_err(|e| Error::Refused(e.to_string()))?;
    Ok(Value::String(pooled.hash.to_string()))
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

fn invalid(msg: &str) -> Error {
    Error::InvalidParams(msg.to_string())
}

/// A hex quantity: `0x0`, `0x258`.
pub(super) fn quantity(n: impl std::fmt::LowerHex) -> Value {
    Value::String(format!("{n:#x}"))
}

/// Parses a hex quantity (`0x` and 1 to 16 hex digits, no leading zeros but `0x0`).
fn parse_quantity(s: &str) -> Result<u64, Error> {
    let bad = || invalid("argument 0 must be a hex quantity such as 0x1a");
    let digits = s.strip_prefix("0x").ok_or_else(bad)?;
    if digits.is_empty() || digits.len() > 16 || (digits.len() > 1 && digits.starts_with('0')) {
        return Err(bad());
    }
    u64::from_str_radix(digits, 16).map_err(|_| bad())
}

/// The two params of the block getters: the block and `fullTx` (a bool, required as in
/// go-ethereum).
fn block_params(params: Option<&Value>) -> Result<(&Value, bool), Error> {
    let list = positional(params, 2)?;
    let [arg, full] = list else {
        return Err(invalid("want 2 arguments: block and fullTx"));
    };
    let full = full
        .as_bool()
        .ok_or_else(|| invalid("argument 1 must be a bool"))?;
    Ok((arg, full))
}

/// `eth_syncing`: `false`, or `{startingBlock, currentBlock, highestBlock}`.
fn syncing(api: &Api, store: &Store) -> Result<Value, Error> {
    let Some(sync) = &api.sync else {
        return Ok(Value::Bool(false));
    };
    let s = sync.status();
    if !s.syncing {
        return Ok(Value::Bool(false));
    }
    let current = store.head().map_err(internal)?.number.max(s.current);
    Ok(json!({
        "startingBlock": quantity(s.starting),
        "currentBlock": quantity(current),
        "highestBlock": quantity(s.highest.max(current)),
    }))
}

/// A stored block in go-ethereum's shape, or null if unknown.
fn block(store: &Store, hash: B256, _full: bool) -> Result<Value, Error> {
    let Some(header) = store.header_by_hash(&hash).map_err(internal)? else {
        return Ok(Value::Null);
    };
    let Some(body) = store.body_by_hash(&hash).map_err(internal)? else {
        return Ok(Value::Null);
    };
    let header_len = store
        .header_rlp(&hash)
        .map_err(internal)?
        .map_or(0, |r| r.len());
    let body_payload = store
        .body_rlp(&hash)
        .map_err(internal)?
        .and_then(|r| {
            let mut buf = r.as_slice();
            alloy_rlp::Header::decode(&mut buf)
                .ok()
                .map(|h| h.payload_length)
        })
        .unwrap_or(0);
    // The block's RLP is the header followed by the body's fields, in one list.
    let payload = header_len + body_payload;
    let size = payload + alloy_rlp::length_of_length(payload);
    let td = store.total_difficulty(&hash).map_err(internal)?;
    let mut out = header_fields(&header, hash);
    out.insert("size".into(), quantity(size));
    if let Some(td) = td {
        out.insert("totalDifficulty".into(), u256(td));
    }
    let txs: Vec<Value> = body
        .transactions
        .iter()
        .map(|t| Value::String(t.tx_hash().to_string()))
        .collect();
    out.insert("transactions".into(), Value::Array(txs));
    let uncles: Vec<Value> = body
        .ommers
        .iter()
        .map(|o| Value::String(o.hash_slow().to_string()))
        .collect();
    out.insert("uncles".into(), Value::Array(uncles));
    if let Some(w) = &body.withdrawals {
        let list: Vec<Value> = w
            .iter()
            .map(|w| {
                json!({
                    "index": quantity(w.index),
                    "validatorIndex": quantity(w.validator_index),
                    "address": w.address.to_string().to_lowercase(),
                    "amount": quantity(w.amount),
                })
            })
            .collect();
        out.insert("withdrawals".into(), Value::Array(list));
    }
    Ok(Value::Object(out))
}

pub(super) fn u256(v: U256) -> Value {
    Value::String(format!("{v:#x}"))
}

/// The header's fields, optional ones only when present.
pub(super) fn header_fields(h: &Header, hash: B256) -> Map<String, Value> {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    put("number", quantity(h.number));
    put("hash", Value::String(hash.to_string()));
    put("parentHash", Value::String(h.parent_hash.to_string()));
    put("nonce", Value::String(h.nonce.to_string()));
    put("sha3Uncles", Value::String(h.ommers_hash.to_string()));
    put("logsBloom", Value::String(h.logs_bloom.to_string()));
    put(
        "transactionsRoot",
        Value::String(h.transactions_root.to_string()),
    );
    put("stateRoot", Value::String(h.state_root.to_string()));
    put("receiptsRoot", Value::String(h.receipts_root.to_string()));
    put(
        "miner",
        Value::String(h.beneficiary.to_string().to_lowercase()),
    );
    put("difficulty", u256(h.difficulty));
    put("extraData", Value::String(h.extra_data.to_string()));
    put("gasLimit", quantity(h.gas_limit));
    put("gasUsed", quantity(h.gas_used));
    put("timestamp", quantity(h.timestamp));
    put("mixHash", Value::String(h.mix_hash.to_string()));
    if let Some(v) = h.base_fee_per_gas {
        put("baseFeePerGas", quantity(v));
    }
    if let Some(v) = h.withdrawals_root {
        put("withdrawalsRoot", Value::String(v.to_string()));
    }
    if let Some(v) = h.blob_gas_used {
        put("blobGasUsed", quantity(v));
    }
    if let Some(v) = h.excess_blob_gas {
        put("excessBlobGas", quantity(v));
    }
    if let Some(v) = h.parent_beacon_block_root {
        put("parentBeaconBlockRoot", Value::String(v.to_string()));
    }
    if let Some(v) = h.requests_hash {
        put("requestsHash", Value::String(v.to_string()));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("0x0").unwrap(), 0);
        assert_eq!(parse_quantity("0x258").unwrap(), 600);
        for bad in ["", "0x", "258", "0x01", "0xzz", "0x11111111111111111"] {
            assert!(parse_quantity(bad).is_err(), "{bad}");
        }
        assert_eq!(quantity(600u64), "0x258");
    }
}
