//! RFC 7143 section 11: PDUs captured from real peers (libiscsi's iscsi-inq and QEMU's iSCSI
//! driver talking to tgtd over loopback), decoded and checked field by field, then re-encoded
//! byte for byte.

use bytes::{Bytes, BytesMut};
use iscsi_proto::digest::DigestConfig;
use iscsi_proto::framing::PduDecoder;
use iscsi_proto::limits::Limits;
use iscsi_proto::pdu::*;

fn vector(name: &str) -> Bytes {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let hex: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| l.split_whitespace())
        .collect();
    hex::decode(hex).expect("hex vector").into()
}

/// Decodes a vector through the streaming decoder and checks it re-encodes to the same bytes.
fn decode(name: &str, digests: DigestConfig) -> Pdu {
    let wire = vector(name);
    let mut dec = PduDecoder::new(Limits::with_max_recv_data_segment_length(262144), digests);
    let mut buf = BytesMut::from(&wire[..]);
    let pdu = dec.decode(&mut buf).expect("decodes").expect("complete");
    assert!(buf.is_empty(), "{name}: one PDU exactly");
    assert_eq!(pdu.encoded_len(digests), wire.len());
    assert_eq!(
        pdu.to_bytes(digests),
        wire,
        "{name}: re-encodes byte for byte"
    );
    pdu
}

fn text_keys(data: &[u8]) -> Vec<String> {
    data.split(|&b| b == 0)
        .filter(|k| !k.is_empty())
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect()
}

#[test]
fn libiscsi_login_request() {
    let Pdu::LoginRequest(p) = decode("login_request.hex", DigestConfig::NONE) else {
        panic!("not a login request")
    };
    assert!(p.transit);
    assert!(!p.cont);
    assert_eq!(p.csg, Stage::LOGIN_OPERATIONAL_NEGOTIATION);
    assert_eq!(p.nsg, Stage::FULL_FEATURE_PHASE);
    assert_eq!((p.version_max, p.version_min), (0, 0));
    // ISID type 2 (random) as libiscsi builds it.
    assert_eq!(p.isid[0] >> 6, 2);
    assert_eq!(p.tsih, 0);
    assert_eq!(p.cid, 0);
    assert_eq!(p.exp_stat_sn, 1);
    let keys = text_keys(&p.data);
    assert!(keys[0].starts_with("InitiatorName=iqn."), "{keys:?}");
    assert!(keys.contains(&"SessionType=Normal".to_string()));
    assert!(keys.iter().any(|k| k.starts_with("TargetName=")));
}

#[test]
fn tgtd_login_response() {
    let Pdu::LoginResponse(p) = decode("login_response.hex", DigestConfig::NONE) else {
        panic!("not a login response")
    };
    assert!(p.transit);
    assert_eq!(p.csg, Stage::LOGIN_OPERATIONAL_NEGOTIATION);
    assert_eq!(p.nsg, Stage::FULL_FEATURE_PHASE);
    assert_eq!(p.status, LoginStatus::SUCCESS);
    assert_eq!(p.status.class(), LoginStatus::CLASS_SUCCESS);
    assert_ne!(p.tsih, 0, "the target assigns a TSIH on the final response");
    assert_eq!(p.version_active, 0);
    let req = match decode("login_request.hex", DigestConfig::NONE) {
        Pdu::LoginRequest(r) => r,
        _ => unreachable!(),
    };
    assert_eq!(p.isid, req.isid);
    assert_eq!(p.itt, req.itt);
    assert_eq!(p.exp_cmd_sn, req.cmd_sn);
    assert!(p.max_cmd_sn >= p.exp_cmd_sn);
    assert!(text_keys(&p.data).contains(&"TargetPortalGroupTag=1".to_string()));
}

#[test]
fn libiscsi_test_unit_ready() {
    let Pdu::ScsiCommand(c) = decode("scsi_command_tur.hex", DigestConfig::NONE) else {
        panic!("not a SCSI command")
    };
    assert!(c.final_bit && !c.read && !c.write);
    assert_eq!(c.attr, TaskAttr::SIMPLE);
    assert_eq!(c.lun.number(), Some(1));
    assert_eq!(c.expected_data_transfer_length, 0);
    assert_eq!(c.cdb, [0u8; 16]);
    assert_eq!(c.extended_cdb, None);
    assert!(c.data.is_empty());
}

#[test]
fn tgtd_check_condition_with_sense() {
    let Pdu::ScsiResponse(r) = decode("scsi_response_check_condition.hex", DigestConfig::NONE)
    else {
        panic!("not a SCSI response")
    };
    let tur = match decode("scsi_command_tur.hex", DigestConfig::NONE) {
        Pdu::ScsiCommand(c) => c,
        _ => unreachable!(),
    };
    assert_eq!(r.itt, tur.itt);
    assert_eq!(r.response, ScsiResponseCode::COMMAND_COMPLETED);
    assert_eq!(r.status, ScsiStatus::CHECK_CONDITION);
    assert_eq!(r.stat_sn, 1);
    assert_eq!(r.exp_cmd_sn, tur.cmd_sn.wrapping_add(1));
    assert!(!r.overflow && !r.underflow);
    let sense = r.sense().unwrap();
    assert_eq!(sense.len(), 18);
    assert_eq!(sense[0] & 0x7f, 0x70, "fixed format sense");
    assert_eq!(sense[2] & 0x0f, 0x06, "UNIT ATTENTION");
    assert_eq!(
        sense[12], 0x29,
        "power on, reset or bus device reset occurred"
    );
    assert!(r.response_data().unwrap().is_empty());
}

#[test]
fn tgtd_good_response() {
    let Pdu::ScsiResponse(r) = decode("scsi_response_good.hex", DigestConfig::NONE) else {
        panic!("not a SCSI response")
    };
    assert_eq!(r.status, ScsiStatus::GOOD);
    assert_eq!(r.stat_sn, 2);
    assert!(r.data.is_empty());
    assert!(r.sense().unwrap().is_empty());
}

#[test]
fn libiscsi_inquiry() {
    let Pdu::ScsiCommand(c) = decode("scsi_command_inquiry.hex", DigestConfig::NONE) else {
        panic!("not a SCSI command")
    };
    assert!(c.final_bit && c.read && !c.write);
    assert_eq!(c.attr, TaskAttr::SIMPLE);
    assert_eq!(c.lun, Lun::from_number(1).unwrap());
    assert_eq!(c.expected_data_transfer_length, 64);
    assert_eq!(&c.cdb[..6], &[0x12, 0, 0, 0, 0x40, 0]);
    assert_eq!(c.exp_stat_sn, 3);
}

#[test]
fn tgtd_inquiry_data_in_with_status() {
    let Pdu::DataIn(d) = decode("data_in_inquiry.hex", DigestConfig::NONE) else {
        panic!("not Data-In")
    };
    let inq = match decode("scsi_command_inquiry.hex", DigestConfig::NONE) {
        Pdu::ScsiCommand(c) => c,
        _ => unreachable!(),
    };
    assert_eq!(d.itt, inq.itt);
    assert!(d.final_bit);
    assert_eq!(d.status, Some(ScsiStatus::GOOD));
    assert_eq!(d.ttt, RESERVED_TAG);
    assert_eq!((d.data_sn, d.buffer_offset, d.residual_count), (0, 0, 0));
    assert_eq!(d.stat_sn, 3);
    assert_eq!(d.data.len(), 64);
    assert_eq!(d.data[0] & 0x1f, 0, "direct access block device");
    assert_eq!(&d.data[8..16], b"IET     ");
    assert_eq!(&d.data[16..32], b"VIRTUAL-DISK    ");
}

#[test]
fn libiscsi_logout_and_tgtd_answer() {
    let Pdu::LogoutRequest(l) = decode("logout_request.hex", DigestConfig::NONE) else {
        panic!("not a logout request")
    };
    assert!(l.immediate);
    assert_eq!(l.reason, LogoutReason::CLOSE_SESSION);
    assert_eq!(l.exp_stat_sn, 5);
    let Pdu::LogoutResponse(r) = decode("logout_response.hex", DigestConfig::NONE) else {
        panic!("not a logout response")
    };
    assert_eq!(r.itt, l.itt);
    assert_eq!(r.response, LogoutResponseCode::SUCCESS);
    assert_eq!(r.stat_sn, 5);
    assert_eq!(r.exp_cmd_sn, l.cmd_sn);
    assert_eq!((r.time2wait, r.time2retain), (0, 0));
}

#[test]
fn tgtd_4k_read_for_qemu() {
    let Pdu::DataIn(d) = decode("data_in_read_4k.hex", DigestConfig::NONE) else {
        panic!("not Data-In")
    };
    assert!(d.final_bit);
    assert_eq!(d.status, Some(ScsiStatus::GOOD));
    assert_eq!(d.data.len(), 4096);
    assert!(
        d.data.iter().all(|&b| b == 0),
        "sparse backing file reads zeros"
    );
    assert_eq!(d.residual_count, 0);
}

#[test]
fn header_digests_from_real_peers() {
    let hd = DigestConfig {
        header: true,
        data: false,
    };
    let Pdu::ScsiCommand(c) = decode("scsi_command_inquiry_header_digest.hex", hd) else {
        panic!("not a SCSI command")
    };
    assert_eq!(c.cdb[0], 0x12);
    assert_eq!(c.expected_data_transfer_length, 64);
    let Pdu::DataIn(d) = decode("data_in_header_digest.hex", hd) else {
        panic!("not Data-In")
    };
    assert_eq!(d.itt, c.itt);
    assert_eq!(d.status, Some(ScsiStatus::GOOD));
    assert_eq!(&d.data[8..16], b"IET     ");

    // Without digests enabled the same bytes do not frame as one PDU.
    let wire = vector("data_in_header_digest.hex");
    assert!(Pdu::decode(wire.clone(), DigestConfig::NONE).is_err());
    // A flipped header bit is caught by the digest.
    let mut bad = BytesMut::from(&wire[..]);
    bad[20] ^= 1;
    assert!(matches!(
        Pdu::decode(bad.freeze(), hd),
        Err(PduError::HeaderDigestMismatch { .. })
    ));
}
