//! SPC-4 section 4.2 and 6, SBC-3 section 5: typed decoding of the command descriptor blocks a
//! block device server accepts. Parsing validates the fields the standards make invalid
//! regardless of device state (e.g. INQUIRY page code without EVPD, NACA in the control byte);
//! checks that depend on the logical unit (capacity, protection support, limits) are the device
//! server's.

use thiserror::Error;

use super::opcode::{maintenance_in, service_action_in, Opcode};
use super::sense::Sense;

/// Fields shared by the READ/WRITE-family CDBs (SBC-3 sections 5.11-5.16, 5.33-5.42).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BlockRange {
    pub lba: u64,
    /// Number of logical blocks (READ/WRITE 6: 0 already turned into 256).
    pub blocks: u32,
    /// RDPROTECT / WRPROTECT / VRPROTECT / ORPROTECT (3 bits).
    pub protect: u8,
    pub dpo: bool,
    pub fua: bool,
    /// GROUP NUMBER (5 bits).
    pub group: u8,
}

/// SPC-4 section 6.9/6.10 PC field of MODE SENSE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageControl(pub u8);

impl PageControl {
    pub const CURRENT: PageControl = PageControl(0);
    pub const CHANGEABLE: PageControl = PageControl(1);
    pub const DEFAULT: PageControl = PageControl(2);
    pub const SAVED: PageControl = PageControl(3);
}

/// A decoded CDB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cdb {
    TestUnitReady,
    RequestSense {
        desc: bool,
        alloc_len: u8,
    },
    Inquiry {
        evpd: bool,
        page: u8,
        alloc_len: u16,
    },
    ModeSense {
        /// MODE SENSE (10) rather than (6).
        ten: bool,
        dbd: bool,
        llbaa: bool,
        pc: PageControl,
        page: u8,
        subpage: u8,
        alloc_len: u16,
    },
    ModeSelect {
        ten: bool,
        pf: bool,
        sp: bool,
        param_len: u16,
    },
    StartStopUnit {
        immed: bool,
        power_condition: u8,
        no_flush: bool,
        loej: bool,
        start: bool,
    },
    PreventAllow {
        prevent: u8,
    },
    ReadCapacity10 {
        lba: u32,
        pmi: bool,
    },
    ReadCapacity16 {
        lba: u64,
        pmi: bool,
        alloc_len: u32,
    },
    GetLbaStatus {
        lba: u64,
        alloc_len: u32,
    },
    /// READ (6/10/12/16); `len` is the CDB length.
    Read {
        len: u8,
        range: BlockRange,
    },
    Write {
        len: u8,
        range: BlockRange,
    },
    WriteAndVerify {
        len: u8,
        range: BlockRange,
        bytchk: u8,
    },
    Verify {
        len: u8,
        range: BlockRange,
        bytchk: u8,
    },
    OrWrite {
        range: BlockRange,
    },
    /// COMPARE AND WRITE: `range.blocks` is the NUMBER OF LOGICAL BLOCKS (at most 255).
    CompareAndWrite {
        range: BlockRange,
    },
    SyncCache {
        len: u8,
        lba: u64,
        blocks: u32,
        immed: bool,
    },
    PreFetch {
        len: u8,
        lba: u64,
        blocks: u32,
        immed: bool,
    },
    WriteSame {
        len: u8,
        range: BlockRange,
        anchor: bool,
        unmap: bool,
        /// NDOB (WRITE SAME 16 only): no data-out buffer, write zeros.
        ndob: bool,
    },
    Unmap {
        anchor: bool,
        group: u8,
        param_len: u16,
    },
    ReportLuns {
        select_report: u8,
        alloc_len: u32,
    },
    PersistentReserveIn {
        action: u8,
        alloc_len: u16,
    },
    PersistentReserveOut {
        action: u8,
        scope: u8,
        pr_type: u8,
        param_len: u32,
    },
    ReportSupportedOpcodes {
        rctd: bool,
        options: u8,
        opcode: u8,
        service_action: u16,
        alloc_len: u32,
    },
    ReadDefectData {
        twelve: bool,
        plist: bool,
        glist: bool,
        format: u8,
        alloc_len: u32,
    },
    /// An operation code (or service action of a shared operation code) this decoder does not
    /// know. The device server answers INVALID COMMAND OPERATION CODE.
    Unknown {
        opcode: Opcode,
        service_action: Option<u8>,
    },
}

/// Why a CDB was refused; [`CdbError::sense`] gives the sense data to answer with.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum CdbError {
    #[error("empty CDB")]
    Empty,
    #[error("CDB for {opcode:?} is {got} bytes, needs {need}")]
    TooShort {
        opcode: Opcode,
        need: usize,
        got: usize,
    },
    #[error("invalid field in CDB byte {byte} (bit {bit:?}): {rule}")]
    InvalidField {
        byte: u16,
        bit: Option<u8>,
        rule: &'static str,
    },
}

impl CdbError {
    /// ILLEGAL REQUEST / INVALID FIELD IN CDB with the field pointer.
    pub fn sense(&self) -> Sense {
        match *self {
            CdbError::Empty | CdbError::TooShort { .. } => Sense::invalid_field_in_cdb(0, None),
            CdbError::InvalidField { byte, bit, .. } => Sense::invalid_field_in_cdb(byte, bit),
        }
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(v)
}

fn invalid(byte: u16, bit: Option<u8>, rule: &'static str) -> CdbError {
    CdbError::InvalidField { byte, bit, rule }
}

/// Flags of byte 1 of the 10/12/16-byte READ/WRITE family.
fn flags(b: &[u8]) -> (u8, bool, bool) {
    (b[1] >> 5, b[1] & 0x10 != 0, b[1] & 0x08 != 0)
}

fn range10(b: &[u8]) -> BlockRange {
    let (protect, dpo, fua) = flags(b);
    BlockRange {
        lba: be32(b, 2) as u64,
        blocks: be16(b, 7) as u32,
        protect,
        dpo,
        fua,
        group: b[6] & 0x1F,
    }
}

fn range12(b: &[u8]) -> BlockRange {
    let (protect, dpo, fua) = flags(b);
    BlockRange {
        lba: be32(b, 2) as u64,
        blocks: be32(b, 6),
        protect,
        dpo,
        fua,
        group: b[10] & 0x1F,
    }
}

fn range16(b: &[u8]) -> BlockRange {
    let (protect, dpo, fua) = flags(b);
    BlockRange {
        lba: be64(b, 2),
        blocks: be32(b, 10),
        protect,
        dpo,
        fua,
        group: b[14] & 0x1F,
    }
}

fn range6(b: &[u8]) -> BlockRange {
    let lba = (((b[1] & 0x1F) as u64) << 16) | be16(b, 2) as u64;
    // SBC-3 section 5.12: a TRANSFER LENGTH of zero in READ (6)/WRITE (6) means 256 blocks.
    let blocks = if b[4] == 0 { 256 } else { b[4] as u32 };
    BlockRange {
        lba,
        blocks,
        ..BlockRange::default()
    }
}

impl Cdb {
    /// Decodes `cdb` (which may carry trailing padding, as the iSCSI 16-byte CDB field does).
    pub fn parse(cdb: &[u8]) -> Result<Cdb, CdbError> {
        let Some(&op) = cdb.first() else {
            return Err(CdbError::Empty);
        };
        let opcode = Opcode(op);
        let Some(need) = opcode.cdb_len() else {
            return Ok(Cdb::Unknown {
                opcode,
                service_action: None,
            });
        };
        if cdb.len() < need {
            return Err(CdbError::TooShort {
                opcode,
                need,
                got: cdb.len(),
            });
        }
        let b = &cdb[..need];
        // SAM-5 section 5.2: NACA (bit 2 of CONTROL) set while ACA is unsupported.
        if b[need - 1] & 0x04 != 0 {
            return Err(invalid(
                need as u16 - 1,
                Some(2),
                "NACA set; ACA is not supported",
            ));
        }
        let parsed = match opcode {
            Opcode::TEST_UNIT_READY => Cdb::TestUnitReady,
            Opcode::REQUEST_SENSE => Cdb::RequestSense {
                desc: b[1] & 1 != 0,
                alloc_len: b[4],
            },
            Opcode::INQUIRY => {
                let evpd = b[1] & 1 != 0;
                if b[1] & 0x02 != 0 {
                    return Err(invalid(1, Some(1), "INQUIRY CMDDT is obsolete"));
                }
                if !evpd && b[2] != 0 {
                    return Err(invalid(2, None, "INQUIRY PAGE CODE set without EVPD"));
                }
                Cdb::Inquiry {
                    evpd,
                    page: b[2],
                    alloc_len: be16(b, 3),
                }
            }
            Opcode::MODE_SENSE_6 | Opcode::MODE_SENSE_10 => {
                let ten = opcode == Opcode::MODE_SENSE_10;
                Cdb::ModeSense {
                    ten,
                    dbd: b[1] & 0x08 != 0,
                    llbaa: ten && b[1] & 0x10 != 0,
                    pc: PageControl(b[2] >> 6),
                    page: b[2] & 0x3F,
                    subpage: b[3],
                    alloc_len: if ten { be16(b, 7) } else { b[4] as u16 },
                }
            }
            Opcode::MODE_SELECT_6 | Opcode::MODE_SELECT_10 => {
                let ten = opcode == Opcode::MODE_SELECT_10;
                Cdb::ModeSelect {
                    ten,
                    pf: b[1] & 0x10 != 0,
                    sp: b[1] & 0x01 != 0,
                    param_len: if ten { be16(b, 7) } else { b[4] as u16 },
                }
            }
            Opcode::START_STOP_UNIT => Cdb::StartStopUnit {
                immed: b[1] & 1 != 0,
                power_condition: b[4] >> 4,
                no_flush: b[4] & 0x04 != 0,
                loej: b[4] & 0x02 != 0,
                start: b[4] & 0x01 != 0,
            },
            Opcode::PREVENT_ALLOW_MEDIUM_REMOVAL => Cdb::PreventAllow {
                prevent: b[4] & 0x03,
            },
            Opcode::READ_CAPACITY_10 => {
                let lba = be32(b, 2);
                let pmi = b[8] & 1 != 0;
                // SBC-3 section 5.15: LOGICAL BLOCK ADDRESS must be zero when PMI is zero.
                if !pmi && lba != 0 {
                    return Err(invalid(2, None, "READ CAPACITY LBA set without PMI"));
                }
                Cdb::ReadCapacity10 { lba, pmi }
            }
            Opcode::SERVICE_ACTION_IN_16 => match b[1] & 0x1F {
                service_action_in::READ_CAPACITY_16 => {
                    let lba = be64(b, 2);
                    let pmi = b[14] & 1 != 0;
                    if !pmi && lba != 0 {
                        return Err(invalid(2, None, "READ CAPACITY LBA set without PMI"));
                    }
                    Cdb::ReadCapacity16 {
                        lba,
                        pmi,
                        alloc_len: be32(b, 10),
                    }
                }
                service_action_in::GET_LBA_STATUS => Cdb::GetLbaStatus {
                    lba: be64(b, 2),
                    alloc_len: be32(b, 10),
                },
                sa => Cdb::Unknown {
                    opcode,
                    service_action: Some(sa),
                },
            },
            Opcode::READ_6 => Cdb::Read {
                len: 6,
                range: range6(b),
            },
            Opcode::WRITE_6 => Cdb::Write {
                len: 6,
                range: range6(b),
            },
            Opcode::READ_10 => Cdb::Read {
                len: 10,
                range: range10(b),
            },
            Opcode::READ_12 => Cdb::Read {
                len: 12,
                range: range12(b),
            },
            Opcode::READ_16 => Cdb::Read {
                len: 16,
                range: range16(b),
            },
            Opcode::WRITE_10 => Cdb::Write {
                len: 10,
                range: range10(b),
            },
            Opcode::WRITE_12 => Cdb::Write {
                len: 12,
                range: range12(b),
            },
            Opcode::WRITE_16 => Cdb::Write {
                len: 16,
                range: range16(b),
            },
            Opcode::WRITE_AND_VERIFY_10
            | Opcode::WRITE_AND_VERIFY_12
            | Opcode::WRITE_AND_VERIFY_16
            | Opcode::VERIFY_10
            | Opcode::VERIFY_12
            | Opcode::VERIFY_16 => {
                let (len, mut range) = match opcode {
                    Opcode::WRITE_AND_VERIFY_10 | Opcode::VERIFY_10 => (10, range10(b)),
                    Opcode::WRITE_AND_VERIFY_12 | Opcode::VERIFY_12 => (12, range12(b)),
                    _ => (16, range16(b)),
                };
                // Bit 3 of byte 1 is reserved in these CDBs (no FUA); BYTCHK is bits 2..1.
                range.fua = false;
                let bytchk = (b[1] >> 1) & 0x03;
                if bytchk == 0x02 {
                    return Err(invalid(1, Some(2), "BYTCHK 10b is reserved"));
                }
                let verify = matches!(
                    opcode,
                    Opcode::VERIFY_10 | Opcode::VERIFY_12 | Opcode::VERIFY_16
                );
                if verify {
                    Cdb::Verify { len, range, bytchk }
                } else {
                    Cdb::WriteAndVerify { len, range, bytchk }
                }
            }
            Opcode::ORWRITE_16 => Cdb::OrWrite { range: range16(b) },
            Opcode::COMPARE_AND_WRITE => {
                let (protect, dpo, fua) = flags(b);
                Cdb::CompareAndWrite {
                    range: BlockRange {
                        lba: be64(b, 2),
                        blocks: b[13] as u32,
                        protect,
                        dpo,
                        fua,
                        group: b[14] & 0x1F,
                    },
                }
            }
            Opcode::SYNCHRONIZE_CACHE_10 => Cdb::SyncCache {
                len: 10,
                lba: be32(b, 2) as u64,
                blocks: be16(b, 7) as u32,
                immed: b[1] & 0x02 != 0,
            },
            Opcode::SYNCHRONIZE_CACHE_16 => Cdb::SyncCache {
                len: 16,
                lba: be64(b, 2),
                blocks: be32(b, 10),
                immed: b[1] & 0x02 != 0,
            },
            Opcode::PRE_FETCH_10 => Cdb::PreFetch {
                len: 10,
                lba: be32(b, 2) as u64,
                blocks: be16(b, 7) as u32,
                immed: b[1] & 0x02 != 0,
            },
            Opcode::PRE_FETCH_16 => Cdb::PreFetch {
                len: 16,
                lba: be64(b, 2),
                blocks: be32(b, 10),
                immed: b[1] & 0x02 != 0,
            },
            Opcode::WRITE_SAME_10 | Opcode::WRITE_SAME_16 => {
                let sixteen = opcode == Opcode::WRITE_SAME_16;
                let mut range = if sixteen { range16(b) } else { range10(b) };
                range.dpo = false;
                range.fua = false;
                Cdb::WriteSame {
                    len: if sixteen { 16 } else { 10 },
                    range,
                    anchor: b[1] & 0x10 != 0,
                    unmap: b[1] & 0x08 != 0,
                    ndob: sixteen && b[1] & 0x01 != 0,
                }
            }
            Opcode::UNMAP => Cdb::Unmap {
                anchor: b[1] & 1 != 0,
                group: b[6] & 0x1F,
                param_len: be16(b, 7),
            },
            Opcode::REPORT_LUNS => Cdb::ReportLuns {
                select_report: b[2],
                alloc_len: be32(b, 6),
            },
            Opcode::PERSISTENT_RESERVE_IN => Cdb::PersistentReserveIn {
                action: b[1] & 0x1F,
                alloc_len: be16(b, 7),
            },
            Opcode::PERSISTENT_RESERVE_OUT => Cdb::PersistentReserveOut {
                action: b[1] & 0x1F,
                scope: b[2] >> 4,
                pr_type: b[2] & 0x0F,
                param_len: be32(b, 5),
            },
            Opcode::MAINTENANCE_IN => match b[1] & 0x1F {
                maintenance_in::REPORT_SUPPORTED_OPERATION_CODES => Cdb::ReportSupportedOpcodes {
                    rctd: b[2] & 0x80 != 0,
                    options: b[2] & 0x07,
                    opcode: b[3],
                    service_action: be16(b, 4),
                    alloc_len: be32(b, 6),
                },
                sa => Cdb::Unknown {
                    opcode,
                    service_action: Some(sa),
                },
            },
            Opcode::READ_DEFECT_DATA_10 => Cdb::ReadDefectData {
                twelve: false,
                plist: b[2] & 0x10 != 0,
                glist: b[2] & 0x08 != 0,
                format: b[2] & 0x07,
                alloc_len: be16(b, 7) as u32,
            },
            Opcode::READ_DEFECT_DATA_12 => Cdb::ReadDefectData {
                twelve: true,
                plist: b[1] & 0x10 != 0,
                glist: b[1] & 0x08 != 0,
                format: b[1] & 0x07,
                alloc_len: be32(b, 6),
            },
            _ => Cdb::Unknown {
                opcode,
                service_action: None,
            },
        };
        Ok(parsed)
    }

    /// Bytes of data-out this command transfers for a logical unit of `block_size`, as the
    /// CDB describes it (the iSCSI Expected Data Transfer Length should match).
    pub fn data_out_len(&self, block_size: u32) -> u64 {
        let bs = block_size as u64;
        match *self {
            Cdb::Write { range, .. }
            | Cdb::OrWrite { range }
            | Cdb::WriteAndVerify { range, .. } => range.blocks as u64 * bs,
            Cdb::Verify { range, bytchk, .. } => match bytchk {
                1 => range.blocks as u64 * bs,
                3 => bs,
                _ => 0,
            },
            Cdb::CompareAndWrite { range } => 2 * range.blocks as u64 * bs,
            Cdb::WriteSame { ndob, .. } => {
                if ndob {
                    0
                } else {
                    bs
                }
            }
            Cdb::Unmap { param_len, .. } => param_len as u64,
            Cdb::ModeSelect { param_len, .. } => param_len as u64,
            Cdb::PersistentReserveOut { param_len, .. } => param_len as u64,
            _ => 0,
        }
    }

    /// Largest number of data-in bytes this command may return (allocation length or the
    /// transfer length of a read).
    pub fn data_in_len(&self, block_size: u32) -> u64 {
        match *self {
            Cdb::Read { range, .. } => range.blocks as u64 * block_size as u64,
            Cdb::RequestSense { alloc_len, .. } => alloc_len as u64,
            Cdb::Inquiry { alloc_len, .. }
            | Cdb::ModeSense { alloc_len, .. }
            | Cdb::PersistentReserveIn { alloc_len, .. } => alloc_len as u64,
            Cdb::ReadCapacity10 { .. } => 8,
            Cdb::ReadCapacity16 { alloc_len, .. }
            | Cdb::GetLbaStatus { alloc_len, .. }
            | Cdb::ReportLuns { alloc_len, .. }
            | Cdb::ReportSupportedOpcodes { alloc_len, .. }
            | Cdb::ReadDefectData { alloc_len, .. } => alloc_len as u64,
            _ => 0,
        }
    }

    /// True for commands that modify the medium (refused on a write-protected unit).
    pub fn writes_medium(&self) -> bool {
        matches!(
            self,
            Cdb::Write { .. }
                | Cdb::WriteAndVerify { .. }
                | Cdb::OrWrite { .. }
                | Cdb::CompareAndWrite { .. }
                | Cdb::WriteSame { .. }
                | Cdb::Unmap { .. }
        )
    }
}
