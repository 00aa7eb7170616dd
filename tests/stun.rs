//! `--nat stun:` against a real STUN server: Debian's coturn (`turnserver --stun-only`)
//! on loopback answers our Binding requests over IPv4 and IPv6, and a node started with
//! `--nat stun:127.0.0.1:PORT` advertises the address it reports. Prints why and passes
//! when `turnserver` is not installed (scripts/test.sh installs it as root).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use devp2p::nat::stun;
use devp2p::node::{Config, Nat, Node};
use tokio::net::UdpSocket;

/// Bounds each wait: a loopback STUN answer takes microseconds; coturn starts in well
/// under a second.
const LIMIT: Duration = Duration::from_secs(15);

fn turnserver() -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/bin", "/usr/sbin"])
        .map(|d| PathBuf::from(d).join("turnserver"))
        .find(|p| p.is_file());
    if found.is_none() {
        println!("skipped: coturn's `turnserver` is not installed (scripts/test.sh installs it)");
    }
    found
}

fn has_ipv6_loopback() -> bool {
    std::net::UdpSocket::bind("[::1]:0").is_ok()
}

/// A coturn STUN server on a free loopback port, killed on drop.
struct Server {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Server {
    /// Starts `turnserver` STUN-only on 127.0.0.1 (and ::1 when there), and waits until
    /// it answers.
    async fn start(bin: PathBuf, name: &str) -> Server {
        // coturn takes a fixed port: take a free one from the kernel and hand it over.
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("devp2p-stun-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = Command::new(bin);
        cmd.args(["-n", "--stun-only", "--no-cli", "--no-tls", "--no-dtls"])
            .args(["--listening-ip", "127.0.0.1"]);
        if has_ipv6_loopback() {
            cmd.args(["--listening-ip", "::1"]);
        }
        cmd.args(["--listening-port", &port.to_string()])
            .arg("--pidfile")
            .arg(dir.join("turnserver.pid"))
            .arg("--log-file")
            .arg(dir.join("turnserver.log"))
            .arg("--userdb")
            .arg(dir.join("turndb"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let server = Server {
            child: cmd.spawn().expect("turnserver"),
            port,
            dir,
        };
        let addr = server.v4();
        tokio::time::timeout(LIMIT, async {
            while stun::query(addr).await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .expect("turnserver answers");
        server
    }

    fn v4(&self) -> SocketAddr {
        SocketAddr::new(Ipv4Addr::LOCALHOST.into(), self.port)
    }
}

#[tokio::test]
async fn binding_request_returns_our_address() {
    let Some(bin) = turnserver() else { return };
    let server = Server::start(bin, "query").await;
    // The mapped address is the querying socket's own: the port proves the XOR decoding.
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mapped = stun::query_on(&socket, server.v4()).await.unwrap();
    assert_eq!(mapped, socket.local_addr().unwrap());
    if has_ipv6_loopback() {
        // IPv6 addresses are XOR-ed with the transaction id too.
        let socket = UdpSocket::bind("[::1]:0").await.unwrap();
        let v6 = SocketAddr::new("::1".parse().unwrap(), server.port);
        let mapped = stun::query_on(&socket, v6).await.unwrap();
        assert_eq!(mapped, socket.local_addr().unwrap());
    }
    let ip = stun::external_ip(&[format!("127.0.0.1:{}", server.port)])
        .await
        .unwrap();
    assert_eq!(ip, IpAddr::from(Ipv4Addr::LOCALHOST));
}

/// Nobody listening: the query fails in bounded time.
#[tokio::test]
async fn silent_server_is_given_up_on() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let r = tokio::time::timeout(LIMIT, stun::query(silent.local_addr().unwrap()))
        .await
        .expect("bounded");
    assert!(r.is_err(), "{r:?}");
}

/// A node bound to 127.0.0.2 with `--nat stun:` advertises 127.0.0.1, the address the
/// server saw its query come from, with its own ports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_advertises_the_stun_address() {
    let Some(bin) = turnserver() else { return };
    let server = Server::start(bin, "node").await;
    let dir = server.dir.join("node");
    let nat: Nat = format!("stun:127.0.0.1:{}", server.port).parse().unwrap();
    let node = Node::builder(Config {
        nat,
        addr: Ipv4Addr::new(127, 0, 0, 2).into(),
        no_discovery: false,
        ..Config::local(&dir)
    })
    .start()
    .await
    .unwrap();
    // Discovery's node as of start (the enode URL may have moved already).
    let started = node.discovery().unwrap().local_node();
    assert_eq!(started.ip, IpAddr::from([127, 0, 0, 2]));
    let mut enode = node.subscribe_enode();
    tokio::time::timeout(
        LIMIT,
        enode.wait_for(|e| e.ip == IpAddr::from(Ipv4Addr::LOCALHOST)),
    )
    .await
    .expect("STUN address in time")
    .unwrap();
    assert_eq!(
        node.enode(),
        discovery::Node {
            ip: Ipv4Addr::LOCALHOST.into(),
            ..started
        }
    );
    let enr = node.discovery().unwrap().local_enr().await.unwrap();
    assert_eq!(enr.ip4(), Some(Ipv4Addr::LOCALHOST));
    assert_eq!(enr.tcp(), Some(started.tcp), "own ports: nothing mapped");
    node.shutdown().await;
}
