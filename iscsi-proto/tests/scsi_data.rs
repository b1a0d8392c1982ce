//! Sense data and parameter data encoders/decoders round trip; negative vectors.

use bytes::BytesMut;
use iscsi_proto::scsi::capacity::{
    decode_lba_status, encode_lba_status, LbaStatusDescriptor, ProvisioningStatus,
    ReadCapacity10Data, ReadCapacity16Data,
};
use iscsi_proto::scsi::inquiry::{
    ascii_field, encode_vpd, vpd, vpd_payload, BlockLimits, Designator, InquiryError,
    LogicalBlockProvisioning, StandardInquiry,
};
use iscsi_proto::scsi::luns::{decode_lun, decode_report_luns, encode_lun, report_luns_data};
use iscsi_proto::scsi::{Asc, FieldPointer, Sense, SenseError, SenseFormat, SenseKey};
use proptest::prelude::*;

#[test]
fn fixed_sense_miscompare_offset() {
    let s = Sense::miscompare(1234);
    let b = s.to_fixed();
    assert_eq!(b[0], 0xF0);
    assert_eq!(b[2], 0x0E);
    assert_eq!(u32::from_be_bytes([b[3], b[4], b[5], b[6]]), 1234);
    assert_eq!(b[7], 10);
    assert_eq!((b[12], b[13]), (0x1D, 0x00));
    assert_eq!(Sense::decode(&b).unwrap(), s);
}

#[test]
fn descriptor_sense_round_trip() {
    let s = Sense {
        current: true,
        key: SenseKey::ILLEGAL_REQUEST,
        asc: Asc::INVALID_FIELD_IN_PARAMETER_LIST,
        information: Some(1 << 40),
        field_pointer: Some(FieldPointer {
            in_cdb: false,
            bit: Some(3),
            byte: 9,
        }),
    };
    let mut b = BytesMut::new();
    s.encode(SenseFormat::Descriptor, &mut b);
    assert_eq!(b.len(), s.encoded_len(SenseFormat::Descriptor));
    assert_eq!(b[0], 0x72);
    assert_eq!(Sense::decode(&b).unwrap(), s);
    // Fixed format cannot carry a 64-bit INFORMATION value: VALID is cleared.
    let f = Sense::decode(&s.to_fixed()).unwrap();
    assert_eq!(f.information, None);
    assert_eq!(f.field_pointer, s.field_pointer);
}

#[test]
fn sense_negative_vectors() {
    assert_eq!(Sense::decode(&[]), Err(SenseError::TooShort(0)));
    assert_eq!(Sense::decode(&[0x70, 0, 5]), Err(SenseError::TooShort(3)));
    assert_eq!(
        Sense::decode(&[0x7F; 20]),
        Err(SenseError::UnknownResponseCode(0x7F))
    );
}

#[test]
fn standard_inquiry_round_trip() {
    let inq = StandardInquiry {
        device_type: 0,
        version: 6,
        hisup: true,
        response_data_format: 2,
        cmdque: true,
        tpgs: 0,
        vendor: ascii_field("PVD"),
        product: ascii_field("VIRTUAL DISK"),
        revision: ascii_field("0001"),
        version_descriptors: vec![0x00A0, 0x0960, 0x0460, 0x04C0],
        ..Default::default()
    };
    let mut b = BytesMut::new();
    inq.encode(&mut b);
    assert_eq!(b.len(), StandardInquiry::ENCODED_LEN);
    assert_eq!(b[4] as usize + 5, b.len());
    assert_eq!(&b[8..16], b"PVD     ");
    assert_eq!(StandardInquiry::decode(&b).unwrap(), inq);
    assert!(matches!(
        StandardInquiry::decode(&b[..20]),
        Err(InquiryError::TooShort { .. })
    ));
}

#[test]
fn vpd_pages_round_trip() {
    let bl = BlockLimits {
        wsnz: true,
        max_compare_and_write_len: 255,
        optimal_transfer_granularity: 8,
        max_transfer_len: 16384,
        optimal_transfer_len: 1024,
        max_unmap_lba_count: 1 << 22,
        max_unmap_descriptor_count: 256,
        optimal_unmap_granularity: 8,
        unmap_granularity_alignment: Some(0),
        max_write_same_len: 1 << 22,
        ..Default::default()
    };
    let mut p = BytesMut::new();
    bl.encode_payload(&mut p);
    assert_eq!(p.len(), BlockLimits::PAYLOAD_LEN);
    let mut page = BytesMut::new();
    encode_vpd(0, vpd::BLOCK_LIMITS, &p, &mut page);
    let payload = vpd_payload(&page, vpd::BLOCK_LIMITS).unwrap();
    assert_eq!(BlockLimits::decode_payload(payload).unwrap(), bl);
    assert!(matches!(
        vpd_payload(&page, vpd::UNIT_SERIAL_NUMBER),
        Err(InquiryError::WrongPage { .. })
    ));

    let lbp = LogicalBlockProvisioning {
        lbpu: true,
        lbpws: true,
        lbpws10: true,
        lbprz: true,
        provisioning_type: 2,
        ..Default::default()
    };
    let mut p = BytesMut::new();
    lbp.encode_payload(&mut p);
    assert_eq!(LogicalBlockProvisioning::decode_payload(&p).unwrap(), lbp);

    let ds = vec![
        Designator {
            protocol_id: 0,
            code_set: Designator::CODE_SET_BINARY,
            piv: false,
            association: Designator::ASSOC_LU,
            designator_type: Designator::TYPE_NAA,
            value: vec![0x60, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
        },
        Designator {
            protocol_id: Designator::PROTOCOL_ISCSI,
            code_set: Designator::CODE_SET_BINARY,
            piv: true,
            association: Designator::ASSOC_TARGET_PORT,
            designator_type: Designator::TYPE_RELATIVE_TARGET_PORT,
            value: vec![0, 0, 0, 1],
        },
    ];
    let mut p = BytesMut::new();
    for d in &ds {
        d.encode(&mut p);
    }
    assert_eq!(Designator::decode_list(&p).unwrap(), ds);
    assert!(Designator::decode_list(&p[..p.len() - 1]).is_err());
}

#[test]
fn capacity_and_lba_status_round_trip() {
    let rc = ReadCapacity10Data::for_capacity(1 << 40, 512);
    assert_eq!(rc.last_lba, u32::MAX);
    let mut b = BytesMut::new();
    rc.encode(&mut b);
    assert_eq!(ReadCapacity10Data::decode(&b).unwrap(), rc);
    let rc16 = ReadCapacity16Data {
        last_lba: (1 << 40) - 1,
        block_len: 4096,
        lbpme: true,
        lbprz: true,
        ..Default::default()
    };
    let mut b = BytesMut::new();
    rc16.encode(&mut b);
    assert_eq!(b.len(), ReadCapacity16Data::LEN);
    assert_eq!(b[14] & 0xC0, 0xC0);
    assert_eq!(ReadCapacity16Data::decode(&b).unwrap(), rc16);
    assert!(ReadCapacity16Data::decode(&b[..15]).is_err());

    let descs = [
        LbaStatusDescriptor {
            lba: 0,
            blocks: 8,
            status: ProvisioningStatus::MAPPED,
        },
        LbaStatusDescriptor {
            lba: 8,
            blocks: 100,
            status: ProvisioningStatus::DEALLOCATED,
        },
    ];
    let mut b = BytesMut::new();
    encode_lba_status(&descs, &mut b);
    assert_eq!(decode_lba_status(&b).unwrap(), descs);
}

#[test]
fn report_luns_round_trip() {
    let luns = [0u64, 1, 255, 256, 16383];
    let data = report_luns_data(&luns, 4096);
    assert_eq!(data.len(), 8 + 40);
    assert_eq!(decode_report_luns(&data).unwrap(), (40, luns.to_vec()));
    // Truncated to the allocation length: the list length still says 40.
    let (len, part) = decode_report_luns(&report_luns_data(&luns, 16)).unwrap();
    assert_eq!((len, part), (40, vec![0]));
    assert_eq!(encode_lun(3), [0, 3, 0, 0, 0, 0, 0, 0]);
    assert_eq!(encode_lun(300)[0], 0x41);
    assert!(decode_report_luns(&[0, 0, 0, 3, 0, 0, 0, 0]).is_err());
}

proptest! {
    #[test]
    fn lun_round_trip(lun in 0u64..16384) {
        prop_assert_eq!(decode_lun(encode_lun(lun)), lun);
    }

    #[test]
    fn decoders_never_panic(b in proptest::collection::vec(any::<u8>(), 0..128)) {
        let _ = Sense::decode(&b);
        let _ = StandardInquiry::decode(&b);
        let _ = Designator::decode_list(&b);
        let _ = BlockLimits::decode_payload(&b);
        let _ = ReadCapacity16Data::decode(&b);
        let _ = decode_lba_status(&b);
        let _ = decode_report_luns(&b);
    }

    #[test]
    fn fixed_sense_round_trip(key in 0u8..16, asc in any::<u16>(), info in proptest::option::of(any::<u32>())) {
        let s = Sense { current: true, key: SenseKey(key), asc: Asc(asc), information: info.map(u64::from), field_pointer: None };
        prop_assert_eq!(Sense::decode(&s.to_fixed()).unwrap(), s);
    }
}
