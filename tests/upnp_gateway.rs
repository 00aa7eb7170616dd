//! `--nat upnp` against a real gateway: Debian's `miniupnpd` (nftables backend) routing
//! between two network namespaces made for the test.
//!
//! ```text
//!  LAN netns                 gateway netns (miniupnpd)              WAN netns
//!  devp2p node  lan0 ─veth─ gwl0 192.168.77.1   gww0 EXT ─veth─ wan0 EXT_PEER
//!  192.168.77.2
//! ```
//!
//! The `devp2p node` binary runs in the LAN namespace with `--nat upnp`: it finds the
//! gateway by SSDP multicast, maps its TCP and UDP ports, and puts the gateway's external
//! address into its record. The test checks the mappings as the gateway shows them
//! (`upnpc -l`, its lease file, the DNAT rules it added), reaches the node through them
//! from the WAN side (an RLPx handshake and a discovery lookup, from a thread moved into
//! the WAN namespace), then stops the node with SIGINT and checks that every mapping is
//! gone.
//!
//! Needs root, `ip` (iproute2), `nft`, `miniupnpd` and `upnpc` (scripts/test.sh installs
//! them); prints why and passes when any is missing.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use devp2p::cmd::testnet::netns::{find_tool, is_root, run};
use discovery::Node as Enode;

/// The gateway's external address. Any address outside the reserved ranges: miniupnpd
/// refuses to map ports behind a private or documentation address, and the namespaces
/// route it nowhere but between themselves.
const EXT: Ipv4Addr = Ipv4Addr::new(11, 22, 33, 44);
/// A host on the WAN side.
const EXT_PEER: Ipv4Addr = Ipv4Addr::new(11, 22, 33, 1);
const LAN_GW: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);
const LAN_NODE: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 2);
/// Bounds the whole test: the SSDP search, mapping and handshakes take a few seconds.
const LIMIT: Duration = Duration::from_secs(30);

/// The gateway's filter and NAT chains, as a router has them, with the chains miniupnpd
/// fills (its defaults renamed by `upnp_*` in the config below). The forward policy is
/// drop: only replies, the LAN's own traffic and what miniupnpd opens pass.
const RULES: &str = r#"
table inet miniupnpd {
    chain forward {
        type filter hook forward priority 0; policy drop;
        ct state established,related accept
        iifname "gwl0" accept
        jump miniupnpd
    }
    chain miniupnpd { }
    chain prerouting {
        type nat hook prerouting priority -100; policy accept;
        jump prerouting_miniupnpd
    }
    chain postrouting {
        type nat hook postrouting priority 100; policy accept;
        jump postrouting_miniupnpd
    }
    chain prerouting_miniupnpd { }
    chain postrouting_miniupnpd { }
}
"#;

struct Tools {
    ip: PathBuf,
    nft: PathBuf,
    miniupnpd: PathBuf,
    upnpc: PathBuf,
}

/// The namespaces, the daemon and the scratch directory; all removed on drop (a panic
/// included). Deleting a namespace deletes its veth ends.
struct Lab {
    tools: Tools,
    lan: String,
    gw: String,
    wan: String,
    made: Vec<String>,
    dir: PathBuf,
    daemon: Option<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(d) = &mut self.daemon {
            let _ = d.kill();
            let _ = d.wait();
        }
        for ns in &self.made {
            let _ = run(&self.tools.ip, &["netns", "del", ns]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Lab {
    /// Runs `prog args` inside namespace `ns`.
    fn exec(&self, ns: &str, prog: &Path, args: &[&str]) -> Result<String, String> {
        let prog = prog.to_string_lossy();
        let mut all = vec!["netns", "exec", ns, &prog];
        all.extend_from_slice(args);
        run(&self.tools.ip, &all)
    }

    fn ip(&self, args: &[&str]) -> Result<String, String> {
        run(&self.tools.ip, args)
    }

    /// Makes the namespaces and links; `Err` says what the machine does not allow.
    fn build(tools: Tools) -> Result<Lab, String> {
        let tag = format!("dp{}", std::process::id());
        let dir = std::env::temp_dir().join(format!("devp2p-upnp-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut lab = Lab {
            tools,
            lan: format!("{tag}-lan"),
            gw: format!("{tag}-gw"),
            wan: format!("{tag}-wan"),
            made: Vec::new(),
            dir,
            daemon: None,
        };
        for ns in [lab.lan.clone(), lab.gw.clone(), lab.wan.clone()] {
            lab.ip(&["netns", "add", &ns])?;
            lab.made.push(ns);
        }
        let (lan, gw, wan) = (lab.lan.clone(), lab.gw.clone(), lab.wan.clone());
        let cidr = |ip: Ipv4Addr| format!("{ip}/24");
        #[rustfmt::skip]
        let steps: Vec<Vec<String>> = vec![
            vec!["link", "add", "lan0", "netns", &lan, "type", "veth", "peer", "name", "gwl0", "netns", &gw],
            vec!["link", "add", "gww0", "netns", &gw, "type", "veth", "peer", "name", "wan0", "netns", &wan],
            vec!["-n", &lan, "addr", "add", &cidr(LAN_NODE), "dev", "lan0"],
            vec!["-n", &gw, "addr", "add", &cidr(LAN_GW), "dev", "gwl0"],
            vec!["-n", &gw, "addr", "add", &cidr(EXT), "dev", "gww0"],
            vec!["-n", &wan, "addr", "add", &cidr(EXT_PEER), "dev", "wan0"],
            vec!["-n", &lan, "link", "set", "lan0", "up"],
            vec!["-n", &lan, "link", "set", "lo", "up"],
            vec!["-n", &gw, "link", "set", "gwl0", "up"],
            vec!["-n", &gw, "link", "set", "gww0", "up"],
            vec!["-n", &gw, "link", "set", "lo", "up"],
            vec!["-n", &wan, "link", "set", "wan0", "up"],
            vec!["-n", &wan, "link", "set", "lo", "up"],
            vec!["-n", &lan, "route", "add", "default", "via", &LAN_GW.to_string()],
            // SSDP's M-SEARCH goes to 239.255.255.250 out of the LAN link.
            vec!["-n", &lan, "route", "add", "239.0.0.0/8", "dev", "lan0"],
        ]
        .into_iter()
        .map(|v| v.into_iter().map(String::from).collect())
        .collect();
        for s in &steps {
            lab.ip(&s.iter().map(String::as_str).collect::<Vec<_>>())?;
        }
        let sh = Path::new("/bin/sh");
        lab.exec(&gw, sh, &["-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"])?;
        let rules = lab.dir.join("rules.nft");
        std::fs::write(&rules, RULES).map_err(|e| e.to_string())?;
        let nft = lab.tools.nft.clone();
        lab.exec(&gw, &nft, &["-f", &rules.to_string_lossy()])?;
        Ok(lab)
    }

    fn leases(&self) -> PathBuf {
        self.dir.join("upnp.leases")
    }

    /// Starts miniupnpd in the gateway namespace and waits until it listens.
    fn start_gateway(&mut self) -> Result<(), String> {
        let conf = self.dir.join("miniupnpd.conf");
        std::fs::write(
            &conf,
            format!(
                "ext_ifname=gww0\nlistening_ip=gwl0\nport=0\nenable_upnp=yes\n\
                 enable_natpmp=yes\nsecure_mode=yes\nsystem_uptime=no\nipv6_disable=yes\n\
                 lease_file={}\nuuid=5f1c1d0e-8a43-4e37-9d5b-0b8f2a6c7e11\n\
                 upnp_table_name=miniupnpd\nupnp_nat_table_name=miniupnpd\n\
                 allow 1024-65535 192.168.77.0/24 1024-65535\n\
                 deny 0-65535 0.0.0.0/0 0-65535\n",
                self.leases().display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let log_path = self.dir.join("miniupnpd.log");
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let pid = self.dir.join("miniupnpd.pid");
        let child = Command::new(&self.tools.ip)
            .args(["netns", "exec", &self.gw])
            .arg(&self.tools.miniupnpd)
            .args(["-d", "-f"])
            .arg(&conf)
            .arg("-P")
            .arg(&pid)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("miniupnpd: {e}"))?;
        self.daemon = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text =
                String::from_utf8_lossy(&std::fs::read(&log_path).unwrap_or_default()).into_owned();
            // Logged once its SSDP, HTTP and NAT-PMP sockets are open.
            if text.contains("Listening for NAT-PMP") {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.daemon.as_mut().map(Child::try_wait) {
                return Err(format!("miniupnpd exited ({status}): {text}"));
            }
            if Instant::now() > deadline {
                return Err(format!("miniupnpd did not start: {text}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The mappings as a UPnP client on the LAN lists them: (protocol, external port,
    /// internal client, internal port, description).
    fn upnp_list(&self) -> Vec<(String, u16, String, u16, String)> {
        let out = self
            .exec(&self.lan, &self.tools.upnpc, &["-l"])
            .unwrap_or_else(|e| panic!("upnpc -l: {e}"));
        // Lines like ` 0 TCP 30303->192.168.77.2:30303 'devp2p' '' 1199`.
        out.lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let _index: u32 = w.next()?.parse().ok()?;
                let proto = w.next()?.to_string();
                let (ext, int) = w.next()?.split_once("->")?;
                let (client, port) = int.rsplit_once(':')?;
                let desc = w.next()?.trim_matches('\'').to_string();
                Some((
                    proto,
                    ext.parse().ok()?,
                    client.to_string(),
                    port.parse().ok()?,
                    desc,
                ))
            })
            .collect()
    }

    /// The DNAT rules miniupnpd put in its chain.
    fn dnat_rules(&self) -> String {
        self.exec(
            &self.gw,
            &self.tools.nft,
            &["list", "chain", "inet", "miniupnpd", "prerouting_miniupnpd"],
        )
        .unwrap_or_else(|e| panic!("nft: {e}"))
        .lines()
        .filter(|l| l.contains("dnat"))
        .collect::<Vec<_>>()
        .join("\n")
    }

    /// Runs `f` on a thread inside the WAN namespace (`setns` moves only that thread), on
    /// a runtime of its own: the sockets it opens are the WAN host's.
    fn on_wan<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/var/run/netns/{}", self.wan);
        std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            let ns = std::fs::File::open(&path).expect("WAN namespace");
            // SAFETY: a valid namespace fd and flag; only this thread changes namespace.
            let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
    }
}

/// One JSON log line of the node, if it is the "external endpoint" event: (enode, enr).
fn external_endpoint(line: &str) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let f = v.get("fields")?;
    if f.get("message")?.as_str()? != "external endpoint" {
        return None;
    }
    Some((
        f.get("enode")?.as_str()?.to_string(),
        f.get("enr")?.as_str()?.to_string(),
    ))
}

fn setup() -> Option<Lab> {
    const NAME: &str = "upnp_gateway";
    if !is_root() {
        println!("{NAME}: skipped, needs root (network namespaces)");
        return None;
    }
    let tool = |t: &str| {
        let p = find_tool(t);
        if p.is_none() {
            println!("{NAME}: skipped, `{t}` not installed (scripts/test.sh installs it)");
        }
        p
    };
    let tools = Tools {
        ip: tool("ip")?,
        nft: tool("nft")?,
        miniupnpd: tool("miniupnpd")?,
        upnpc: tool("upnpc")?,
    };
    match Lab::build(tools) {
        Ok(mut lab) => match lab.start_gateway() {
            Ok(()) => Some(lab),
            Err(e) => {
                println!("{NAME}: skipped, miniupnpd cannot run here: {e}");
                None
            }
        },
        Err(e) => {
            println!("{NAME}: skipped, cannot make network namespaces here: {e}");
            None
        }
    }
}

/// Kills the node on drop (a failed assertion must not leave it running).
struct NodeProc(Child);

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn node_maps_and_unmaps_ports_on_miniupnpd() {
    let Some(lab) = setup() else { return };
    let start = Instant::now();
    let datadir = lab.dir.join("node");
    let mut node = Command::new(&lab.tools.ip)
        .args(["netns", "exec", &lab.lan, env!("CARGO_BIN_EXE_devp2p")])
        .args(["--log-json", "--log-level", "info", "node", "--port", "0"])
        .args([
            "--nat",
            "upnp",
            "--no-dns-discovery",
            "--status-interval",
            "0",
        ])
        .arg("--datadir")
        .arg(&datadir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("devp2p node");
    let stdout = node.stdout.take().expect("stdout");
    let stderr = node.stderr.take().expect("stderr");
    let node = NodeProc(node);
    // `ip netns exec` execs the command: the child is the node itself.
    let pid = i32::try_from(node.0.id()).expect("pid");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    let mut found = None;
    while found.is_none() {
        let left = LIMIT.saturating_sub(start.elapsed());
        match lines.recv_timeout(left) {
            Ok(l) => {
                found = external_endpoint(&l);
                log.push(l);
            }
            Err(_) => panic!("no external endpoint in time; log:\n{}", log.join("\n")),
        }
    }
    let (enode, enr) = found.expect("found");
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("node stdout");
    let started: Enode = devp2p::node::parse_enode(first.trim()).expect("enode on stdout");
    let by_url = devp2p::node::parse_enode(&enode).expect("enode URL");
    let by_record = devp2p::node::parse_enode(&enr).expect("ENR");
    let want = Enode {
        ip: IpAddr::V4(EXT),
        ..started
    };
    assert_eq!(by_url, want, "enode URL carries the external address");
    assert_eq!(by_record, want, "record carries the external address");

    // The gateway's view: both ports mapped to the node, as asked.
    let listed = lab.upnp_list();
    for proto in ["TCP", "UDP"] {
        let port = if proto == "TCP" { want.tcp } else { want.udp };
        assert!(
            listed.iter().any(|m| m
                == &(
                    proto.to_string(),
                    port,
                    LAN_NODE.to_string(),
                    port,
                    "devp2p".to_string()
                )),
            "{proto} {port} not in {listed:?}"
        );
    }
    let leases = std::fs::read_to_string(lab.leases()).unwrap_or_default();
    assert_eq!(leases.lines().count(), 2, "{leases}");
    let rules = lab.dnat_rules();
    assert_eq!(rules.lines().count(), 2, "{rules}");
    assert!(
        rules.contains(&format!("dnat ip to {LAN_NODE}:{}", want.tcp)),
        "{rules}"
    );

    // From the Internet side, through the mappings: an RLPx handshake to the external
    // TCP port, and a discovery lookup via the external UDP port.
    let probe = lab.on_wan(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let key = secp256k1::SecretKey::new(&mut rand::rng());
            let remote = want.id.public_key().expect("node key");
            let rlpx =
                rlpx::conn::connect_tcp(want.tcp_addr(), &key, remote, &rlpx::Config::default())
                    .await
                    .map(|c| *c.remote_id() == remote)
                    .map_err(|e| e.to_string());
            let disc = discovery::bind(
                SocketAddr::new(IpAddr::V4(EXT_PEER), 0),
                secp256k1::SecretKey::new(&mut rand::rng()),
                discovery::Config {
                    bootnodes: vec![want],
                    ..discovery::Config::default()
                },
                None,
            )
            .await
            .expect("discovery on the WAN side");
            let answered = tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    let target = discovery::NodeId(rand::random());
                    if let Ok(found) = disc.lookup(target).await
                        && found.iter().any(|n| n.id == want.id)
                    {
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
            .await
            .unwrap_or(false);
            disc.shutdown().await;
            (rlpx, answered)
        })
    });
    let (rlpx, answered) = probe.join().expect("WAN probe");
    assert_eq!(rlpx, Ok(true), "RLPx handshake through the TCP mapping");
    assert!(answered, "discovery answered through the UDP mapping");

    // SIGINT: the node removes its mappings before it exits.
    // SAFETY: signalling our own child by its pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let mut node = node;
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = node.0.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "node did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    assert_eq!(lab.upnp_list(), vec![], "mappings removed");
    assert_eq!(lab.dnat_rules(), "", "DNAT rules removed");
    let leases = std::fs::read_to_string(lab.leases()).unwrap_or_default();
    assert!(leases.trim().is_empty(), "{leases}");
    assert!(start.elapsed() < LIMIT, "took {:?}", start.elapsed());
}
