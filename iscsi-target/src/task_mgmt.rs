//! RFC 7143 sections 11.5-11.6 and 4.2.3 (task management), SAM-5 section 7: ABORT TASK, ABORT
//! TASK SET, CLEAR TASK SET, LOGICAL UNIT RESET and TARGET WARM/COLD RESET within a session.
//!
//! Aborted tasks are removed from the session's task table before the response is queued, so
//! none of them answers afterwards (RFC 7143 section 4.2.3.3); the response waits for the
//! medium accesses they still run on I/O threads (see [`crate::io_track`]).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use iscsi_proto::pdu::{TaskMgmtRequest, TaskMgmtResponse, TmfFunction, TmfResponse};

use crate::data_out::WriteCollect;
use crate::io_track::IoTrack;
use crate::session::SessionShared;
use crate::writer::{sn_le, sn_lt};

/// Performs `req`; returns its response (sequence numbers are stamped by the writer) and the
/// medium accesses of aborted tasks that must end before the response is sent.
pub(crate) fn execute(
    shared: &SessionShared,
    writes: &mut HashMap<u32, WriteCollect>,
    req: &TaskMgmtRequest,
) -> (TaskMgmtResponse, Vec<Arc<IoTrack>>) {
    let mut running = Vec::new();
    let response = run(shared, writes, req, &mut running);
    tracing::debug!(function = ?req.function, ?response, running = running.len(), "task management");
    let resp = TaskMgmtResponse {
        response,
        itt: req.itt,
        ..Default::default()
    };
    (resp, running)
}

fn lun_of(shared: &SessionShared, req: &TaskMgmtRequest) -> Option<u64> {
    req.lun
        .number()
        .map(u64::from)
        .filter(|&n| n < shared.luns.len() as u64)
}

fn run(
    shared: &SessionShared,
    writes: &mut HashMap<u32, WriteCollect>,
    req: &TaskMgmtRequest,
    running: &mut Vec<Arc<IoTrack>>,
) -> TmfResponse {
    match req.function {
        TmfFunction::ABORT_TASK => {
            let rtt = req.referenced_task_tag;
            if shared.has_task(rtt) {
                if lun_of(shared, req).is_some_and(|l| shared.task_lun(rtt) != Some(l)) {
                    return TmfResponse::TASK_DOES_NOT_EXIST;
                }
                running.extend(shared.abort_where(|itt, _| itt == rtt).io);
                writes.remove(&rtt);
                return TmfResponse::FUNCTION_COMPLETE;
            }
            // RFC 7143 section 11.5.1: a task never received whose CmdSN is still inside the
            // window counts as aborted; otherwise it does not exist.
            let exp = shared.window.exp_cmd_sn.load(Ordering::Acquire);
            if sn_le(exp, req.ref_cmd_sn) && sn_lt(req.ref_cmd_sn, req.cmd_sn) {
                TmfResponse::FUNCTION_COMPLETE
            } else {
                TmfResponse::TASK_DOES_NOT_EXIST
            }
        }
        TmfFunction::ABORT_TASK_SET | TmfFunction::CLEAR_TASK_SET => {
            let Some(lun) = lun_of(shared, req) else {
                return TmfResponse::LUN_DOES_NOT_EXIST;
            };
            let aborted = shared.abort_where(|itt, e| e.lun == lun && itt != req.itt);
            for itt in &aborted.tags {
                writes.remove(itt);
            }
            running.extend(aborted.io);
            TmfResponse::FUNCTION_COMPLETE
        }
        TmfFunction::LOGICAL_UNIT_RESET => {
            let Some(lun) = lun_of(shared, req) else {
                return TmfResponse::LUN_DOES_NOT_EXIST;
            };
            let aborted = shared.abort_where(|itt, e| e.lun == lun && itt != req.itt);
            for itt in &aborted.tags {
                writes.remove(itt);
            }
            running.extend(aborted.io);
            shared.luns[lun as usize].lun_reset();
            TmfResponse::FUNCTION_COMPLETE
        }
        TmfFunction::TARGET_WARM_RESET | TmfFunction::TARGET_COLD_RESET => {
            running.extend(shared.abort_where(|itt, _| itt != req.itt).io);
            writes.clear();
            for lu in shared.luns.iter() {
                lu.lun_reset();
            }
            TmfResponse::FUNCTION_COMPLETE
        }
        TmfFunction::TASK_REASSIGN => TmfResponse::TASK_ALLEGIANCE_REASSIGNMENT_NOT_SUPPORTED,
        TmfFunction::CLEAR_ACA => TmfResponse::FUNCTION_NOT_SUPPORTED,
        _ => TmfResponse::FUNCTION_REJECTED,
    }
}
