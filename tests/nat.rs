//! Port mapping against a NAT-PMP gateway speaking RFC 6886 on 127.0.0.1 (a responder
//! written here from the RFC, independent of the client's codec): the ports are mapped,
//! renewed before the lifetime ends, reported as the external endpoint (and put into a
//! node's ENR), and deleted at shutdown.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use devp2p::nat::{self, External, Method};
use devp2p::node::{Config, Nat, Node};
use tokio::net::UdpSocket;

/// The external address the gateway reports (TEST-NET-3).
const EXT_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 9);
/// Lifetime the gateway grants at most: short, so a renewal comes within a second.
const GRANT: u32 = 2;
/// Bounds each wait.
const LIMIT: Duration = Duration::from_secs(20);

/// What the gateway saw: requests (opcode, internal port, asked external port,
/// lifetime) in order, and its mapping table (opcode, internal port) → external port.
#[derive(Default)]
struct Log {
    requests: Vec<(u8, u16, u16, u32)>,
    table: HashMap<(u8, u16), u16>,
}

/// A NAT-PMP gateway on a free loopback port. Assigns external port = internal + 10000
/// on first mapping, keeps it on renewal, deletes on lifetime 0.
async fn gateway() -> (SocketAddr, Arc<Mutex<Log>>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let log = Arc::new(Mutex::new(Log::default()));
    let l = log.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 64];
        let epoch = 7u32;
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let req = &buf[..n];
            let mut out = Vec::new();
            match req {
                // §3.2: external address request.
                [0, 0] => {
                    out.extend_from_slice(&[0, 128, 0, 0]);
                    out.extend_from_slice(&epoch.to_be_bytes());
                    out.extend_from_slice(&EXT_IP.octets());
                }
                // §3.3: mapping request, UDP (1) or TCP (2).
                [0, op @ (1 | 2), 0, 0, rest @ ..] if rest.len() == 8 => {
                    let internal = u16::from_be_bytes([rest[0], rest[1]]);
                    let asked = u16::from_be_bytes([rest[2], rest[3]]);
                    let life = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
                    let mut log = l.lock().unwrap();
                    log.requests.push((*op, internal, asked, life));
                    let (external, granted) = if life == 0 {
                        log.table.remove(&(*op, internal));
                        (0, 0)
                    } else {
                        let e = *log
                            .table
                            .entry((*op, internal))
                            .or_insert(internal.wrapping_add(10000));
                        (e, life.min(GRANT))
                    };
                    out.extend_from_slice(&[0, 128 + op, 0, 0]);
                    out.extend_from_slice(&epoch.to_be_bytes());
                    out.extend_from_slice(&internal.to_be_bytes());
                    out.extend_from_slice(&external.to_be_bytes());
                    out.extend_from_slice(&granted.to_be_bytes());
                }
                // §3.5: unsupported opcode (result code 5), or a short packet ignored.
                [0, op, ..] => {
                    out.extend_from_slice(&[0, 128 | op, 0, 5]);
                    out.extend_from_slice(&epoch.to_be_bytes());
                }
                _ => continue,
            }
            let _ = socket.send_to(&out, from).await;
        }
    });
    (addr, log)
}

async fn wait_for<T>(rx: &mut tokio::sync::watch::Receiver<T>, mut ok: impl FnMut(&T) -> bool) {
    tokio::time::timeout(LIMIT, rx.wait_for(|v| ok(v)))
        .await
        .expect("in time")
        .expect("task alive");
}

#[tokio::test]
async fn pmp_maps_renews_and_unmaps() {
    let (gw, log) = gateway().await;
    let config = nat::Config::new(Method::Pmp { gateway: Some(gw) }, 30303, 30304);
    let handle = nat::spawn(config);
    let mut ext = handle.subscribe();
    let want = External {
        ip: EXT_IP.into(),
        tcp: 40303,
        udp: 40304,
    };
    wait_for(&mut ext, |e| *e == Some(want)).await;
    // A renewal for each port before the 2 s lifetime ends, asking for the port granted.
    tokio::time::timeout(LIMIT, async {
        loop {
            let renewed = {
                let log = log.lock().unwrap();
                [(2, 30303), (1, 30304)].iter().all(|&(op, port)| {
                    log.requests
                        .iter()
                        .filter(|r| r.0 == op && r.1 == port && r.3 > 0)
                        .count()
                        >= 2
                })
            };
            if renewed {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("renewed");
    {
        let log = log.lock().unwrap();
        let first_tcp = log.requests.iter().find(|r| r.0 == 2).unwrap();
        assert_eq!(first_tcp.2, 30303, "first asks for our own port");
        assert_eq!(first_tcp.3, 20 * 60, "20 minutes asked");
        let renewal = log.requests.iter().filter(|r| r.0 == 2).nth(1).unwrap();
        assert_eq!(renewal.2, 40303, "renewal asks for the port granted");
        assert_eq!(log.table.len(), 2);
    }
    assert_eq!(handle.external(), Some(want));
    handle.shutdown().await;
    let log = log.lock().unwrap();
    assert!(log.table.is_empty(), "mappings deleted: {:?}", log.table);
    let deletes: Vec<_> = log.requests.iter().filter(|r| r.3 == 0).collect();
    assert_eq!(deletes.len(), 2, "{deletes:?}");
    assert!(
        deletes.iter().all(|r| r.2 == 0),
        "RFC 6886 §3.4: external 0"
    );
}

/// No answer from the gateway: the round fails in bounded time and nothing is reported.
#[tokio::test]
async fn silent_gateway_is_given_up_on() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let client = nat::pmp::Client::new(silent.local_addr().unwrap())
        .await
        .unwrap();
    let r = tokio::time::timeout(LIMIT, client.external_ip())
        .await
        .expect("gives up in bounded time");
    assert!(matches!(r, Err(nat::Error::NoGateway(_))), "{r:?}");
}

/// `--nat pmp:GATEWAY` on a node: the mapped endpoint goes into the ENR and
/// the mappings are gone after shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_puts_the_mapped_endpoint_into_its_record() {
    let (gw, log) = gateway().await;
    let dir = std::env::temp_dir().join(format!("devp2p-nat-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let nat: Nat = format!("pmp:{gw}").parse().unwrap();
    let node = Node::builder(Config {
        nat,
        no_discovery: false,
        ..Config::local(&dir)
    })
    .start()
    .await
    .unwrap();
    let disc = node.discovery().unwrap().clone();
    let local = disc.local_node();
    let enr = tokio::time::timeout(LIMIT, async {
        loop {
            let enr = disc.local_enr().await.unwrap();
            if enr.ip4() == Some(EXT_IP) {
                return enr;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("external address in the record");
    assert_eq!(enr.tcp(), Some(local.tcp.wrapping_add(10000)));
    assert_eq!(enr.udp(), Some(local.udp.wrapping_add(10000)));
    // The enode URL follows the mapping too (it was the bound address at start).
    let mut enode = node.subscribe_enode();
    wait_for(&mut enode, |e| e.ip == std::net::IpAddr::V4(EXT_IP)).await;
    let want = discovery::Node {
        ip: EXT_IP.into(),
        tcp: local.tcp.wrapping_add(10000),
        udp: local.udp.wrapping_add(10000),
        ..local
    };
    assert_eq!(node.enode(), want);
    assert_eq!(enr.to_node(), Some(want), "URL and record agree");
    assert_eq!(log.lock().unwrap().table.len(), 2);
    node.shutdown().await;
    assert!(log.lock().unwrap().table.is_empty(), "unmapped at shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Without discovery only the TCP port is mapped; the enode URL still carries the
/// external address and port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enode_follows_the_mapping_without_discovery() {
    let (gw, log) = gateway().await;
    let dir = std::env::temp_dir().join(format!("devp2p-nat-nodisc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let node = Node::builder(Config {
        nat: format!("pmp:{gw}").parse().unwrap(),
        ..Config::local(&dir)
    })
    .start()
    .await
    .unwrap();
    let mut enode = node.subscribe_enode();
    wait_for(&mut enode, |e| e.ip == std::net::IpAddr::V4(EXT_IP)).await;
    let table: Vec<_> = log.lock().unwrap().table.clone().into_iter().collect();
    let [((2, internal), external)] = table[..] else {
        panic!("only TCP mapped: {table:?}");
    };
    assert_eq!(node.enode().tcp, external);
    assert_eq!(external, internal.wrapping_add(10000));
    assert_eq!(node.enode().udp, 0, "no UDP port without discovery");
    node.shutdown().await;
    assert!(log.lock().unwrap().table.is_empty(), "unmapped at shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}
