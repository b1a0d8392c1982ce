//! SPC-4 section 6.4 (INQUIRY) and 7.8 (VPD pages 00h, 80h, 83h), SBC-3 section 6.6 (B0h, B1h,
//! B2h) as this logical unit reports them.

use std::path::Path;

use bytes::{BufMut, BytesMut};
use iscsi_proto::scsi::inquiry::{
    ascii_field, encode_vpd, vpd, BlockDeviceCharacteristics, BlockLimits, Designator,
    LogicalBlockProvisioning, StandardInquiry, DEVICE_TYPE_DISK,
};
use iscsi_proto::scsi::Sense;

use super::{
    Failure, LogicalUnit, Nexus, MAX_COMPARE_AND_WRITE_BLOCKS, MAX_TRANSFER_BYTES,
    MAX_UNMAP_DESCRIPTORS, MAX_UNMAP_LBA_COUNT, MAX_WRITE_SAME_BYTES, UNMAP_GRANULARITY_BYTES,
};

/// Pages listed in VPD 00h, ascending.
const SUPPORTED: [u8; 7] = [
    vpd::SUPPORTED_PAGES,
    vpd::UNIT_SERIAL_NUMBER,
    vpd::DEVICE_IDENTIFICATION,
    vpd::BLOCK_LIMITS,
    vpd::BLOCK_DEVICE_CHARACTERISTICS,
    vpd::LOGICAL_BLOCK_PROVISIONING,
    // Placeholder kept sorted; filtered below when thin provisioning is off.
    0xFF,
];

fn fnv1a(data: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A stable serial number from the backing path and LUN: 16 hex digits.
pub(crate) fn derive_serial(path: &Path, lun: u64) -> String {
    let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let h = fnv1a(canon.as_os_str().as_encoded_bytes(), lun);
    format!("{h:016x}")
}

pub(crate) fn standard_inquiry(lu: &LogicalUnit) -> BytesMut {
    let inq = StandardInquiry {
        peripheral_qualifier: 0,
        device_type: DEVICE_TYPE_DISK,
        removable: false,
        version: 0x06,
        hisup: true,
        response_data_format: 2,
        tpgs: 0,
        three_pc: false,
        protect: false,
        cmdque: true,
        vendor: ascii_field(&lu.cfg.vendor),
        product: ascii_field(&lu.cfg.product),
        revision: ascii_field(env!("CARGO_PKG_VERSION")),
        // SAM-5, iSCSI, SPC-4, SBC-3.
        version_descriptors: vec![0x00A0, 0x0960, 0x0460, 0x04C0],
    };
    let mut b = BytesMut::with_capacity(StandardInquiry::ENCODED_LEN);
    inq.encode(&mut b);
    b
}

/// Logical blocks per physical block exponent: zero (the 4 KiB preference is given as the
/// OPTIMAL TRANSFER LENGTH GRANULARITY of VPD B0h instead), because initiators such as
/// libiscsi's conformance suite expect GET LBA STATUS answers at logical block granularity.
pub(crate) fn lbppbe(_block_size: u32) -> u8 {
    0
}

/// The NAA IEEE Registered Extended designator (NAA 6), derived from the serial number.
fn naa(serial: &str) -> Vec<u8> {
    let a = fnv1a(serial.as_bytes(), 1);
    let b = fnv1a(serial.as_bytes(), 2);
    let mut v = Vec::with_capacity(16);
    v.extend_from_slice(&((a & 0x0FFF_FFFF_FFFF_FFFF) | 0x6000_0000_0000_0000).to_be_bytes());
    v.extend_from_slice(&b.to_be_bytes());
    v
}

fn scsi_name(s: String) -> Vec<u8> {
    let mut v = s.into_bytes();
    let padded = (v.len() + 1).div_ceil(4) * 4;
    v.resize(padded, 0);
    v
}

fn designators(lu: &LogicalUnit, nexus: &Nexus) -> Vec<Designator> {
    let mut t10 = ascii_field::<8>(&lu.cfg.vendor).to_vec();
    t10.extend_from_slice(lu.serial.as_bytes());
    vec![
        Designator {
            protocol_id: 0,
            code_set: Designator::CODE_SET_BINARY,
            piv: false,
            association: Designator::ASSOC_LU,
            designator_type: Designator::TYPE_NAA,
            value: naa(&lu.serial),
        },
        Designator {
            protocol_id: 0,
            code_set: Designator::CODE_SET_ASCII,
            piv: false,
            association: Designator::ASSOC_LU,
            designator_type: Designator::TYPE_T10_VENDOR_ID,
            value: t10,
        },
        Designator {
            protocol_id: Designator::PROTOCOL_ISCSI,
            code_set: Designator::CODE_SET_BINARY,
            piv: true,
            association: Designator::ASSOC_TARGET_PORT,
            designator_type: Designator::TYPE_RELATIVE_TARGET_PORT,
            value: vec![
                0,
                0,
                (nexus.relative_port >> 8) as u8,
                nexus.relative_port as u8,
            ],
        },
        Designator {
            protocol_id: Designator::PROTOCOL_ISCSI,
            code_set: Designator::CODE_SET_UTF8,
            piv: true,
            association: Designator::ASSOC_TARGET_PORT,
            designator_type: Designator::TYPE_SCSI_NAME_STRING,
            value: scsi_name(format!(
                "{},t,0x{:04x}",
                nexus.target_name, nexus.relative_port
            )),
        },
        Designator {
            protocol_id: Designator::PROTOCOL_ISCSI,
            code_set: Designator::CODE_SET_UTF8,
            piv: true,
            association: Designator::ASSOC_TARGET_DEVICE,
            designator_type: Designator::TYPE_SCSI_NAME_STRING,
            value: scsi_name(nexus.target_name.to_string()),
        },
    ]
}

pub(crate) fn vpd_page(lu: &LogicalUnit, nexus: &Nexus, page: u8) -> Result<BytesMut, Failure> {
    let bs = lu.cfg.block_size;
    let mut payload = BytesMut::with_capacity(64);
    match page {
        vpd::SUPPORTED_PAGES => {
            for &p in SUPPORTED.iter().filter(|&&p| p != 0xFF) {
                if p == vpd::LOGICAL_BLOCK_PROVISIONING && !lu.cfg.thin_provisioning {
                    continue;
                }
                payload.put_u8(p);
            }
        }
        vpd::UNIT_SERIAL_NUMBER => payload.put_slice(lu.serial.as_bytes()),
        vpd::DEVICE_IDENTIFICATION => {
            for d in designators(lu, nexus) {
                d.encode(&mut payload);
            }
        }
        vpd::BLOCK_LIMITS => {
            let thin = lu.cfg.thin_provisioning;
            BlockLimits {
                wsnz: true,
                max_compare_and_write_len: MAX_COMPARE_AND_WRITE_BLOCKS,
                optimal_transfer_granularity: (UNMAP_GRANULARITY_BYTES / bs).max(1) as u16,
                max_transfer_len: (MAX_TRANSFER_BYTES / bs as u64) as u32,
                optimal_transfer_len: ((1u32 << 20) / bs),
                max_prefetch_len: (MAX_TRANSFER_BYTES / bs as u64) as u32,
                max_unmap_lba_count: if thin { MAX_UNMAP_LBA_COUNT } else { 0 },
                max_unmap_descriptor_count: if thin { MAX_UNMAP_DESCRIPTORS } else { 0 },
                optimal_unmap_granularity: (UNMAP_GRANULARITY_BYTES / bs).max(1),
                unmap_granularity_alignment: Some(0),
                max_write_same_len: MAX_WRITE_SAME_BYTES / bs as u64,
            }
            .encode_payload(&mut payload);
        }
        vpd::BLOCK_DEVICE_CHARACTERISTICS => BlockDeviceCharacteristics {
            medium_rotation_rate: if lu.cfg.non_rotating && lu.cfg.emulate.is_none() {
                1
            } else {
                7200
            },
            product_type: 0,
            nominal_form_factor: 0,
        }
        .encode_payload(&mut payload),
        vpd::LOGICAL_BLOCK_PROVISIONING if lu.cfg.thin_provisioning => LogicalBlockProvisioning {
            threshold_exponent: 0,
            lbpu: true,
            lbpws: true,
            lbpws10: true,
            lbprz: true,
            anc_sup: false,
            dp: false,
            provisioning_type: 2,
        }
        .encode_payload(&mut payload),
        _ => return Err(Failure::Check(Sense::invalid_field_in_cdb(2, None))),
    }
    let mut out = BytesMut::with_capacity(4 + payload.len());
    encode_vpd(DEVICE_TYPE_DISK, page, &payload, &mut out);
    Ok(out)
}
