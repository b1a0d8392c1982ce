//! RFC 7143 section 11.2.2: Additional Header Segments.
//!
//! Each AHS is `AHSLength (2) | AHSType (1) | AHS-Specific (1) | data`, padded to 4 bytes.
//! AHSLength counts the AHS-Specific byte and the data (not the padding), so the data is
//! `AHSLength - 1` bytes long. Type 1 carries the bytes of a CDB beyond 16 (section 11.2.2.3),
//! type 2 the expected bidirectional read data length (section 11.2.2.4).

use bytes::{BufMut, Bytes, BytesMut};

use super::codes::AhsType;
use super::error::PduError;
use crate::limits::pad4;

/// One Additional Header Segment, kept raw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ahs {
    pub ahs_type: AhsType,
    /// The AHS-Specific byte (reserved in both defined types).
    pub specific: u8,
    /// The AHS data without padding.
    pub data: Bytes,
}

impl Ahs {
    /// Bytes this AHS occupies on the wire, padding included.
    pub fn encoded_len(&self) -> usize {
        pad4(4 + self.data.len())
    }

    /// Writes the AHS with its padding.
    ///
    /// Panics if the data is longer than AHSLength can describe (65534 bytes): the caller built it.
    pub fn encode(&self, out: &mut BytesMut) {
        let ahs_length = u16::try_from(self.data.len() + 1).expect("AHS data over 65534 bytes");
        out.put_u16(ahs_length);
        out.put_u8(self.ahs_type.0);
        out.put_u8(self.specific);
        out.put_slice(&self.data);
        out.put_bytes(0, self.encoded_len() - 4 - self.data.len());
    }
}

/// Splits the AHS area (TotalAHSLength * 4 bytes) into its segments.
pub fn parse_ahs(mut area: Bytes) -> Result<Vec<Ahs>, PduError> {
    let mut out = Vec::new();
    while !area.is_empty() {
        if area.len() < 4 {
            return Err(PduError::BadAhs {
                reason: "AHS header cut short",
            });
        }
        let ahs_length = u16::from_be_bytes([area[0], area[1]]) as usize;
        if ahs_length == 0 {
            return Err(PduError::BadAhs {
                reason: "AHSLength 0 leaves no room for the AHS-Specific byte",
            });
        }
        let total = pad4(3 + ahs_length);
        if total > area.len() {
            return Err(PduError::BadAhs {
                reason: "AHSLength runs past TotalAHSLength",
            });
        }
        let ahs_type = AhsType(area[2]);
        let specific = area[3];
        let seg = area.split_to(total);
        out.push(Ahs {
            ahs_type,
            specific,
            data: seg.slice(4..3 + ahs_length),
        });
    }
    Ok(out)
}
