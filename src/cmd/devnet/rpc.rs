//! A minimal HTTP/1.1 JSON-RPC client for polling the nodes: the crate's hyper has only
//! its server side enabled, and one POST with a `Content-Length` answer is all it takes.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A JSON-RPC client for one node's HTTP endpoint, on one kept-alive connection.
///
/// Kept alive because a connection per poll would leave thousands of sockets in
/// TIME_WAIT (32 nodes, 10 polls a second); the server closes idle or old connections,
/// and the next call reconnects.
pub(crate) struct Rpc {
    pub(crate) addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
    /// The admin token sent as `Authorization: Bearer` (`rpc.cookie`), for admin calls.
    token: Option<String>,
}

/// Most bytes of a response body accepted: a block with its transaction hashes is a few
/// kilobytes, a node's metrics page about ten.
const MAX_BODY: usize = 1 << 20;

impl Rpc {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Rpc {
            addr,
            conn: None,
            token: None,
        }
    }

    /// Sends `token` with every request, as admin methods need.
    pub(crate) fn with_token(mut self, token: String) -> Self {
        self.token = Some(token);
        self
    }

    pub(crate) async fn call(&mut self, body: &Value) -> std::io::Result<Value> {
        let body = self.request("POST", "/", Some(body.to_string())).await?;
        serde_json::from_slice(&body)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not JSON"))
    }

    /// `GET path` on the same kind of connection (a node's `/metrics`): the body as text.
    pub(crate) async fn get(&mut self, path: &str) -> std::io::Result<String> {
        let body = self.request("GET", path, None).await?;
        String::from_utf8(body)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"))
    }

    async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> std::io::Result<Vec<u8>> {
        let r = tokio::time::timeout(
            Duration::from_secs(2),
            self.request_once(method, path, body),
        )
        .await;
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.conn = None;
                Err(e)
            }
            Err(_) => {
                self.conn = None;
                Err(std::io::ErrorKind::TimedOut.into())
            }
        }
    }

    async fn request_once(
        &mut self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> std::io::Result<Vec<u8>> {
        use std::io::{Error as IoError, ErrorKind};
        let bad = |what: &str| IoError::new(ErrorKind::InvalidData, what.to_string());
        if self.conn.is_none() {
            self.conn = Some(BufReader::new(TcpStream::connect(self.addr).await?));
        }
        let conn = self.conn.as_mut().ok_or_else(|| bad("no connection"))?;
        let auth = match &self.token {
            Some(t) => format!("Authorization: Bearer {t}\r\n"),
            None => String::new(),
        };
        let request = match body {
            Some(body) => format!(
                "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                self.addr,
                body.len()
            ),
            None => format!(
                "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}\r\n",
                self.addr
            ),
        };
        conn.get_mut().write_all(request.as_bytes()).await?;
        let mut line = String::new();
        conn.read_line(&mut line).await?;
        if line.split_whitespace().nth(1) != Some("200") {
            return Err(bad("status not 200"));
        }
        let mut length = None;
        let mut close = false;
        loop {
            line.clear();
            if conn.read_line(&mut line).await? == 0 {
                return Err(ErrorKind::UnexpectedEof.into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((name, value)) = l.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse::<usize>().ok();
                } else if name.eq_ignore_ascii_case("connection") {
                    close = value.eq_ignore_ascii_case("close");
                }
            }
        }
        let length = length
            .filter(|&n| n <= MAX_BODY)
            .ok_or_else(|| bad("no or too large Content-Length"))?;
        let mut buf = vec![0; length];
        conn.read_exact(&mut buf).await?;
        if close {
            self.conn = None;
        }
        Ok(buf)
    }
}
