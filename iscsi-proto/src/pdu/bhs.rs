//! RFC 7143 section 11.2.1: the 48-byte Basic Header Segment, as a typed view over its bytes.
//!
//! Byte layout common to every PDU:
//!
//! ```text
//! byte 0      .|I| opcode (6 bits)
//! byte 1      F| opcode-specific
//! bytes 2-3   opcode-specific
//! byte 4      TotalAHSLength (4-byte words)
//! bytes 5-7   DataSegmentLength (bytes, without padding)
//! bytes 8-15  LUN or opcode-specific
//! bytes 16-19 Initiator Task Tag
//! bytes 20-47 opcode-specific
//! ```

use super::codes::Opcode;
use super::lun::Lun;
use crate::limits::{pad4, BHS_LEN};

/// The Basic Header Segment of one PDU.
///
/// The offset accessors (`u8_at`, `u16_at`, `u32_at` and setters) index into the 48 bytes with
/// big-endian ("network order") integers; they panic on an offset past the header, which only a
/// programming error (not peer input) can produce since offsets are constants.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bhs(pub [u8; BHS_LEN]);

impl Default for Bhs {
    fn default() -> Self {
        Bhs([0; BHS_LEN])
    }
}

impl core::fmt::Debug for Bhs {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Bhs({:?} ", self.opcode())?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// The reserved tag value 0xffffffff (RFC 7143 section 11.2.1.8): "no task" / "not answering
/// anything".
pub const RESERVED_TAG: u32 = 0xffff_ffff;

impl Bhs {
    /// An all-zero header carrying `opcode`.
    pub fn new(opcode: Opcode) -> Bhs {
        let mut b = Bhs::default();
        b.set_opcode(opcode);
        b
    }

    /// The header at the start of `bytes`, if at least 48 bytes are there.
    pub fn from_slice(bytes: &[u8]) -> Option<Bhs> {
        let head: &[u8; BHS_LEN] = bytes.get(..BHS_LEN)?.try_into().ok()?;
        Some(Bhs(*head))
    }

    /// The opcode (low 6 bits of byte 0).
    pub fn opcode(&self) -> Opcode {
        Opcode(self.0[0] & 0x3f)
    }
    /// Sets the opcode, keeping the I bit.
    pub fn set_opcode(&mut self, op: Opcode) {
        self.0[0] = (self.0[0] & 0xc0) | (op.0 & 0x3f);
    }

    /// The immediate delivery bit (I, 0x40 of byte 0).
    pub fn immediate(&self) -> bool {
        self.0[0] & 0x40 != 0
    }
    /// Sets or clears the immediate bit.
    pub fn set_immediate(&mut self, on: bool) {
        self.set_bit(0, 0x40, on);
    }

    /// The final bit (F, 0x80 of byte 1; T for Login PDUs).
    pub fn final_bit(&self) -> bool {
        self.0[1] & 0x80 != 0
    }
    /// Sets or clears the final bit.
    pub fn set_final(&mut self, on: bool) {
        self.set_bit(1, 0x80, on);
    }

    /// Byte 1 whole (F and the opcode-specific flags).
    pub fn flags(&self) -> u8 {
        self.0[1]
    }
    /// Replaces byte 1.
    pub fn set_flags(&mut self, flags: u8) {
        self.0[1] = flags;
    }

    /// Tests a bit mask in byte `at`.
    pub fn bit(&self, at: usize, mask: u8) -> bool {
        self.0[at] & mask != 0
    }
    /// Sets or clears a bit mask in byte `at`.
    pub fn set_bit(&mut self, at: usize, mask: u8, on: bool) {
        if on {
            self.0[at] |= mask;
        } else {
            self.0[at] &= !mask;
        }
    }

    /// TotalAHSLength in 4-byte words (byte 4).
    pub fn total_ahs_length(&self) -> u8 {
        self.0[4]
    }
    /// Sets TotalAHSLength (in 4-byte words).
    pub fn set_total_ahs_length(&mut self, words: u8) {
        self.0[4] = words;
    }
    /// Length of the AHS in bytes.
    pub fn ahs_len(&self) -> usize {
        self.0[4] as usize * 4
    }

    /// DataSegmentLength (24 bits, bytes 5-7), without padding.
    pub fn data_segment_length(&self) -> u32 {
        u32::from_be_bytes([0, self.0[5], self.0[6], self.0[7]])
    }
    /// Sets DataSegmentLength; only the low 24 bits are kept.
    pub fn set_data_segment_length(&mut self, len: u32) {
        let b = len.to_be_bytes();
        self.0[5..8].copy_from_slice(&b[1..]);
    }
    /// DataSegmentLength rounded up to the 4-byte boundary.
    pub fn padded_data_len(&self) -> usize {
        pad4(self.data_segment_length() as usize)
    }

    /// Bytes 8-15 as a LUN.
    pub fn lun(&self) -> Lun {
        Lun(self.array_at::<8>(8))
    }
    /// Sets bytes 8-15.
    pub fn set_lun(&mut self, lun: Lun) {
        self.0[8..16].copy_from_slice(&lun.0);
    }

    /// Initiator Task Tag (bytes 16-19).
    pub fn itt(&self) -> u32 {
        self.u32_at(16)
    }
    /// Sets the Initiator Task Tag.
    pub fn set_itt(&mut self, itt: u32) {
        self.set_u32_at(16, itt);
    }

    /// Byte at `at`.
    pub fn u8_at(&self, at: usize) -> u8 {
        self.0[at]
    }
    /// Sets the byte at `at`.
    pub fn set_u8_at(&mut self, at: usize, v: u8) {
        self.0[at] = v;
    }
    /// Big-endian u16 at `at`.
    pub fn u16_at(&self, at: usize) -> u16 {
        u16::from_be_bytes(self.array_at::<2>(at))
    }
    /// Writes a big-endian u16 at `at`.
    pub fn set_u16_at(&mut self, at: usize, v: u16) {
        self.0[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
    /// Big-endian u32 at `at`.
    pub fn u32_at(&self, at: usize) -> u32 {
        u32::from_be_bytes(self.array_at::<4>(at))
    }
    /// Writes a big-endian u32 at `at`.
    pub fn set_u32_at(&mut self, at: usize, v: u32) {
        self.0[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }
    /// `N` bytes starting at `at`.
    pub fn array_at<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.0[at..at + N]);
        a
    }
    /// Copies `bytes` in starting at `at`.
    pub fn set_bytes_at(&mut self, at: usize, bytes: &[u8]) {
        self.0[at..at + bytes.len()].copy_from_slice(bytes);
    }
}
