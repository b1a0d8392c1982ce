//! SBC-3 sections 5.15-5.16 (READ CAPACITY (10)/(16) parameter data) and 5.8 (GET LBA STATUS
//! parameter data).

use bytes::BufMut;
use thiserror::Error;

/// Why capacity or LBA status data did not decode.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CapacityError {
    #[error("{what} is {got} bytes, needs at least {need}")]
    TooShort {
        what: &'static str,
        need: usize,
        got: usize,
    },
}

/// READ CAPACITY (10) data: 8 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadCapacity10Data {
    /// Last LBA, or 0xFFFF_FFFF when the capacity needs READ CAPACITY (16).
    pub last_lba: u32,
    pub block_len: u32,
}

impl ReadCapacity10Data {
    pub const LEN: usize = 8;

    /// Data for a unit of `blocks` blocks (saturating the LBA as SBC-3 says).
    pub fn for_capacity(blocks: u64, block_len: u32) -> Self {
        let last = blocks.saturating_sub(1);
        ReadCapacity10Data {
            last_lba: u32::try_from(last).unwrap_or(u32::MAX),
            block_len,
        }
    }

    pub fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32(self.last_lba);
        out.put_u32(self.block_len);
    }

    pub fn decode(b: &[u8]) -> Result<Self, CapacityError> {
        if b.len() < Self::LEN {
            return Err(CapacityError::TooShort {
                what: "READ CAPACITY (10) data",
                need: Self::LEN,
                got: b.len(),
            });
        }
        Ok(ReadCapacity10Data {
            last_lba: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            block_len: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        })
    }
}

/// READ CAPACITY (16) data: 32 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ReadCapacity16Data {
    pub last_lba: u64,
    pub block_len: u32,
    pub p_type: u8,
    pub prot_en: bool,
    pub p_i_exponent: u8,
    /// Logical blocks per physical block exponent.
    pub lbppbe: u8,
    /// Logical block provisioning management enabled (thin provisioning).
    pub lbpme: bool,
    /// Deallocated blocks read as zeros.
    pub lbprz: bool,
    pub lowest_aligned_lba: u16,
}

impl ReadCapacity16Data {
    pub const LEN: usize = 32;

    pub fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u64(self.last_lba);
        out.put_u32(self.block_len);
        out.put_u8(((self.p_type & 7) << 1) | self.prot_en as u8);
        out.put_u8((self.p_i_exponent << 4) | (self.lbppbe & 0x0F));
        out.put_u16(
            if self.lbpme { 0x8000 } else { 0 }
                | if self.lbprz { 0x4000 } else { 0 }
                | (self.lowest_aligned_lba & 0x3FFF),
        );
        out.put_bytes(0, 16);
    }

    /// Decodes at least the first 16 bytes (what SBC-2 era targets return).
    pub fn decode(b: &[u8]) -> Result<Self, CapacityError> {
        if b.len() < 16 {
            return Err(CapacityError::TooShort {
                what: "READ CAPACITY (16) data",
                need: 16,
                got: b.len(),
            });
        }
        let mut lba = [0u8; 8];
        lba.copy_from_slice(&b[0..8]);
        let flags = u16::from_be_bytes([b[14], b[15]]);
        Ok(ReadCapacity16Data {
            last_lba: u64::from_be_bytes(lba),
            block_len: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            p_type: (b[12] >> 1) & 7,
            prot_en: b[12] & 1 != 0,
            p_i_exponent: b[13] >> 4,
            lbppbe: b[13] & 0x0F,
            lbpme: flags & 0x8000 != 0,
            lbprz: flags & 0x4000 != 0,
            lowest_aligned_lba: flags & 0x3FFF,
        })
    }
}

/// SBC-3 table 38: provisioning status of an LBA status descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProvisioningStatus(pub u8);

impl ProvisioningStatus {
    pub const MAPPED: ProvisioningStatus = ProvisioningStatus(0);
    pub const DEALLOCATED: ProvisioningStatus = ProvisioningStatus(1);
    pub const ANCHORED: ProvisioningStatus = ProvisioningStatus(2);
}

/// One LBA status descriptor (16 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LbaStatusDescriptor {
    pub lba: u64,
    pub blocks: u32,
    pub status: ProvisioningStatus,
}

/// Writes GET LBA STATUS parameter data holding `descs`.
pub fn encode_lba_status<B: BufMut>(descs: &[LbaStatusDescriptor], out: &mut B) {
    out.put_u32((4 + 16 * descs.len()) as u32);
    out.put_u32(0);
    for d in descs {
        out.put_u64(d.lba);
        out.put_u32(d.blocks);
        out.put_u8(d.status.0 & 0x0F);
        out.put_bytes(0, 3);
    }
}

/// Parses GET LBA STATUS parameter data (descriptors cut off by the buffer end are dropped).
pub fn decode_lba_status(b: &[u8]) -> Result<Vec<LbaStatusDescriptor>, CapacityError> {
    if b.len() < 8 {
        return Err(CapacityError::TooShort {
            what: "GET LBA STATUS data",
            need: 8,
            got: b.len(),
        });
    }
    let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let end = b.len().min(len.saturating_add(4));
    let mut out = Vec::new();
    let mut at = 8;
    while at + 16 <= end {
        let d = &b[at..at + 16];
        let mut lba = [0u8; 8];
        lba.copy_from_slice(&d[0..8]);
        out.push(LbaStatusDescriptor {
            lba: u64::from_be_bytes(lba),
            blocks: u32::from_be_bytes([d[8], d[9], d[10], d[11]]),
            status: ProvisioningStatus(d[12] & 0x0F),
        });
        at += 16;
    }
    Ok(out)
}
