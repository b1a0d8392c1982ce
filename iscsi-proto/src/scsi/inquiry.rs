//! SPC-4 section 6.4.2 (standard INQUIRY data) and section 7.8 (vital product data pages 00h,
//! 80h, 83h) plus SBC-3 section 6.6 (VPD B0h block limits, B1h block device characteristics,
//! B2h logical block provisioning): encoders for the device server, decoders for the initiator.

use bytes::BufMut;
use thiserror::Error;

/// Why INQUIRY data did not decode.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum InquiryError {
    #[error("{what} is {got} bytes, needs at least {need}")]
    TooShort {
        what: &'static str,
        need: usize,
        got: usize,
    },
    #[error("VPD page code is {got:#04x}, expected {expected:#04x}")]
    WrongPage { expected: u8, got: u8 },
}

fn need(what: &'static str, buf: &[u8], n: usize) -> Result<(), InquiryError> {
    if buf.len() < n {
        Err(InquiryError::TooShort {
            what,
            need: n,
            got: buf.len(),
        })
    } else {
        Ok(())
    }
}

/// VPD page codes.
pub mod vpd {
    pub const SUPPORTED_PAGES: u8 = 0x00;
    pub const UNIT_SERIAL_NUMBER: u8 = 0x80;
    pub const DEVICE_IDENTIFICATION: u8 = 0x83;
    pub const BLOCK_LIMITS: u8 = 0xB0;
    pub const BLOCK_DEVICE_CHARACTERISTICS: u8 = 0xB1;
    pub const LOGICAL_BLOCK_PROVISIONING: u8 = 0xB2;
}

/// Peripheral device type of a direct-access block device.
pub const DEVICE_TYPE_DISK: u8 = 0x00;
/// Peripheral qualifier 011b + type 1Fh: no logical unit at this LUN (SPC-4 section 6.4.2).
pub const PERIPHERAL_NOT_CONNECTED: u8 = 0x7F;

/// Standard INQUIRY data.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct StandardInquiry {
    pub peripheral_qualifier: u8,
    pub device_type: u8,
    pub removable: bool,
    /// 0x06 = SPC-4.
    pub version: u8,
    pub hisup: bool,
    pub response_data_format: u8,
    pub tpgs: u8,
    pub three_pc: bool,
    pub protect: bool,
    pub cmdque: bool,
    pub vendor: [u8; 8],
    pub product: [u8; 16],
    pub revision: [u8; 4],
    /// Version descriptors (SPC-4 table 144), up to 8.
    pub version_descriptors: Vec<u16>,
}

/// Pads (or cuts) `s` to `N` bytes with ASCII spaces, as INQUIRY text fields are.
pub fn ascii_field<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [b' '; N];
    for (o, b) in out.iter_mut().zip(s.bytes()) {
        *o = if b.is_ascii_graphic() || b == b' ' {
            b
        } else {
            b'?'
        };
    }
    out
}

impl StandardInquiry {
    /// Length of the data [`StandardInquiry::encode`] writes.
    pub const ENCODED_LEN: usize = 96;

    /// Writes 96 bytes of standard INQUIRY data.
    pub fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u8((self.peripheral_qualifier << 5) | (self.device_type & 0x1F));
        out.put_u8(if self.removable { 0x80 } else { 0 });
        out.put_u8(self.version);
        out.put_u8(if self.hisup { 0x10 } else { 0 } | (self.response_data_format & 0x0F));
        out.put_u8((Self::ENCODED_LEN - 5) as u8);
        out.put_u8(
            ((self.tpgs & 3) << 4) | if self.three_pc { 0x08 } else { 0 } | self.protect as u8,
        );
        out.put_u8(0);
        out.put_u8(if self.cmdque { 0x02 } else { 0 });
        out.put_slice(&self.vendor);
        out.put_slice(&self.product);
        out.put_slice(&self.revision);
        out.put_bytes(0, 20 + 1 + 1); // vendor specific 36..56, byte 56, reserved 57
        for i in 0..8 {
            out.put_u16(self.version_descriptors.get(i).copied().unwrap_or(0));
        }
        out.put_bytes(0, Self::ENCODED_LEN - 74);
    }

    /// Parses standard INQUIRY data (at least the first 36 bytes).
    pub fn decode(buf: &[u8]) -> Result<StandardInquiry, InquiryError> {
        need("standard INQUIRY data", buf, 36)?;
        let mut inq = StandardInquiry {
            peripheral_qualifier: buf[0] >> 5,
            device_type: buf[0] & 0x1F,
            removable: buf[1] & 0x80 != 0,
            version: buf[2],
            hisup: buf[3] & 0x10 != 0,
            response_data_format: buf[3] & 0x0F,
            tpgs: (buf[5] >> 4) & 3,
            three_pc: buf[5] & 0x08 != 0,
            protect: buf[5] & 1 != 0,
            cmdque: buf[7] & 0x02 != 0,
            ..Default::default()
        };
        inq.vendor.copy_from_slice(&buf[8..16]);
        inq.product.copy_from_slice(&buf[16..32]);
        inq.revision.copy_from_slice(&buf[32..36]);
        let end = buf.len().min(5 + buf[4] as usize).min(74);
        let mut at = 58;
        while at + 2 <= end {
            let d = u16::from_be_bytes([buf[at], buf[at + 1]]);
            if d != 0 {
                inq.version_descriptors.push(d);
            }
            at += 2;
        }
        Ok(inq)
    }
}

/// Splits a VPD page into (page code, payload), checking the page code and length.
pub fn vpd_payload(buf: &[u8], expected: u8) -> Result<&[u8], InquiryError> {
    need("VPD page header", buf, 4)?;
    if buf[1] != expected {
        return Err(InquiryError::WrongPage {
            expected,
            got: buf[1],
        });
    }
    let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    Ok(&buf[4..buf.len().min(4 + len)])
}

/// Writes a VPD page header followed by `payload`.
pub fn encode_vpd<B: BufMut>(device_type: u8, page: u8, payload: &[u8], out: &mut B) {
    out.put_u8(device_type & 0x1F);
    out.put_u8(page);
    out.put_u16(payload.len() as u16);
    out.put_slice(payload);
}

/// SPC-4 section 7.8.6.1: one designation descriptor of the Device Identification page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Designator {
    pub protocol_id: u8,
    /// 1 binary, 2 ASCII, 3 UTF-8.
    pub code_set: u8,
    /// PIV: the protocol identifier is valid.
    pub piv: bool,
    /// 0 logical unit, 1 target port, 2 target device.
    pub association: u8,
    pub designator_type: u8,
    pub value: Vec<u8>,
}

impl Designator {
    pub const CODE_SET_BINARY: u8 = 1;
    pub const CODE_SET_ASCII: u8 = 2;
    pub const CODE_SET_UTF8: u8 = 3;
    pub const ASSOC_LU: u8 = 0;
    pub const ASSOC_TARGET_PORT: u8 = 1;
    pub const ASSOC_TARGET_DEVICE: u8 = 2;
    pub const TYPE_T10_VENDOR_ID: u8 = 1;
    pub const TYPE_EUI64: u8 = 2;
    pub const TYPE_NAA: u8 = 3;
    pub const TYPE_RELATIVE_TARGET_PORT: u8 = 4;
    pub const TYPE_TARGET_PORT_GROUP: u8 = 5;
    pub const TYPE_SCSI_NAME_STRING: u8 = 8;
    /// SPC-4 table 362: protocol identifier of iSCSI.
    pub const PROTOCOL_ISCSI: u8 = 5;

    /// Bytes this descriptor occupies.
    pub fn encoded_len(&self) -> usize {
        4 + self.value.len()
    }

    pub fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u8((self.protocol_id << 4) | (self.code_set & 0x0F));
        out.put_u8(
            if self.piv { 0x80 } else { 0 }
                | ((self.association & 3) << 4)
                | (self.designator_type & 0x0F),
        );
        out.put_u8(0);
        out.put_u8(self.value.len() as u8);
        out.put_slice(&self.value);
    }

    /// Parses the payload of VPD page 83h into its designators.
    pub fn decode_list(payload: &[u8]) -> Result<Vec<Designator>, InquiryError> {
        let mut out = Vec::new();
        let mut rest = payload;
        while !rest.is_empty() {
            need("designation descriptor", rest, 4)?;
            let len = rest[3] as usize;
            need("designation descriptor", rest, 4 + len)?;
            out.push(Designator {
                protocol_id: rest[0] >> 4,
                code_set: rest[0] & 0x0F,
                piv: rest[1] & 0x80 != 0,
                association: (rest[1] >> 4) & 3,
                designator_type: rest[1] & 0x0F,
                value: rest[4..4 + len].to_vec(),
            });
            rest = &rest[4 + len..];
        }
        Ok(out)
    }
}

/// SBC-3 section 6.6.4: the Block Limits VPD page (B0h) payload, 60 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BlockLimits {
    pub wsnz: bool,
    pub max_compare_and_write_len: u8,
    pub optimal_transfer_granularity: u16,
    pub max_transfer_len: u32,
    pub optimal_transfer_len: u32,
    pub max_prefetch_len: u32,
    pub max_unmap_lba_count: u32,
    pub max_unmap_descriptor_count: u32,
    pub optimal_unmap_granularity: u32,
    pub unmap_granularity_alignment: Option<u32>,
    pub max_write_same_len: u64,
}

impl BlockLimits {
    pub const PAYLOAD_LEN: usize = 60;

    pub fn encode_payload<B: BufMut>(&self, out: &mut B) {
        out.put_u8(self.wsnz as u8);
        out.put_u8(self.max_compare_and_write_len);
        out.put_u16(self.optimal_transfer_granularity);
        out.put_u32(self.max_transfer_len);
        out.put_u32(self.optimal_transfer_len);
        out.put_u32(self.max_prefetch_len);
        out.put_u32(self.max_unmap_lba_count);
        out.put_u32(self.max_unmap_descriptor_count);
        out.put_u32(self.optimal_unmap_granularity);
        out.put_u32(
            self.unmap_granularity_alignment
                .map_or(0, |a| 0x8000_0000 | (a & 0x7FFF_FFFF)),
        );
        out.put_u64(self.max_write_same_len);
        out.put_bytes(0, 20);
    }

    pub fn decode_payload(p: &[u8]) -> Result<BlockLimits, InquiryError> {
        need("block limits VPD page", p, 28)?;
        let u32_at = |i: usize| {
            p.get(i..i + 4)
                .map_or(0, |s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        };
        let uga = u32_at(28);
        Ok(BlockLimits {
            wsnz: p[0] & 1 != 0,
            max_compare_and_write_len: p[1],
            optimal_transfer_granularity: u16::from_be_bytes([p[2], p[3]]),
            max_transfer_len: u32_at(4),
            optimal_transfer_len: u32_at(8),
            max_prefetch_len: u32_at(12),
            max_unmap_lba_count: u32_at(16),
            max_unmap_descriptor_count: u32_at(20),
            optimal_unmap_granularity: u32_at(24),
            unmap_granularity_alignment: (uga & 0x8000_0000 != 0).then_some(uga & 0x7FFF_FFFF),
            max_write_same_len: ((u32_at(32) as u64) << 32) | u32_at(36) as u64,
        })
    }
}

/// SBC-3 section 6.6.5: Logical Block Provisioning VPD page (B2h) payload, 4 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LogicalBlockProvisioning {
    pub threshold_exponent: u8,
    /// UNMAP supported.
    pub lbpu: bool,
    /// WRITE SAME (16) with UNMAP supported.
    pub lbpws: bool,
    /// WRITE SAME (10) with UNMAP supported.
    pub lbpws10: bool,
    /// Deallocated blocks read back as zeros.
    pub lbprz: bool,
    pub anc_sup: bool,
    pub dp: bool,
    /// 0 not reported, 1 resource provisioned, 2 thin provisioned.
    pub provisioning_type: u8,
}

impl LogicalBlockProvisioning {
    pub const PAYLOAD_LEN: usize = 4;

    pub fn encode_payload<B: BufMut>(&self, out: &mut B) {
        out.put_u8(self.threshold_exponent);
        out.put_u8(
            if self.lbpu { 0x80 } else { 0 }
                | if self.lbpws { 0x40 } else { 0 }
                | if self.lbpws10 { 0x20 } else { 0 }
                | if self.lbprz { 0x04 } else { 0 }
                | if self.anc_sup { 0x02 } else { 0 }
                | self.dp as u8,
        );
        out.put_u8(self.provisioning_type & 7);
        out.put_u8(0);
    }

    pub fn decode_payload(p: &[u8]) -> Result<LogicalBlockProvisioning, InquiryError> {
        need("logical block provisioning VPD page", p, 3)?;
        Ok(LogicalBlockProvisioning {
            threshold_exponent: p[0],
            lbpu: p[1] & 0x80 != 0,
            lbpws: p[1] & 0x40 != 0,
            lbpws10: p[1] & 0x20 != 0,
            lbprz: p[1] & 0x1C != 0,
            anc_sup: p[1] & 0x02 != 0,
            dp: p[1] & 0x01 != 0,
            provisioning_type: p[2] & 7,
        })
    }
}

/// SBC-3 section 6.6.2: Block Device Characteristics VPD page (B1h) payload, 60 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BlockDeviceCharacteristics {
    /// 1 = non-rotating medium (solid state), otherwise revolutions per minute.
    pub medium_rotation_rate: u16,
    pub product_type: u8,
    pub nominal_form_factor: u8,
}

impl BlockDeviceCharacteristics {
    pub const PAYLOAD_LEN: usize = 60;

    pub fn encode_payload<B: BufMut>(&self, out: &mut B) {
        out.put_u16(self.medium_rotation_rate);
        out.put_u8(self.product_type);
        out.put_u8(self.nominal_form_factor & 0x0F);
        out.put_bytes(0, Self::PAYLOAD_LEN - 4);
    }

    pub fn decode_payload(p: &[u8]) -> Result<BlockDeviceCharacteristics, InquiryError> {
        need("block device characteristics VPD page", p, 4)?;
        Ok(BlockDeviceCharacteristics {
            medium_rotation_rate: u16::from_be_bytes([p[0], p[1]]),
            product_type: p[2],
            nominal_form_factor: p[3] & 0x0F,
        })
    }
}
