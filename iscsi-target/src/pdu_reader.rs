//! RFC 7143 section 11.2: reading whole PDUs off a connection.
//!
//! Bytes are read in big chunks into one `BytesMut`; [`PduDecoder`] checks each PDU's lengths
//! against the negotiated limits before anything beyond the header is buffered, and a decoded
//! PDU's data segment is a slice of the receive buffer (no copy).

use bytes::BytesMut;
use iscsi_proto::framing::PduDecoder;
use iscsi_proto::pdu::{Pdu, PduError};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes asked of the socket per read when the buffer runs low.
const READ_CHUNK: usize = 256 * 1024;

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
}

impl<R: AsyncRead + Unpin> PduReader<R> {
    pub(crate) fn new(inner: R, decoder: PduDecoder) -> PduReader<R> {
        PduReader {
            inner,
            buf: BytesMut::with_capacity(64 * 1024),
            decoder,
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
            if let Some(pdu) = self.decoder.decode(&mut self.buf)? {
                return Ok(Some(pdu));
            }
            let needed = self.decoder.needed(&self.buf)?;
            let spare = self.buf.capacity() - self.buf.len();
            if spare < needed.max(4096) {
                self.buf.reserve(needed.max(READ_CHUNK));
            }
            let n = self.inner.read_buf(&mut self.buf).await?;
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
