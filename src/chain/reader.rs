//! Reading blocks from an RLP block file (concatenated RLP blocks, the format of
//! go-ethereum's `geth export` and of `devp2p export`), one at a time and bounded in
//! what a hostile file can make us allocate. Used by `devp2p import`, `gen-chain --from`
//! and `node --replay`.

use std::io::Read;

use alloy_rlp::Decodable;

use super::Block;

/// Largest accepted encoded block: ten times today's largest mainnet blocks, and a bound on
/// what a hostile file can make us allocate.
pub const MAX_BLOCK_BYTES: usize = 32 * 1024 * 1024;

/// A block in the stream is not valid RLP, too large, truncated, or unreadable.
#[derive(Debug, thiserror::Error)]
#[error("block file: invalid block at byte {offset}: {reason}")]
pub struct Error {
    /// Offset of the block in the stream.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

/// Reads concatenated RLP blocks from a byte stream, one at a time.
pub struct BlockReader<R> {
    reader: R,
    offset: u64,
    buf: Vec<u8>,
}

impl<R> BlockReader<R> {
    /// Encoded size of the block last returned by [`BlockReader::next_block`].
    pub fn last_len(&self) -> usize {
        self.buf.len()
    }
}

impl<R: Read> BlockReader<R> {
    /// Wraps a reader (buffer it: blocks are read in small pieces).
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            offset: 0,
            buf: Vec::new(),
        }
    }

    fn fail(&self, reason: impl Into<String>) -> Error {
        Error {
            offset: self.offset,
            reason: reason.into(),
        }
    }

    /// The next block, `Ok(None)` at the end of the stream.
    pub fn next_block(&mut self) -> Result<Option<Block>, Error> {
        let mut first = [0u8; 1];
        match self.reader.read(&mut first) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) => return Err(self.fail(e.to_string())),
        }
        // RLP list header: 0xc0..=0xf7 short list, 0xf8..=0xff long list with 1..8 length bytes.
        let (len_bytes, short_len) = match first[0] {
            b @ 0xc0..=0xf7 => (0, usize::from(b - 0xc0)),
            b @ 0xf8..=0xff => (usize::from(b - 0xf7), 0),
            _ => return Err(self.fail("not an RLP list")),
        };
        let mut len_buf = [0u8; 8];
        let len_slice = len_buf
            .get_mut(..len_bytes)
            .ok_or_else(|| self.fail("bad length"))?;
        self.reader
            .read_exact(len_slice)
            .map_err(|e| self.fail(e.to_string()))?;
        let payload = if len_bytes == 0 {
            short_len
        } else {
            let mut be = [0u8; 8];
            be[8 - len_bytes..].copy_from_slice(&len_buf[..len_bytes]);
            usize::try_from(u64::from_be_bytes(be)).unwrap_or(usize::MAX)
        };
        if payload > MAX_BLOCK_BYTES {
            return Err(self.fail(format!(
                "block of {payload} bytes exceeds {MAX_BLOCK_BYTES}"
            )));
        }
        self.buf.clear();
        self.buf.push(first[0]);
        self.buf.extend_from_slice(&len_buf[..len_bytes]);
        let header_len = self.buf.len();
        self.buf.resize(header_len + payload, 0);
        let body = self.buf.get_mut(header_len..).ok_or_else(|| Error {
            offset: 0,
            reason: "buffer".into(),
        })?;
        if let Err(e) = self.reader.read_exact(body) {
            return Err(self.fail(format!("truncated block: {e}")));
        }
        let mut slice = self.buf.as_slice();
        let block = Block::decode(&mut slice).map_err(|e| self.fail(e.to_string()))?;
        if !slice.is_empty() {
            return Err(self.fail("trailing bytes inside the block"));
        }
        self.offset += self.buf.len() as u64;
        Ok(Some(block))
    }
}
