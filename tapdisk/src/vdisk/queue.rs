//! The request queue of the virtual disk (thesis sections 3.3 and 4: a deep queue, sorting and
//! merging of adjacent requests, a large maximum request size).
//!
//! Requests enter a shared queue. A request arriving while one of `dispatch_slots` is free takes
//! everything queued (up to the queue depth) and dispatches it at once on a task of its own (a
//! request alone in its batch is served on its own task, no hop; a request that finds nothing
//! queued is served without entering the queue at all); a batch that frees a slot starts the
//! next one on a task of its own. While every slot is busy, a write that continues
//! a sequential stream (it starts near where a recent or queued request ends) waits, so the stream's
//! writes accumulate; any other request is dispatched at once with whatever is queued (random
//! I/O never waits for a slot). The batch that frees a slot takes what accumulated,
//! sorts them by offset and merges adjacent requests of the same direction up to the maximum
//! request size: a merged write is the list of the requests' buffers, a merged read is one read
//! whose buffer is sliced back to the waiting requests. Nothing is copied.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use iscsi_initiator::{PipedRead, SplicePipe};
use tokio::sync::oneshot;

use super::Inner;
use crate::nbd::{BackendError, BackendResult};
use crate::stats::Stage;

/// One frontend request waiting in the queue.
pub struct Pending {
    pub offset: u64,
    pub len: u64,
    /// The payload of a write; `None` for a read.
    pub data: Option<Bytes>,
    pub fua: bool,
    pub enqueued: Instant,
    pub reply: oneshot::Sender<BackendResult<Bytes>>,
}

/// Adjacent requests of one direction served by one command per server piece.
pub struct Merged {
    pub offset: u64,
    pub len: u64,
    pub write: bool,
    pub fua: bool,
    pub parts: Vec<Pending>,
}

/// How many recently dispatched request ends are remembered to recognise sequential streams.
const RECENT_ENDS: usize = 16;
/// A request within this distance of a recent or queued request's end continues its stream
/// (the frontend serves requests concurrently, so a stream may arrive slightly out of order).
const STREAM_WINDOW: u64 = 256 << 10;

pub struct QueueState {
    pending: Vec<Pending>,
    running: usize,
    recent_ends: [u64; RECENT_ENDS],
    next_end: usize,
}

impl Default for QueueState {
    fn default() -> Self {
        QueueState {
            pending: Vec::new(),
            running: 0,
            recent_ends: [u64::MAX; RECENT_ENDS],
            next_end: 0,
        }
    }
}

impl QueueState {
    /// Whether a request at `offset` continues a stream: a queued or recently dispatched
    /// request ends near it.
    fn continues_stream(&self, offset: u64) -> bool {
        self.recent_ends
            .iter()
            .any(|&e| e.abs_diff(offset) <= STREAM_WINDOW)
            || self
                .pending
                .iter()
                .any(|p| (p.offset + p.len).abs_diff(offset) <= STREAM_WINDOW)
    }

    fn remember(&mut self, batch: &[Pending]) {
        for p in batch {
            self.remember_end(p.offset + p.len);
        }
    }

    fn remember_end(&mut self, end: u64) {
        self.recent_ends[self.next_end] = end;
        self.next_end = (self.next_end + 1) % RECENT_ENDS;
    }
}

/// The queue proper: its state and limits.
pub struct RequestQueue {
    state: Mutex<QueueState>,
    pub queue_depth: usize,
    pub dispatch_slots: usize,
    pub max_request: u64,
}

impl RequestQueue {
    pub fn new(queue_depth: usize, dispatch_slots: usize, max_request: u64) -> RequestQueue {
        RequestQueue {
            state: Mutex::new(QueueState::default()),
            queue_depth: queue_depth.max(1),
            dispatch_slots: dispatch_slots.max(1),
            max_request,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        // A panic while holding the lock cannot leave the state inconsistent (push/drain only).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes up to the queue depth of the oldest queued requests, if a slot is free.
    fn take_if_free(&self, st: &mut QueueState) -> Option<Vec<Pending>> {
        if st.pending.is_empty() || st.running >= self.dispatch_slots {
            return None;
        }
        Some(self.take(st))
    }

    /// Takes up to the queue depth of the oldest queued requests (occupying a slot, possibly
    /// beyond `dispatch_slots`).
    fn take(&self, st: &mut QueueState) -> Vec<Pending> {
        st.running += 1;
        let n = st.pending.len().min(self.queue_depth);
        let batch: Vec<Pending> = st.pending.drain(..n).collect();
        st.remember(&batch);
        batch
    }
}

/// Releases a slot and starts the next batch, if any is waiting, on a task of its own.
fn release_slot(inner: &Arc<Inner>) {
    let next = {
        let mut st = inner.queue.lock();
        st.running -= 1;
        inner.queue.take_if_free(&mut st)
    };
    if let Some(batch) = next {
        spawn_batch(inner.clone(), batch);
    }
}

/// Releases the batch's slot (also when the batch's future is dropped) and starts the next batch.
struct SlotGuard(Arc<Inner>);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        release_slot(&self.0);
    }
}

/// [`SlotGuard`] of a batch served on the submitting request's task.
struct InlineSlot<'a>(&'a Arc<Inner>);

impl Drop for InlineSlot<'_> {
    fn drop(&mut self) {
        release_slot(self.0);
    }
}

fn spawn_batch(inner: Arc<Inner>, batch: Vec<Pending>) {
    let guard = SlotGuard(inner);
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            h.spawn(async move {
                run_batch(&guard.0, batch, Instant::now()).await;
                drop(guard);
            });
        }
        Err(_) => {
            for p in batch {
                let _ = p.reply.send(Err(BackendError::Shutdown));
            }
        }
    }
}

/// Queues a read (`data == None`) or write and waits for its completion. A read served alone
/// may go into `pipe` ([`Inner::read_range`]); one served in a batch comes back in a buffer.
pub async fn submit(
    inner: &Arc<Inner>,
    offset: u64,
    len: u64,
    mut data: Option<Bytes>,
    fua: bool,
    pipe: Option<&Arc<SplicePipe>>,
) -> BackendResult<PipedRead> {
    let enqueued = Instant::now();
    // One lock decides: served alone (`None`), or queued (and maybe a batch to serve).
    let queued = {
        let mut st = inner.queue.lock();
        // Only writes wait for a slot: merging them saves commands on every replica, while a
        // read stream is served best by pipelining.
        let sequential = data.is_some() && st.continues_stream(offset);
        if st.pending.is_empty() && (st.running < inner.queue.dispatch_slots || !sequential) {
            // The batch would be this request alone: serve it without queueing it.
            st.running += 1;
            st.remember_end(offset + len);
            None
        } else {
            let (tx, rx) = oneshot::channel();
            st.pending.push(Pending {
                offset,
                len,
                data: data.take(),
                fua,
                enqueued,
                reply: tx,
            });
            let alone = st.pending.len() == 1;
            let batch = match inner.queue.take_if_free(&mut st) {
                Some(b) => Some(b),
                None if !sequential => Some(inner.queue.take(&mut st)),
                None => None,
            };
            Some((rx, batch, alone))
        }
    };
    let Some((rx, batch, alone)) = queued else {
        return serve_alone(inner, offset, len, data, fua, pipe, enqueued).await;
    };
    match batch {
        Some(batch) if alone => {
            // The batch is this request alone: serve it here (no hop, no spawn).
            let slot = InlineSlot(inner);
            let done = run_batch(inner, batch, enqueued).await;
            drop(slot);
            let r = rx.await.unwrap_or(Err(BackendError::Shutdown));
            inner.stats.record(Stage::Backend, done - enqueued);
            return r.map(PipedRead::Bytes);
        }
        // Other requests' work runs on a task of its own: their progress must not depend on
        // this request's caller polling it (a connection blocked writing replies to a client
        // that stopped reading them) nor end with it (a caller dropping it).
        Some(batch) => spawn_batch(inner.clone(), batch),
        None => {}
    }
    let r = rx.await.unwrap_or(Err(BackendError::Shutdown));
    inner.stats.record(Stage::Backend, enqueued.elapsed());
    r.map(PipedRead::Bytes)
}

/// Serves a request that holds a slot and found nothing queued: a batch of one, without the
/// queue's bookkeeping (no channel, no batch lists).
async fn serve_alone(
    inner: &Arc<Inner>,
    offset: u64,
    len: u64,
    data: Option<Bytes>,
    fua: bool,
    pipe: Option<&Arc<SplicePipe>>,
    enqueued: Instant,
) -> BackendResult<PipedRead> {
    let slot = InlineSlot(inner);
    inner.stats.record(Stage::QueueWait, Duration::ZERO);
    inner.stats.record(Stage::SortMerge, Duration::ZERO);
    inner.stats.batches.fetch_add(1, Ordering::Relaxed);
    let (r, done) = match data {
        Some(d) => {
            let (r, done) = inner
                .write_range(offset, len, std::slice::from_ref(&d), fua)
                .await;
            (r.map(|()| PipedRead::Bytes(Bytes::new())), done)
        }
        None => inner.read_range(offset, len, pipe).await,
    };
    drop(slot);
    inner.stats.record(Stage::Backend, done - enqueued);
    r.map_err(BackendError::Failed)
}

/// Sorts by offset and merges adjacent requests of one direction (and FUA flag) up to `max`.
pub fn sort_and_merge(mut batch: Vec<Pending>, max: u64) -> Vec<Merged> {
    batch.sort_by_key(|p| p.offset);
    let mut out: Vec<Merged> = Vec::with_capacity(batch.len());
    for p in batch {
        let write = p.data.is_some();
        if let Some(m) = out.last_mut() {
            if m.write == write
                && m.fua == p.fua
                && m.offset + m.len == p.offset
                && m.len + p.len <= max
            {
                m.len += p.len;
                m.parts.push(p);
                continue;
            }
        }
        out.push(Merged {
            offset: p.offset,
            len: p.len,
            write,
            fua: p.fua,
            parts: vec![p],
        });
    }
    out
}

/// Serves a batch taken from the queue; `taken` is when it was taken. Returns when it finished.
async fn run_batch(inner: &Arc<Inner>, batch: Vec<Pending>, taken: Instant) -> Instant {
    for p in &batch {
        inner.stats.record(
            Stage::QueueWait,
            taken.saturating_duration_since(p.enqueued),
        );
    }
    let n = batch.len();
    let merged = if n == 1 {
        // Nothing to sort or merge (and no clock to read for it).
        inner.stats.record(Stage::SortMerge, Duration::ZERO);
        sort_and_merge(batch, inner.queue.max_request)
    } else {
        let merged = sort_and_merge(batch, inner.queue.max_request);
        inner.stats.record(Stage::SortMerge, taken.elapsed());
        merged
    };
    inner.stats.batches.fetch_add(1, Ordering::Relaxed);
    inner
        .stats
        .merged_requests
        .fetch_add((n - merged.len()) as u64, Ordering::Relaxed);
    if merged.len() == 1 {
        let mut done = taken;
        for m in merged {
            done = run_merged(inner, m).await;
        }
        done
    } else {
        let futs: Vec<_> = merged.into_iter().map(|m| run_merged(inner, m)).collect();
        super::join::join_all(futs)
            .await
            .into_iter()
            .max()
            .unwrap_or(taken)
    }
}

/// Serves one merged request and answers its parts; returns when it finished.
async fn run_merged(inner: &Inner, m: Merged) -> Instant {
    if m.write {
        let bufs: Vec<Bytes> = m.parts.iter().filter_map(|p| p.data.clone()).collect();
        let (r, done) = inner.write_range(m.offset, m.len, &bufs, m.fua).await;
        for p in m.parts {
            let _ = p.reply.send(match &r {
                Ok(()) => Ok(Bytes::new()),
                Err(e) => Err(BackendError::Failed(e.clone())),
            });
        }
        done
    } else {
        let (r, done) = inner.read_range(m.offset, m.len, None).await;
        let r = super::buffered(r);
        for p in m.parts {
            let _ = p.reply.send(match &r {
                Ok(b) => {
                    let start = (p.offset - m.offset) as usize;
                    Ok(b.slice(start..start + p.len as usize))
                }
                Err(e) => Err(BackendError::Failed(e.clone())),
            });
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(
        offset: u64,
        len: u64,
        write: bool,
    ) -> (Pending, oneshot::Receiver<BackendResult<Bytes>>) {
        let (tx, rx) = oneshot::channel();
        (
            Pending {
                offset,
                len,
                data: write.then(|| Bytes::from(vec![offset as u8; len as usize])),
                fua: false,
                enqueued: Instant::now(),
                reply: tx,
            },
            rx,
        )
    }

    #[test]
    fn merges_adjacent_same_direction_up_to_the_limit() {
        let mut rxs = Vec::new();
        let mut batch = Vec::new();
        for (o, l, w) in [
            (8192, 4096, true),
            (0, 4096, true),
            (4096, 4096, true),
            (12288, 4096, false),
            (16384, 4096, false),
            (40960, 4096, true),
            (45056, 4096, true),
        ] {
            let (p, rx) = req(o, l, w);
            batch.push(p);
            rxs.push(rx);
        }
        let m = sort_and_merge(batch, 8192);
        let shape: Vec<(u64, u64, bool, usize)> = m
            .iter()
            .map(|m| (m.offset, m.len, m.write, m.parts.len()))
            .collect();
        assert_eq!(
            shape,
            vec![
                (0, 8192, true, 2),
                (8192, 4096, true, 1),
                (12288, 8192, false, 2),
                (40960, 8192, true, 2),
            ]
        );
    }
}
