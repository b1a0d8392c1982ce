//! RFC 7143 sections 7.8 and 11: one negative vector per `PduError` variant, plus the decoder's
//! promise to refuse over-limit lengths from the BHS alone, before buffering the body.

use bytes::{BufMut, Bytes, BytesMut};
use iscsi_proto::digest::DigestConfig;
use iscsi_proto::framing::PduDecoder;
use iscsi_proto::limits::{Limits, BHS_LEN, DEFAULT_MAX_RECV_DATA_SEGMENT_LENGTH, MAX_AHS_BYTES};
use iscsi_proto::pdu::*;

fn data_out(itt: u32, data: &'static [u8]) -> Pdu {
    Pdu::DataOut(DataOut {
        final_bit: true,
        itt,
        ttt: 7,
        data: Bytes::from_static(data),
        ..Default::default()
    })
}

fn header_only(opcode: Opcode, ahs_words: u8, dsl: u32) -> BytesMut {
    let mut b = Bhs::new(opcode);
    b.set_total_ahs_length(ahs_words);
    b.set_data_segment_length(dsl);
    BytesMut::from(&b.0[..])
}

#[test]
fn data_segment_over_max_recv_data_segment_length() {
    let mut dec = PduDecoder::default();
    let mut buf = header_only(
        Opcode::DATA_OUT,
        0,
        DEFAULT_MAX_RECV_DATA_SEGMENT_LENGTH + 1,
    );
    let cap_before = buf.capacity();
    assert_eq!(
        dec.decode(&mut buf),
        Err(PduError::DataSegmentTooLong {
            len: 8193,
            limit: 8192
        })
    );
    assert_eq!(buf.len(), BHS_LEN, "nothing consumed");
    assert_eq!(
        buf.capacity(),
        cap_before,
        "nothing reserved for the refused body"
    );
    assert!(dec.needed(&buf).is_err());
    // Exactly the limit is fine (and only then is room reserved).
    let mut ok = header_only(Opcode::DATA_OUT, 0, 8192);
    assert_eq!(dec.decode(&mut ok), Ok(None));
    assert_eq!(dec.needed(&ok), Ok(8192));
}

#[test]
fn data_segment_limit_follows_negotiation_and_hard_cap() {
    let mut dec = PduDecoder::default();
    dec.set_limits(Limits::with_max_recv_data_segment_length(262144));
    let mut buf = header_only(Opcode::DATA_OUT, 0, 262144);
    assert_eq!(dec.needed(&buf), Ok(262144));
    assert_eq!(dec.decode(&mut buf), Ok(None));
    dec.set_limits(Limits::with_max_recv_data_segment_length(u32::MAX));
    assert_eq!(
        dec.limits().data_segment_limit(),
        iscsi_proto::limits::MAX_DATA_SEGMENT_HARD_CAP
    );
}

#[test]
fn ahs_over_limit() {
    let mut dec = PduDecoder::new(
        Limits {
            max_ahs_bytes: 16,
            ..Limits::default()
        },
        DigestConfig::NONE,
    );
    let mut buf = header_only(Opcode::SCSI_COMMAND, 5, 0);
    assert_eq!(
        dec.decode(&mut buf),
        Err(PduError::AhsTooLong { len: 20, limit: 16 })
    );
    // The default limit is the field's maximum: 255 words are acceptable.
    let dec = PduDecoder::default();
    assert_eq!(
        dec.needed(&header_only(Opcode::SCSI_COMMAND, 255, 0)),
        Ok(MAX_AHS_BYTES)
    );
}

#[test]
fn header_digest_mismatch_is_caught_before_the_data_arrives() {
    let d = DigestConfig::BOTH;
    let wire = data_out(5, b"payload!").to_bytes(d);
    let mut bad = BytesMut::from(&wire[..]);
    bad[24] ^= 0x80;
    let mut dec = PduDecoder::new(Limits::default(), d);
    // Header and digest only: already refused.
    let mut head = BytesMut::from(&bad[..BHS_LEN + 4]);
    assert!(matches!(
        dec.decode(&mut head),
        Err(PduError::HeaderDigestMismatch { .. })
    ));
    assert!(matches!(
        dec.decode(&mut bad),
        Err(PduError::HeaderDigestMismatch { .. })
    ));
}

#[test]
fn data_digest_mismatch_consumes_the_pdu_and_names_the_task() {
    let d = DigestConfig::BOTH;
    let mut wire = BytesMut::new();
    data_out(0x1234, b"first pdu data").encode(d, &mut wire);
    let second = data_out(0x5678, b"second");
    second.encode(d, &mut wire);
    wire[BHS_LEN + 4 + 2] ^= 0xff;
    let mut dec = PduDecoder::new(Limits::default(), d);
    match dec.decode(&mut wire) {
        Err(PduError::DataDigestMismatch {
            opcode,
            itt,
            header,
            ..
        }) => {
            assert_eq!(opcode, Opcode::DATA_OUT);
            assert_eq!(itt, 0x1234);
            assert_eq!(header.itt(), 0x1234);
            // The caller can answer with a Reject quoting that header.
            let reject = Reject::quoting(RejectReason::DATA_DIGEST_ERROR, &header);
            assert_eq!(reject.rejected_bhs(), Some(*header));
        }
        other => panic!("expected a data digest mismatch, got {other:?}"),
    }
    // The stream is still in sync.
    assert_eq!(dec.decode(&mut wire), Ok(Some(second)));
    assert!(wire.is_empty());
}

#[test]
fn truncated_frame() {
    let wire = data_out(1, b"abcdef").to_bytes(DigestConfig::NONE);
    assert_eq!(
        Pdu::decode(wire.slice(..wire.len() - 1), DigestConfig::NONE),
        Err(PduError::Truncated {
            needed: 56,
            available: 55
        })
    );
    assert_eq!(
        Pdu::decode(wire.slice(..10), DigestConfig::NONE),
        Err(PduError::Truncated {
            needed: 48,
            available: 10
        })
    );
}

#[test]
fn trailing_bytes_after_frame() {
    let mut wire = BytesMut::from(&data_out(1, b"abcd").to_bytes(DigestConfig::NONE)[..]);
    wire.put_u32(0);
    assert_eq!(
        Pdu::decode(wire.freeze(), DigestConfig::NONE),
        Err(PduError::TrailingBytes { extra: 4 })
    );
}

fn scsi_command_with_ahs(ahs: &[u8]) -> Bytes {
    let mut b = ScsiCommand::default().to_bhs();
    b.set_total_ahs_length((ahs.len() / 4) as u8);
    let mut out = BytesMut::from(&b.0[..]);
    out.put_slice(ahs);
    out.freeze()
}

#[test]
fn bad_ahs() {
    let cases: [(&[u8], &str); 4] = [
        (&[0, 0, 1, 0], "AHSLength 0"),
        (&[0, 9, 1, 0, 1, 2, 3, 4], "runs past TotalAHSLength"),
        (&[0, 3, 2, 0, 1, 2, 0, 0], "bidi AHS of 2 bytes"),
        (
            &[0, 5, 2, 0, 0, 0, 0, 1, 0, 5, 2, 0, 0, 0, 0, 1],
            "bidi AHS twice",
        ),
    ];
    for (ahs, what) in cases {
        let frame = scsi_command_with_ahs(ahs);
        assert!(
            matches!(
                Pdu::decode(frame, DigestConfig::NONE),
                Err(PduError::BadAhs { .. })
            ),
            "{what}"
        );
    }
    // A well-formed extended CDB and bidi AHS decode.
    let frame = scsi_command_with_ahs(&[0, 5, 1, 0, 0xa, 0xb, 0xc, 0xd, 0, 5, 2, 0, 0, 0, 2, 0]);
    let Ok(Pdu::ScsiCommand(c)) = Pdu::decode(frame, DigestConfig::NONE) else {
        panic!("valid AHS refused")
    };
    assert_eq!(c.extended_cdb.as_deref(), Some(&[0xa, 0xb, 0xc, 0xd][..]));
    assert_eq!(c.bidi_read_length, Some(512));
}

#[test]
fn bad_sense_length() {
    let r = ScsiResponse {
        status: ScsiStatus::CHECK_CONDITION,
        data: Bytes::from_static(&[0, 18, 0x70, 0, 5]),
        ..Default::default()
    };
    assert_eq!(
        r.sense(),
        Err(PduError::BadSenseLength {
            sense_len: 18,
            available: 3
        })
    );
    let one_byte = ScsiResponse {
        data: Bytes::from_static(&[0]),
        ..Default::default()
    };
    assert!(matches!(
        one_byte.sense(),
        Err(PduError::BadSenseLength { .. })
    ));
    // And the builder produces what the parser accepts.
    let good = ScsiResponse {
        data: sense_data_segment(&[0x70, 0, 5, 0, 0, 0, 0, 10]),
        ..Default::default()
    };
    assert_eq!(&good.sense().unwrap()[..], &[0x70, 0, 5, 0, 0, 0, 0, 10]);
}

#[test]
fn digests_switch_on_between_pdus() {
    let login = Pdu::LoginResponse(LoginResponse {
        transit: true,
        csg: Stage::LOGIN_OPERATIONAL_NEGOTIATION,
        nsg: Stage::FULL_FEATURE_PHASE,
        data: Bytes::from_static(b"HeaderDigest=CRC32C\0DataDigest=CRC32C\0"),
        ..Default::default()
    });
    let after = data_out(3, b"xyz");
    let mut wire = BytesMut::new();
    login.encode(DigestConfig::NONE, &mut wire);
    after.encode(DigestConfig::BOTH, &mut wire);
    let mut dec = PduDecoder::default();
    assert_eq!(dec.decode(&mut wire), Ok(Some(login)));
    dec.set_digests(DigestConfig::BOTH);
    assert_eq!(dec.digests(), DigestConfig::BOTH);
    assert_eq!(dec.decode(&mut wire), Ok(Some(after)));
}

#[test]
fn unknown_opcode_parses_for_policy_to_refuse() {
    let mut b = Bhs::new(Opcode(0x1c));
    b.set_itt(77);
    b.set_data_segment_length(3);
    let mut wire = BytesMut::from(&b.0[..]);
    wire.put_slice(b"abc\0");
    let pdu = Pdu::decode(wire.freeze(), DigestConfig::NONE).unwrap();
    assert_eq!(pdu.opcode(), Opcode(0x1c));
    assert_eq!(pdu.itt(), 77);
    assert!(matches!(&pdu, Pdu::Unknown { data, .. } if &data[..] == b"abc"));
}

#[test]
fn lun_numbers() {
    assert_eq!(Lun::from_number(0).unwrap().0, [0; 8]);
    assert_eq!(Lun::from_number(5).unwrap().0, [0, 5, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        Lun::from_number(300).unwrap().0,
        [0x41, 0x2c, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(Lun::from_number(0x3fff).unwrap().0[..2], [0x7f, 0xff]);
    assert_eq!(Lun::from_number(0x4000), None);
    for n in [0u16, 1, 255, 256, 1000, 0x3fff] {
        assert_eq!(Lun::from_number(n).unwrap().number(), Some(n));
    }
    assert_eq!(Lun([0x01, 5, 0, 0, 0, 0, 0, 0]).number(), None, "bus 1");
    assert_eq!(Lun([0, 5, 0, 1, 0, 0, 0, 0]).number(), None, "second level");
    assert_eq!(Lun([0xc0, 5, 0, 0, 0, 0, 0, 0]).number(), None, "extended");
}

#[test]
fn codes_print_their_names() {
    assert_eq!(format!("{:?}", Opcode::DATA_IN), "Opcode::DATA_IN");
    assert_eq!(format!("{:?}", Opcode(0x1c)), "Opcode(0x1c)");
    assert!(Opcode::SCSI_COMMAND.is_initiator());
    assert!(!Opcode::R2T.is_initiator());
    assert_eq!(
        LoginStatus::from_parts(2, 1),
        LoginStatus::AUTHENTICATION_FAILURE
    );
    assert_eq!(
        LoginStatus::NOT_FOUND.class(),
        LoginStatus::CLASS_INITIATOR_ERROR
    );
    assert_eq!(LoginStatus::NOT_FOUND.detail(), 3);
}
