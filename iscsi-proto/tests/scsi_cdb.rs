//! CDB builders round-trip through `Cdb::parse`; negative vectors; the parser never panics.

use iscsi_proto::scsi::build;
use iscsi_proto::scsi::{Asc, BlockRange, Cdb, CdbError, Opcode, Sense, SenseKey};
use proptest::prelude::*;

#[test]
fn read_write_builders_round_trip() {
    let c = Cdb::parse(&build::read10(0x1234_5678, 77, true)).unwrap();
    assert_eq!(
        c,
        Cdb::Read {
            len: 10,
            range: BlockRange {
                lba: 0x1234_5678,
                blocks: 77,
                fua: true,
                ..Default::default()
            }
        }
    );
    let c = Cdb::parse(&build::write16(u64::MAX - 5, 1 << 20, false)).unwrap();
    assert_eq!(
        c,
        Cdb::Write {
            len: 16,
            range: BlockRange {
                lba: u64::MAX - 5,
                blocks: 1 << 20,
                ..Default::default()
            }
        }
    );
    assert!(c.writes_medium());
    assert_eq!(c.data_out_len(512), 512 << 20);
    let c = Cdb::parse(&build::read16(9, 8, false)).unwrap();
    assert_eq!(c.data_in_len(4096), 8 * 4096);
    let c = Cdb::parse(&build::write10(3, 2, true)).unwrap();
    assert!(matches!(c, Cdb::Write { len: 10, range } if range.fua && range.lba == 3));
}

#[test]
fn read6_zero_length_means_256_blocks() {
    let c = Cdb::parse(&[0x08, 0x1F, 0xFF, 0xFF, 0, 0]).unwrap();
    assert_eq!(
        c,
        Cdb::Read {
            len: 6,
            range: BlockRange {
                lba: 0x1F_FFFF,
                blocks: 256,
                ..Default::default()
            }
        }
    );
}

#[test]
fn other_builders_round_trip() {
    assert_eq!(
        Cdb::parse(&build::sync_cache10(5, 6, true)).unwrap(),
        Cdb::SyncCache {
            len: 10,
            lba: 5,
            blocks: 6,
            immed: true
        }
    );
    assert_eq!(
        Cdb::parse(&build::sync_cache16(1 << 40, 0, false)).unwrap(),
        Cdb::SyncCache {
            len: 16,
            lba: 1 << 40,
            blocks: 0,
            immed: false
        }
    );
    let ws = Cdb::parse(&build::write_same16(100, 50, true, false)).unwrap();
    assert!(
        matches!(ws, Cdb::WriteSame { len: 16, range, unmap: true, anchor: false, ndob: false }
            if range.lba == 100 && range.blocks == 50)
    );
    assert_eq!(ws.data_out_len(512), 512);
    let ws = Cdb::parse(&build::write_same16(0, 1, true, true)).unwrap();
    assert_eq!(ws.data_out_len(512), 0);
    let params = build::unmap_parameter_list(&[(1, 2), (10, 20)]);
    assert_eq!(params.len(), 8 + 32);
    assert_eq!(&params[0..4], &[0, 38, 0, 32]);
    let u = Cdb::parse(&build::unmap(params.len() as u16)).unwrap();
    assert_eq!(
        u,
        Cdb::Unmap {
            anchor: false,
            group: 0,
            param_len: 40
        }
    );
    let cw = Cdb::parse(&build::compare_and_write(42, 3, true)).unwrap();
    assert!(
        matches!(cw, Cdb::CompareAndWrite { range } if range.lba == 42 && range.blocks == 3 && range.fua)
    );
    assert_eq!(cw.data_out_len(4096), 6 * 4096);
    assert_eq!(
        Cdb::parse(&build::inquiry(None, 96)).unwrap(),
        Cdb::Inquiry {
            evpd: false,
            page: 0,
            alloc_len: 96
        }
    );
    assert_eq!(
        Cdb::parse(&build::inquiry(Some(0x83), 255)).unwrap(),
        Cdb::Inquiry {
            evpd: true,
            page: 0x83,
            alloc_len: 255
        }
    );
    assert_eq!(
        Cdb::parse(&build::read_capacity10()).unwrap(),
        Cdb::ReadCapacity10 { lba: 0, pmi: false }
    );
    assert_eq!(
        Cdb::parse(&build::read_capacity16(32)).unwrap(),
        Cdb::ReadCapacity16 {
            lba: 0,
            pmi: false,
            alloc_len: 32
        }
    );
    assert_eq!(
        Cdb::parse(&build::get_lba_status(7, 24)).unwrap(),
        Cdb::GetLbaStatus {
            lba: 7,
            alloc_len: 24
        }
    );
    assert_eq!(
        Cdb::parse(&build::report_luns(4096)).unwrap(),
        Cdb::ReportLuns {
            select_report: 0,
            alloc_len: 4096
        }
    );
    assert_eq!(
        Cdb::parse(&build::test_unit_ready()).unwrap(),
        Cdb::TestUnitReady
    );
    assert_eq!(
        Cdb::parse(&build::request_sense(18, true)).unwrap(),
        Cdb::RequestSense {
            desc: true,
            alloc_len: 18
        }
    );
    assert!(matches!(
        Cdb::parse(&build::report_supported_opcodes_all(1024)).unwrap(),
        Cdb::ReportSupportedOpcodes {
            options: 0,
            alloc_len: 1024,
            ..
        }
    ));
}

#[test]
fn padded_cdbs_parse_like_natural_ones() {
    let mut padded = [0u8; 16];
    padded[..10].copy_from_slice(&build::read10(1, 1, false));
    assert_eq!(
        Cdb::parse(&padded).unwrap(),
        Cdb::parse(&build::read10(1, 1, false)).unwrap()
    );
}

#[test]
fn negative_vectors() {
    assert_eq!(Cdb::parse(&[]), Err(CdbError::Empty));
    assert!(matches!(
        Cdb::parse(&[0x28, 0, 0]),
        Err(CdbError::TooShort {
            need: 10,
            got: 3,
            ..
        })
    ));
    // INQUIRY page code without EVPD.
    let e = Cdb::parse(&[0x12, 0, 0x83, 0, 255, 0]).unwrap_err();
    assert!(matches!(e, CdbError::InvalidField { byte: 2, .. }));
    let s = e.sense();
    assert_eq!(s.key, SenseKey::ILLEGAL_REQUEST);
    assert_eq!(s.asc, Asc::INVALID_FIELD_IN_CDB);
    // NACA in the control byte.
    let mut c = build::read10(0, 1, false);
    c[9] = 0x04;
    assert!(matches!(
        Cdb::parse(&c),
        Err(CdbError::InvalidField {
            byte: 9,
            bit: Some(2),
            ..
        })
    ));
    // READ CAPACITY (10) with an LBA but no PMI.
    let mut c = build::read_capacity10();
    c[5] = 1;
    assert!(Cdb::parse(&c).is_err());
    // VERIFY with the reserved BYTCHK value 10b.
    assert!(Cdb::parse(&[0x2F, 0x04, 0, 0, 0, 0, 0, 0, 1, 0]).is_err());
    // Unknown operation codes and service actions parse as Unknown.
    assert_eq!(
        Cdb::parse(&[0xC0, 0, 0, 0, 0, 0]).unwrap(),
        Cdb::Unknown {
            opcode: Opcode(0xC0),
            service_action: None
        }
    );
    let mut c = build::read_capacity16(32);
    c[1] = 0x1F;
    assert_eq!(
        Cdb::parse(&c).unwrap(),
        Cdb::Unknown {
            opcode: Opcode::SERVICE_ACTION_IN_16,
            service_action: Some(0x1F)
        }
    );
}

#[test]
fn cdb_error_sense_is_fixed_format_field_pointer() {
    let e = Cdb::parse(&[0x12, 0, 0x80, 0, 255, 0]).unwrap_err();
    let bytes = e.sense().to_fixed();
    assert_eq!(bytes[0], 0x70);
    assert_eq!(bytes[2], 0x05);
    assert_eq!(bytes[12], 0x24);
    assert_eq!(bytes[15], 0xC0); // SKSV | C/D
    assert_eq!(u16::from_be_bytes([bytes[16], bytes[17]]), 2);
    assert_eq!(Sense::decode(&bytes).unwrap(), e.sense());
}

proptest! {
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..24)) {
        if let Ok(cdb) = Cdb::parse(&bytes) {
            let _ = cdb.data_out_len(512);
            let _ = cdb.data_in_len(4096);
        }
    }

    #[test]
    fn rw16_round_trip(lba in any::<u64>(), blocks in any::<u32>(), fua in any::<bool>()) {
        let c = Cdb::parse(&build::read16(lba, blocks, fua)).unwrap();
        prop_assert_eq!(c, Cdb::Read { len: 16, range: BlockRange { lba, blocks, fua, ..Default::default() } });
    }
}
