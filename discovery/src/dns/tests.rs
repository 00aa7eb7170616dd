//! Spec example records, the publisher's trees, and attacks on the client.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use secp256k1::{PublicKey, SECP256K1, SecretKey};

use super::publish::Tree;
use super::tree::{base32_decode, base32_encode, entry_hash};
use super::*;
use crate::enr::{Builder, Enr};

/// The URL of dnsdisc.md's example zone. The spec's example URL
/// (`enrtree://AM5FCQLWIZX2QFPNJAP7VUERCCRNGRHWZG3YYHIUV7BVDQ5FDPRT2@nodes.example.org`)
/// encodes another key than the `0x049f88…` it names; the example root is signed by the
/// named key, whose base32 form is this one (go-ethereum's tests use it too).
const EXAMPLE_URL: &str =
    "enrtree://AKPYQIUQIL7PSIACI32J7FGZW56E5FKHEFCCOFHILBIMW3M6LWXS2@nodes.example.org";

const SPEC_KEY: &str = "049f88229042fef9200246f49f94d9b77c4e954721442714e85850cb6d9e5daf2d880ea0e53cb3ac1a75f9923c2726a4f941f7d326781baa6380754a360de5c2b6";

/// The example zone of dnsdisc.md, under `nodes.example.org`.
fn example_zone() -> HashMap<String, Vec<String>> {
    let recs = [
        (
            "",
            "enrtree-root:v1 e=JWXYDBPXYWG6FX3GMDIBFA6CJ4 l=C7HRFPF3BLGF3YR4DY5KX3SMBE seq=1 sig=o908WmNp7LibOfPsr4btQwatZJ5URBr2ZAuxvK4UWHlsB9sUOTJQaGAlLPVAhM__XJesCHxLISo94z5Z2a463gA",
        ),
        (
            "C7HRFPF3BLGF3YR4DY5KX3SMBE",
            "enrtree://AM5FCQLWIZX2QFPNJAP7VUERCCRNGRHWZG3YYHIUV7BVDQ5FDPRT2@morenodes.example.org",
        ),
        (
            "JWXYDBPXYWG6FX3GMDIBFA6CJ4",
            "enrtree-branch:2XS2367YHAXJFGLZHVAWLQD4ZY,H4FHT4B454P6UXFD7JCYQ5PWDY,MHTDO6TMUBRIA2XWG5LUDACK24",
        ),
        (
            "2XS2367YHAXJFGLZHVAWLQD4ZY",
            "enr:-HW4QOFzoVLaFJnNhbgMoDXPnOvcdVuj7pDpqRvh6BRDO68aVi5ZcjB3vzQRZH2IcLBGHzo8uUN3snqmgTiE56CH3AMBgmlkgnY0iXNlY3AyNTZrMaECC2_24YYkYHEgdzxlSNKQEnHhuNAbNlMlWJxrJxbAFvA",
        ),
        (
            "H4FHT4B454P6UXFD7JCYQ5PWDY",
            "enr:-HW4QAggRauloj2SDLtIHN1XBkvhFZ1vtf1raYQp9TBW2RD5EEawDzbtSmlXUfnaHcvwOizhVYLtr7e6vw7NAf6mTuoCgmlkgnY0iXNlY3AyNTZrMaECjrXI8TLNXU0f8cthpAMxEshUyQlK-AM0PW2wfrnacNI",
        ),
        (
            "MHTDO6TMUBRIA2XWG5LUDACK24",
            "enr:-HW4QLAYqmrwllBEnzWWs7I5Ev2IAs7x_dZlbYdRdMUx5EyKHDXp7AV5CkuPGUPdvbv1_Ms1CPfhcGCvSElSosZmyoqAgmlkgnY0iXNlY3AyNTZrMaECriawHKWdDRk2xeZkrOXBQ0dfMFLHY4eENZwdufn1S1o",
        ),
    ];
    recs.iter()
        .map(|(sub, txt)| {
            let name = if sub.is_empty() {
                "nodes.example.org".to_owned()
            } else {
                format!("{sub}.nodes.example.org")
            };
            (name, vec![(*txt).to_owned()])
        })
        .collect()
}

/// Runs `client` against `zone` until it idles; returns the events and the names queried.
fn run(
    client: &mut Client,
    zone: &HashMap<String, Vec<String>>,
    mut now: Instant,
) -> (Vec<Event>, Vec<String>) {
    let (mut events, mut queries) = (Vec::new(), Vec::new());
    let idle_after = now + Duration::from_secs(60);
    loop {
        while let Some(name) = client.poll_query(now) {
            queries.push(name.clone());
            let answer = zone
                .get(&name)
                .cloned()
                .ok_or_else(|| Error::Lookup("NXDOMAIN".into()));
            client.on_answer(&name, answer, now);
        }
        events.extend(std::iter::from_fn(|| client.poll_event()));
        match client.next_timeout() {
            Some(t) if t < idle_after => now = now.max(t),
            _ => return (events, queries),
        }
    }
}

fn enrs(events: &[Event]) -> Vec<Enr> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Enr { enr, .. } => Some(enr.clone()),
            _ => None,
        })
        .collect()
}

fn errors(events: &[Event]) -> Vec<Error> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Error { error, .. } => Some(error.clone()),
            _ => None,
        })
        .collect()
}

fn key(n: u8) -> SecretKey {
    SecretKey::from_byte_array([n; 32]).unwrap()
}

fn record(n: u8) -> Enr {
    Builder::new()
        .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)))
        .tcp(30303)
        .udp(30303)
        .build(1, &key(n))
        .unwrap()
}

/// The zone of a signed publisher tree at `domain`.
fn zone_of(tree: &Tree, domain: &str) -> HashMap<String, Vec<String>> {
    tree.to_txt(domain)
        .into_iter()
        .map(|(k, v)| (k, vec![v]))
        .collect()
}

fn signed(records: &[Enr], links: &[TreeUrl], seq: u64, signer: &SecretKey) -> Tree {
    let mut t = Tree::build(records, links, seq);
    t.sign(signer);
    t
}

#[test]
fn base32_round_trip() {
    for len in 0..40 {
        let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
        assert_eq!(base32_decode(&base32_encode(&data)).unwrap(), data);
    }
    assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
    assert!(base32_decode("MZXW6YTBOI1").is_none());
    assert!(base32_decode("mzxw6ytboi").is_none());
}

#[test]
fn spec_url_and_key() {
    let url: TreeUrl = EXAMPLE_URL.parse().unwrap();
    assert_eq!(url.domain, "nodes.example.org");
    assert_eq!(hex::encode(url.key.serialize_uncompressed()), SPEC_KEY);
    assert_eq!(url.to_string(), EXAMPLE_URL);
    let spec = "enrtree://AM5FCQLWIZX2QFPNJAP7VUERCCRNGRHWZG3YYHIUV7BVDQ5FDPRT2@nodes.example.org";
    assert_eq!(spec.parse::<TreeUrl>().unwrap().to_string(), spec);
    for bad in [
        "enrtree://AM5FCQLWIZX2QFPNJAP7VUERCCRNGRHWZG3YYHIUV7BVDQ5FDPRT2",
        "enrtree://AM5FCQLWIZX2QFPNJAP7VUERCCRNGRHWZG3YYHIUV7BVDQ5FDPRT@nodes.example.org",
        "enrtree://AM5FCQLWIZX2QFPNJAP7VUERCCRNGRHWZG3YYHIUV7BVDQ5FDPRT2@bad domain",
        "enrtree://AM5FCQLWIZX2QFPNJAP7VUERCCRNGRHWZG3YYHIUV7BVDQ5FDPRT2@a..b",
        "http://x@y",
    ] {
        assert_eq!(bad.parse::<TreeUrl>(), Err(Error::InvalidUrl), "{bad}");
    }
}

#[test]
fn spec_example_records_verify() {
    let url: TreeUrl = EXAMPLE_URL.parse().unwrap();
    let zone = example_zone();
    let root: Root = zone["nodes.example.org"][0].parse().unwrap();
    assert_eq!(root.seq, 1);
    root.verify(&url.key).unwrap();
    assert_eq!(
        hex::encode(root.recover().unwrap().serialize_uncompressed()),
        SPEC_KEY
    );
    assert_eq!(root.to_string(), zone["nodes.example.org"][0]);
    for (name, txts) in &zone {
        if let Some(hash) = name.strip_suffix(".nodes.example.org") {
            assert_eq!(entry_hash(&txts[0]), hash);
            let entry: Entry = txts[0].parse().unwrap();
            assert_eq!(entry.to_string(), txts[0]);
        }
    }
}

#[test]
fn client_resolves_spec_example_and_follows_link() {
    let now = Instant::now();
    let mut c = Client::with_seed(
        vec![EXAMPLE_URL.parse().unwrap()],
        Config::default(),
        now,
        1,
    );
    let (events, queries) = run(&mut c, &example_zone(), now);
    assert_eq!(enrs(&events).len(), 3);
    assert!(events.contains(&Event::Synced {
        domain: "nodes.example.org".into(),
        seq: 1
    }));
    // The link's tree is followed (its domain has no records here: a lookup error).
    assert!(queries.contains(&"morenodes.example.org".to_owned()));
    assert_eq!(c.trees().count(), 2);
    let own = |q: &&String| *q == "nodes.example.org" || q.ends_with(".nodes.example.org");
    assert_eq!(queries.iter().filter(own).count(), 6, "{queries:?}");
}

#[test]
fn bad_signature_is_rejected() {
    let mut zone = example_zone();
    let root = zone.get_mut("nodes.example.org").unwrap();
    root[0] = root[0].replace("seq=1", "seq=2");
    let now = Instant::now();
    let mut c = Client::with_seed(
        vec![EXAMPLE_URL.parse().unwrap()],
        Config::default(),
        now,
        1,
    );
    let (events, queries) = run(&mut c, &zone, now);
    assert!(enrs(&events).is_empty());
    assert!(errors(&events).iter().all(|e| *e == Error::BadSignature));
    assert!(
        queries.iter().all(|q| q == "nodes.example.org"),
        "{queries:?}"
    );

    // Signed by another key than the URL's.
    let tree = signed(&[record(1)], &[], 1, &key(9));
    let url = TreeUrl::new(&key(8), "n.test").unwrap();
    let mut c = Client::with_seed(vec![url], Config::default(), now, 1);
    let (events, _) = run(&mut c, &zone_of(&tree, "n.test"), now);
    assert!(enrs(&events).is_empty());
    assert_eq!(errors(&events)[0], Error::BadSignature);
}

#[test]
fn wrong_hash_and_oversized_records_are_rejected() {
    let signer = key(7);
    let tree = signed(&[record(1), record(2)], &[], 1, &signer);
    let url = TreeUrl::new(&signer, "n.test").unwrap();
    let leaf = tree
        .entries()
        .iter()
        .find(|(_, t)| t.starts_with("enr:"))
        .map(|(h, _)| format!("{h}.n.test"))
        .unwrap();
    let now = Instant::now();

    let mut zone = zone_of(&tree, "n.test");
    zone.insert(leaf.clone(), vec![record(3).to_string()]);
    let mut c = Client::with_seed(vec![url.clone()], Config::default(), now, 1);
    let (events, _) = run(&mut c, &zone, now);
    assert_eq!(enrs(&events).len(), 1);
    assert_eq!(errors(&events), vec![Error::HashMismatch]);

    let mut zone = zone_of(&tree, "n.test");
    zone.insert(leaf, vec!["enr:".to_owned() + &"A".repeat(600)]);
    let mut c = Client::with_seed(vec![url], Config::default(), now, 1);
    let (events, _) = run(&mut c, &zone, now);
    assert_eq!(enrs(&events).len(), 1);
    assert_eq!(errors(&events), vec![Error::RecordTooLarge]);
    assert_eq!(
        "enrtree-branch:".to_owned().repeat(40).parse::<Entry>(),
        Err(Error::RecordTooLarge)
    );
}

/// Builds a zone by hand: entries by text, root over `e`/`l`, signed by `signer`.
fn hand_zone(
    domain: &str,
    signer: &SecretKey,
    e: &str,
    l: &str,
    entries: &[String],
) -> HashMap<String, Vec<String>> {
    let mut root = Root {
        e: e.into(),
        l: l.into(),
        seq: 1,
        sig: [0; 65],
    };
    root.sign(signer);
    let mut zone: HashMap<String, Vec<String>> = entries
        .iter()
        .map(|t| (format!("{}.{domain}", entry_hash(t)), vec![t.clone()]))
        .collect();
    zone.insert(domain.into(), vec![root.to_string()]);
    zone
}

#[test]
fn repeated_hashes_and_misplaced_entries_are_rejected() {
    let signer = key(7);
    let leaf = record(1).to_string();
    let h = entry_hash(&leaf);
    // A branch naming one child twice, under a branch naming that branch and the child.
    let inner = format!("enrtree-branch:{h},{h}");
    let outer = format!("enrtree-branch:{},{h}", entry_hash(&inner));
    let empty = "enrtree-branch:".to_owned();
    let zone = hand_zone(
        "n.test",
        &signer,
        &entry_hash(&outer),
        &entry_hash(&empty),
        &[leaf.clone(), inner, outer.clone(), empty.clone()],
    );
    let now = Instant::now();
    let url = TreeUrl::new(&signer, "n.test").unwrap();
    let mut c = Client::with_seed(vec![url.clone()], Config::default(), now, 1);
    let (events, queries) = run(&mut c, &zone, now);
    assert_eq!(enrs(&events).len(), 1);
    assert_eq!(errors(&events), vec![Error::Loop]);
    assert_eq!(queries.len(), 5);

    // The link root pointing at the ENR subtree: ENRs in the link subtree.
    let zone = hand_zone(
        "n.test",
        &signer,
        &entry_hash(&empty),
        &entry_hash(&leaf),
        &[leaf.clone(), empty.clone()],
    );
    let mut c = Client::with_seed(vec![url.clone()], Config::default(), now, 1);
    let (events, _) = run(&mut c, &zone, now);
    assert!(enrs(&events).is_empty());
    assert_eq!(errors(&events), vec![Error::EnrInLinkTree]);

    // Both roots the same hash.
    let zone = hand_zone(
        "n.test",
        &signer,
        &entry_hash(&outer),
        &entry_hash(&outer),
        &[],
    );
    let mut c = Client::with_seed(vec![url], Config::default(), now, 1);
    let (events, queries) = run(&mut c, &zone, now);
    assert!(errors(&events).contains(&Error::Loop));
    assert!(queries.len() <= 4, "{queries:?}");
}

#[test]
fn link_cycle_terminates() {
    let (ka, kb) = (key(1), key(2));
    let (ua, ub) = (
        TreeUrl::new(&ka, "a.test").unwrap(),
        TreeUrl::new(&kb, "b.test").unwrap(),
    );
    let mut zone = zone_of(
        &signed(&[record(1)], std::slice::from_ref(&ub), 1, &ka),
        "a.test",
    );
    zone.extend(zone_of(
        &signed(&[record(2)], std::slice::from_ref(&ua), 1, &kb),
        "b.test",
    ));
    let now = Instant::now();
    let mut c = Client::with_seed(vec![ua], Config::default(), now, 1);
    let (events, queries) = run(&mut c, &zone, now);
    assert_eq!(enrs(&events).len(), 2);
    assert_eq!(c.trees().count(), 2);
    assert_eq!(queries.len(), 6);
}

#[test]
fn deep_and_wide_trees_are_bounded() {
    let signer = key(7);
    let url = TreeUrl::new(&signer, "n.test").unwrap();
    let now = Instant::now();
    // A chain of single-child branches deeper than the limit.
    let mut texts = vec![record(1).to_string()];
    for _ in 0..20 {
        texts.push(format!(
            "enrtree-branch:{}",
            entry_hash(texts.last().unwrap())
        ));
    }
    let empty = "enrtree-branch:".to_owned();
    texts.push(empty.clone());
    let top = entry_hash(&texts[20]);
    let zone = hand_zone("n.test", &signer, &top, &entry_hash(&empty), &texts);
    let mut c = Client::with_seed(vec![url.clone()], Config::default(), now, 1);
    let (events, queries) = run(&mut c, &zone, now);
    assert!(enrs(&events).is_empty());
    assert_eq!(errors(&events), vec![Error::TooDeep]);
    assert!(queries.len() <= 2 + Config::default().max_depth + 1);

    // More records than the cache holds.
    let records: Vec<Enr> = (1..=40).map(record).collect();
    let zone = zone_of(&signed(&records, &[], 1, &signer), "n.test");
    let config = Config {
        max_entries: 20,
        ..Config::default()
    };
    let mut c = Client::with_seed(vec![url], config, now, 1);
    let (events, _) = run(&mut c, &zone, now);
    assert!(errors(&events).contains(&Error::TooManyEntries));
    assert!(c.cached_entries() <= 20);
}

#[test]
fn queries_are_rate_limited() {
    let signer = key(7);
    let records: Vec<Enr> = (1..=30).map(record).collect();
    let zone = zone_of(&signed(&records, &[], 1, &signer), "n.test");
    let now = Instant::now();
    let config = Config {
        queries_per_window: 4,
        ..Config::default()
    };
    let mut c = Client::with_seed(
        vec![TreeUrl::new(&signer, "n.test").unwrap()],
        config,
        now,
        1,
    );
    let mut issued = 0;
    while let Some(name) = c.poll_query(now) {
        c.on_answer(&name, Ok(zone[&name].clone()), now);
        issued += 1;
    }
    assert_eq!(issued, 4);
    assert_eq!(c.next_timeout(), Some(now + Duration::from_secs(1)));
    let (events, queries) = run(&mut c, &zone, now + Duration::from_secs(1));
    assert_eq!(enrs(&events).len(), 30);
    // 30 leaves, 3 branches of 13 and their parent, an empty link branch, the root.
    assert_eq!(issued + queries.len(), 30 + 3 + 1 + 1 + 1);
}

#[test]
fn update_refetches_only_changed_entries() {
    let signer = key(7);
    let url = TreeUrl::new(&signer, "n.test").unwrap();
    let mut records: Vec<Enr> = (1..=30).map(record).collect();
    let v1 = signed(&records, &[], 1, &signer);
    let now = Instant::now();
    let mut c = Client::with_seed(vec![url], Config::default(), now, 1);
    let (events, _) = run(&mut c, &zone_of(&v1, "n.test"), now);
    assert_eq!(enrs(&events).len(), 30);

    // One record gets a new sequence number.
    records[5] = Builder::new()
        .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 1, 6)))
        .tcp(30303)
        .udp(30303)
        .build(2, &key(6))
        .unwrap();
    let v2 = signed(&records, &[], 2, &signer);
    let later = now + Config::default().recheck_interval;
    let (events, queries) = run(&mut c, &zone_of(&v2, "n.test"), later);
    // Root, top branch, one 13-leaf branch, one leaf.
    assert_eq!(queries.len(), 4, "{queries:?}");
    let found = enrs(&events);
    assert_eq!(found.len(), 30);
    assert!(found.contains(&records[5]));
    assert!(events.contains(&Event::Synced {
        domain: "n.test".into(),
        seq: 2
    }));
    // Old entries are dropped from the cache: 30 leaves, 4 branches, the empty link branch.
    assert_eq!(c.cached_entries(), 35);

    // A replayed older root is refused.
    let (events, queries) = run(
        &mut c,
        &zone_of(&v1, "n.test"),
        later + Config::default().recheck_interval,
    );
    assert_eq!(queries.len(), 1);
    assert_eq!(errors(&events), vec![Error::StaleSeq { known: 2, new: 1 }]);
}

#[test]
fn publisher_tree_is_deterministic_and_bounded() {
    let signer = key(7);
    let records: Vec<Enr> = (1..=100).map(record).collect();
    let mut shuffled = records.clone();
    shuffled.reverse();
    let link = TreeUrl::new(&key(3), "other.test").unwrap();
    let a = signed(&records, std::slice::from_ref(&link), 5, &signer);
    let b = signed(&shuffled, std::slice::from_ref(&link), 5, &signer);
    assert_eq!(a.root(), b.root());
    assert_eq!(a.entries(), b.entries());
    assert_eq!(a.enrs().len(), 100);
    for text in a.entries().values() {
        assert!(text.len() <= tree::MAX_RECORD_LEN);
        if let Ok(Entry::Branch(h)) = text.parse() {
            assert!(h.len() <= tree::MAX_CHILDREN);
        }
    }
    let pk = PublicKey::from_secret_key(SECP256K1, &signer);
    assert_eq!(a.root().recover(), Some(pk));
    let mut unsigned = Tree::build(&records, &[link], 5);
    unsigned.set_signature(&pk, a.root().sig).unwrap();
    let txt: BTreeMap<_, _> = unsigned.to_txt("n.test");
    assert_eq!(txt, a.to_txt("n.test"));
    assert_eq!(
        Tree::build(&records, &[], 6).set_signature(&pk, a.root().sig),
        Err(Error::BadSignature)
    );
}
