//! SPC-4 section 4.5: sense data, in fixed format (response codes 0x70/0x71, section 4.5.3) and
//! descriptor format (0x72/0x73, section 4.5.2) with the information (4.5.2.2) and sense-key
//! specific (4.5.2.4) descriptors.

use bytes::BufMut;
use thiserror::Error;

use super::status::{Asc, SenseKey};

/// Length of fixed-format sense data as this crate writes it (additional length 10).
pub const FIXED_SENSE_LEN: usize = 18;
/// Largest descriptor-format sense data this crate writes (header, information, sense-key specific).
pub const MAX_DESCRIPTOR_SENSE_LEN: usize = 8 + 12 + 8;

/// Which sense data format to produce (SPC-4 control mode page D_SENSE bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SenseFormat {
    #[default]
    Fixed,
    Descriptor,
}

/// SPC-4 section 4.5.2.4.2: the field pointer of an ILLEGAL REQUEST, naming the offending byte
/// (and optionally bit) of the CDB or of the parameter list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldPointer {
    /// true: the error is in the CDB (C/D bit); false: in the parameter data.
    pub in_cdb: bool,
    /// The bit (0..=7) inside the byte, when known.
    pub bit: Option<u8>,
    /// The byte offset.
    pub byte: u16,
}

impl FieldPointer {
    fn to_bytes(self) -> [u8; 3] {
        let mut b0 = 0x80; // SKSV
        if self.in_cdb {
            b0 |= 0x40;
        }
        if let Some(bit) = self.bit {
            b0 |= 0x08 | (bit & 7);
        }
        let [hi, lo] = self.byte.to_be_bytes();
        [b0, hi, lo]
    }

    fn from_bytes(b: [u8; 3]) -> Option<FieldPointer> {
        if b[0] & 0x80 == 0 {
            return None;
        }
        Some(FieldPointer {
            in_cdb: b[0] & 0x40 != 0,
            bit: (b[0] & 0x08 != 0).then_some(b[0] & 7),
            byte: u16::from_be_bytes([b[1], b[2]]),
        })
    }
}

/// Decoded sense data (the parts SBC/SPC device servers use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sense {
    /// Current (true) or deferred (false) error.
    pub current: bool,
    pub key: SenseKey,
    pub asc: Asc,
    /// The INFORMATION field (e.g. the offset of the first miscompare), when valid.
    pub information: Option<u64>,
    /// Sense-key specific field pointer (ILLEGAL REQUEST), when valid.
    pub field_pointer: Option<FieldPointer>,
}

/// Why a sense buffer did not decode.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SenseError {
    #[error("sense data is {0} bytes, shorter than the minimum for its format")]
    TooShort(usize),
    #[error(
        "sense response code {0:#04x} is neither fixed (0x70/0x71) nor descriptor (0x72/0x73)"
    )]
    UnknownResponseCode(u8),
}

impl Sense {
    /// A current error with no information or field pointer.
    pub const fn new(key: SenseKey, asc: Asc) -> Sense {
        Sense {
            current: true,
            key,
            asc,
            information: None,
            field_pointer: None,
        }
    }

    /// ILLEGAL REQUEST / INVALID FIELD IN CDB pointing at `byte` (and `bit`).
    pub const fn invalid_field_in_cdb(byte: u16, bit: Option<u8>) -> Sense {
        Sense {
            current: true,
            key: SenseKey::ILLEGAL_REQUEST,
            asc: Asc::INVALID_FIELD_IN_CDB,
            information: None,
            field_pointer: Some(FieldPointer {
                in_cdb: true,
                bit,
                byte,
            }),
        }
    }

    /// ILLEGAL REQUEST / INVALID FIELD IN PARAMETER LIST pointing at `byte`.
    pub const fn invalid_field_in_parameter_list(byte: u16, bit: Option<u8>) -> Sense {
        Sense {
            current: true,
            key: SenseKey::ILLEGAL_REQUEST,
            asc: Asc::INVALID_FIELD_IN_PARAMETER_LIST,
            information: None,
            field_pointer: Some(FieldPointer {
                in_cdb: false,
                bit,
                byte,
            }),
        }
    }

    /// MISCOMPARE / MISCOMPARE DURING VERIFY OPERATION with the byte offset of the first
    /// differing byte (SBC-3 sections 5.2 and 5.30).
    pub const fn miscompare(offset: u64) -> Sense {
        Sense {
            current: true,
            key: SenseKey::MISCOMPARE,
            asc: Asc::MISCOMPARE_DURING_VERIFY,
            information: Some(offset),
            field_pointer: None,
        }
    }

    /// Number of bytes [`Sense::encode`] writes in `format`.
    pub fn encoded_len(&self, format: SenseFormat) -> usize {
        match format {
            SenseFormat::Fixed => FIXED_SENSE_LEN,
            SenseFormat::Descriptor => {
                8 + if self.information.is_some() { 12 } else { 0 }
                    + if self.field_pointer.is_some() { 8 } else { 0 }
            }
        }
    }

    /// Writes the sense data in `format`. Fixed format carries only 32 bits of INFORMATION; a
    /// larger value is written with the VALID bit clear (SPC-4 section 4.5.3).
    pub fn encode<B: BufMut>(&self, format: SenseFormat, out: &mut B) {
        match format {
            SenseFormat::Fixed => self.encode_fixed(out),
            SenseFormat::Descriptor => self.encode_descriptor(out),
        }
    }

    fn encode_fixed<B: BufMut>(&self, out: &mut B) {
        let info32 = self.information.and_then(|i| u32::try_from(i).ok());
        let mut b0 = if self.current { 0x70 } else { 0x71 };
        if info32.is_some() {
            b0 |= 0x80;
        }
        out.put_u8(b0);
        out.put_u8(0); // obsolete
        out.put_u8(self.key.0 & 0x0F);
        out.put_u32(info32.unwrap_or(0));
        out.put_u8((FIXED_SENSE_LEN - 8) as u8);
        out.put_u32(0); // command-specific information
        out.put_u8(self.asc.asc());
        out.put_u8(self.asc.ascq());
        out.put_u8(0); // field replaceable unit code
        out.put_slice(&self.field_pointer.map_or([0; 3], FieldPointer::to_bytes));
    }

    fn encode_descriptor<B: BufMut>(&self, out: &mut B) {
        out.put_u8(if self.current { 0x72 } else { 0x73 });
        out.put_u8(self.key.0 & 0x0F);
        out.put_u8(self.asc.asc());
        out.put_u8(self.asc.ascq());
        out.put_bytes(0, 3);
        out.put_u8((self.encoded_len(SenseFormat::Descriptor) - 8) as u8);
        if let Some(info) = self.information {
            out.put_u8(0x00); // information descriptor
            out.put_u8(0x0A);
            out.put_u8(0x80); // VALID
            out.put_u8(0);
            out.put_u64(info);
        }
        if let Some(fp) = self.field_pointer {
            out.put_u8(0x02); // sense key specific descriptor
            out.put_u8(0x06);
            out.put_u16(0);
            out.put_slice(&fp.to_bytes());
            out.put_u8(0);
        }
    }

    /// Fixed-format bytes in a stack buffer.
    pub fn to_fixed(&self) -> [u8; FIXED_SENSE_LEN] {
        let mut buf = [0u8; FIXED_SENSE_LEN];
        self.encode_fixed(&mut &mut buf[..]);
        buf
    }

    /// Parses fixed or descriptor sense data. Truncated optional fields are treated as absent.
    pub fn decode(buf: &[u8]) -> Result<Sense, SenseError> {
        let Some(&b0) = buf.first() else {
            return Err(SenseError::TooShort(0));
        };
        match b0 & 0x7F {
            code @ (0x70 | 0x71) => {
                if buf.len() < 14 {
                    return Err(SenseError::TooShort(buf.len()));
                }
                let add_len = buf[7] as usize;
                let end = buf.len().min(8 + add_len);
                let information = (b0 & 0x80 != 0)
                    .then(|| u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as u64);
                let field_pointer = if end >= 18 {
                    FieldPointer::from_bytes([buf[15], buf[16], buf[17]])
                } else {
                    None
                };
                Ok(Sense {
                    current: code == 0x70,
                    key: SenseKey(buf[2] & 0x0F),
                    asc: Asc::new(buf[12], buf[13]),
                    information,
                    field_pointer,
                })
            }
            code @ (0x72 | 0x73) => {
                if buf.len() < 8 {
                    return Err(SenseError::TooShort(buf.len()));
                }
                let mut sense = Sense {
                    current: code == 0x72,
                    key: SenseKey(buf[1] & 0x0F),
                    asc: Asc::new(buf[2], buf[3]),
                    information: None,
                    field_pointer: None,
                };
                let end = buf.len().min(8 + buf[7] as usize);
                let mut descs = &buf[8..end];
                while descs.len() >= 2 {
                    let (kind, len) = (descs[0], descs[1] as usize);
                    let Some(body) = descs.get(2..2 + len) else {
                        break;
                    };
                    match kind {
                        0x00 if len >= 10 && body[0] & 0x80 != 0 => {
                            let mut v = [0u8; 8];
                            v.copy_from_slice(&body[2..10]);
                            sense.information = Some(u64::from_be_bytes(v));
                        }
                        0x02 if len >= 6 => {
                            sense.field_pointer =
                                FieldPointer::from_bytes([body[2], body[3], body[4]]);
                        }
                        _ => {}
                    }
                    descs = &descs[2 + len..];
                }
                Ok(sense)
            }
            _ => Err(SenseError::UnknownResponseCode(b0)),
        }
    }
}
