//! RFC 5531 section 11: record marking on TCP.
//!
//! A record is one or more fragments; each fragment starts with a four-byte big-endian header
//! whose top bit marks the last fragment and whose low 31 bits give the fragment's length.
//! [`RecordDecoder`] reassembles records from a byte stream (sans-IO) and refuses a record
//! longer than its limit as soon as a fragment header claims it, before reserving memory;
//! [`encode_record`] splits a record into fragments of at most a given size.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Default largest record accepted (16 MiB): a little over the biggest message pvd sends.
pub const DEFAULT_MAX_RECORD_SIZE: usize = 16 << 20;
/// Default fragment size when writing: records up to this size go out as one fragment.
pub const DEFAULT_FRAGMENT_SIZE: usize = 1 << 20;
/// Largest fragment the header can describe (31 bits).
pub const MAX_FRAGMENT_SIZE: usize = 0x7fff_ffff;
const LAST_FRAGMENT: u32 = 0x8000_0000;
/// Bytes read from the socket at a time when no fragment size is known yet.
const READ_CHUNK: usize = 64 << 10;

/// Errors of the record layer.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The fragments seen so far add up to more than the record limit (refused unread).
    #[error("record of at least {claimed} bytes exceeds the limit of {max} bytes")]
    TooLarge { claimed: u64, max: usize },
    /// The stream ended inside a record.
    #[error("connection closed inside a record ({buffered} bytes buffered)")]
    TruncatedRecord { buffered: usize },
    #[error("record I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Reassembles records from stream bytes.
#[derive(Debug)]
pub struct RecordDecoder {
    max_record: usize,
    /// Fragments of the current record received so far.
    partial: BytesMut,
}

impl RecordDecoder {
    /// A decoder that refuses records longer than `max_record` bytes.
    pub fn new(max_record: usize) -> Self {
        RecordDecoder {
            max_record,
            partial: BytesMut::new(),
        }
    }

    /// Bytes of an unfinished record held.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Takes complete fragments from the front of `src`; returns a record once its last
    /// fragment arrived. Leaves incomplete fragments in `src` and reserves room in `src` for
    /// the fragment being read (only after checking its length against the limit).
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, RecordError> {
        loop {
            if src.len() < 4 {
                return Ok(None);
            }
            let header = u32::from_be_bytes([src[0], src[1], src[2], src[3]]);
            let last = header & LAST_FRAGMENT != 0;
            let len = (header & !LAST_FRAGMENT) as usize;
            let total = self.partial.len() as u64 + len as u64;
            if total > self.max_record as u64 {
                return Err(RecordError::TooLarge {
                    claimed: total,
                    max: self.max_record,
                });
            }
            if src.len() < 4 + len {
                src.reserve(4 + len - src.len());
                return Ok(None);
            }
            src.advance(4);
            let frag = src.split_to(len);
            if last {
                let record = if self.partial.is_empty() {
                    frag.freeze()
                } else {
                    self.partial.unsplit(frag);
                    std::mem::take(&mut self.partial).freeze()
                };
                return Ok(Some(record));
            }
            if self.partial.is_empty() {
                self.partial = frag;
            } else {
                self.partial.unsplit(frag);
            }
        }
    }
}

/// Appends `record` to `dst` as fragments of at most `fragment_size` bytes (RFC 5531 section 11).
/// An empty record is one empty last fragment.
pub fn encode_record(record: &[u8], fragment_size: usize, dst: &mut BytesMut) {
    let frag = fragment_size.clamp(1, MAX_FRAGMENT_SIZE);
    let count = record.len().div_ceil(frag).max(1);
    dst.reserve(record.len() + 4 * count);
    let mut chunks = record.chunks(frag).peekable();
    if chunks.peek().is_none() {
        dst.put_u32(LAST_FRAGMENT);
        return;
    }
    while let Some(chunk) = chunks.next() {
        let last = if chunks.peek().is_none() {
            LAST_FRAGMENT
        } else {
            0
        };
        dst.put_u32(last | chunk.len() as u32);
        dst.put_slice(chunk);
    }
}

/// Reads whole records from an async byte stream.
#[derive(Debug)]
pub struct RecordReader<R> {
    inner: R,
    buf: BytesMut,
    decoder: RecordDecoder,
}

impl<R: AsyncRead + Unpin> RecordReader<R> {
    /// A reader refusing records longer than `max_record`.
    pub fn new(inner: R, max_record: usize) -> Self {
        RecordReader {
            inner,
            buf: BytesMut::with_capacity(READ_CHUNK),
            decoder: RecordDecoder::new(max_record),
        }
    }

    /// The next record if it is already complete in the buffer (no I/O).
    pub fn try_read_buffered(&mut self) -> Result<Option<Bytes>, RecordError> {
        self.decoder.decode(&mut self.buf)
    }

    /// The next record, or `None` at a clean end of stream (between records).
    pub async fn read_record(&mut self) -> Result<Option<Bytes>, RecordError> {
        loop {
            if let Some(rec) = self.decoder.decode(&mut self.buf)? {
                return Ok(Some(rec));
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(READ_CHUNK);
            }
            let n = self.inner.read_buf(&mut self.buf).await?;
            if n == 0 {
                let buffered = self.buf.len() + self.decoder.buffered();
                if buffered == 0 {
                    return Ok(None);
                }
                return Err(RecordError::TruncatedRecord { buffered });
            }
        }
    }
}

/// Writes `record` to `w` as fragments of at most `fragment_size` bytes and flushes.
pub async fn write_record<W: AsyncWrite + Unpin>(
    w: &mut W,
    record: &[u8],
    fragment_size: usize,
) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    encode_record(record, fragment_size, &mut out);
    w.write_all(&out).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_multi_fragment() {
        let rec: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut wire = BytesMut::new();
        encode_record(&rec, 64, &mut wire);
        assert_eq!(wire.len(), 1000 + 4 * 16);
        encode_record(&[], 64, &mut wire);
        let mut dec = RecordDecoder::new(4096);
        // Feed byte by byte.
        let mut src = BytesMut::new();
        let mut out = vec![];
        for b in wire.iter() {
            src.put_u8(*b);
            while let Some(r) = dec.decode(&mut src).unwrap() {
                out.push(r);
            }
        }
        assert_eq!(out.len(), 2);
        assert_eq!(&out[0][..], &rec[..]);
        assert!(out[1].is_empty());
    }

    #[test]
    fn two_gib_record_mark_refused_without_allocating() {
        let mut src = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0][..]);
        let cap_before = src.capacity();
        let mut dec = RecordDecoder::new(DEFAULT_MAX_RECORD_SIZE);
        match dec.decode(&mut src) {
            Err(RecordError::TooLarge { claimed, max }) => {
                assert_eq!(claimed, 0x7fff_ffff);
                assert_eq!(max, DEFAULT_MAX_RECORD_SIZE);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert_eq!(src.capacity(), cap_before);
    }

    #[test]
    fn fragments_adding_up_over_limit_refused() {
        let mut wire = BytesMut::new();
        wire.put_u32(100);
        wire.put_bytes(1, 100);
        wire.put_u32(LAST_FRAGMENT | 100);
        let mut dec = RecordDecoder::new(150);
        assert!(matches!(
            dec.decode(&mut wire),
            Err(RecordError::TooLarge { claimed: 200, .. })
        ));
    }
}
