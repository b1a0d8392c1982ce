//! RFC 7143 section 11 framing under arbitrary bytes: the streaming decoder must never panic,
//! never ask for more than one PDU within its limits can take, and every PDU it yields must
//! encode and decode back to itself.
//!
//! `cargo +nightly fuzz run pdu_framing` (from iscsi-proto/).

#![no_main]

use bytes::BytesMut;
use iscsi_proto::digest::DigestConfig;
use iscsi_proto::framing::PduDecoder;
use iscsi_proto::limits::{pad4, Limits, BHS_LEN};
use iscsi_proto::pdu::{Pdu, PduError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let digests = DigestConfig {
        header: mode & 1 != 0,
        data: mode & 2 != 0,
    };
    let limits = Limits::with_max_recv_data_segment_length(512 << ((mode >> 2) & 7));
    let chunk = 1 + (mode >> 5) as usize * 17;
    let max_frame = BHS_LEN
        + limits.ahs_limit()
        + digests.header_len()
        + pad4(limits.data_segment_limit())
        + digests.data_len();

    let mut dec = PduDecoder::new(limits, digests);
    let mut buf = BytesMut::new();
    'feed: for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match dec.needed(&buf) {
                Ok(n) => assert!(buf.len() + n <= max_frame),
                Err(_) => break 'feed,
            }
            match dec.decode(&mut buf) {
                Ok(Some(pdu)) => {
                    let wire = pdu.to_bytes(digests);
                    assert_eq!(wire.len(), pdu.encoded_len(digests));
                    assert_eq!(Pdu::decode(wire, digests), Ok(pdu));
                }
                Ok(None) => break,
                Err(PduError::DataDigestMismatch { .. }) => {}
                Err(_) => break 'feed,
            }
        }
    }

    // The one-frame decoder on the raw input, too.
    let _ = Pdu::decode(bytes::Bytes::copy_from_slice(rest), digests);
});
