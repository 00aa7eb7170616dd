//! The crawl output: go-ethereum's `nodes.json` (`cmd/devp2p/nodeset.go`) with our extra
//! fields.
//!
//! A JSON object keyed by node id (the keccak256 of the public key, 64 hex characters, as
//! go-ethereum's `enode.ID`), each value:
//!
//! | field | go-ethereum | meaning |
//! |---|---|---|
//! | `seq` | yes | the record's sequence number |
//! | `record` | yes | the record, `enr:…` |
//! | `score` | yes (omitted when 0) | +1 per answered liveness check, halved per failed one |
//! | `firstResponse`, `lastResponse` | yes | first and last answered check (RFC 3339, UTC) |
//! | `lastCheck` | yes | last check, answered or not |
//! | `hello` | ours | the RLPx Hello: client id, capabilities, listen port |
//! | `status` | ours | the `eth` Status: network id, genesis, fork id, head |
//! | `lastDial`, `dialError` | ours | last RLPx probe, and why it failed |
//!
//! Times are whole seconds; go-ethereum writes its zero time (`0001-01-01T00:00:00Z`)
//! for a time never set, which reads back as 0 here. go-ethereum ignores unknown fields, so
//! it reads our files; we read its files (without the extra fields).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use discovery::{Enr, NodeId};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Errors reading or writing a node set.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a node set.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// An entry's key or `seq` disagrees with its record (go-ethereum's `verify`).
    #[error("{path}: entry {key:.16}…: {what}")]
    Inconsistent {
        /// The file.
        path: PathBuf,
        /// The entry's key.
        key: String,
        /// What disagrees.
        what: &'static str,
    },
}

/// What a node said in its RLPx Hello.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HelloInfo {
    /// The client id, e.g. `Geth/v1.14.0-stable/linux-amd64/go1.22` (at most 1024 bytes:
    /// `rlpx::p2p::MAX_CLIENT_ID_LEN`).
    pub client_id: String,
    /// The capabilities offered, `name/version` (at most 64: `rlpx::p2p::MAX_CAPABILITIES`).
    pub caps: Vec<String>,
    /// The listen port the Hello announces (legacy, informational).
    pub listen_port: u16,
    /// The p2p protocol version.
    pub version: u64,
}

/// A fork id (EIP-2124) as written: hash as `0x` and 8 hex digits.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForkIdJson {
    /// `FORK_HASH`.
    #[serde(with = "hex4")]
    pub hash: [u8; 4],
    /// `FORK_NEXT`.
    pub next: u64,
}

impl From<protocols::eth::forkid::ForkId> for ForkIdJson {
    fn from(f: protocols::eth::forkid::ForkId) -> Self {
        Self {
            hash: f.hash,
            next: f.next,
        }
    }
}

impl From<ForkIdJson> for protocols::eth::forkid::ForkId {
    fn from(f: ForkIdJson) -> Self {
        Self {
            hash: f.hash,
            next: f.next,
        }
    }
}

/// What a node said in its `eth` Status, as it said it (not validated against any chain).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StatusInfo {
    /// The eth version of the session.
    pub version: u32,
    /// The network id.
    pub network_id: u64,
    /// The genesis hash, `0x…`.
    pub genesis: String,
    /// The fork id.
    pub fork_id: ForkIdJson,
    /// The head (eth/68) or latest block (eth/69) hash.
    pub head: String,
    /// The latest block number (eth/69 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_number: Option<u64>,
}

/// One node of the set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The record's sequence number.
    pub seq: u64,
    /// The node record.
    #[serde(with = "record")]
    pub record: Enr,
    /// Liveness score: +1 per answered check, halved per failed one; 0 removes the node.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub score: i64,
    /// First answered check, unix seconds (0: never).
    #[serde(default, with = "time")]
    pub first_response: u64,
    /// Last answered check, unix seconds (0: never).
    #[serde(default, with = "time")]
    pub last_response: u64,
    /// Last check, unix seconds (0: never).
    #[serde(default, with = "time")]
    pub last_check: u64,
    /// The Hello of the last successful RLPx probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hello: Option<HelloInfo>,
    /// The eth Status of the last successful probe of a node speaking eth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusInfo>,
    /// Last RLPx probe, unix seconds (absent: never).
    #[serde(default, skip_serializing_if = "is_zero_u64", with = "time")]
    pub last_dial: u64,
    /// Why the last probe failed (short, ours; absent when it succeeded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dial_error: Option<String>,
}

impl Entry {
    /// A node first seen in `record`, not checked yet.
    pub fn new(record: Enr) -> Self {
        Self {
            seq: record.seq(),
            record,
            score: 0,
            first_response: 0,
            last_response: 0,
            last_check: 0,
            hello: None,
            status: None,
            last_dial: 0,
            dial_error: None,
        }
    }
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

/// The key of a node in the file: hex of keccak256 of its public key.
pub fn key(id: &NodeId) -> String {
    hex::encode(id.hash())
}

/// A node set, by node id.
pub type NodeSet = BTreeMap<NodeId, Entry>;

/// Reads a node set; a missing file is an empty set. Checks each key and `seq` against
/// its record, as go-ethereum's `verify`.
pub fn load(path: &Path) -> Result<NodeSet, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(NodeSet::new()),
        Err(source) => {
            return Err(Error::Io {
                path: path.into(),
                source,
            });
        }
    };
    parse(path, &text)
}

/// Parses the text of a node set (`path` names it in errors).
pub fn parse(path: &Path, text: &str) -> Result<NodeSet, Error> {
    let raw: BTreeMap<String, Entry> =
        serde_json::from_str(text).map_err(|source| Error::Json {
            path: path.into(),
            source,
        })?;
    let mut set = NodeSet::new();
    for (k, e) in raw {
        let inconsistent = |what| Error::Inconsistent {
            path: path.into(),
            key: k.clone(),
            what,
        };
        let id = e.record.node_id();
        if !k.eq_ignore_ascii_case(&key(&id)) {
            return Err(inconsistent("key is not the record's node id"));
        }
        if e.seq != e.record.seq() {
            return Err(inconsistent("seq is not the record's"));
        }
        set.insert(id, e);
    }
    Ok(set)
}

/// The JSON text of a set (four-space indent, as go-ethereum writes it).
pub fn to_json(set: &NodeSet) -> String {
    let by_key: BTreeMap<String, &Entry> = set.iter().map(|(id, e)| (key(id), e)).collect();
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    // Serializing strings, numbers and maps of them cannot fail.
    let _ = by_key.serialize(&mut ser);
    String::from_utf8(out).unwrap_or_default()
}

/// Writes `set` to `path` atomically (a temporary file renamed over it), so a crawl
/// interrupted while saving keeps the previous file.
pub fn save(path: &Path, set: &NodeSet) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.into(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, to_json(set) + "\n").map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

mod record {
    use super::*;

    pub(super) fn serialize<S: Serializer>(enr: &Enr, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(enr)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Enr, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

mod hex4 {
    use super::*;

    pub(super) fn serialize<S: Serializer>(v: &[u8; 4], s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("0x{}", hex::encode(v)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 4], D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 4];
        hex::decode_to_slice(text.trim_start_matches("0x"), &mut out)
            .map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

/// RFC 3339 times in UTC, whole seconds, as go-ethereum's `time.Time` in JSON.
pub mod time {
    use super::*;

    /// go-ethereum's zero `time.Time`, written for a time never set.
    pub const ZERO: &str = "0001-01-01T00:00:00Z";

    /// Days from 1970-01-01 to a civil date (proleptic Gregorian).
    fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The civil date of a day count from 1970-01-01.
    fn civil_from_days(z: i64) -> (i64, i64, i64) {
        let z = z + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        (yoe + era * 400 + i64::from(m <= 2), m, d)
    }

    /// `unix` seconds as `YYYY-MM-DDTHH:MM:SSZ`; 0 as [`ZERO`].
    pub fn format(unix: u64) -> String {
        if unix == 0 {
            return ZERO.into();
        }
        let secs = i64::try_from(unix).unwrap_or(i64::MAX / 2);
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let t = secs.rem_euclid(86_400);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            t / 3600,
            t / 60 % 60,
            t % 60
        )
    }

    /// Parses an RFC 3339 time (fractional seconds dropped, any offset); times before
    /// 1970 (go-ethereum's zero time) read as 0.
    pub fn parse(s: &str) -> Option<u64> {
        let b = s.as_bytes();
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let part = s.get(r)?;
            part.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| part.parse().ok())?
        };
        if b.len() < 20
            || b.get(4) != Some(&b'-')
            || b.get(10).map(u8::to_ascii_uppercase) != Some(b'T')
        {
            return None;
        }
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        let mut rest = s.get(19..)?;
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            rest = frac.get(digits..)?;
        }
        let offset = match rest {
            "Z" | "z" => 0,
            _ => {
                let sign = match rest.as_bytes().first()? {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let oh: i64 = rest.get(1..3)?.parse().ok()?;
                let om: i64 = rest.get(4..6)?.parse().ok()?;
                if rest.len() != 6 {
                    return None;
                }
                sign * (oh * 3600 + om * 60)
            }
        };
        let t = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset;
        Some(u64::try_from(t).unwrap_or(0))
    }

    pub(super) fn serialize<S: Serializer>(unix: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*unix))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).ok_or_else(|| serde::de::Error::custom("expected an RFC 3339 time"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_like_go() {
        assert_eq!(time::format(0), time::ZERO);
        assert_eq!(time::parse(time::ZERO), Some(0));
        assert_eq!(time::format(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(time::parse("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(
            time::parse("2023-11-14T22:13:20.123456789Z"),
            Some(1_700_000_000)
        );
        assert_eq!(
            time::parse("2023-11-15T00:13:20+02:00"),
            Some(1_700_000_000)
        );
        assert_eq!(time::format(951_782_400), "2000-02-29T00:00:00Z");
        for bad in [
            "",
            "2023-13-01T00:00:00Z",
            "2023-11-14 22:13:20",
            "x023-11-14T22:13:20Z",
        ] {
            assert_eq!(time::parse(bad), None, "{bad}");
        }
    }

    fn record(seq: u64) -> Enr {
        let key = secp256k1::SecretKey::from_byte_array([7; 32]).unwrap();
        discovery::enr::Builder::new()
            .ip([10, 0, 0, 1].into())
            .udp(30303)
            .tcp(30303)
            .build(seq, &key)
            .unwrap()
    }

    /// A go-ethereum nodes.json entry (as `devp2p discv4 crawl` writes it: zero times,
    /// no score) reads, and ours writes the same field names and time format back.
    #[test]
    fn reads_and_writes_geth_files() {
        let enr = record(3);
        let k = key(&enr.node_id());
        let geth = format!(
            "{{\"{k}\": {{\"seq\": 3, \"record\": \"{enr}\", \"firstResponse\": \"0001-01-01T00:00:00Z\", \
             \"lastResponse\": \"0001-01-01T00:00:00Z\", \"lastCheck\": \"2024-01-02T03:04:05Z\"}}}}"
        );
        let set = parse(Path::new("nodes.json"), &geth).unwrap();
        let e = &set[&enr.node_id()];
        assert_eq!((e.score, e.first_response), (0, 0));
        assert_eq!(time::format(e.last_check), "2024-01-02T03:04:05Z");
        let out = to_json(&set);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let obj = &v[&k];
        assert_eq!(obj["seq"], 3);
        assert_eq!(obj["record"], enr.to_string());
        assert_eq!(obj["firstResponse"], time::ZERO);
        assert_eq!(obj["lastCheck"], "2024-01-02T03:04:05Z");
        assert!(obj.get("score").is_none(), "omitted when 0, as omitempty");
        assert!(obj.get("hello").is_none() && obj.get("lastDial").is_none());
        assert!(out.contains("\n        \"record\""), "four-space indent");
        assert_eq!(parse(Path::new("x"), &out).unwrap(), set);
    }

    #[test]
    fn inconsistent_entries_are_refused() {
        let enr = record(3);
        let k = key(&enr.node_id());
        let wrong_seq = format!("{{\"{k}\": {{\"seq\": 4, \"record\": \"{enr}\"}}}}");
        assert!(matches!(
            parse(Path::new("x"), &wrong_seq),
            Err(Error::Inconsistent { .. })
        ));
        let wrong_key = format!(
            "{{\"{}\": {{\"seq\": 3, \"record\": \"{enr}\"}}}}",
            "00".repeat(32)
        );
        assert!(matches!(
            parse(Path::new("x"), &wrong_key),
            Err(Error::Inconsistent { .. })
        ));
    }
}
