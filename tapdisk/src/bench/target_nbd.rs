//! An NBD export as a workload target: one connection per run, requests pipelined on it with the
//! slot number as the NBD handle.

use std::sync::Arc;
use std::time::Duration;

use super::nbd_client::{NbdClientError, NbdConnection, NbdTarget};
use super::workload::{IoEngine, IoRequest, Op, WorkloadTarget};
use super::BenchError;

/// How long [`NbdTarget::open`] keeps retrying a connection that is refused (a server that is
/// still starting).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl WorkloadTarget for NbdTarget {
    fn describe(&self) -> String {
        self.to_string()
    }

    fn open(
        &self,
        queue_depth: usize,
        max_len: usize,
        write_pattern: Arc<[u8]>,
    ) -> Result<Box<dyn IoEngine>, BenchError> {
        let conn = NbdConnection::connect_with_retry(self, CONNECT_TIMEOUT).map_err(|e| {
            BenchError::Nbd {
                target: self.to_string(),
                source: e,
            }
        })?;
        Ok(Box::new(NbdEngine {
            target: self.to_string(),
            conn: Some(conn),
            slots: vec![None; queue_depth],
            scratch: vec![0u8; max_len],
            pattern: write_pattern,
        }))
    }
}

struct NbdEngine {
    target: String,
    conn: Option<NbdConnection>,
    /// The request in flight in each slot.
    slots: Vec<Option<IoRequest>>,
    /// Where read payloads land (the generator does not look at them).
    scratch: Vec<u8>,
    pattern: Arc<[u8]>,
}

impl NbdEngine {
    fn err(&self, e: impl Into<NbdClientError>) -> BenchError {
        BenchError::Nbd {
            target: self.target.clone(),
            source: e.into(),
        }
    }

    fn conn(&mut self) -> &mut NbdConnection {
        self.conn.as_mut().expect("connection lives until drop")
    }
}

impl IoEngine for NbdEngine {
    fn capacity(&self) -> u64 {
        self.conn.as_ref().map_or(0, NbdConnection::size)
    }

    fn submit(&mut self, slot: usize, req: IoRequest) -> Result<(), BenchError> {
        let len = req.len as usize;
        if len > self.scratch.len() || len > self.pattern.len() || slot >= self.slots.len() {
            return Err(BenchError::BadSpec(format!(
                "request {req:?} in slot {slot} exceeds the engine's limits"
            )));
        }
        let conn = self.conn.as_mut().expect("connection lives until drop");
        let r = match req.op {
            Op::Read => conn.send_read(slot as u64, req.offset, req.len),
            Op::Write => conn.send_write(slot as u64, req.offset, &self.pattern[..len]),
        };
        r.map_err(|e| self.err(e))?;
        self.slots[slot] = Some(req);
        Ok(())
    }

    fn wait_one(&mut self) -> Result<usize, BenchError> {
        let reply = self.conn().recv_reply().map_err(|e| self.err(e))?;
        let slot = usize::try_from(reply.handle)
            .ok()
            .filter(|&s| s < self.slots.len());
        let Some((slot, req)) = slot.and_then(|s| self.slots[s].take().map(|r| (s, r))) else {
            return Err(BenchError::Protocol(format!(
                "{}: reply for handle {} that is not in flight",
                self.target, reply.handle
            )));
        };
        if reply.error != 0 {
            return Err(self.err(NbdClientError::CommandFailed {
                handle: reply.handle,
                error: reply.error,
            }));
        }
        if req.op == Op::Read {
            let len = req.len as usize;
            let conn = self.conn.as_mut().expect("connection lives until drop");
            let r = conn.recv_payload(&mut self.scratch[..len]);
            r.map_err(|e| self.err(e))?;
        }
        Ok(slot)
    }
}

impl Drop for NbdEngine {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Every request has completed when the generator drops the engine.
            let _ = conn.disconnect();
        }
    }
}
