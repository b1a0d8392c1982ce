//! An iSCSI LUN as a workload target, driven by pvd's initiator with no virtual disk in
//! between: the baseline that separates what the transport (initiator, TCP, target) costs from
//! what the virtual layer (NBD frontend and tapdisk) adds on top of it.
//!
//! The session runs on a single-threaded runtime owned by the engine and driven only while the
//! generator waits for a completion, so no thread hand-off is added to any request.

use std::sync::Arc;

use bytes::Bytes;
use iscsi_initiator::{Session, SessionConfig};
use tokio::sync::mpsc;

use super::workload::{IoEngine, IoRequest, Op, WorkloadTarget};
use super::BenchError;

/// A LUN reached over iSCSI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IscsiLunTarget {
    /// `HOST:PORT` of the target.
    pub portal: String,
    pub iqn: String,
    pub lun: u64,
}

impl std::fmt::Display for IscsiLunTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "iscsi://{}/{}/{}", self.portal, self.iqn, self.lun)
    }
}

impl IscsiLunTarget {
    fn err(&self, what: &str, e: impl std::fmt::Display) -> BenchError {
        BenchError::Cluster(format!("{self}: {what}: {e}"))
    }
}

impl WorkloadTarget for IscsiLunTarget {
    fn describe(&self) -> String {
        self.to_string()
    }

    fn open(
        &self,
        queue_depth: usize,
        max_len: usize,
        write_pattern: Arc<[u8]>,
    ) -> Result<Box<dyn IoEngine>, BenchError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| self.err("runtime", e))?;
        let mut config = SessionConfig::new(self.portal.clone(), self.iqn.clone());
        // The congestion control a tapdisk's sessions use, so the LUN and the virtual disk
        // are reached the same way.
        config.tcp_congestion = Some(iscsi_target::tcp_congestion::DEFAULT.to_string());
        let (session, block_len, capacity) = rt
            .block_on(async {
                let s = Session::connect(config).await?;
                let cap = s.read_capacity(self.lun).await?;
                Ok::<_, iscsi_initiator::IscsiError>((s, cap.block_len, cap.bytes()))
            })
            .map_err(|e| self.err("login", e))?;
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let pattern = Bytes::copy_from_slice(&write_pattern[..max_len.min(write_pattern.len())]);
        Ok(Box::new(IscsiEngine {
            target: self.clone(),
            rt,
            session,
            block_len: u64::from(block_len),
            capacity,
            pattern,
            in_flight: 0,
            queue_depth,
            done_tx,
            done_rx,
        }))
    }
}

type Completion = (usize, Result<(), iscsi_initiator::IscsiError>);

struct IscsiEngine {
    target: IscsiLunTarget,
    rt: tokio::runtime::Runtime,
    session: Session,
    block_len: u64,
    capacity: u64,
    /// Write payloads are slices of this (no copy per request).
    pattern: Bytes,
    in_flight: usize,
    queue_depth: usize,
    done_tx: mpsc::UnboundedSender<Completion>,
    done_rx: mpsc::UnboundedReceiver<Completion>,
}

impl IoEngine for IscsiEngine {
    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn submit(&mut self, slot: usize, req: IoRequest) -> Result<(), BenchError> {
        let len = u64::from(req.len);
        if slot >= self.queue_depth
            || len as usize > self.pattern.len()
            || !req.offset.is_multiple_of(self.block_len)
            || !len.is_multiple_of(self.block_len)
        {
            return Err(self.target.err(
                "request",
                format!(
                    "slot {slot}, {len} bytes at {} do not fit the engine ({}-byte blocks)",
                    req.offset, self.block_len
                ),
            ));
        }
        let lba = req.offset / self.block_len;
        let blocks = (len / self.block_len) as u32;
        let session = self.session.clone();
        let payload = self.pattern.slice(..len as usize);
        let lun = self.target.lun;
        let done = self.done_tx.clone();
        // Runs when the generator next waits (`wait_one` drives the runtime).
        self.rt.spawn(async move {
            let r = match req.op {
                Op::Read => session.read(lun, lba, blocks).await.map(drop),
                Op::Write => session.write(lun, lba, payload, false).await,
            };
            let _ = done.send((slot, r));
        });
        self.in_flight += 1;
        Ok(())
    }

    fn wait_one(&mut self) -> Result<usize, BenchError> {
        if self.in_flight == 0 {
            return Err(self.target.err("wait", "no request in flight"));
        }
        let (slot, r) = self
            .rt
            .block_on(self.done_rx.recv())
            .ok_or_else(|| self.target.err("wait", "completion channel closed"))?;
        self.in_flight -= 1;
        r.map_err(|e| self.target.err("I/O", e))?;
        Ok(slot)
    }
}

impl Drop for IscsiEngine {
    fn drop(&mut self) {
        let s = self.session.clone();
        let _ = self.rt.block_on(async move {
            tokio::time::timeout(std::time::Duration::from_secs(2), s.logout()).await
        });
    }
}
