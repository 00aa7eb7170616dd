//! Capability negotiation and message-id multiplexing (spec: `rlpx.md`, "Message ID-based
//! Multiplexing").

use crate::p2p::{BASE_OFFSET, Capability};

/// A subprotocol we offer: its capability and how many message ids it uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Protocol {
    /// Name and version advertised in Hello.
    pub cap: Capability,
    /// Number of message codes the protocol uses (e.g. 17 for eth/68).
    pub messages: u8,
}

impl Protocol {
    /// A protocol from name, version and message count.
    pub fn new(name: impl Into<String>, version: u32, messages: u8) -> Self {
        Self {
            cap: Capability::new(name, version),
            messages,
        }
    }
}

/// A capability both sides share, with its place in the message-id space.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Shared {
    /// The negotiated capability (highest version both sides offer).
    pub cap: Capability,
    /// First absolute message id of this protocol.
    pub offset: u64,
    /// Number of message codes.
    pub messages: u8,
}

impl Shared {
    /// Whether absolute id `id` belongs to this protocol.
    pub fn contains(&self, id: u64) -> bool {
        id >= self.offset && id - self.offset < u64::from(self.messages)
    }
}

/// Matches our protocols against the remote's Hello capabilities.
///
/// Shared means equal name and equal version; of several shared versions of one name the
/// highest wins. Offsets are assigned from `0x10` in alphabetical (byte-wise) order of
/// name, each protocol taking its message count.
pub fn negotiate(local: &[Protocol], remote: &[Capability]) -> Vec<Shared> {
    let mut best: std::collections::BTreeMap<&str, &Protocol> = Default::default();
    for p in local {
        if !remote.contains(&p.cap) {
            continue;
        }
        let slot = best.entry(p.cap.name.as_str()).or_insert(p);
        if p.cap.version > slot.cap.version {
            *slot = p;
        }
    }
    let mut offset = BASE_OFFSET;
    best.into_values()
        .map(|p| {
            let s = Shared {
                cap: p.cap.clone(),
                offset,
                messages: p.messages,
            };
            offset += u64::from(p.messages);
            s
        })
        .collect()
}

/// The shared protocol that owns absolute id `id`, if any.
pub fn route(shared: &[Shared], id: u64) -> Option<(usize, u8)> {
    shared
        .iter()
        .position(|s| s.contains(id))
        .map(|i| (i, (id - shared[i].offset) as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_common_version_alphabetical_offsets() {
        let local = [
            Protocol::new("snap", 1, 8),
            Protocol::new("eth", 67, 17),
            Protocol::new("eth", 68, 17),
            Protocol::new("aaa", 1, 3),
            Protocol::new("les", 4, 24),
        ];
        let remote = [
            Capability::new("eth", 66),
            Capability::new("eth", 67),
            Capability::new("eth", 68),
            Capability::new("snap", 1),
            Capability::new("aaa", 2),
            Capability::new("zzz", 1),
        ];
        let s = negotiate(&local, &remote);
        let names: Vec<_> = s.iter().map(|s| (s.cap.to_string(), s.offset)).collect();
        assert_eq!(
            names,
            vec![("eth/68".into(), 0x10), ("snap/1".into(), 0x21)]
        );
        assert_eq!(route(&s, 0x10), Some((0, 0)));
        assert_eq!(route(&s, 0x20), Some((0, 16)));
        assert_eq!(route(&s, 0x21), Some((1, 0)));
        assert_eq!(route(&s, 0x28), Some((1, 7)));
        assert_eq!(route(&s, 0x29), None);
        assert_eq!(route(&s, 0x05), None);
        assert!(negotiate(&local, &[]).is_empty());
    }
}
