//! SBC-3 section 5 and SPC-4 section 6: CDB builders for the initiator side. Each returns the
//! CDB bytes at their natural length; iSCSI pads them to 16 bytes in the BHS.

use super::opcode::{maintenance_in, service_action_in, Opcode};

/// READ (10).
pub fn read10(lba: u32, blocks: u16, fua: bool) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = Opcode::READ_10.0;
    c[1] = if fua { 0x08 } else { 0 };
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&blocks.to_be_bytes());
    c
}

/// READ (16).
pub fn read16(lba: u64, blocks: u32, fua: bool) -> [u8; 16] {
    rw16(Opcode::READ_16, lba, blocks, fua)
}

/// WRITE (10).
pub fn write10(lba: u32, blocks: u16, fua: bool) -> [u8; 10] {
    let mut c = read10(lba, blocks, fua);
    c[0] = Opcode::WRITE_10.0;
    c
}

/// WRITE (16).
pub fn write16(lba: u64, blocks: u32, fua: bool) -> [u8; 16] {
    rw16(Opcode::WRITE_16, lba, blocks, fua)
}

fn rw16(op: Opcode, lba: u64, blocks: u32, fua: bool) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = op.0;
    c[1] = if fua { 0x08 } else { 0 };
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

/// SYNCHRONIZE CACHE (10); `blocks == 0` means through the last LBA.
pub fn sync_cache10(lba: u32, blocks: u16, immed: bool) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = Opcode::SYNCHRONIZE_CACHE_10.0;
    c[1] = if immed { 0x02 } else { 0 };
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&blocks.to_be_bytes());
    c
}

/// SYNCHRONIZE CACHE (16); `blocks == 0` means through the last LBA.
pub fn sync_cache16(lba: u64, blocks: u32, immed: bool) -> [u8; 16] {
    let mut c = rw16(Opcode::SYNCHRONIZE_CACHE_16, lba, blocks, false);
    c[1] = if immed { 0x02 } else { 0 };
    c
}

/// WRITE SAME (16) with one block of data-out (or none with `ndob`); `unmap` asks the device
/// server to deallocate.
pub fn write_same16(lba: u64, blocks: u32, unmap: bool, ndob: bool) -> [u8; 16] {
    let mut c = rw16(Opcode::WRITE_SAME_16, lba, blocks, false);
    c[1] = if unmap { 0x08 } else { 0 } | if ndob { 0x01 } else { 0 };
    c
}

/// UNMAP with a parameter list of `param_len` bytes (see [`unmap_parameter_list`]).
pub fn unmap(param_len: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = Opcode::UNMAP.0;
    c[7..9].copy_from_slice(&param_len.to_be_bytes());
    c
}

/// SBC-3 section 5.28.2: the UNMAP parameter list for `(lba, blocks)` descriptors.
pub fn unmap_parameter_list(ranges: &[(u64, u32)]) -> Vec<u8> {
    let desc_len = ranges.len() * 16;
    let mut p = Vec::with_capacity(8 + desc_len);
    p.extend_from_slice(&((desc_len + 6) as u16).to_be_bytes());
    p.extend_from_slice(&(desc_len as u16).to_be_bytes());
    p.extend_from_slice(&[0; 4]);
    for &(lba, blocks) in ranges {
        p.extend_from_slice(&lba.to_be_bytes());
        p.extend_from_slice(&blocks.to_be_bytes());
        p.extend_from_slice(&[0; 4]);
    }
    p
}

/// COMPARE AND WRITE of `blocks` blocks (data-out: compare data then write data).
pub fn compare_and_write(lba: u64, blocks: u8, fua: bool) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = Opcode::COMPARE_AND_WRITE.0;
    c[1] = if fua { 0x08 } else { 0 };
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[13] = blocks;
    c
}

/// INQUIRY for standard data (`page == None`) or a VPD page.
pub fn inquiry(page: Option<u8>, alloc_len: u16) -> [u8; 6] {
    let mut c = [0u8; 6];
    c[0] = Opcode::INQUIRY.0;
    if let Some(p) = page {
        c[1] = 1;
        c[2] = p;
    }
    c[3..5].copy_from_slice(&alloc_len.to_be_bytes());
    c
}

/// READ CAPACITY (10).
pub fn read_capacity10() -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = Opcode::READ_CAPACITY_10.0;
    c
}

/// READ CAPACITY (16).
pub fn read_capacity16(alloc_len: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = Opcode::SERVICE_ACTION_IN_16.0;
    c[1] = service_action_in::READ_CAPACITY_16;
    c[10..14].copy_from_slice(&alloc_len.to_be_bytes());
    c
}

/// GET LBA STATUS starting at `lba`.
pub fn get_lba_status(lba: u64, alloc_len: u32) -> [u8; 16] {
    let mut c = read_capacity16(alloc_len);
    c[1] = service_action_in::GET_LBA_STATUS;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c
}

/// REPORT LUNS (SELECT REPORT 0).
pub fn report_luns(alloc_len: u32) -> [u8; 12] {
    let mut c = [0u8; 12];
    c[0] = Opcode::REPORT_LUNS.0;
    c[6..10].copy_from_slice(&alloc_len.to_be_bytes());
    c
}

/// TEST UNIT READY.
pub fn test_unit_ready() -> [u8; 6] {
    [0; 6]
}

/// REQUEST SENSE (`desc`: ask for descriptor format).
pub fn request_sense(alloc_len: u8, desc: bool) -> [u8; 6] {
    [Opcode::REQUEST_SENSE.0, desc as u8, 0, 0, alloc_len, 0]
}

/// REPORT SUPPORTED OPERATION CODES with reporting options 0 (all commands).
pub fn report_supported_opcodes_all(alloc_len: u32) -> [u8; 12] {
    let mut c = [0u8; 12];
    c[0] = Opcode::MAINTENANCE_IN.0;
    c[1] = maintenance_in::REPORT_SUPPORTED_OPERATION_CODES;
    c[6..10].copy_from_slice(&alloc_len.to_be_bytes());
    c
}
