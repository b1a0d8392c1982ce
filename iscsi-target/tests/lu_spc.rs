//! SPC commands of the logical unit: INQUIRY and VPD pages (decoded with iscsi-proto's
//! decoders), READ CAPACITY, MODE SENSE/SELECT, REPORT SUPPORTED OPERATION CODES, persistent
//! reservations.

use bytes::Bytes;
use iscsi_proto::scsi::build;
use iscsi_proto::scsi::capacity::{ReadCapacity10Data, ReadCapacity16Data};
use iscsi_proto::scsi::inquiry::{
    vpd, vpd_payload, BlockDeviceCharacteristics, BlockLimits, Designator,
    LogicalBlockProvisioning, StandardInquiry,
};
use iscsi_proto::scsi::{Asc, ScsiStatus, SenseFormat, SenseKey};
use iscsi_target::lu::{LogicalUnit, LuConfig, Nexus, ScsiOutcome};

fn unit() -> (tempfile::NamedTempFile, LogicalUnit) {
    let f = tempfile::NamedTempFile::new().unwrap();
    f.as_file().set_len(4 << 20).unwrap();
    let mut cfg = LuConfig::new(f.path(), 0);
    cfg.serial = Some("SN0001".into());
    (f, LogicalUnit::open(cfg).unwrap())
}

fn nexus(i: u8) -> Nexus {
    Nexus::new(
        &format!("iqn.2024-01.test:init{i}"),
        [0x80, 0, 0, 0, 0, i],
        "iqn.2024-01.test:tgt",
        1,
    )
}

async fn run(lu: &LogicalUnit, n: &Nexus, cdb: &[u8], out: &[u8]) -> ScsiOutcome {
    lu.execute(n, cdb, Bytes::copy_from_slice(out)).await
}

async fn good(lu: &LogicalUnit, n: &Nexus, cdb: &[u8], out: &[u8]) -> Bytes {
    let o = run(lu, n, cdb, out).await;
    assert_eq!(o.status, ScsiStatus::GOOD, "{cdb:02x?}: {o:?}");
    o.data_in
}

#[tokio::test]
async fn inquiry_standard_and_vpd_pages() {
    let (_f, lu) = unit();
    let n = nexus(1);
    let d = good(&lu, &n, &build::inquiry(None, 255), &[]).await;
    let inq = StandardInquiry::decode(&d).unwrap();
    assert_eq!(
        (inq.device_type, inq.version, inq.response_data_format),
        (0, 6, 2)
    );
    assert!(inq.cmdque && inq.hisup);
    assert_eq!(&inq.vendor, b"PVD     ");
    // Allocation length truncates.
    assert_eq!(
        good(&lu, &n, &build::inquiry(None, 36), &[]).await.len(),
        36
    );

    let d = good(
        &lu,
        &n,
        &build::inquiry(Some(vpd::SUPPORTED_PAGES), 255),
        &[],
    )
    .await;
    let pages = vpd_payload(&d, 0).unwrap().to_vec();
    assert_eq!(pages, vec![0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2]);
    for p in pages {
        let d = good(&lu, &n, &build::inquiry(Some(p), 255), &[]).await;
        assert_eq!(d[1], p);
    }
    let d = good(
        &lu,
        &n,
        &build::inquiry(Some(vpd::UNIT_SERIAL_NUMBER), 255),
        &[],
    )
    .await;
    assert_eq!(vpd_payload(&d, 0x80).unwrap(), b"SN0001");

    let d = good(
        &lu,
        &n,
        &build::inquiry(Some(vpd::DEVICE_IDENTIFICATION), 255),
        &[],
    )
    .await;
    let ds = Designator::decode_list(vpd_payload(&d, 0x83).unwrap()).unwrap();
    let naa = ds
        .iter()
        .find(|d| d.designator_type == Designator::TYPE_NAA)
        .unwrap();
    assert_eq!(
        (naa.association, naa.value.len(), naa.value[0] >> 4),
        (0, 16, 6)
    );
    let rel = ds
        .iter()
        .find(|d| d.designator_type == Designator::TYPE_RELATIVE_TARGET_PORT)
        .unwrap();
    assert_eq!(rel.value, vec![0, 0, 0, 1]);
    assert!(ds
        .iter()
        .any(|d| d.designator_type == Designator::TYPE_SCSI_NAME_STRING
            && d.value.starts_with(b"iqn.2024-01.test:tgt,t,0x0001")));

    let d = good(&lu, &n, &build::inquiry(Some(vpd::BLOCK_LIMITS), 255), &[]).await;
    let bl = BlockLimits::decode_payload(vpd_payload(&d, 0xB0).unwrap()).unwrap();
    assert!(bl.wsnz && bl.max_unmap_lba_count > 0 && bl.max_transfer_len > 0);
    let d = good(
        &lu,
        &n,
        &build::inquiry(Some(vpd::LOGICAL_BLOCK_PROVISIONING), 255),
        &[],
    )
    .await;
    let lbp = LogicalBlockProvisioning::decode_payload(vpd_payload(&d, 0xB2).unwrap()).unwrap();
    assert!(lbp.lbpu && lbp.lbpws && lbp.lbpws10 && lbp.lbprz);
    let d = good(
        &lu,
        &n,
        &build::inquiry(Some(vpd::BLOCK_DEVICE_CHARACTERISTICS), 255),
        &[],
    )
    .await;
    let bdc = BlockDeviceCharacteristics::decode_payload(vpd_payload(&d, 0xB1).unwrap()).unwrap();
    assert_eq!(bdc.medium_rotation_rate, 1);

    let o = run(&lu, &n, &build::inquiry(Some(0x99), 255), &[]).await;
    assert_eq!(o.decoded_sense().unwrap().asc, Asc::INVALID_FIELD_IN_CDB);
}

#[tokio::test]
async fn read_capacity_reports_thin_provisioning() {
    let (_f, lu) = unit();
    let n = nexus(1);
    let d = good(&lu, &n, &build::read_capacity10(), &[]).await;
    assert_eq!(
        ReadCapacity10Data::decode(&d).unwrap(),
        ReadCapacity10Data {
            last_lba: 8191,
            block_len: 512
        }
    );
    let d = good(&lu, &n, &build::read_capacity16(32), &[]).await;
    let rc = ReadCapacity16Data::decode(&d).unwrap();
    assert_eq!(
        (rc.last_lba, rc.block_len, rc.lbpme, rc.lbprz),
        (8191, 512, true, true)
    );
}

#[tokio::test]
async fn mode_sense_pages_and_select() {
    let (_f, lu) = unit();
    let n = nexus(1);
    // MODE SENSE (6), all pages, with a block descriptor.
    let d = good(&lu, &n, &[0x1A, 0, 0x3F, 0, 255, 0], &[]).await;
    assert_eq!(d[0] as usize + 1, d.len());
    assert_eq!(d[3], 8);
    assert_eq!(&d[4..8], &8192u32.to_be_bytes());
    let pages = &d[12..];
    assert_eq!((pages[0], pages[1]), (0x08, 18));
    assert_eq!(pages[2] & 0x04, 0x04, "WCE");
    assert_eq!((pages[20], pages[32]), (0x0A, 0x1C));
    // MODE SENSE (10), caching page, DBD.
    let d = good(&lu, &n, &[0x5A, 0x08, 0x08, 0, 0, 0, 0, 0, 255, 0], &[]).await;
    assert_eq!(u16::from_be_bytes([d[0], d[1]]) as usize + 2, d.len());
    assert_eq!((d[7], d[8]), (0, 0x08));
    // Saved values are not supported; unknown pages are refused.
    let o = run(&lu, &n, &[0x1A, 0, 0xC8, 0, 255, 0], &[]).await;
    assert_eq!(
        o.decoded_sense().unwrap().asc,
        Asc::SAVING_PARAMETERS_NOT_SUPPORTED
    );
    let o = run(&lu, &n, &[0x1A, 0, 0x15, 0, 255, 0], &[]).await;
    assert_eq!(o.decoded_sense().unwrap().asc, Asc::INVALID_FIELD_IN_CDB);
    // MODE SELECT (6) turns D_SENSE on: sense data becomes descriptor format.
    let mut params = vec![0u8, 0, 0, 0];
    params.extend_from_slice(&[0x0A, 10, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    good(&lu, &n, &[0x15, 0x10, 0, 0, params.len() as u8, 0], &params).await;
    let o = run(&lu, &n, &build::read16(1 << 40, 1, false), &[]).await;
    assert_eq!(o.sense.as_ref().unwrap()[0], 0x72);
    assert_eq!(o.decoded_sense().unwrap().asc, Asc::LBA_OUT_OF_RANGE);
    lu.lun_reset();
    let o = run(&lu, &n, &build::read16(1 << 40, 1, false), &[]).await;
    assert_eq!(o.sense.as_ref().unwrap().len(), 18);
    let _ = SenseFormat::Fixed;
}

#[tokio::test]
async fn report_supported_operation_codes() {
    let (_f, lu) = unit();
    let n = nexus(1);
    let d = good(&lu, &n, &build::report_supported_opcodes_all(8192), &[]).await;
    let len = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize;
    assert_eq!(len + 4, d.len());
    let ops: Vec<u8> = d[4..].chunks(8).map(|c| c[0]).collect();
    for op in [0x28u8, 0x2A, 0x88, 0x8A, 0x35, 0x42, 0x89, 0x12] {
        assert!(ops.contains(&op), "{op:#x}");
    }
    // One command: READ (16).
    let mut c = build::report_supported_opcodes_all(64);
    c[2] = 1;
    c[3] = 0x88;
    let d = good(&lu, &n, &c, &[]).await;
    assert_eq!(d[1] & 7, 3);
    assert_eq!(u16::from_be_bytes([d[2], d[3]]), 16);
    assert_eq!(d[4], 0x88);
    // A service-action command asked without service action: refused.
    c[3] = 0x9E;
    let o = run(&lu, &n, &c, &[]).await;
    assert_eq!(o.decoded_sense().unwrap().asc, Asc::INVALID_FIELD_IN_CDB);
}

fn prout(action: u8, ty: u8) -> [u8; 10] {
    [0x5F, action, ty, 0, 0, 0, 0, 0, 24, 0]
}

fn prout_params(key: u64, sa_key: u64) -> Vec<u8> {
    let mut p = vec![0u8; 24];
    p[0..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    p
}

#[tokio::test]
async fn persistent_reservations_conflicts() {
    let (_f, lu) = unit();
    let (a, b, c) = (nexus(1), nexus(2), nexus(3));
    good(&lu, &a, &prout(6, 0), &prout_params(0, 0xAA)).await;
    good(&lu, &b, &prout(0, 0), &prout_params(0, 0xBB)).await;
    // Wrong key on REGISTER: conflict.
    let o = run(&lu, &b, &prout(0, 0), &prout_params(0x11, 0xCC)).await;
    assert_eq!(o.status, ScsiStatus::RESERVATION_CONFLICT);
    // READ KEYS lists both.
    let d = good(&lu, &a, &[0x5E, 0, 0, 0, 0, 0, 0, 0, 64, 0], &[]).await;
    assert_eq!(u32::from_be_bytes([d[4], d[5], d[6], d[7]]), 16);
    // A reserves Write Exclusive.
    good(&lu, &a, &prout(1, 1), &prout_params(0xAA, 0)).await;
    let d = good(&lu, &a, &[0x5E, 1, 0, 0, 0, 0, 0, 0, 64, 0], &[]).await;
    assert_eq!(&d[8..16], &0xAAu64.to_be_bytes());
    assert_eq!(d[21], 1);
    let data = Bytes::from(vec![1u8; 512]);
    assert_eq!(
        lu.execute(&a, &build::write10(0, 1, false), data.clone())
            .await
            .status,
        ScsiStatus::GOOD
    );
    assert_eq!(
        lu.execute(&b, &build::write10(0, 1, false), data.clone())
            .await
            .status,
        ScsiStatus::RESERVATION_CONFLICT
    );
    assert_eq!(
        lu.execute(&c, &build::read10(0, 1, false), Bytes::new())
            .await
            .status,
        ScsiStatus::GOOD
    );
    // Reserving again with another type from the holder conflicts; B cannot reserve.
    assert_eq!(
        run(&lu, &b, &prout(1, 1), &prout_params(0xBB, 0))
            .await
            .status,
        ScsiStatus::RESERVATION_CONFLICT
    );
    // B preempts A: the reservation moves to B, A's registration is gone.
    good(&lu, &b, &prout(4, 3), &prout_params(0xBB, 0xAA)).await;
    assert_eq!(lu.reservations().key_of(&a), None);
    assert_eq!(lu.reservations().reservation_type(), Some(3));
    assert_eq!(
        lu.execute(&a, &build::read10(0, 1, false), Bytes::new())
            .await
            .status,
        ScsiStatus::RESERVATION_CONFLICT
    );
    // Release with the wrong type is an error, with the right type works.
    let o = run(&lu, &b, &prout(2, 1), &prout_params(0xBB, 0)).await;
    assert_eq!(
        o.decoded_sense().unwrap().asc,
        Asc::INVALID_RELEASE_OF_PERSISTENT_RESERVATION
    );
    good(&lu, &b, &prout(2, 3), &prout_params(0xBB, 0)).await;
    assert_eq!(
        lu.execute(&a, &build::read10(0, 1, false), Bytes::new())
            .await
            .status,
        ScsiStatus::GOOD
    );
    // Registrants-only: registered C may write, unregistered A may not.
    good(&lu, &c, &prout(6, 0), &prout_params(0, 0xCC)).await;
    good(&lu, &b, &prout(1, 5), &prout_params(0xBB, 0)).await;
    assert_eq!(
        lu.execute(&c, &build::write10(0, 1, false), data.clone())
            .await
            .status,
        ScsiStatus::GOOD
    );
    assert_eq!(
        lu.execute(&a, &build::write10(0, 1, false), data.clone())
            .await
            .status,
        ScsiStatus::RESERVATION_CONFLICT
    );
    // CLEAR drops everything.
    let gen = lu.reservations().generation();
    good(&lu, &c, &prout(3, 0), &prout_params(0xCC, 0)).await;
    assert!(lu.reservations().generation() > gen);
    assert_eq!(lu.reservations().reservation_type(), None);
    assert_eq!(
        lu.execute(&a, &build::write10(0, 1, false), data)
            .await
            .status,
        ScsiStatus::GOOD
    );
    // REPORT CAPABILITIES and READ FULL STATUS.
    let d = good(&lu, &a, &[0x5E, 2, 0, 0, 0, 0, 0, 0, 8, 0], &[]).await;
    assert_eq!((d[1], d[4], d[5]), (8, 0xEA, 0x01));
    good(&lu, &a, &prout(6, 0), &prout_params(0, 0x1234)).await;
    let d = good(&lu, &a, &[0x5E, 3, 0, 0, 0, 0, 0, 0, 255, 0], &[]).await;
    assert_eq!(&d[8..16], &0x1234u64.to_be_bytes());
    assert_eq!(d[32], 0x45);
    // Wrong parameter list length.
    let o = run(&lu, &a, &[0x5F, 0, 0, 0, 0, 0, 0, 0, 20, 0], &[0; 20]).await;
    assert_eq!(
        o.decoded_sense().unwrap().asc,
        Asc::PARAMETER_LIST_LENGTH_ERROR
    );
    assert_eq!(o.decoded_sense().unwrap().key, SenseKey::ILLEGAL_REQUEST);
}

#[tokio::test]
async fn lun_reset_raises_one_unit_attention_per_nexus() {
    let (_f, lu) = unit();
    let (a, b, late) = (nexus(1), nexus(2), nexus(3));
    good(&lu, &a, &build::test_unit_ready(), &[]).await;
    good(&lu, &b, &build::test_unit_ready(), &[]).await;
    lu.lun_reset();
    // INQUIRY neither reports nor clears the condition.
    good(&lu, &a, &build::inquiry(None, 36), &[]).await;
    let o = run(&lu, &a, &build::test_unit_ready(), &[]).await;
    let s = o.decoded_sense().unwrap();
    assert_eq!(
        (s.key, s.asc),
        (
            SenseKey::UNIT_ATTENTION,
            Asc::BUS_DEVICE_RESET_FUNCTION_OCCURRED
        )
    );
    good(&lu, &a, &build::test_unit_ready(), &[]).await;
    // REQUEST SENSE reports and clears it for B.
    let d = good(&lu, &b, &build::request_sense(18, false), &[]).await;
    assert_eq!((d[2] & 0x0F, d[12], d[13]), (0x06, 0x29, 0x03));
    good(&lu, &b, &build::test_unit_ready(), &[]).await;
    // A nexus first seen after the reset gets none.
    good(&lu, &late, &build::read10(0, 1, false), &[]).await;
}
