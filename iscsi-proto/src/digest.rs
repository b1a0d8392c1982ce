//! RFC 7143 sections 11.2.3 and 13.1: CRC32C header and data digests.
//!
//! The header digest covers the BHS and all AHS; the data digest covers the data segment and its
//! padding. The 32-bit CRC (Castagnoli polynomial, RFC 7143 appendix B.4) travels least
//! significant byte first: 32 zero bytes digest to `aa 36 91 8a` on the wire.

use crate::limits::DIGEST_LEN;

/// Which digests a connection uses (negotiated with HeaderDigest / DataDigest, RFC 7143
/// sections 13.1; they take effect after login).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DigestConfig {
    /// CRC32C over BHS + AHS.
    pub header: bool,
    /// CRC32C over data segment + padding.
    pub data: bool,
}

impl DigestConfig {
    /// No digests (the state during login).
    pub const NONE: DigestConfig = DigestConfig {
        header: false,
        data: false,
    };
    /// Both digests.
    pub const BOTH: DigestConfig = DigestConfig {
        header: true,
        data: true,
    };

    /// Bytes the header digest occupies on the wire (0 or 4).
    pub const fn header_len(&self) -> usize {
        if self.header {
            DIGEST_LEN
        } else {
            0
        }
    }

    /// Bytes the data digest occupies after a non-empty data segment (0 or 4).
    pub const fn data_len(&self) -> usize {
        if self.data {
            DIGEST_LEN
        } else {
            0
        }
    }
}

/// CRC32C of `bytes`.
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// Continues a CRC32C computation over more bytes.
pub fn crc32c_append(crc: u32, bytes: &[u8]) -> u32 {
    crc32c::crc32c_append(crc, bytes)
}

/// Header digest of BHS + AHS, as its 4 wire bytes.
pub fn header_digest(bhs_and_ahs: &[u8]) -> [u8; DIGEST_LEN] {
    crc32c(bhs_and_ahs).to_le_bytes()
}

/// Data digest of a data segment, padding zeros included, as its 4 wire bytes.
pub fn data_digest(data: &[u8]) -> [u8; DIGEST_LEN] {
    let pad = crate::limits::pad4(data.len()) - data.len();
    crc32c_append(crc32c(data), &[0u8; 3][..pad]).to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_appendix_b4_vectors() {
        assert_eq!(header_digest(&[0u8; 32]), [0xaa, 0x36, 0x91, 0x8a]);
        assert_eq!(header_digest(&[0xffu8; 32]), [0x43, 0xab, 0xa8, 0x62]);
        let incrementing: Vec<u8> = (0u8..32).collect();
        assert_eq!(header_digest(&incrementing), [0x4e, 0x79, 0xdd, 0x46]);
    }

    #[test]
    fn data_digest_covers_padding() {
        assert_eq!(data_digest(b"abc"), header_digest(b"abc\0"));
        assert_eq!(data_digest(b"abcd"), header_digest(b"abcd"));
    }
}
