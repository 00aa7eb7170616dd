//! The end-to-end cases through the async `Peer` API: handshakes over a duplex, and one
//! session's throughput over a duplex (receiver on the `block_on` thread or a task) or over
//! loopback TCP to a sender in a child process.

use super::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Receives `count` messages, each checked to be code 2 with payload `want` (a memcmp,
/// cheap next to decrypting and decompressing it: what is timed works); their bytes.
async fn receive(rx: &mut rlpx::ProtocolHandle, want: &[u8], count: usize) -> usize {
    let mut bytes = 0;
    for i in 0..count {
        let (code, data) = rx.recv().await.unwrap();
        assert!(code == 2 && data == want, "message {i} arrived altered");
        bytes += data.len();
    }
    bytes
}

/// Sessions sharing one protocol shaped like eth/68, with default limits.
fn eth_config() -> rlpx::Config {
    rlpx::Config {
        protocols: vec![rlpx::Protocol::new("eth", 68, 17)],
        ..Default::default()
    }
}

pub(crate) fn async_handshakes(n: usize) -> f64 {
    let rt = runtime();
    rt.block_on(async {
        let cfg = eth_config();
        let (a, b) = (
            SecretKey::new(&mut rand::rng()),
            SecretKey::new(&mut rand::rng()),
        );
        let b_pub = PublicKey::from_secret_key_global(&b);
        let start = Instant::now();
        for _ in 0..n {
            let (x, y) = tokio::io::duplex(64 * 1024);
            let (pa, pb) = tokio::join!(
                rlpx::conn::dial(x, None, &a, b_pub, &cfg),
                rlpx::conn::listen_one(y, None, &b, &cfg)
            );
            drop((pa.unwrap(), pb.unwrap()));
        }
        n as f64 / start.elapsed().as_secs_f64()
    })
}

/// Payload bytes per second through the `Peer` API over a duplex, and the CPU time of
/// the whole process (both sessions, the sender and the receiver) per payload byte. The
/// receiver runs on the `block_on` thread, or in a spawned `task` (as a node's protocol
/// handlers do).
pub(crate) fn async_throughput(payload: &[u8], total: usize, task: bool) -> (f64, f64) {
    let rt = runtime();
    let payload = Bytes::copy_from_slice(payload);
    rt.block_on(async move {
        let cfg = eth_config();
        let (a, b) = (
            SecretKey::new(&mut rand::rng()),
            SecretKey::new(&mut rand::rng()),
        );
        let b_pub = PublicKey::from_secret_key_global(&b);
        let (x, y) = tokio::io::duplex(1 << 20);
        let (pa, pb) = tokio::join!(
            rlpx::conn::dial(x, None, &a, b_pub, &cfg),
            rlpx::conn::listen_one(y, None, &b, &cfg)
        );
        let (mut pa, mut pb) = (pa.unwrap(), pb.unwrap());
        let tx = pa.take_protocol("eth").unwrap();
        let mut rx = pb.take_protocol("eth").unwrap();
        let count = (total / payload.len()).max(4);
        let want = payload.clone();
        let cpu = process_cpu();
        let start = Instant::now();
        let sender = tokio::spawn(async move {
            for _ in 0..count {
                tx.send(2, payload.clone()).await.unwrap();
            }
            tx
        });
        let bytes = if task {
            // As a node runs its protocol handlers.
            let received = tokio::spawn(async move { receive(&mut rx, &want, count).await });
            received.await.unwrap()
        } else {
            receive(&mut rx, &want, count).await
        };
        let secs = start.elapsed().as_secs_f64();
        let cpu = process_cpu() - cpu;
        drop(sender.await);
        (bytes as f64 / secs, cpu.as_secs_f64() / bytes as f64)
    })
}

/// Throughput over loopback TCP from a sender in a child process (this binary with
/// `--tcp-sender`): the receiving side runs here, as a node's would. The child sends
/// `total / payload.len()` copies of `payload`, prints the CPU time its threads used
/// from the first message on, and exits. Returns bytes per second and the CPU time of
/// both processes per payload byte.
pub(crate) fn tcp_throughput(payload: &[u8], total: usize) -> (f64, f64) {
    let rt = runtime();
    rt.block_on(async move {
        let cfg = eth_config();
        let key = SecretKey::new(&mut rand::rng());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = (total / payload.len()).max(4);
        let exe = std::env::current_exe().unwrap();
        let mut child = std::process::Command::new(exe)
            .arg("--tcp-sender")
            .arg(addr.to_string())
            .arg(hex::encode(id_bytes(&PublicKey::from_secret_key_global(
                &key,
            ))))
            .arg(count.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The payload goes through stdin (1 MiB is too long for an argument).
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(payload).unwrap();
        }
        let (stream, peer_addr) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut peer = rlpx::conn::listen_one(stream, Some(peer_addr), &key, &cfg)
            .await
            .unwrap();
        let mut rx = peer.take_protocol("eth").unwrap();
        // The clock starts at the first message: the child's start-up and handshake are
        // not part of the session's throughput.
        let (code, first) = rx.recv().await.unwrap();
        assert!(
            code == 2 && first == payload,
            "first message arrived altered"
        );
        let cpu = process_cpu();
        let start = Instant::now();
        let bytes = receive(&mut rx, payload, count - 1).await;
        let secs = start.elapsed().as_secs_f64();
        let cpu = process_cpu() - cpu;
        // Closing the session lets the child exit.
        drop((rx, peer));
        let out = child.wait_with_output().unwrap();
        let child_ns: u64 = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("cpu_ns ")?.parse().ok())
            .expect("the sender reports its CPU time");
        let cpu = cpu + Duration::from_nanos(child_ns);
        (bytes as f64 / secs, cpu.as_secs_f64() / bytes as f64)
    })
}

/// The child side of [`tcp_throughput`]: `ADDR ID COUNT`, the payload on stdin.
pub(crate) fn tcp_sender(args: &[String]) {
    let addr: std::net::SocketAddr = args[0].parse().unwrap();
    let mut id = [0u8; 65];
    id[0] = 4;
    hex::decode_to_slice(&args[1], &mut id[1..]).unwrap();
    let remote = PublicKey::from_slice(&id).unwrap();
    let mut payload = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin(), &mut payload).unwrap();
    let payload = Bytes::from(payload);
    let count: usize = args[2].parse().unwrap();
    runtime().block_on(async move {
        let cfg = eth_config();
        let key = SecretKey::new(&mut rand::rng());
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut peer = rlpx::conn::dial(stream, Some(addr), &key, remote, &cfg)
            .await
            .unwrap();
        let tx = peer.take_protocol("eth").unwrap();
        let cpu = process_cpu();
        for _ in 0..count {
            tx.send(2, payload.clone()).await.unwrap();
        }
        // Everything queued: wait for the receiver to have it all (it closes after).
        let _ = tokio::time::timeout(Duration::from_secs(60), peer.closed()).await;
        println!("cpu_ns {}", (process_cpu() - cpu).as_nanos());
        drop(tx);
    });
}
