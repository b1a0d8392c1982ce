//! SAM-5 section 4.7 / RFC 7143 section 11.2.1.7: the 8-byte LUN field and its conversion to
//! and from a plain LUN number.
//!
//! Numbers below 256 use peripheral device addressing (`00 nn`), numbers 256-16383 use flat
//! space addressing (`40|hi lo`), the same single-level choice libiscsi and Linux
//! (`int_to_scsilun`) make.

/// The 8-byte LUN field, as on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lun(pub [u8; 8]);

impl Lun {
    /// Largest LUN number a single-level flat address can carry.
    pub const MAX_NUMBER: u16 = 0x3fff;

    /// The LUN field for LUN number `n`, or None above [`Lun::MAX_NUMBER`].
    pub fn from_number(n: u16) -> Option<Lun> {
        let mut b = [0u8; 8];
        if n < 256 {
            b[1] = n as u8;
        } else if n <= Self::MAX_NUMBER {
            b[0] = 0x40 | (n >> 8) as u8;
            b[1] = n as u8;
        } else {
            return None;
        }
        Some(Lun(b))
    }

    /// The LUN number of a single-level peripheral (bus 0) or flat address; None for other
    /// address methods, peripheral addresses with a bus number, or multi-level LUNs.
    pub fn number(&self) -> Option<u16> {
        if self.0[2..].iter().any(|&b| b != 0) {
            return None;
        }
        match self.0[0] >> 6 {
            0 if self.0[0] == 0 => Some(self.0[1] as u16),
            1 => Some((((self.0[0] & 0x3f) as u16) << 8) | self.0[1] as u16),
            _ => None,
        }
    }
}
