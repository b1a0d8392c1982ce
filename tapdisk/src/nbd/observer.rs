//! Per-request timing of the NBD frontend (NBD protocol section "Transmission phase": a
//! request is received, served, and answered by one reply).
//!
//! The server takes one `Instant::now()` per stage and hands the record to an optional
//! [`RequestObserver`] once the reply is on the socket; [`ServerCounters`] always counts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::wire::{CommandType, Errno};

/// Timestamps of one request's life in the frontend.
#[derive(Clone, Copy, Debug)]
pub struct RequestTiming {
    pub command: CommandType,
    pub offset: u64,
    pub length: u32,
    /// The error sent to the client ([`Errno::OK`] on success).
    pub error: Errno,
    /// Header (and WRITE payload) fully read from the socket.
    pub received: Instant,
    /// Handed to the backend (after waiting for an in-flight slot).
    pub dispatched: Instant,
    /// Backend operation finished.
    pub completed: Instant,
    /// Reply (header and data) written to the socket.
    pub replied: Instant,
}

/// Receives one [`RequestTiming`] per answered request, on the connection's writer task:
/// keep it cheap (update atomics or a histogram, never block).
pub trait RequestObserver: Send + Sync + 'static {
    fn on_request(&self, timing: &RequestTiming);
}

/// Cumulative counters of a server, shared by all its connections.
#[derive(Debug, Default)]
pub struct ServerCounters {
    pub connections_accepted: AtomicU64,
    pub connections_active: AtomicU64,
    pub handshakes_failed: AtomicU64,
    pub requests: AtomicU64,
    pub request_errors: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    /// Sum over requests of `dispatched - received`, in nanoseconds (queueing in frontend).
    pub dispatch_wait_ns: AtomicU64,
    /// Sum over requests of `completed - dispatched` (backend service time).
    pub backend_ns: AtomicU64,
    /// Sum over requests of `replied - completed` (reply queueing and socket write).
    pub reply_ns: AtomicU64,
}

impl ServerCounters {
    pub(crate) fn record(&self, t: &RequestTiming) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if t.error != Errno::OK {
            self.request_errors.fetch_add(1, Ordering::Relaxed);
        } else if t.command == CommandType::READ {
            self.bytes_read
                .fetch_add(t.length as u64, Ordering::Relaxed);
        } else if t.command == CommandType::WRITE {
            self.bytes_written
                .fetch_add(t.length as u64, Ordering::Relaxed);
        }
        let ns = |a: Instant, b: Instant| b.saturating_duration_since(a).as_nanos() as u64;
        self.dispatch_wait_ns
            .fetch_add(ns(t.received, t.dispatched), Ordering::Relaxed);
        self.backend_ns
            .fetch_add(ns(t.dispatched, t.completed), Ordering::Relaxed);
        self.reply_ns
            .fetch_add(ns(t.completed, t.replied), Ordering::Relaxed);
    }

    /// A plain copy of the counters.
    pub fn snapshot(&self) -> CountersSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CountersSnapshot {
            connections_accepted: g(&self.connections_accepted),
            connections_active: g(&self.connections_active),
            handshakes_failed: g(&self.handshakes_failed),
            requests: g(&self.requests),
            request_errors: g(&self.request_errors),
            bytes_read: g(&self.bytes_read),
            bytes_written: g(&self.bytes_written),
            dispatch_wait_ns: g(&self.dispatch_wait_ns),
            backend_ns: g(&self.backend_ns),
            reply_ns: g(&self.reply_ns),
        }
    }
}

/// A point-in-time copy of [`ServerCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    pub connections_accepted: u64,
    pub connections_active: u64,
    pub handshakes_failed: u64,
    pub requests: u64,
    pub request_errors: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub dispatch_wait_ns: u64,
    pub backend_ns: u64,
    pub reply_ns: u64,
}
