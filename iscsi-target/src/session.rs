//! RFC 7143 sections 4.2 (sessions), 4.2.2 (command numbering) and 7.1 (task tags): the state a
//! full-feature-phase session shares between its reader, its command tasks and its writer.
//!
//! Commands of one session run concurrently: on the reader task, on I/O threads or as tokio
//! tasks. The task table maps each outstanding Initiator Task Tag to its abort handle; a task's
//! PDUs are queued to the [`Outbox`] while the table lock is held and only if the task is still
//! in the table, so a task aborted by task management never answers after the Task Management
//! Function Response.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use iscsi_proto::pdu::Pdu;
use iscsi_proto::text::SessionParams;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::io_track::IoTrack;
use crate::lu::{LogicalUnit, Nexus};
use crate::writer::{CmdWindow, Outbox};

/// One outstanding task.
#[derive(Debug)]
pub(crate) struct TaskEntry {
    /// LUN number the command addressed.
    pub lun: u64,
    /// Immediate commands do not count against the command window.
    pub immediate: bool,
    /// Set once the command runs (it may still be collecting data-out before).
    pub abort: Option<AbortHandle>,
    /// Its accesses on I/O threads, once it made one.
    pub io: Option<Arc<IoTrack>>,
}

/// What [`SessionShared::abort_where`] aborted.
#[derive(Debug, Default)]
pub(crate) struct Aborted {
    pub tags: Vec<u32>,
    /// Tracks of the aborted tasks whose medium accesses still run.
    pub io: Vec<Arc<IoTrack>>,
}

/// What the reader, the tasks and the writer of one session share.
#[derive(Debug)]
pub(crate) struct SessionShared {
    pub params: SessionParams,
    pub nexus: Nexus,
    /// LUN n is `luns[n]`.
    pub luns: Arc<Vec<Arc<LogicalUnit>>>,
    pub window: Arc<CmdWindow>,
    pub out: Arc<Outbox>,
    tasks: Mutex<HashMap<u32, TaskEntry>>,
    /// Signalled every time a task leaves the table.
    pub idle: Notify,
}

impl SessionShared {
    pub(crate) fn new(
        params: SessionParams,
        nexus: Nexus,
        luns: Arc<Vec<Arc<LogicalUnit>>>,
        window: Arc<CmdWindow>,
        out: Arc<Outbox>,
    ) -> SessionShared {
        SessionShared {
            params,
            nexus,
            luns,
            window,
            out,
            tasks: Mutex::new(HashMap::new()),
            idle: Notify::new(),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<u32, TaskEntry>> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a PDU that belongs to no task (NOP-In, Reject, R2T, TMF/Text/Logout responses);
    /// the reader task flushes it before it waits for the socket.
    pub(crate) fn send(&self, pdu: Pdu) {
        self.out.queue([pdu]);
    }

    /// Registers a new task; false when `itt` is already outstanding.
    pub(crate) fn register(&self, itt: u32, entry: TaskEntry) -> bool {
        let mut t = self.table();
        if t.contains_key(&itt) {
            return false;
        }
        if !entry.immediate {
            self.window.in_flight.fetch_add(1, Ordering::AcqRel);
        }
        t.insert(itt, entry);
        true
    }

    /// Records the abort handle of a running task (no-op if it already finished).
    pub(crate) fn set_abort(&self, itt: u32, handle: AbortHandle) {
        if let Some(e) = self.table().get_mut(&itt) {
            e.abort = Some(handle);
        }
    }

    fn release(&self, entry: &TaskEntry) {
        if !entry.immediate {
            self.window.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Finishes task `itt`: queues `pdus` unless the task was aborted meanwhile (for the
    /// reader task, which flushes before it waits for the socket).
    pub(crate) fn complete(&self, itt: u32, pdus: Vec<Pdu>) {
        self.complete_with(itt, pdus, false);
    }

    /// [`SessionShared::complete`], then sends the answer (for command tasks and I/O threads;
    /// see [`Outbox::send`]).
    pub(crate) fn finish(&self, itt: u32, pdus: Vec<Pdu>) {
        self.complete_with(itt, pdus, true);
    }

    fn complete_with(&self, itt: u32, pdus: Vec<Pdu>, send: bool) {
        let mut t = self.table();
        let Some(entry) = t.remove(&itt) else {
            return;
        };
        self.release(&entry);
        self.out.queue(pdus);
        drop(t);
        self.idle.notify_waiters();
        if send {
            self.out.send([]);
        }
    }

    /// Aborts the tasks `which` selects; returns their tags and their running accesses.
    pub(crate) fn abort_where(&self, which: impl Fn(u32, &TaskEntry) -> bool) -> Aborted {
        let mut t = self.table();
        let tags: Vec<u32> = t
            .iter()
            .filter(|(itt, e)| which(**itt, e))
            .map(|(itt, _)| *itt)
            .collect();
        let mut io = Vec::new();
        for itt in &tags {
            if let Some(e) = t.remove(itt) {
                if let Some(h) = &e.abort {
                    h.abort();
                }
                self.release(&e);
                io.extend(e.io.filter(|track| track.is_running()));
            }
        }
        drop(t);
        self.idle.notify_waiters();
        Aborted { tags, io }
    }

    /// The I/O track of task `itt` (created on first use); `None` once the task is gone
    /// (finished or aborted), when it must not start an access any more.
    pub(crate) fn io_track(&self, itt: u32) -> Option<Arc<IoTrack>> {
        self.table()
            .get_mut(&itt)
            .map(|e| e.io.get_or_insert_with(IoTrack::new).clone())
    }

    /// Whether task `itt` is outstanding.
    pub(crate) fn has_task(&self, itt: u32) -> bool {
        self.table().contains_key(&itt)
    }

    /// LUN of outstanding task `itt`.
    pub(crate) fn task_lun(&self, itt: u32) -> Option<u64> {
        self.table().get(&itt).map(|e| e.lun)
    }

    /// Number of outstanding tasks.
    pub(crate) fn outstanding(&self) -> usize {
        self.table().len()
    }

    /// Waits until no task is outstanding, or `timeout` passes; true if idle.
    pub(crate) async fn wait_idle(&self, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.outstanding() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.outstanding() == 0;
            }
        }
    }
}
