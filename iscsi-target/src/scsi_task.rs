//! RFC 7143 sections 11.3-11.4 and 11.7 (SCSI Command, SCSI Response, SCSI Data-In), 4.2.5.3
//! (phase collapse) and 11.4.5 (residuals): running one SCSI command on its logical unit and
//! turning the outcome into Data-In and Response PDUs.
//!
//! REPORT LUNS and commands to LUNs that do not exist are answered here (SPC-4 sections 6.33
//! and 4.6.4); everything else goes to the [`LogicalUnit`].

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use iscsi_proto::pdu::{
    sense_data_segment, DataIn, Lun, Pdu, ScsiResponse, ScsiResponseCode, ScsiStatus, RESERVED_TAG,
};
use iscsi_proto::scsi::luns::encode_report_luns;
use iscsi_proto::scsi::{Asc, Cdb, Sense, SenseFormat, SenseKey};

use crate::lu::{BlockingCommand, LogicalUnit, ScsiOutcome, Start};
use crate::session::SessionShared;

/// The parts of a SCSI Command PDU a task keeps.
#[derive(Clone, Debug)]
pub(crate) struct CommandInfo {
    pub itt: u32,
    pub lun: Lun,
    /// Index into the session's LUN list, if the LUN field names one.
    pub lun_index: Option<usize>,
    pub cdb: Bytes,
    pub edtl: u32,
    pub read: bool,
    pub write: bool,
    /// Data-out bytes the CDB as received asks for (residuals are computed against it).
    pub write_len: u64,
}

/// SBC-3 WRITE and WRITE AND VERIFY opcodes and where their TRANSFER LENGTH sits
/// (offset, width in bytes).
fn write_length_field(opcode: u8) -> Option<(usize, usize)> {
    match opcode {
        0x2a | 0x2e => Some((7, 2)),
        0xaa | 0xae => Some((6, 4)),
        0x8a | 0x8e => Some((10, 4)),
        _ => None,
    }
}

/// RFC 7143 section 11.4.5.1: when the Expected Data Transfer Length is shorter than what a
/// WRITE moves, only EDTL bytes are transferred and written. Returns the CDB with its TRANSFER
/// LENGTH cut to `blocks`, or None for commands this does not apply to.
pub(crate) fn cut_write_cdb(cdb: &[u8], blocks: u32) -> Option<Bytes> {
    let (at, width) = write_length_field(*cdb.first()?)?;
    if cdb.len() < at + width {
        return None;
    }
    let mut c = BytesMut::from(cdb);
    if width == 2 {
        let b = u16::try_from(blocks).ok()?;
        c[at..at + 2].copy_from_slice(&b.to_be_bytes());
    } else {
        c[at..at + 4].copy_from_slice(&blocks.to_be_bytes());
    }
    Some(c.freeze())
}

/// Standard INQUIRY data for a LUN that does not exist: peripheral qualifier 011b, device type
/// 1Fh (SPC-4 section 6.6.2).
fn absent_lun_inquiry(alloc_len: u16) -> Bytes {
    let mut b = BytesMut::zeroed(36);
    b[0] = 0x7f;
    b[2] = 0x06;
    b[3] = 0x02;
    b[4] = 31;
    b.truncate(alloc_len.min(36) as usize);
    b.freeze()
}

fn lun_not_supported() -> ScsiOutcome {
    ScsiOutcome::check_condition(
        &Sense::new(SenseKey::ILLEGAL_REQUEST, Asc::LOGICAL_UNIT_NOT_SUPPORTED),
        SenseFormat::Fixed,
    )
}

/// Runs `info` and returns its response PDUs (Data-In and/or SCSI Response). `r2ts` is the
/// number of R2Ts the command needed (for ExpDataSN).
pub(crate) async fn run(
    shared: &SessionShared,
    info: &CommandInfo,
    data_out: Bytes,
    r2ts: u32,
) -> Vec<Pdu> {
    let lu: Option<&Arc<LogicalUnit>> = info.lun_index.and_then(|i| shared.luns.get(i));
    let parsed = Cdb::parse(&info.cdb);
    let outcome = match (&parsed, lu) {
        (Ok(Cdb::ReportLuns { alloc_len, .. }), _) if *alloc_len >= 16 => {
            let numbers: Vec<u64> = (0..shared.luns.len() as u64).collect();
            let mut b = BytesMut::with_capacity(8 + numbers.len() * 8);
            encode_report_luns(&numbers, &mut b);
            b.truncate((*alloc_len as usize).min(b.len()));
            ScsiOutcome::good(b.freeze())
        }
        (_, Some(lu)) => lu.execute(&shared.nexus, &info.cdb, data_out).await,
        (
            Ok(Cdb::Inquiry {
                evpd: false,
                alloc_len,
                ..
            }),
            None,
        ) => ScsiOutcome::good(absent_lun_inquiry(*alloc_len)),
        (Ok(Cdb::RequestSense { alloc_len, .. }), None) => {
            let s = Sense::new(SenseKey::ILLEGAL_REQUEST, Asc::LOGICAL_UNIT_NOT_SUPPORTED);
            let mut b = BytesMut::new();
            s.encode(SenseFormat::Fixed, &mut b);
            b.truncate((*alloc_len as usize).min(b.len()));
            ScsiOutcome::good(b.freeze())
        }
        (_, None) => lun_not_supported(),
    };
    respond_to(shared, info, outcome, r2ts)
}

/// How [`start`] left a command.
pub(crate) enum Started {
    /// Finished: its response PDUs.
    Done(Vec<Pdu>),
    /// What is left blocks: run it on an I/O thread, then [`respond_to`] its outcome.
    Blocking(BlockingCommand),
    /// Not started: [`run`] it.
    Run,
}

/// Starts `info` on the calling thread when its logical unit can ([`LogicalUnit::start`]).
pub(crate) fn start(
    shared: &SessionShared,
    info: &CommandInfo,
    data_out: &Bytes,
    r2ts: u32,
) -> Started {
    let Some(lu) = info.lun_index.and_then(|i| shared.luns.get(i)) else {
        return Started::Run;
    };
    match lu.start(&shared.nexus, &info.cdb, data_out) {
        Start::Done(outcome) => Started::Done(respond_to(shared, info, outcome, r2ts)),
        Start::Blocking(b) => Started::Blocking(b),
        Start::Execute => Started::Run,
    }
}

/// The response PDUs for `outcome` within the session's negotiated segment and burst sizes.
pub(crate) fn respond_to(
    shared: &SessionShared,
    info: &CommandInfo,
    outcome: ScsiOutcome,
    r2ts: u32,
) -> Vec<Pdu> {
    respond(
        info,
        outcome,
        info.write_len,
        r2ts,
        shared.params.max_send_data_segment_length as usize,
        shared.params.max_burst_length as usize,
    )
}

/// An answer for `info` without running it (GOOD when `sense` is None).
pub(crate) fn answer(info: &CommandInfo, sense: Option<Sense>) -> Vec<Pdu> {
    let outcome = match sense {
        Some(s) => ScsiOutcome::check_condition(&s, SenseFormat::Fixed),
        None => ScsiOutcome::good(Bytes::new()),
    };
    respond(info, outcome, info.write_len, 0, usize::MAX, usize::MAX)
}

/// A status-only answer for `info` without running it (e.g. TASK SET FULL), no sense data.
pub(crate) fn answer_status(info: &CommandInfo, status: iscsi_proto::scsi::ScsiStatus) -> Vec<Pdu> {
    let outcome = ScsiOutcome {
        status,
        sense: None,
        data_in: Bytes::new(),
    };
    respond(info, outcome, info.write_len, 0, usize::MAX, usize::MAX)
}

/// Builds the response PDUs: Data-In PDUs of at most `max_seg` bytes (F set at the end of each
/// `max_burst` sequence), with the status in the last one when there is no sense data,
/// otherwise a separate SCSI Response.
pub(crate) fn respond(
    info: &CommandInfo,
    outcome: ScsiOutcome,
    write_len: u64,
    r2ts: u32,
    max_seg: usize,
    max_burst: usize,
) -> Vec<Pdu> {
    let edtl = info.edtl as u64;
    let data = if info.read || !info.write {
        outcome.data_in
    } else {
        Bytes::new()
    };
    // What the command would move, against what the initiator expects.
    let wanted = if info.write && !info.read {
        write_len
    } else {
        data.len() as u64
    };
    let (overflow, underflow, residual) = if wanted > edtl {
        (true, false, (wanted - edtl).min(u32::MAX as u64) as u32)
    } else if wanted < edtl {
        (false, true, (edtl - wanted) as u32)
    } else {
        (false, false, 0)
    };
    let send_len = (data.len() as u64).min(if info.read { edtl } else { 0 }) as usize;
    let status = ScsiStatus(outcome.status.0);
    let collapse = outcome.sense.is_none() && send_len > 0;
    let max_seg = max_seg.max(512);
    let max_burst = max_burst.max(max_seg);
    let mut pdus = Vec::with_capacity(send_len.div_ceil(max_seg) + 1);
    let mut off = 0usize;
    let mut data_sn = 0u32;
    let mut burst_used = 0usize;
    while off < send_len {
        let n = (send_len - off).min(max_seg).min(max_burst - burst_used);
        let last = off + n == send_len;
        burst_used += n;
        let end_of_burst = burst_used == max_burst;
        if end_of_burst {
            burst_used = 0;
        }
        let with_status = last && collapse;
        pdus.push(Pdu::DataIn(DataIn {
            final_bit: last || end_of_burst,
            acknowledge: false,
            overflow: with_status && overflow,
            underflow: with_status && underflow,
            status: with_status.then_some(status),
            lun: info.lun,
            itt: info.itt,
            ttt: RESERVED_TAG,
            stat_sn: 0,
            exp_cmd_sn: 0,
            max_cmd_sn: 0,
            data_sn,
            buffer_offset: off as u32,
            residual_count: if with_status { residual } else { 0 },
            data: data.slice(off..off + n),
        }));
        data_sn += 1;
        off += n;
    }
    if !collapse {
        pdus.push(Pdu::ScsiResponse(ScsiResponse {
            bidi_overflow: false,
            bidi_underflow: false,
            overflow,
            underflow,
            response: ScsiResponseCode::COMMAND_COMPLETED,
            status,
            itt: info.itt,
            snack_tag: 0,
            stat_sn: 0,
            exp_cmd_sn: 0,
            max_cmd_sn: 0,
            exp_data_sn: if info.write { r2ts } else { data_sn },
            bidi_residual_count: 0,
            residual_count: residual,
            data: outcome
                .sense
                .as_deref()
                .map(sense_data_segment)
                .unwrap_or_default(),
        }));
    }
    pdus
}
