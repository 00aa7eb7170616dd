//! The async connection setup, as typestates: a byte stream becomes [`Handshaked`] after the
//! ECIES handshake, [`Established`] after the Hello exchange, and a running
//! [`Peer`](crate::Peer) after [`Established::start`]. Nothing can be sent to a subprotocol
//! before both steps succeeded.

use crate::caps::{Shared, negotiate};
use crate::codec::{FrameCodec, MAX_FRAME_SIZE, RawMessage};
use crate::handshake::{self, Initiator, Read, Role, id_bytes};
use crate::p2p::{self, DISCONNECT, DisconnectReason, HELLO, Hello, MAX_HELLO_SIZE};
use crate::{Config, Error};
use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use secp256k1::{PublicKey, SecretKey};
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::{Framed, FramedParts};

/// Any byte stream RLPx can run over (TCP, an in-memory duplex, ...).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// A stream whose ECIES handshake completed: frames are encrypted and authenticated, and we
/// know the remote's node id, but no Hello has been exchanged.
pub struct Handshaked<S> {
    framed: Framed<S, FrameCodec>,
    remote_id: PublicKey,
    role: Role,
    addr: Option<SocketAddr>,
}

async fn read_more<S: Io>(io: &mut S, buf: &mut BytesMut, need: usize) -> Result<(), Error> {
    // `need` is bounded by the handshake size limit checked in `handshake::read_packet`.
    buf.reserve(need.saturating_sub(buf.len()));
    while buf.len() < need {
        if io.read_buf(buf).await.map_err(handshake::Error::Io)? == 0 {
            return Err(handshake::Error::Closed.into());
        }
    }
    Ok(())
}

/// The framed stream after a handshake: `leftover` bytes already read, and `unsent` bytes
/// (a deferred `ack`) to go out with the first frame.
fn framed<S: Io>(
    io: S,
    codec: FrameCodec,
    leftover: BytesMut,
    unsent: BytesMut,
) -> Framed<S, FrameCodec> {
    let mut parts = FramedParts::new::<RawMessage>(io, codec);
    parts.read_buf = leftover;
    parts.write_buf = unsent;
    Framed::from_parts(parts)
}

/// Dials side: sends `auth`, reads `ack`, within `config.handshake_timeout`.
pub async fn connect<S: Io>(
    mut io: S,
    addr: Option<SocketAddr>,
    key: &SecretKey,
    remote_id: PublicKey,
    config: &Config,
) -> Result<Handshaked<S>, Error> {
    let init = Initiator::new(&mut rand::rng(), *key, remote_id);
    let run = async {
        io.write_all(init.auth())
            .await
            .map_err(handshake::Error::Io)?;
        let mut buf = BytesMut::with_capacity(512);
        let mut legacy_tried = false;
        loop {
            match handshake::read_ack(key, &buf, &mut legacy_tried)? {
                Read::NeedMore(n) => read_more(&mut io, &mut buf, n).await?,
                Read::Done(ack, used) => {
                    let _ = buf.split_to(used);
                    return Ok::<_, Error>((ack, buf));
                }
            }
        }
    };
    let (ack, leftover) = tokio::time::timeout(config.handshake_timeout, run)
        .await
        .map_err(|_| Error::Handshake(handshake::Error::Timeout))??;
    let secrets = init.finish(&ack);
    let codec = FrameCodec::new(&secrets);
    Ok(Handshaked {
        framed: framed(io, codec, leftover, BytesMut::new()),
        remote_id,
        role: Role::Initiator,
        addr,
    })
}

/// Listening side: reads `auth`, sends `ack`, within `config.handshake_timeout`.
pub async fn accept<S: Io>(
    io: S,
    addr: Option<SocketAddr>,
    key: &SecretKey,
    config: &Config,
) -> Result<Handshaked<S>, Error> {
    accept_inner(io, addr, key, config, false).await
}

/// Listening side through the Hello exchange: [`accept`] then [`Handshaked::hello`], with
/// the `ack` and our Hello sent in one write (one segment and one syscall fewer per
/// accepted peer than the two steps apart; the initiator may send its Hello as soon as it
/// has the `ack`, so nothing waits on the merge).
pub async fn accept_hello<S: Io>(
    io: S,
    addr: Option<SocketAddr>,
    key: &SecretKey,
    config: &Config,
) -> Result<Established<S>, Error> {
    let hs = accept_inner(io, addr, key, config, true).await?;
    hs.hello(key, config).await
}

async fn accept_inner<S: Io>(
    mut io: S,
    addr: Option<SocketAddr>,
    key: &SecretKey,
    config: &Config,
    defer_ack: bool,
) -> Result<Handshaked<S>, Error> {
    let run = async {
        let mut buf = BytesMut::with_capacity(512);
        let mut legacy_tried = false;
        let auth = loop {
            match handshake::read_auth(key, &buf, &mut legacy_tried)? {
                Read::NeedMore(n) => read_more(&mut io, &mut buf, n).await?,
                Read::Done(auth, used) => {
                    let _ = buf.split_to(used);
                    break auth;
                }
            }
        };
        let (ack, secrets) = handshake::respond(&mut rand::rng(), &auth);
        let mut unsent = BytesMut::new();
        if defer_ack {
            unsent.extend_from_slice(&ack);
        } else {
            io.write_all(&ack).await.map_err(handshake::Error::Io)?;
        }
        Ok::<_, Error>((secrets, buf, unsent))
    };
    let (secrets, leftover, unsent) = tokio::time::timeout(config.handshake_timeout, run)
        .await
        .map_err(|_| Error::Handshake(handshake::Error::Timeout))??;
    let codec = FrameCodec::new(&secrets);
    let remote_id = secrets.remote_id;
    Ok(Handshaked {
        framed: framed(io, codec, leftover, unsent),
        remote_id,
        role: Role::Recipient,
        addr,
    })
}

/// Dials `addr` over TCP and runs the handshake.
pub async fn connect_tcp(
    addr: SocketAddr,
    key: &SecretKey,
    remote_id: PublicKey,
    config: &Config,
) -> Result<Handshaked<tokio::net::TcpStream>, Error> {
    let stream = tokio::time::timeout(
        config.handshake_timeout,
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .map_err(|_| Error::Handshake(handshake::Error::Timeout))?
    .map_err(handshake::Error::Io)?;
    let _ = stream.set_nodelay(true);
    connect(stream, Some(addr), key, remote_id, config).await
}

impl<S: Io> Handshaked<S> {
    /// The remote node id proven by the handshake.
    pub fn remote_id(&self) -> &PublicKey {
        &self.remote_id
    }

    /// Whether we dialled (`Initiator`) or accepted (`Recipient`).
    pub fn role(&self) -> Role {
        self.role
    }

    /// The raw framed stream, bypassing the Hello exchange: for tools and tests that need
    /// to speak frames directly.
    pub fn into_framed(self) -> Framed<S, FrameCodec> {
        self.framed
    }

    /// Sends a `Disconnect` (uncompressed: no Hello has been exchanged) and closes.
    pub async fn disconnect(mut self, reason: DisconnectReason) {
        let msg = RawMessage {
            id: DISCONNECT,
            data: reason.encode_body().into(),
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
            let _ = self.framed.send(msg).await;
            let _ = self.framed.get_mut().shutdown().await;
        })
        .await;
    }

    /// Exchanges Hello messages within `config.handshake_timeout` and negotiates the
    /// shared capabilities.
    ///
    /// Fails, after sending the `Disconnect` the spec calls for, when the remote's Hello
    /// is malformed or oversized (`BreachOfProtocol`), names another node id than the
    /// handshake (`UnexpectedIdentity`), or shares none of our protocols while we declared
    /// some (`UselessPeer`). A remote `Disconnect` instead of Hello is
    /// [`Error::Disconnected`].
    pub async fn hello(self, key: &SecretKey, config: &Config) -> Result<Established<S>, Error> {
        self.exchange_hello(key, config, true).await
    }

    /// [`Handshaked::hello`] for tools that read the remote's Hello whatever it offers (a
    /// crawler): a peer sharing none of our protocols is returned, with empty
    /// [`Established::shared`], for the caller to disconnect.
    pub async fn hello_any(
        self,
        key: &SecretKey,
        config: &Config,
    ) -> Result<Established<S>, Error> {
        self.exchange_hello(key, config, false).await
    }

    async fn exchange_hello(
        mut self,
        key: &SecretKey,
        config: &Config,
        require_shared: bool,
    ) -> Result<Established<S>, Error> {
        let ours = Hello {
            protocol_version: p2p::PROTOCOL_VERSION,
            client_id: config.client_id.clone(),
            capabilities: config.protocols.iter().map(|p| p.cap.clone()).collect(),
            listen_port: config.listen_port,
            id: handshake::static_id(key),
        };
        self.framed.codec_mut().set_max_frame_size(MAX_HELLO_SIZE);
        let exchange = async {
            self.framed
                .send(RawMessage {
                    id: HELLO,
                    data: ours.encode_to_vec().into(),
                })
                .await?;
            match self.framed.next().await {
                None => Err(Error::Closed),
                Some(Err(e)) => Err(e.into()),
                Some(Ok(m)) => Ok(m),
            }
        };
        let first = match tokio::time::timeout(config.handshake_timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout("hello")),
        };
        let first = match first {
            Ok(m) => m,
            Err(e) => {
                if let Some(reason) = e.disconnect_reason() {
                    self.disconnect(reason).await;
                }
                return Err(e);
            }
        };
        let result = match first.id {
            HELLO => Hello::decode(&first.data).map_err(Error::from),
            DISCONNECT => Err(Error::Disconnected(
                DisconnectReason::decode_body(&first.data)
                    .unwrap_or(DisconnectReason::DisconnectRequested),
            )),
            id => Err(Error::ExpectedHello(id)),
        };
        let checked = result.and_then(|remote| {
            if remote.id == [0u8; 64] {
                return Err(Error::NullIdentity);
            }
            if remote.id != id_bytes(&self.remote_id) {
                return Err(Error::UnexpectedIdentity);
            }
            let shared = negotiate(&config.protocols, &remote.capabilities);
            if require_shared && shared.is_empty() && !config.protocols.is_empty() {
                return Err(Error::NoSharedCapabilities);
            }
            Ok((remote, shared))
        });
        match checked {
            Ok((remote, shared)) => {
                self.framed.codec_mut().set_max_frame_size(MAX_FRAME_SIZE);
                let snappy = remote.protocol_version >= 5;
                Ok(Established {
                    framed: self.framed,
                    remote_id: self.remote_id,
                    addr: self.addr,
                    role: self.role,
                    hello: remote,
                    shared,
                    snappy,
                })
            }
            Err(e) => {
                if let Some(reason) = e.disconnect_reason() {
                    self.disconnect(reason).await;
                }
                Err(e)
            }
        }
    }
}

/// A session after the Hello exchange: the caller may still reject it (peer limits,
/// duplicates) with [`Established::disconnect`], or run it with [`Established::start`].
pub struct Established<S> {
    pub(crate) framed: Framed<S, FrameCodec>,
    pub(crate) remote_id: PublicKey,
    pub(crate) addr: Option<SocketAddr>,
    pub(crate) role: Role,
    pub(crate) hello: Hello,
    pub(crate) shared: Vec<Shared>,
    pub(crate) snappy: bool,
}

impl<S: Io> Established<S> {
    /// The remote's Hello.
    pub fn remote_hello(&self) -> &Hello {
        &self.hello
    }

    /// The remote node id.
    pub fn remote_id(&self) -> &PublicKey {
        &self.remote_id
    }

    /// The negotiated capabilities, in message-id order.
    pub fn shared(&self) -> &[Shared] {
        &self.shared
    }

    /// Whether messages are snappy-compressed (both sides speak p2p v5).
    pub fn snappy(&self) -> bool {
        self.snappy
    }

    /// Whether we dialled or accepted.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Sends `Disconnect(reason)` and closes the connection.
    pub async fn disconnect(mut self, reason: DisconnectReason) {
        let mut body = reason.encode_body();
        if self.snappy {
            // Compressing a 2-byte body cannot fail.
            body = p2p::Snappy::default()
                .compress(&body)
                .map(|b| b.to_vec())
                .unwrap_or(body);
        }
        let msg = RawMessage {
            id: DISCONNECT,
            data: body.into(),
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
            let _ = self.framed.send(msg).await;
            let _ = self.framed.get_mut().shutdown().await;
        })
        .await;
    }
}

/// Convenience: full dial (handshake + Hello) and start.
pub async fn dial<S: Io>(
    io: S,
    addr: Option<SocketAddr>,
    key: &SecretKey,
    remote_id: PublicKey,
    config: &Config,
) -> Result<crate::Peer, Error> {
    let hs = connect(io, addr, key, remote_id, config).await?;
    Ok(hs.hello(key, config).await?.start(config))
}

/// Convenience: full accept (handshake + Hello) and start.
pub async fn listen_one<S: Io>(
    io: S,
    addr: Option<SocketAddr>,
    key: &SecretKey,
    config: &Config,
) -> Result<crate::Peer, Error> {
    Ok(accept_hello(io, addr, key, config).await?.start(config))
}
