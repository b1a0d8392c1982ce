//! RFC 7143 sections 4.2.5.2 (unsolicited data), 11.7 (SCSI Data-Out), 11.8 (R2T) and 13.13-13.17
//! (FirstBurstLength, MaxBurstLength, InitialR2T, ImmediateData, MaxOutstandingR2T): gathering
//! the data-out buffer of one write command.
//!
//! The buffer is filled from immediate data, unsolicited Data-Out PDUs (up to FirstBurstLength)
//! and solicited ones; R2Ts of at most MaxBurstLength each are issued, at most
//! MaxOutstandingR2T at a time. Every offset and length from the wire is checked against the
//! Expected Data Transfer Length and the burst it belongs to before a byte is copied.
//!
//! Data arriving in order (the usual case: DataPDUInOrder=Yes) is appended to the buffer, which
//! is never zeroed first; the first piece out of order turns it into a zero-filled buffer of the
//! whole length, so bytes no PDU carried read as zeros, never as old memory.

use bytes::{Bytes, BytesMut};
use iscsi_proto::pdu::{DataOut, Pdu, R2t, RESERVED_TAG};
use thiserror::Error;

use crate::scsi_task::CommandInfo;

/// Why a Data-Out PDU was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum DataOutError {
    #[error("Data-Out at offset {offset} with {len} bytes runs past the expected {edtl} bytes")]
    PastEnd { offset: u32, len: usize, edtl: u32 },
    #[error("unsolicited Data-Out at offset {offset} with {len} bytes runs past the first burst of {limit} bytes")]
    PastFirstBurst { offset: u32, len: usize, limit: u32 },
    #[error("Data-Out carries DataSN {got}, expected {expected} (RFC 7143 section 11.7.5)")]
    DataSn { expected: u32, got: u32 },
    #[error("Data-Out with TTT {ttt:#x} answers no outstanding R2T")]
    UnknownTtt { ttt: u32 },
    #[error("Data-Out at offset {offset} with {len} bytes is outside its R2T ({start}+{length})")]
    OutsideR2t {
        offset: u32,
        len: usize,
        start: u32,
        length: u32,
    },
}

#[derive(Debug)]
struct OutstandingR2t {
    ttt: u32,
    offset: u32,
    len: u32,
    /// DataSN the next Data-Out of this sequence must carry.
    data_sn: u32,
}

/// Negotiated values governing data-out.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BurstRules {
    pub first_burst: u32,
    pub max_burst: u32,
    pub max_outstanding_r2t: u32,
    pub initial_r2t: bool,
}

/// A write command waiting for its data.
#[derive(Debug)]
pub(crate) struct WriteCollect {
    pub info: CommandInfo,
    /// In order: the bytes received so far, from offset 0. Out of order (`zero_filled`): the
    /// whole Expected Data Transfer Length, zeros where nothing arrived yet.
    buf: BytesMut,
    zero_filled: bool,
    received: u64,
    /// Data before this offset comes unsolicited.
    unsolicited_end: u32,
    /// The next offset to solicit.
    next_solicit: u32,
    r2t_sn: u32,
    /// DataSN the next unsolicited Data-Out must carry.
    unsolicited_sn: u32,
    outstanding: Vec<OutstandingR2t>,
}

impl WriteCollect {
    /// Starts collecting for `info` whose command carried `immediate` data; `final_bit` is the
    /// command's F bit (no unsolicited Data-Out follows when set).
    pub(crate) fn new(
        info: CommandInfo,
        immediate: &Bytes,
        final_bit: bool,
        rules: &BurstRules,
    ) -> WriteCollect {
        let edtl = info.edtl;
        let imm = immediate.len().min(edtl as usize);
        let mut buf = BytesMut::with_capacity(edtl as usize);
        buf.extend_from_slice(&immediate[..imm]);
        let unsolicited_end = if !rules.initial_r2t && !final_bit {
            rules.first_burst.min(edtl).max(imm as u32)
        } else {
            imm as u32
        };
        WriteCollect {
            info,
            buf,
            zero_filled: false,
            received: imm as u64,
            unsolicited_end,
            next_solicit: unsolicited_end,
            r2t_sn: 0,
            unsolicited_sn: 0,
            outstanding: Vec::new(),
        }
    }

    /// Whether every byte has arrived.
    pub(crate) fn is_complete(&self) -> bool {
        self.received >= self.info.edtl as u64
    }

    /// R2Ts issued so far.
    pub(crate) fn r2ts(&self) -> u32 {
        self.r2t_sn
    }

    /// The collected buffer, `edtl` bytes long.
    pub(crate) fn take_buffer(&mut self) -> Bytes {
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(self.info.edtl as usize, 0);
        buf.freeze()
    }

    /// New R2Ts to send (as many as MaxOutstandingR2T allows); `next_ttt` numbers them.
    pub(crate) fn solicit(
        &mut self,
        rules: &BurstRules,
        next_ttt: &mut dyn FnMut() -> u32,
    ) -> Vec<Pdu> {
        let mut out = Vec::new();
        let edtl = self.info.edtl;
        while self.next_solicit < edtl
            && (self.outstanding.len() as u32) < rules.max_outstanding_r2t.max(1)
        {
            let len = (edtl - self.next_solicit).min(rules.max_burst.max(512));
            let ttt = next_ttt();
            self.outstanding.push(OutstandingR2t {
                ttt,
                offset: self.next_solicit,
                len,
                data_sn: 0,
            });
            out.push(Pdu::R2t(R2t {
                lun: self.info.lun,
                itt: self.info.itt,
                ttt,
                stat_sn: 0,
                exp_cmd_sn: 0,
                max_cmd_sn: 0,
                r2t_sn: self.r2t_sn,
                buffer_offset: self.next_solicit,
                desired_data_transfer_length: len,
            }));
            self.r2t_sn += 1;
            self.next_solicit += len;
        }
        out
    }

    /// Takes one Data-Out PDU. Returns whether an R2T sequence finished (so more may be
    /// solicited).
    pub(crate) fn accept(&mut self, d: &DataOut) -> Result<bool, DataOutError> {
        let len = d.data.len();
        let end = d.buffer_offset as u64 + len as u64;
        if end > self.info.edtl as u64 {
            return Err(DataOutError::PastEnd {
                offset: d.buffer_offset,
                len,
                edtl: self.info.edtl,
            });
        }
        let mut sequence_done = false;
        if d.ttt == RESERVED_TAG {
            if end > self.unsolicited_end as u64 {
                return Err(DataOutError::PastFirstBurst {
                    offset: d.buffer_offset,
                    len,
                    limit: self.unsolicited_end,
                });
            }
            if d.data_sn != self.unsolicited_sn {
                return Err(DataOutError::DataSn {
                    expected: self.unsolicited_sn,
                    got: d.data_sn,
                });
            }
            self.unsolicited_sn += 1;
        } else {
            let i = self
                .outstanding
                .iter()
                .position(|r| r.ttt == d.ttt)
                .ok_or(DataOutError::UnknownTtt { ttt: d.ttt })?;
            let r = &mut self.outstanding[i];
            if d.data_sn != r.data_sn {
                return Err(DataOutError::DataSn {
                    expected: r.data_sn,
                    got: d.data_sn,
                });
            }
            r.data_sn += 1;
            if d.buffer_offset < r.offset || end > r.offset as u64 + r.len as u64 {
                return Err(DataOutError::OutsideR2t {
                    offset: d.buffer_offset,
                    len,
                    start: r.offset,
                    length: r.len,
                });
            }
            if d.final_bit {
                self.outstanding.swap_remove(i);
                sequence_done = true;
            }
        }
        let start = d.buffer_offset as usize;
        if !self.zero_filled && start == self.buf.len() {
            self.buf.extend_from_slice(&d.data);
        } else {
            if !self.zero_filled {
                self.buf.resize(self.info.edtl as usize, 0);
                self.zero_filled = true;
            }
            self.buf[start..start + len].copy_from_slice(&d.data);
        }
        self.received += len as u64;
        Ok(sequence_done)
    }
}

#[cfg(test)]
mod tests {
    use iscsi_proto::pdu::Lun;

    use super::*;

    fn info(edtl: u32) -> CommandInfo {
        CommandInfo {
            itt: 7,
            lun: Lun::default(),
            lun_index: Some(0),
            cdb: Bytes::new(),
            edtl,
            read: false,
            write: true,
            write_len: u64::from(edtl),
        }
    }

    fn rules(max_outstanding_r2t: u32) -> BurstRules {
        BurstRules {
            first_burst: 8,
            max_burst: 8,
            max_outstanding_r2t,
            initial_r2t: false,
        }
    }

    fn pattern(from: usize, len: usize) -> Bytes {
        (from..from + len).map(|i| (i * 13 + 1) as u8).collect()
    }

    /// Answers R2T `r` with one Data-Out carrying the pattern's bytes.
    fn answer(r: &Pdu) -> DataOut {
        let Pdu::R2t(r) = r else {
            panic!("not an R2T: {r:?}")
        };
        DataOut {
            final_bit: true,
            lun: r.lun,
            itt: r.itt,
            ttt: r.ttt,
            exp_stat_sn: 0,
            data_sn: 0,
            buffer_offset: r.buffer_offset,
            data: pattern(
                r.buffer_offset as usize,
                r.desired_data_transfer_length as usize,
            ),
        }
    }

    fn take_all(edtl: u32, max_outstanding_r2t: u32, reverse: bool) -> Bytes {
        let rules = rules(max_outstanding_r2t);
        let mut ttt = 100;
        let mut next_ttt = || {
            ttt += 1;
            ttt
        };
        // Immediate data (4 bytes) and one unsolicited Data-Out (4 more: the first burst).
        let mut wc = WriteCollect::new(info(edtl), &pattern(0, 4), false, &rules);
        let unsolicited = DataOut {
            final_bit: true,
            lun: Lun::default(),
            itt: 7,
            ttt: RESERVED_TAG,
            exp_stat_sn: 0,
            data_sn: 0,
            buffer_offset: 4,
            data: pattern(4, 4),
        };
        wc.accept(&unsolicited).unwrap();
        while !wc.is_complete() {
            let mut r2ts = wc.solicit(&rules, &mut next_ttt);
            assert!(!r2ts.is_empty(), "incomplete and nothing to solicit");
            if reverse {
                r2ts.reverse();
            }
            for r in &r2ts {
                wc.accept(&answer(r)).unwrap();
            }
        }
        wc.take_buffer()
    }

    #[test]
    fn data_in_order_or_not_gives_the_same_buffer() {
        let want = pattern(0, 40);
        assert_eq!(take_all(40, 1, false), want);
        assert_eq!(take_all(40, 4, false), want);
        // The later R2Ts answered first: the buffer turns zero-filled, and still ends equal.
        assert_eq!(take_all(40, 4, true), want);
    }

    #[test]
    fn out_of_order_data_is_placed_at_its_offset_and_the_gap_reads_zero() {
        let rules = BurstRules {
            first_burst: 16,
            max_burst: 16,
            max_outstanding_r2t: 1,
            initial_r2t: false,
        };
        let mut wc = WriteCollect::new(info(16), &pattern(0, 4), false, &rules);
        // The last 4 bytes of the first burst, before bytes 4..12.
        let late = DataOut {
            final_bit: false,
            lun: Lun::default(),
            itt: 7,
            ttt: RESERVED_TAG,
            exp_stat_sn: 0,
            data_sn: 0,
            buffer_offset: 12,
            data: pattern(12, 4),
        };
        wc.accept(&late).unwrap();
        assert!(!wc.is_complete());
        let b = wc.take_buffer();
        assert_eq!(b.len(), 16);
        assert_eq!(&b[..4], &pattern(0, 4)[..]);
        assert_eq!(&b[4..12], &[0u8; 8]);
        assert_eq!(&b[12..], &pattern(12, 4)[..]);
    }
}
