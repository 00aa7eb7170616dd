//! Small RLP helpers over `alloy-rlp` for lenient (EIP-8) list decoding.

use alloy_rlp::{Decodable, Encodable, Header};

pub(crate) type Result<T> = std::result::Result<T, alloy_rlp::Error>;

/// Reads a list header and returns its payload, advancing `buf` past the list.
pub(crate) fn list<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8]> {
    Header::decode_bytes(buf, true)
}

/// Reads a byte string, advancing `buf`.
pub(crate) fn bytes<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8]> {
    Header::decode_bytes(buf, false)
}

/// Decodes one value of type `T`.
pub(crate) fn item<T: Decodable>(buf: &mut &[u8]) -> Result<T> {
    T::decode(buf)
}

/// Returns the next item's full encoding (header included), advancing `buf`.
pub(crate) fn raw<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8]> {
    let start = *buf;
    let mut probe = *buf;
    let h = Header::decode(&mut probe)?;
    let header_len = start.len() - probe.len();
    let total = header_len + h.payload_length;
    let out = start.get(..total).ok_or(alloy_rlp::Error::InputTooShort)?;
    *buf = start.get(total..).ok_or(alloy_rlp::Error::InputTooShort)?;
    Ok(out)
}

/// Appends `[items...]` to `out`, where `payload` is the concatenated item encodings.
pub(crate) fn put_list(payload: &[u8], out: &mut Vec<u8>) {
    Header {
        list: true,
        payload_length: payload.len(),
    }
    .encode(out);
    out.extend_from_slice(payload);
}

/// Appends the encoding of `v` to `out`.
pub(crate) fn put<T: Encodable + ?Sized>(v: &T, out: &mut Vec<u8>) {
    v.encode(out);
}
