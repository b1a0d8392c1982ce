//! RFC 7143 section 11.2: reading whole PDUs off a connection.
//!
//! Bytes are read in big chunks into one `BytesMut`; [`PduDecoder`] checks each PDU's lengths
//! against the negotiated limits before anything beyond the header is buffered, and a decoded
//! PDU's data segment is a slice of the receive buffer (no copy).
//!
//! Received bytes stay where they landed. Filling the buffer blindly would leave a long PDU
//! (a 256 KiB write) split between a full buffer and the socket, and the decoder would then copy
//! it into a larger buffer to make room for its last bytes (about 20 us per 256 KiB here). So
//! the rest of a long PDU is read up to its end and no further, and the header of the PDU after
//! a long one is read alone (one more read of 48 bytes), so that room for exactly that PDU is
//! made while only its header needs moving. Runs of short PDUs (4 KiB writes, NOP-Outs) are
//! still read many at a time.

use bytes::{BufMut, BytesMut};
use iscsi_proto::framing::PduDecoder;
use iscsi_proto::limits::BHS_LEN;
use iscsi_proto::pdu::{Pdu, PduError};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Room beyond the longest PDU that a fresh buffer is given, so a run of short PDUs arrives in
/// few reads.
const READ_AHEAD: usize = 64 * 1024;

/// Least room worth a read of whatever the socket has.
const MIN_READ: usize = 4096;

/// A PDU at least this long is "long": the rest of it is read to its end and no further, and
/// the PDU after it has its header read alone.
const LONG_PDU: usize = 16 * 1024;

/// Why no PDU could be read.
#[derive(Debug, Error)]
pub(crate) enum ReadError {
    #[error("reading from the connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed PDU: {0}")]
    Pdu(#[from] PduError),
    #[error("connection closed in the middle of a PDU")]
    Truncated,
}

/// The receiving half of a connection.
pub(crate) struct PduReader<R> {
    inner: R,
    buf: BytesMut,
    pub decoder: PduDecoder,
    /// The last PDU returned was [`LONG_PDU`] or longer.
    after_long: bool,
}

impl<R: AsyncRead + Unpin> PduReader<R> {
    pub(crate) fn new(inner: R, decoder: PduDecoder) -> PduReader<R> {
        PduReader {
            inner,
            buf: BytesMut::with_capacity(64 * 1024),
            decoder,
            after_long: false,
        }
    }

    /// Whether the next PDU (or a framing error) is already buffered, so [`PduReader::next`]
    /// returns without reading the socket.
    pub(crate) fn has_pdu(&self) -> bool {
        match self.decoder.frame_len(&self.buf) {
            Ok(Some(total)) => self.buf.len() >= total,
            Ok(None) => false,
            Err(_) => true,
        }
    }

    /// The next PDU; Ok(None) at a clean end of stream (between PDUs).
    ///
    /// A [`PduError::DataDigestMismatch`] leaves the stream usable (the PDU is consumed); any
    /// other error means the connection must be dropped.
    pub(crate) async fn next(&mut self) -> Result<Option<Pdu>, ReadError> {
        loop {
            let buffered = self.buf.len();
            if let Some(pdu) = self.decoder.decode(&mut self.buf)? {
                self.after_long = buffered - self.buf.len() >= LONG_PDU;
                return Ok(Some(pdu));
            }
            // How far this read may go: to the end of a long PDU whose header is buffered
            // (decode() has made room for it), to the end of the next PDU's header after a long
            // one, else as far as the buffer has room.
            let (room, limit) = match self.decoder.frame_len(&self.buf)? {
                Some(total) => {
                    let rest = total - self.buf.len();
                    (rest, (total >= LONG_PDU).then_some(rest))
                }
                None if self.after_long => {
                    let header_rest = BHS_LEN - self.buf.len();
                    (header_rest, Some(header_rest))
                }
                None => (MIN_READ, None),
            };
            if self.buf.capacity() - self.buf.len() < room {
                self.buf.reserve(self.decoder.max_frame_len() + READ_AHEAD);
            }
            let n = match limit {
                Some(limit) => {
                    self.inner
                        .read_buf(&mut (&mut self.buf).limit(limit))
                        .await?
                }
                None => self.inner.read_buf(&mut self.buf).await?,
            };
            if n == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ReadError::Truncated)
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use iscsi_proto::digest::DigestConfig;
    use iscsi_proto::limits::{pad4, Limits};
    use iscsi_proto::pdu::{Lun, NopOut};
    use tokio::io::ReadBuf;

    use super::*;

    /// A byte stream that hands out at most `chunk` bytes per read and records how much room
    /// each read was offered.
    struct Feed {
        data: Vec<u8>,
        pos: usize,
        chunk: usize,
        offered: Vec<usize>,
    }

    impl AsyncRead for Feed {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let me = &mut *self;
            me.offered.push(buf.remaining());
            let n = buf.remaining().min(me.chunk).min(me.data.len() - me.pos);
            buf.put_slice(&me.data[me.pos..me.pos + n]);
            me.pos += n;
            Poll::Ready(Ok(()))
        }
    }

    fn nop(i: u32, len: usize) -> Pdu {
        Pdu::NopOut(NopOut {
            immediate: true,
            lun: Lun::default(),
            itt: i,
            ttt: 0xffff_ffff,
            cmd_sn: i,
            exp_stat_sn: 0,
            data: Bytes::from(
                (0..len)
                    .map(|b| (b * 7 + i as usize) as u8)
                    .collect::<Vec<_>>(),
            ),
        })
    }

    /// Reads every PDU of `lens` (NOP-Outs with that much data) from a stream cut into
    /// `chunk`-byte reads; returns the room each read was offered.
    async fn read_all(lens: &[usize], chunk: usize) -> Vec<usize> {
        let pdus: Vec<Pdu> = lens
            .iter()
            .enumerate()
            .map(|(i, &l)| nop(i as u32, l))
            .collect();
        let mut data = Vec::new();
        for p in &pdus {
            data.extend_from_slice(&p.to_bytes(DigestConfig::NONE));
        }
        let feed = Feed {
            data,
            pos: 0,
            chunk,
            offered: Vec::new(),
        };
        let limits = Limits::with_max_recv_data_segment_length(256 * 1024);
        let mut r = PduReader::new(feed, PduDecoder::new(limits, DigestConfig::NONE));
        for (i, want) in pdus.iter().enumerate() {
            let got = r
                .next()
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("PDU {i} missing"));
            assert_eq!(
                &got, want,
                "PDU {i} of {lens:?} read in {chunk}-byte pieces"
            );
        }
        assert!(
            r.next().await.unwrap().is_none(),
            "clean end after the last PDU"
        );
        r.inner.offered
    }

    #[tokio::test]
    async fn every_mix_of_long_and_short_pdus_arrives_whole_in_any_piece_size() {
        let lens = [
            256 * 1024,
            256 * 1024,
            4096,
            100,
            64 * 1024,
            0,
            256 * 1024,
            17 * 1024,
            4096,
            4096,
            LONG_PDU - BHS_LEN,
            3,
        ];
        for chunk in [1, 47, 1000, 4096, 65_536, 70_001, 300_000, usize::MAX] {
            read_all(&lens, chunk).await;
        }
    }

    #[tokio::test]
    async fn short_pdus_after_a_long_one_are_read_many_at_a_time_again() {
        let mut lens = vec![256 * 1024];
        lens.extend(std::iter::repeat_n(0, 200));
        let offered = read_all(&lens, usize::MAX).await;
        // The long PDU (at most three reads, the first into the initial buffer), the first
        // short PDU's header alone, then all the rest at once, then the end of the stream.
        assert!(
            offered.len() <= 6,
            "{} reads for one long and 200 short PDUs: {offered:?}",
            offered.len()
        );
    }

    #[tokio::test]
    async fn a_long_pdu_after_a_long_one_is_read_as_its_header_then_exactly_its_rest() {
        let lens = [256 * 1024, 256 * 1024, 100 * 1024, 256 * 1024];
        let offered = read_all(&lens, usize::MAX).await;
        // Whatever the first PDU took, each later one is one read of its 48-byte header and
        // one read of exactly the rest: no read runs into the next PDU, so none is copied.
        let tail: Vec<usize> = lens[1..]
            .iter()
            .flat_map(|&l| [BHS_LEN, pad4(l)])
            .chain([BHS_LEN]) // the end-of-stream read, after a long PDU
            .collect();
        assert!(
            offered.ends_with(&tail),
            "reads were offered {offered:?}, expected to end with {tail:?}"
        );
    }
}
