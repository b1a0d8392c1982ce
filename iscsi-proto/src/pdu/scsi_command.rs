//! RFC 7143 section 11.3: SCSI Command, with the extended CDB (section 11.2.2.3) and
//! bidirectional read length (section 11.2.2.4) AHS.

use bytes::{Bytes, BytesMut};

use super::ahs::Ahs;
use super::{AhsType, Bhs, Lun, Opcode, PduError, TaskAttr};

/// SCSI Command.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScsiCommand {
    pub immediate: bool,
    /// F: no unsolicited Data-Out follows (beyond immediate data).
    pub final_bit: bool,
    /// R: data flows target -> initiator.
    pub read: bool,
    /// W: data flows initiator -> target.
    pub write: bool,
    /// ATTR (3 bits).
    pub attr: TaskAttr,
    pub lun: Lun,
    pub itt: u32,
    pub expected_data_transfer_length: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    /// The first 16 bytes of the CDB (zero padded when shorter).
    pub cdb: [u8; 16],
    /// CDB bytes beyond 16, carried in an extended CDB AHS; None when the CDB fits.
    pub extended_cdb: Option<Bytes>,
    /// Expected bidirectional read data length AHS, for bidirectional commands.
    pub bidi_read_length: Option<u32>,
    /// Any other AHS received, kept raw (encoded after the typed ones).
    pub other_ahs: Vec<Ahs>,
    /// Immediate data.
    pub data: Bytes,
}

impl ScsiCommand {
    /// Sets `cdb` (and `extended_cdb` for CDBs over 16 bytes) from a whole CDB.
    pub fn set_cdb(&mut self, cdb: &[u8]) {
        self.cdb = [0; 16];
        let n = cdb.len().min(16);
        self.cdb[..n].copy_from_slice(&cdb[..n]);
        self.extended_cdb = (cdb.len() > 16).then(|| Bytes::copy_from_slice(&cdb[16..]));
    }

    /// Builds the command from its header and parsed AHS.
    pub fn from_parts(b: &Bhs, ahs: Vec<Ahs>, data: Bytes) -> Result<ScsiCommand, PduError> {
        let mut cmd = ScsiCommand {
            immediate: b.immediate(),
            final_bit: b.final_bit(),
            read: b.bit(1, 0x40),
            write: b.bit(1, 0x20),
            attr: TaskAttr(b.flags() & 0x07),
            lun: b.lun(),
            itt: b.itt(),
            expected_data_transfer_length: b.u32_at(20),
            cmd_sn: b.u32_at(24),
            exp_stat_sn: b.u32_at(28),
            cdb: b.array_at::<16>(32),
            data,
            ..Default::default()
        };
        for a in ahs {
            match a.ahs_type {
                AhsType::EXTENDED_CDB if cmd.extended_cdb.is_none() => {
                    cmd.extended_cdb = Some(a.data);
                }
                AhsType::BIDI_READ_DATA_LENGTH if cmd.bidi_read_length.is_none() => {
                    let len: [u8; 4] =
                        a.data.as_ref().try_into().map_err(|_| PduError::BadAhs {
                            reason: "bidirectional read data length AHS is not 4 bytes",
                        })?;
                    cmd.bidi_read_length = Some(u32::from_be_bytes(len));
                }
                AhsType::EXTENDED_CDB | AhsType::BIDI_READ_DATA_LENGTH => {
                    return Err(PduError::BadAhs {
                        reason: "AHS type repeated",
                    })
                }
                _ => cmd.other_ahs.push(a),
            }
        }
        Ok(cmd)
    }

    pub fn to_bhs(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::SCSI_COMMAND);
        b.set_immediate(self.immediate);
        b.set_flags(
            (self.final_bit as u8) << 7
                | (self.read as u8) << 6
                | (self.write as u8) << 5
                | (self.attr.0 & 0x07),
        );
        b.set_lun(self.lun);
        b.set_itt(self.itt);
        b.set_u32_at(20, self.expected_data_transfer_length);
        b.set_u32_at(24, self.cmd_sn);
        b.set_u32_at(28, self.exp_stat_sn);
        b.set_bytes_at(32, &self.cdb);
        b
    }

    fn typed_ahs(&self) -> impl Iterator<Item = Ahs> + '_ {
        let ext = self.extended_cdb.iter().map(|e| Ahs {
            ahs_type: AhsType::EXTENDED_CDB,
            specific: 0,
            data: e.clone(),
        });
        let bidi = self.bidi_read_length.iter().map(|l| Ahs {
            ahs_type: AhsType::BIDI_READ_DATA_LENGTH,
            specific: 0,
            data: Bytes::copy_from_slice(&l.to_be_bytes()),
        });
        ext.chain(bidi)
    }

    /// Bytes all AHS take on the wire.
    pub fn ahs_len(&self) -> usize {
        let typed = self
            .extended_cdb
            .as_ref()
            .map_or(0, |e| crate::limits::pad4(4 + e.len()))
            + self.bidi_read_length.map_or(0, |_| 8);
        typed + self.other_ahs.iter().map(Ahs::encoded_len).sum::<usize>()
    }

    /// Writes all AHS.
    pub fn encode_ahs(&self, out: &mut BytesMut) {
        for a in self.typed_ahs() {
            a.encode(out);
        }
        for a in &self.other_ahs {
            a.encode(out);
        }
    }
}
