//! RFC 7143 section 11.2: the sending half of a connection. Outgoing PDUs arrive on a channel
//! as a BHS plus data segments (slices of the callers' buffers); the writer batches whatever is
//! queued into one vectored socket write, adding header digests, padding and data digests, and
//! never copies a payload.

use std::io::IoSlice;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use iscsi_proto::digest::{self, DigestConfig};
use iscsi_proto::limits::pad4;
use iscsi_proto::pdu::Bhs;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;

/// Offset of ExpStatSN in every initiator PDU's BHS (RFC 7143 sections 11.3-11.18).
const EXP_STAT_SN_OFFSET: usize = 28;
/// Largest number of bytes gathered into one batch.
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Largest number of PDUs gathered into one batch.
const MAX_BATCH_PDUS: usize = 256;
/// Buffers per `writev` call.
const IOV_PER_WRITE: usize = 64;

/// One PDU to send: its header (lengths filled in by the writer) and its data segment as slices.
#[derive(Debug)]
pub(crate) struct OutPdu {
    pub bhs: Bhs,
    pub data: Vec<Bytes>,
}

impl OutPdu {
    pub fn header_only(bhs: Bhs) -> OutPdu {
        OutPdu {
            bhs,
            data: Vec::new(),
        }
    }

    fn data_len(&self) -> usize {
        self.data.iter().map(Bytes::len).sum()
    }
}

pub(crate) type OutTx = mpsc::UnboundedSender<OutPdu>;
pub(crate) type OutRx = mpsc::UnboundedReceiver<OutPdu>;

/// Runs until the channel closes or the socket fails. ExpStatSN is stamped at send time from
/// `exp_stat_sn` so every PDU acknowledges the newest status.
pub(crate) async fn run_writer(
    mut rx: OutRx,
    mut sock: OwnedWriteHalf,
    digests: DigestConfig,
    exp_stat_sn: Arc<AtomicU32>,
) -> std::io::Result<()> {
    let mut chunks: Vec<Bytes> = Vec::with_capacity(2 * MAX_BATCH_PDUS);
    let mut scratch = BytesMut::with_capacity(64 * 1024);
    while let Some(first) = rx.recv().await {
        // Let submitters that are already runnable queue their PDUs too: one writev for many.
        if rx.is_empty() {
            tokio::task::yield_now().await;
        }
        let mut bytes = encode(first, digests, &exp_stat_sn, &mut scratch, &mut chunks);
        let mut pdus = 1;
        while bytes < MAX_BATCH_BYTES && pdus < MAX_BATCH_PDUS {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += encode(p, digests, &exp_stat_sn, &mut scratch, &mut chunks);
                    pdus += 1;
                }
                Err(_) => break,
            }
        }
        if !scratch.is_empty() {
            chunks.push(scratch.split().freeze());
        }
        write_chunks(&mut sock, &chunks).await?;
        chunks.clear();
        if scratch.capacity() < 16 * 1024 {
            scratch.reserve(64 * 1024);
        }
    }
    let _ = sock.shutdown().await;
    Ok(())
}

/// Appends one PDU: header bytes go into `scratch`, data segments become chunks of their own.
fn encode(
    mut pdu: OutPdu,
    digests: DigestConfig,
    exp_stat_sn: &AtomicU32,
    scratch: &mut BytesMut,
    chunks: &mut Vec<Bytes>,
) -> usize {
    let len = pdu.data_len();
    pdu.bhs
        .set_u32_at(EXP_STAT_SN_OFFSET, exp_stat_sn.load(Ordering::Acquire));
    pdu.bhs.set_data_segment_length(len as u32);
    let start = scratch.len();
    scratch.put_slice(&pdu.bhs.0);
    if digests.header {
        let d = digest::header_digest(&scratch[start..]);
        scratch.put_slice(&d);
    }
    if len == 0 {
        return scratch.len() - start;
    }
    chunks.push(scratch.split().freeze());
    let mut crc = 0u32;
    let mut first = true;
    for d in pdu.data {
        if digests.data {
            crc = if first {
                digest::crc32c(&d)
            } else {
                digest::crc32c_append(crc, &d)
            };
            first = false;
        }
        chunks.push(d);
    }
    let pad = pad4(len) - len;
    scratch.put_bytes(0, pad);
    if digests.data {
        crc = digest::crc32c_append(crc, &[0u8; 3][..pad]);
        scratch.put_slice(&crc.to_le_bytes());
    }
    len + 48 + pad + digests.header_len() + digests.data_len()
}

/// Writes every chunk with as few `writev` calls as the kernel allows.
async fn write_chunks(sock: &mut OwnedWriteHalf, chunks: &[Bytes]) -> std::io::Result<()> {
    let mut idx = 0;
    let mut off = 0;
    while idx < chunks.len() {
        let n = {
            let mut iov: [IoSlice<'_>; IOV_PER_WRITE] = std::array::from_fn(|_| IoSlice::new(&[]));
            let mut count = 0;
            for (i, c) in chunks[idx..].iter().take(IOV_PER_WRITE).enumerate() {
                iov[i] = IoSlice::new(if i == 0 { &c[off..] } else { &c[..] });
                count += 1;
            }
            sock.write_vectored(&iov[..count]).await?
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let mut left = n;
        while left > 0 {
            let avail = chunks[idx].len() - off;
            if left >= avail {
                left -= avail;
                idx += 1;
                off = 0;
            } else {
                off += left;
                left = 0;
            }
        }
        while idx < chunks.len() && chunks[idx].len() == off {
            idx += 1;
            off = 0;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use iscsi_proto::framing::PduDecoder;
    use iscsi_proto::limits::Limits;
    use iscsi_proto::pdu::{DataOut, Pdu};
    use tokio::io::AsyncReadExt;

    /// PDUs with multi-buffer data segments come out as valid PDUs with correct digests.
    #[tokio::test]
    async fn vectored_pdus_decode_with_digests() {
        for digests in [DigestConfig::NONE, DigestConfig::BOTH] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let client = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            let (_rd, wr) = client.into_split();
            let (tx, rx) = mpsc::unbounded_channel();
            let ess = Arc::new(AtomicU32::new(42));
            let w = tokio::spawn(run_writer(rx, wr, digests, ess));
            let payload: Vec<u8> = (0..10_001u32).map(|i| i as u8).collect();
            let b = Bytes::from(payload.clone());
            for i in 0..20u32 {
                let d = DataOut {
                    final_bit: true,
                    itt: i,
                    data_sn: i,
                    ..Default::default()
                };
                let cut = (i as usize * 397) % b.len();
                tx.send(OutPdu {
                    bhs: d.to_bhs(),
                    data: vec![b.slice(..cut), b.slice(cut..)],
                })
                .unwrap();
            }
            drop(tx);
            w.await.unwrap().unwrap();
            let mut buf = BytesMut::new();
            server.read_buf(&mut buf).await.unwrap();
            while server.read_buf(&mut buf).await.unwrap() > 0 {}
            let mut dec =
                PduDecoder::new(Limits::with_max_recv_data_segment_length(1 << 20), digests);
            for i in 0..20u32 {
                match dec.decode(&mut buf).unwrap() {
                    Some(Pdu::DataOut(d)) => {
                        assert_eq!(d.itt, i);
                        assert_eq!(d.exp_stat_sn, 42);
                        assert_eq!(d.data, payload[..]);
                    }
                    other => panic!("{other:?}"),
                }
            }
            assert!(buf.is_empty());
        }
    }
}
