use std::net::Ipv4Addr;

use super::*;
use crate::enr::Builder;

fn key() -> SecretKey {
    SecretKey::new(&mut rand::rng())
}

/// The `eth` entry of a record: `[[fork-hash, fork-next]]`.
const ETH: &[u8] = &[0xc7, 0xc6, 0x84, 1, 2, 3, 4, 0x80];

fn record(ip: &str, udp: u16, tcp: Option<u16>, eth: bool) -> Vec<u8> {
    let mut b = Builder::new().ip(ip.parse().unwrap()).udp(udp);
    if let Some(t) = tcp {
        b = b.tcp(t);
    }
    if eth {
        b = b.raw(b"eth", ETH.to_vec()).unwrap();
    }
    b.build(1, &key()).unwrap().encoded().to_vec()
}

#[test]
fn garbage_endpoints_are_not_candidates() {
    let me = crate::NodeId::from_secret_key(&key());
    let public: IpAddr = "8.8.8.8".parse().unwrap();
    let cfg = Config::default();
    let judge = |raw: &[u8], local: IpAddr| candidate(raw, local, &me, &cfg);
    assert!(judge(&record("1.2.3.4", 30303, Some(30303), true), public).is_ok());
    for (ip, udp, tcp, why) in [
        ("0.0.0.0", 30303, Some(30303), Reject::Special),
        ("224.0.0.1", 30303, Some(30303), Reject::Special),
        ("255.255.255.255", 30303, Some(30303), Reject::Special),
        ("240.1.2.3", 30303, Some(30303), Reject::Special),
        ("1.2.3.4", 0, Some(30303), Reject::Special),
        ("1.2.3.4", 30303, Some(0), Reject::NoTcp),
        ("1.2.3.4", 30303, None, Reject::NoTcp),
        ("127.0.0.1", 30303, Some(30303), Reject::Unreachable),
        ("192.168.1.1", 30303, Some(30303), Reject::Unreachable),
    ] {
        assert_eq!(
            judge(&record(ip, udp, tcp, true), public),
            Err(why),
            "{ip}:{udp} tcp {tcp:?}"
        );
    }
    assert_eq!(
        judge(&record("1.2.3.4", 30303, Some(30303), false), public),
        Err(Reject::NotEth),
        "a consensus-layer record (no eth entry)"
    );
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    assert!(
        judge(&record("127.0.0.1", 30303, Some(30303), true), loopback).is_ok(),
        "loopback among loopback nodes"
    );
    let mut raw = record("1.2.3.4", 30303, Some(30303), true);
    let last = raw.len() - 1;
    raw[last] ^= 1;
    assert_eq!(judge(&raw, public), Err(Reject::Invalid));
    assert_eq!(judge(&[0xc0], public), Err(Reject::Invalid));
    let restricted = Config {
        netrestrict: Some("10.0.0.0/8".parse().unwrap()),
        ..Config::default()
    };
    assert_eq!(
        candidate(
            &record("1.2.3.4", 30303, Some(30303), true),
            public,
            &me,
            &restricted
        ),
        Err(Reject::Restricted)
    );
}

fn v4_record(key: &SecretKey, tcp: u16) -> Enr {
    Builder::new()
        .ip(Ipv4Addr::LOCALHOST.into())
        .udp(1)
        .tcp(tcp)
        .raw(b"eth", ETH.to_vec())
        .unwrap()
        .build(7, key)
        .unwrap()
}

async fn socket() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

#[tokio::test]
async fn the_v5_record_is_ours_with_the_v5_port() {
    let k = key();
    let v4 = v4_record(&k, 4000);
    let (tx, _rx) = mpsc::channel(4);
    let h = spawn(socket().await, &k, &v4, Config::default(), tx)
        .await
        .unwrap();
    let r = h.local_enr().unwrap();
    assert_eq!(r.node_id(), v4.node_id(), "one key, one node id");
    assert_eq!(r.seq(), v4.seq());
    assert_eq!(r.ip4(), v4.ip4());
    assert_eq!(r.tcp(), Some(4000));
    assert_eq!(r.udp(), Some(h.local_addr().port()));
    assert_eq!(r.eth(), v4.eth());
    let eth2 = [0xc7, 0xc6, 0x84, 9, 9, 9, 9, 0x80];
    h.set_eth_entry(&eth2).unwrap();
    let r2 = h.local_enr().unwrap();
    assert_eq!(r2.get_raw(b"eth"), Some(&eth2[..]));
    assert!(r2.seq() > r.seq());
}

/// A peer whose table holds records with garbage endpoints (and one good node) serves them
/// in NODES; only the good one reaches our dialer, the others are counted as rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_the_network_never_reaches_the_dialer() {
    let pk = key();
    let (ptx, _prx) = mpsc::channel(1);
    let peer = spawn(
        socket().await,
        &pk,
        &v4_record(&pk, 5000),
        Config::default(),
        ptx,
    )
    .await
    .unwrap();
    let good_key = key();
    let good = Builder::new()
        .ip(Ipv4Addr::LOCALHOST.into())
        .udp(9)
        .tcp(4444)
        .raw(b"eth", ETH.to_vec())
        .unwrap()
        .build(1, &good_key)
        .unwrap();
    peer.add_enr(&good).unwrap();
    for ip in ["0.0.0.0", "224.0.0.1", "255.255.255.255"] {
        let bad = Builder::new()
            .ip(ip.parse().unwrap())
            .udp(30303)
            .tcp(30303)
            .raw(b"eth", ETH.to_vec())
            .unwrap()
            .build(1, &key())
            .unwrap();
        // The crate may refuse some of these itself; what it takes is served.
        let _ = peer.add_enr(&bad);
    }
    let tcp0 = Builder::new()
        .ip(Ipv4Addr::LOCALHOST.into())
        .udp(7)
        .tcp(0)
        .raw(b"eth", ETH.to_vec())
        .unwrap()
        .build(1, &key())
        .unwrap();
    peer.add_enr(&tcp0).unwrap();
    let served = peer.table_len();
    assert!(served >= 2, "the peer serves the good and the tcp-0 record");

    let k = key();
    let (tx, mut rx) = mpsc::channel(8);
    let cfg = Config {
        bootnodes: vec![peer.local_enr().unwrap()],
        lookup_interval: Duration::from_millis(200),
        ..Config::default()
    };
    let me = spawn(socket().await, &k, &v4_record(&k, 6000), cfg, tx)
        .await
        .unwrap();
    let mut status = me.status();
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            {
                let s = status.borrow_and_update();
                if s.sent >= 1 && (s.sent + s.rejected) as usize >= served {
                    return;
                }
            }
            status.changed().await.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("lookups judged the records: {:?}", *me.status().borrow()));
    assert!(
        me.status().borrow().rejected >= 1,
        "garbage was served and rejected"
    );
    let mut dialled = Vec::new();
    while let Ok(n) = rx.try_recv() {
        dialled.push(n);
    }
    assert!(!dialled.is_empty());
    for n in &dialled {
        assert_eq!(n.id, good.node_id(), "only the good record: {n:?}");
        assert_eq!((n.ip, n.tcp), (IpAddr::V4(Ipv4Addr::LOCALHOST), 4444));
    }
}

#[tokio::test]
async fn too_many_bootnodes_is_an_error() {
    let k = key();
    let b = v4_record(&key(), 1);
    let cfg = Config {
        bootnodes: vec![b; MAX_BOOTNODES + 1],
        ..Config::default()
    };
    let (tx, _rx) = mpsc::channel(1);
    assert!(matches!(
        spawn(socket().await, &k, &v4_record(&k, 1), cfg, tx).await,
        Err(Error::TooManyBootnodes(_))
    ));
}
