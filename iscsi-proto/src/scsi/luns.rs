//! SAM-5 section 4.7 (LUN representation: peripheral and flat space addressing) and SPC-4
//! section 6.33 (REPORT LUNS parameter data).

use bytes::BufMut;
use thiserror::Error;

/// Why REPORT LUNS data did not decode.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LunsError {
    #[error("REPORT LUNS data is {0} bytes, needs at least 8")]
    TooShort(usize),
    #[error("LUN list length {0} is not a multiple of 8")]
    BadListLength(u32),
}

/// Encodes a LUN number as the 8-byte LUN field: peripheral device addressing below 256, flat
/// space addressing up to 16383 (SAM-5 sections 4.7.7.1-4.7.7.2). Larger numbers are not
/// representable in single-level form and are truncated to 14 bits.
pub fn encode_lun(lun: u64) -> [u8; 8] {
    let mut out = [0u8; 8];
    if lun < 256 {
        out[1] = lun as u8;
    } else {
        out[0] = 0x40 | ((lun >> 8) as u8 & 0x3F);
        out[1] = lun as u8;
    }
    out
}

/// Decodes a single-level LUN field (peripheral or flat space addressing) to its number; other
/// addressing methods return the first two bytes as a number.
pub fn decode_lun(field: [u8; 8]) -> u64 {
    match field[0] >> 6 {
        0 | 1 => (((field[0] & 0x3F) as u64) << 8) | field[1] as u64,
        _ => u16::from_be_bytes([field[0], field[1]]) as u64,
    }
}

/// Writes REPORT LUNS parameter data for `luns` (LUN numbers).
pub fn encode_report_luns<B: BufMut>(luns: &[u64], out: &mut B) {
    out.put_u32((luns.len() * 8) as u32);
    out.put_u32(0);
    for &l in luns {
        out.put_slice(&encode_lun(l));
    }
}

/// REPORT LUNS parameter data for `luns`, cut to `alloc_len` bytes.
pub fn report_luns_data(luns: &[u64], alloc_len: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + luns.len() * 8);
    encode_report_luns(luns, &mut v);
    v.truncate(alloc_len as usize);
    v
}

/// Parses REPORT LUNS data into LUN numbers (entries cut off by the buffer end are dropped;
/// the full list length is the first value).
pub fn decode_report_luns(b: &[u8]) -> Result<(u32, Vec<u64>), LunsError> {
    if b.len() < 8 {
        return Err(LunsError::TooShort(b.len()));
    }
    let list_len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    if !list_len.is_multiple_of(8) {
        return Err(LunsError::BadListLength(list_len));
    }
    let end = b.len().min(8usize.saturating_add(list_len as usize));
    let luns = b[8..end]
        .chunks_exact(8)
        .map(|c| {
            let mut f = [0u8; 8];
            f.copy_from_slice(c);
            decode_lun(f)
        })
        .collect();
    Ok((list_len, luns))
}
