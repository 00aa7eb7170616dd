//! The listening side's writes: `conn::accept_hello` sends the `ack` and our Hello in one
//! write (one segment and one syscall per accepted peer fewer than `accept` + `hello`), and
//! the id in our Hello is our static key's (derived once per key).

use rlpx::{Config, Protocol, conn, handshake};
use secp256k1::{PublicKey, SecretKey};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

/// A duplex end that counts the writes made through it.
struct Counted {
    io: DuplexStream,
    writes: Arc<AtomicUsize>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Runs a handshake and Hello exchange against a listener wrapped in [`Counted`]; returns
/// how many writes the listener made.
async fn listener_writes(merged: bool) -> usize {
    let cfg = Config {
        protocols: vec![Protocol::new("eth", 68, 17)],
        ..Config::default()
    };
    let (a_io, b_io) = tokio::io::duplex(64 * 1024);
    let writes = Arc::new(AtomicUsize::new(0));
    let b_io = Counted {
        io: b_io,
        writes: writes.clone(),
    };
    let (a_key, b_key) = (
        SecretKey::new(&mut rand::rng()),
        SecretKey::new(&mut rand::rng()),
    );
    let b_id = PublicKey::from_secret_key_global(&b_key);
    let dial = async {
        let hs = conn::connect(a_io, None, &a_key, b_id, &cfg).await.unwrap();
        hs.hello(&a_key, &cfg).await.unwrap()
    };
    let listen = async {
        if merged {
            conn::accept_hello(b_io, None, &b_key, &cfg).await.unwrap()
        } else {
            let hs = conn::accept(b_io, None, &b_key, &cfg).await.unwrap();
            hs.hello(&b_key, &cfg).await.unwrap()
        }
    };
    let (a, b) = tokio::join!(dial, listen);
    // Both sides proved their keys, and the Hellos name them.
    assert_eq!(a.remote_hello().public_key(), Some(b_id));
    assert_eq!(
        b.remote_hello().public_key(),
        Some(PublicKey::from_secret_key_global(&a_key))
    );
    writes.load(Ordering::Relaxed)
}

#[tokio::test]
async fn accept_hello_sends_ack_and_hello_in_one_write() {
    assert_eq!(listener_writes(true).await, 1);
    // The two steps apart write twice: what the merged path saves.
    assert_eq!(listener_writes(false).await, 2);
}

#[test]
fn static_id_is_the_keys_node_id() {
    for _ in 0..3 {
        let key = SecretKey::new(&mut rand::rng());
        let want = handshake::id_bytes(&PublicKey::from_secret_key_global(&key));
        assert_eq!(handshake::static_id(&key), want);
        assert_eq!(handshake::static_id(&key), want, "remembered");
    }
    // More keys than it remembers: still right for every one.
    let keys: Vec<SecretKey> = (0..100).map(|_| SecretKey::new(&mut rand::rng())).collect();
    for key in keys.iter().chain(keys.iter()) {
        let want = handshake::id_bytes(&PublicKey::from_secret_key_global(key));
        assert_eq!(handshake::static_id(key), want);
    }
}
