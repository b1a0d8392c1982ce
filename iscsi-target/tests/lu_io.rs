//! The logical unit executes block commands on a temporary file: round trips, bounds, sync,
//! unmap, compare-and-write, write same, verify, read-only units.

use std::os::unix::fs::MetadataExt;

use bytes::Bytes;
use iscsi_proto::scsi::build;
use iscsi_proto::scsi::capacity::{decode_lba_status, ProvisioningStatus};
use iscsi_proto::scsi::{Asc, ScsiStatus, SenseKey};
use iscsi_target::lu::{DataDirection, LogicalUnit, LuConfig, Nexus, ScsiOutcome};

const BLOCKS: u64 = 2048;

fn unit(bs: u32) -> (tempfile::NamedTempFile, LogicalUnit) {
    let f = tempfile::NamedTempFile::new().unwrap();
    f.as_file().set_len(BLOCKS * bs as u64).unwrap();
    let mut cfg = LuConfig::new(f.path(), 0);
    cfg.block_size = bs;
    let lu = LogicalUnit::open(cfg).unwrap();
    (f, lu)
}

fn nexus() -> Nexus {
    Nexus::new(
        "iqn.2024-01.test:init",
        [0x80, 0, 0, 0, 0, 1],
        "iqn.2024-01.test:tgt",
        1,
    )
}

fn pattern(len: usize, seed: u8) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<_>>(),
    )
}

fn assert_check(o: &ScsiOutcome, key: SenseKey, asc: Asc) {
    assert_eq!(o.status, ScsiStatus::CHECK_CONDITION, "{o:?}");
    let s = o.decoded_sense().expect("sense data");
    assert_eq!((s.key, s.asc), (key, asc), "{s:?}");
}

#[tokio::test]
async fn write_read_round_trip_both_block_sizes() {
    for bs in [512u32, 4096] {
        let (_f, lu) = unit(bs);
        let n = nexus();
        let data = pattern(8 * bs as usize, 7);
        let o = lu
            .execute(&n, &build::write16(100, 8, false), data.clone())
            .await;
        assert_eq!(o.status, ScsiStatus::GOOD);
        let o = lu
            .execute(&n, &build::read10(100, 8, false), Bytes::new())
            .await;
        assert_eq!(o.status, ScsiStatus::GOOD);
        assert_eq!(o.data_in, data);
        // FUA write and READ (6) of the last block.
        let last = pattern(bs as usize, 99);
        let o = lu
            .execute(
                &n,
                &build::write10((BLOCKS - 1) as u32, 1, true),
                last.clone(),
            )
            .await;
        assert_eq!(o.status, ScsiStatus::GOOD);
        let lba = (BLOCKS - 1) as u32;
        let read6 = [0x08, (lba >> 16) as u8, (lba >> 8) as u8, lba as u8, 1, 0];
        let o = lu.execute(&n, &read6, Bytes::new()).await;
        assert_eq!(o.data_in, last);
        assert_eq!(
            lu.data_direction(&build::write16(0, 3, false)),
            DataDirection::Out(3 * bs as u64)
        );
        assert_eq!(
            lu.data_direction(&build::read16(0, 3, false)),
            DataDirection::In(3 * bs as u64)
        );
    }
}

#[tokio::test]
async fn out_of_range_and_protect_fields_are_refused() {
    let (_f, lu) = unit(512);
    let n = nexus();
    let o = lu
        .execute(&n, &build::read16(BLOCKS - 1, 2, false), Bytes::new())
        .await;
    assert_check(&o, SenseKey::ILLEGAL_REQUEST, Asc::LBA_OUT_OF_RANGE);
    let o = lu
        .execute(&n, &build::read16(u64::MAX, 1, false), Bytes::new())
        .await;
    assert_check(&o, SenseKey::ILLEGAL_REQUEST, Asc::LBA_OUT_OF_RANGE);
    let o = lu
        .execute(
            &n,
            &build::read10((BLOCKS + 1) as u32, 0, false),
            Bytes::new(),
        )
        .await;
    assert_check(&o, SenseKey::ILLEGAL_REQUEST, Asc::LBA_OUT_OF_RANGE);
    let o = lu
        .execute(&n, &build::read10(0, 0, false), Bytes::new())
        .await;
    assert_eq!(o.status, ScsiStatus::GOOD);
    let o = lu
        .execute(&n, &build::write16(BLOCKS, 1, false), pattern(512, 1))
        .await;
    assert_check(&o, SenseKey::ILLEGAL_REQUEST, Asc::LBA_OUT_OF_RANGE);
    let mut c = build::read10(0, 1, false);
    c[1] |= 0x20; // RDPROTECT
    let o = lu.execute(&n, &c, Bytes::new()).await;
    assert_check(&o, SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB);
    // Short data-out: nothing written, INVALID FIELD IN COMMAND INFORMATION UNIT.
    let o = lu
        .execute(&n, &build::write10(0, 2, false), pattern(512, 1))
        .await;
    assert_check(
        &o,
        SenseKey::ILLEGAL_REQUEST,
        Asc::INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT,
    );
    let o = lu
        .execute(&n, &build::read10(0, 1, false), Bytes::new())
        .await;
    assert!(o.data_in.iter().all(|&b| b == 0));
    // Unknown operation code.
    let o = lu.execute(&n, &[0xC1, 0, 0, 0, 0, 0], Bytes::new()).await;
    assert_check(
        &o,
        SenseKey::ILLEGAL_REQUEST,
        Asc::INVALID_COMMAND_OPERATION_CODE,
    );
}

#[tokio::test]
async fn sync_cache_and_flush() {
    let (_f, lu) = unit(512);
    let n = nexus();
    lu.execute(&n, &build::write10(0, 1, false), pattern(512, 3))
        .await;
    let o = lu
        .execute(&n, &build::sync_cache10(0, 0, false), Bytes::new())
        .await;
    assert_eq!(o.status, ScsiStatus::GOOD);
    let o = lu
        .execute(&n, &build::sync_cache16(0, 1, true), Bytes::new())
        .await;
    assert_eq!(o.status, ScsiStatus::GOOD);
    let o = lu
        .execute(&n, &build::sync_cache16(BLOCKS, 1, false), Bytes::new())
        .await;
    assert_check(&o, SenseKey::ILLEGAL_REQUEST, Asc::LBA_OUT_OF_RANGE);
    lu.flush().await.unwrap();
}

#[tokio::test]
async fn unmap_punches_holes_and_get_lba_status_sees_them() {
    let (f, lu) = unit(512);
    let n = nexus();
    // Fill the first 1 MiB.
    let o = lu
        .execute(&n, &build::write16(0, 2048, false), pattern(1 << 20, 5))
        .await;
    assert_eq!(o.status, ScsiStatus::GOOD);
    lu.flush().await.unwrap();
    let before = std::fs::metadata(f.path()).unwrap().blocks();
    let params = build::unmap_parameter_list(&[(256, 512)]);
    let o = lu
        .execute(&n, &build::unmap(params.len() as u16), Bytes::from(params))
        .await;
    assert_eq!(o.status, ScsiStatus::GOOD, "{o:?}");
    let after = std::fs::metadata(f.path()).unwrap().blocks();
    assert!(after < before, "blocks {before} -> {after}");
    let o = lu
        .execute(&n, &build::read16(256, 512, false), Bytes::new())
        .await;
    assert!(o.data_in.iter().all(|&b| b == 0));
    let o = lu
        .execute(&n, &build::get_lba_status(300, 64), Bytes::new())
        .await;
    let d = decode_lba_status(&o.data_in).unwrap();
    assert_eq!(d[0].lba, 300);
    assert_eq!(d[0].status, ProvisioningStatus::DEALLOCATED);
    assert_eq!(d[0].blocks, 768 - 300);
    let o = lu
        .execute(&n, &build::get_lba_status(0, 64), Bytes::new())
        .await;
    let d = decode_lba_status(&o.data_in).unwrap();
    assert_eq!(
        (d[0].status, d[0].blocks),
        (ProvisioningStatus::MAPPED, 256)
    );
    // Out-of-range descriptor.
    let params = build::unmap_parameter_list(&[(BLOCKS - 1, 2)]);
    let o = lu
        .execute(&n, &build::unmap(params.len() as u16), Bytes::from(params))
        .await;
    assert_check(&o, SenseKey::ILLEGAL_REQUEST, Asc::LBA_OUT_OF_RANGE);
    // Truncated parameter list.
    let o = lu
        .execute(&n, &build::unmap(4), Bytes::from_static(&[0, 6, 0, 16]))
        .await;
    assert_check(
        &o,
        SenseKey::ILLEGAL_REQUEST,
        Asc::PARAMETER_LIST_LENGTH_ERROR,
    );
}

#[tokio::test]
async fn write_same_writes_pattern_and_unmaps_zeros() {
    let (f, lu) = unit(512);
    let n = nexus();
    let block = pattern(512, 11);
    let o = lu
        .execute(
            &n,
            &build::write_same16(10, 20, false, false),
            block.clone(),
        )
        .await;
    assert_eq!(o.status, ScsiStatus::GOOD);
    let o = lu
        .execute(&n, &build::read16(10, 20, false), Bytes::new())
        .await;
    for c in o.data_in.chunks(512) {
        assert_eq!(c, &block[..]);
    }
    lu.execute(
        &n,
        &build::write16(1024, 1024, false),
        pattern(512 * 1024, 1),
    )
    .await;
    lu.flush().await.unwrap();
    let before = std::fs::metadata(f.path()).unwrap().blocks();
    let o = lu
        .execute(
            &n,
            &build::write_same16(1024, 1024, true, true),
            Bytes::new(),
        )
        .await;
    assert_eq!(o.status, ScsiStatus::GOOD);
    assert!(std::fs::metadata(f.path()).unwrap().blocks() < before);
    // ANCHOR is not supported, zero blocks are refused (WSNZ).
    let mut c = build::write_same16(0, 1, true, false);
    c[1] |= 0x10;
    let o = lu.execute(&n, &c, Bytes::from(vec![0; 512])).await;
    assert_check(&o, SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB);
    let o = lu
        .execute(&n, &build::write_same16(0, 0, false, false), block)
        .await;
    assert_check(&o, SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB);
}

#[tokio::test]
async fn compare_and_write_and_miscompare_offset() {
    let (_f, lu) = unit(512);
    let n = nexus();
    let old = pattern(1024, 1);
    lu.execute(&n, &build::write16(50, 2, false), old.clone())
        .await;
    let new = pattern(1024, 2);
    let mut buf = old.to_vec();
    buf.extend_from_slice(&new);
    let o = lu
        .execute(
            &n,
            &build::compare_and_write(50, 2, false),
            Bytes::from(buf),
        )
        .await;
    assert_eq!(o.status, ScsiStatus::GOOD, "{o:?}");
    let o = lu
        .execute(&n, &build::read16(50, 2, false), Bytes::new())
        .await;
    assert_eq!(o.data_in, new);
    // The compare half differs at byte 700.
    let mut cmp = new.to_vec();
    cmp[700] ^= 0xFF;
    cmp.extend_from_slice(&old);
    let o = lu
        .execute(
            &n,
            &build::compare_and_write(50, 2, false),
            Bytes::from(cmp),
        )
        .await;
    assert_check(&o, SenseKey::MISCOMPARE, Asc::MISCOMPARE_DURING_VERIFY);
    assert_eq!(o.decoded_sense().unwrap().information, Some(700));
    let o = lu
        .execute(&n, &build::read16(50, 2, false), Bytes::new())
        .await;
    assert_eq!(o.data_in, new, "a miscompare writes nothing");
}

#[tokio::test]
async fn verify_bytchk() {
    let (_f, lu) = unit(512);
    let n = nexus();
    let data = pattern(1024, 9);
    lu.execute(&n, &build::write10(8, 2, false), data.clone())
        .await;
    let verify10 = |bytchk: u8| [0x2F, bytchk << 1, 0, 0, 0, 8, 0, 0, 2, 0];
    let o = lu.execute(&n, &verify10(1), data.clone()).await;
    assert_eq!(o.status, ScsiStatus::GOOD);
    let mut bad = data.to_vec();
    bad[513] ^= 1;
    let o = lu.execute(&n, &verify10(1), Bytes::from(bad)).await;
    assert_check(&o, SenseKey::MISCOMPARE, Asc::MISCOMPARE_DURING_VERIFY);
    assert_eq!(o.decoded_sense().unwrap().information, Some(513));
    let o = lu.execute(&n, &verify10(0), Bytes::new()).await;
    assert_eq!(o.status, ScsiStatus::GOOD);
}

#[tokio::test]
async fn read_only_unit_refuses_writes() {
    let f = tempfile::NamedTempFile::new().unwrap();
    f.as_file().set_len(1 << 20).unwrap();
    let mut cfg = LuConfig::new(f.path(), 3);
    cfg.read_only = true;
    let lu = LogicalUnit::open(cfg).unwrap();
    let n = nexus();
    let o = lu
        .execute(&n, &build::write10(0, 1, false), pattern(512, 0))
        .await;
    assert_check(&o, SenseKey::DATA_PROTECT, Asc::WRITE_PROTECTED);
    let o = lu
        .execute(&n, &build::read10(0, 1, false), Bytes::new())
        .await;
    assert_eq!(o.status, ScsiStatus::GOOD);
}

#[test]
fn open_errors() {
    let f = tempfile::NamedTempFile::new().unwrap();
    let mut cfg = LuConfig::new(f.path(), 0);
    cfg.block_size = 1024;
    assert!(LogicalUnit::open(cfg).is_err());
    assert!(
        LogicalUnit::open(LuConfig::new(f.path(), 0)).is_err(),
        "empty file"
    );
    assert!(LogicalUnit::open(LuConfig::new("/nonexistent/x", 0)).is_err());
}
