//! The virtual disk (DESIGN.md "Data path", thesis chapter 5): a [`BlockBackend`] over the
//! extents of a mapping file, striped and replicated on iSCSI servers.
//!
//! * [`queue`]: the request queue (depth Q), sorting and merging of adjacent requests (up to
//!   the maximum request size M).
//! * translation by the layout arithmetic ([`pvd_mapping::ExtentTable::server_pieces`]); the
//!   pieces of one request bound for different servers are sent at the same time ([`join`]).
//! * [`servers`]: one pipelined iSCSI session per server; writes go to every replica and
//!   complete when all have, reads go to one replica (rotating over them, the next one on
//!   failure); FLUSH becomes SYNCHRONIZE CACHE on every LUN written since the last flush, FUA
//!   is passed down, TRIM becomes UNMAP and WRITE_ZEROES becomes WRITE SAME (zero buffers
//!   when refused).

pub mod join;
pub mod queue;
pub mod servers;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use iscsi_initiator::{IscsiError, PipedRead, SessionConfig, SplicePipe};
use pvd_mapping::{ExtentTable, ReplicaSet, Segment, ServerPiece};

use crate::nbd::{BackendError, BackendResult, BlockBackend};
use crate::stats::{Stage, VdiskStats};
use queue::RequestQueue;
use servers::Servers;

/// Default queue depth Q (requests the queue holds per dispatch; also the NBD in-flight limit).
pub const DEFAULT_QUEUE_DEPTH: usize = 128;
/// Default maximum request size M (largest merged request; advertised to NBD clients).
pub const DEFAULT_MAX_REQUEST: u32 = 4 << 20;
/// Largest accepted M: one WRITE(10) of 512-byte blocks.
pub const MAX_MAX_REQUEST: u32 = 32 << 20;
/// Largest accepted queue depth.
pub const MAX_QUEUE_DEPTH: usize = 4096;
/// Default number of batches in progress at once; requests arriving while all are busy queue
/// up and merge.
pub const DEFAULT_DISPATCH_SLOTS: usize = 2;
/// Size of the shared zero buffer used when a server refuses WRITE SAME.
const ZERO_CHUNK: usize = 1 << 20;

/// Tunables of a [`VirtualDisk`].
#[derive(Debug, Clone)]
pub struct VdiskConfig {
    pub queue_depth: usize,
    pub max_request: u32,
    pub dispatch_slots: usize,
    /// Login parameters for every server (portal and IQN are filled in per server).
    pub session: SessionConfig,
}

impl Default for VdiskConfig {
    fn default() -> Self {
        VdiskConfig {
            queue_depth: DEFAULT_QUEUE_DEPTH,
            max_request: DEFAULT_MAX_REQUEST,
            dispatch_slots: DEFAULT_DISPATCH_SLOTS,
            session: SessionConfig::new("", ""),
        }
    }
}

/// Why a virtual disk cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum VdiskError {
    #[error("cannot reach server {server}: {source}")]
    Connect {
        server: String,
        #[source]
        source: IscsiError,
    },
    #[error(
        "server {server}: the mapping says {mapped}-byte blocks, the LUN has {actual}-byte blocks"
    )]
    BlockSize {
        server: String,
        mapped: u32,
        actual: u32,
    },
    #[error("server {server}: the mapping needs {needed} bytes, the LUN has {capacity}")]
    Capacity {
        server: String,
        needed: u64,
        capacity: u64,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// State shared by the frontend calls and the dispatcher.
pub struct Inner {
    table: ExtentTable,
    servers: Servers,
    queue: RequestQueue,
    stats: Arc<VdiskStats>,
    block_size: u32,
    max_request: u32,
    /// Rotation counter spreading reads over replicas.
    read_turn: AtomicU32,
    /// Serialises flushes, so a flush returns only after every SYNCHRONIZE CACHE issued for
    /// writes completed before it (possibly by a concurrent flush) has finished.
    flush_lock: tokio::sync::Mutex<()>,
    zeros: Bytes,
}

/// A virtual disk served over NBD: see the module documentation.
#[derive(Clone)]
pub struct VirtualDisk {
    inner: Arc<Inner>,
}

impl VirtualDisk {
    /// Connects to every server of `table` and checks block sizes and capacities.
    pub async fn connect(
        table: ExtentTable,
        config: VdiskConfig,
    ) -> Result<VirtualDisk, VdiskError> {
        if config.queue_depth == 0 || config.queue_depth > MAX_QUEUE_DEPTH {
            return Err(VdiskError::Config(format!(
                "queue depth {} is outside 1..={MAX_QUEUE_DEPTH}",
                config.queue_depth
            )));
        }
        let block_size = table
            .targets()
            .iter()
            .map(|t| t.block_size)
            .max()
            .unwrap_or(512)
            .max(512);
        if config.max_request < block_size
            || config.max_request > MAX_MAX_REQUEST
            || !config.max_request.is_multiple_of(block_size)
        {
            return Err(VdiskError::Config(format!(
                "maximum request size {} must be a multiple of the {block_size}-byte block and at most {MAX_MAX_REQUEST}",
                config.max_request
            )));
        }
        let names: Vec<String> = table.targets().iter().map(servers::server_name).collect();
        let stats = Arc::new(VdiskStats::new(names));
        let servers = Servers::connect(table.targets(), &config.session, stats.clone()).await?;
        // Every extent replica must fit on its LUN.
        let g = table.geometry();
        let mut needed = vec![0u64; servers.len()];
        for x in 0..g.extent_count() {
            for k in 0..g.replicas {
                let slot = table.replica(x, k);
                let end = slot.start_byte + g.extent_size;
                let n = &mut needed[slot.target as usize];
                *n = (*n).max(end);
            }
        }
        for (t, &need) in needed.iter().enumerate() {
            let capacity = servers.capacity(t as u32).await?;
            if capacity < need {
                return Err(VdiskError::Capacity {
                    server: servers.name(t as u32).to_string(),
                    needed: need,
                    capacity,
                });
            }
        }
        let queue = RequestQueue::new(
            config.queue_depth,
            config.dispatch_slots,
            config.max_request as u64,
        );
        Ok(VirtualDisk {
            inner: Arc::new(Inner {
                table,
                servers,
                queue,
                stats,
                block_size,
                max_request: config.max_request,
                read_turn: AtomicU32::new(0),
                flush_lock: tokio::sync::Mutex::new(()),
                zeros: Bytes::from(vec![0u8; ZERO_CHUNK]),
            }),
        })
    }

    /// The statistics this disk records (also the NBD observer to install).
    pub fn stats(&self) -> Arc<VdiskStats> {
        self.inner.stats.clone()
    }

    /// The mapping this disk serves.
    pub fn table(&self) -> &ExtentTable {
        &self.inner.table
    }

    /// SYNCHRONIZE CACHE on every LUN (shutdown), then logout.
    pub async fn shutdown(&self) -> BackendResult<()> {
        let _g = self.inner.flush_lock.lock().await;
        let r = self.inner.servers.flush(true).await;
        self.inner.servers.logout().await;
        r.map_err(BackendError::Failed)
    }
}

/// The caller's buffer ranges `segs` of the concatenation of `parts`, as slices.
fn slice_segments(parts: &[Bytes], segs: &[Segment]) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(segs.len());
    for s in segs {
        let mut off = s.buf_offset as usize;
        let mut left = s.len as usize;
        for p in parts {
            if left == 0 {
                break;
            }
            if off >= p.len() {
                off -= p.len();
                continue;
            }
            let n = (p.len() - off).min(left);
            out.push(p.slice(off..off + n));
            left -= n;
            off = 0;
        }
    }
    out
}

impl Inner {
    /// The server pieces of `[offset, offset+len)`, and when the translation finished (the
    /// commands' start: one clock read serves both stages).
    fn pieces(
        &self,
        offset: u64,
        len: u64,
        set: ReplicaSet,
    ) -> Result<(Vec<ServerPiece>, Instant), String> {
        let t = Instant::now();
        let mut scratch = Vec::new();
        let mut out = Vec::new();
        self.table
            .server_pieces(offset, len, set, &mut scratch, &mut out)
            .map_err(|e| format!("translate {offset}+{len}: {e}"))?;
        let done = Instant::now();
        self.stats.record(Stage::Translate, done - t);
        Ok((out, done))
    }

    /// Writes `[offset, offset+len)` carried by `bufs` to every replica; also returns when
    /// the last replica answered.
    async fn write_range(
        &self,
        offset: u64,
        len: u64,
        bufs: &[Bytes],
        fua: bool,
    ) -> (Result<(), String>, Instant) {
        let (pieces, t) = match self.pieces(offset, len, ReplicaSet::All) {
            Ok(p) => p,
            Err(e) => return (Err(e), Instant::now()),
        };
        let (r, done) = if let [p] = pieces.as_slice() {
            self.servers
                .write_from(p.target, p.lba, slice_segments(bufs, &p.segments), fua, t)
                .await
        } else {
            let futs: Vec<_> = pieces
                .iter()
                .map(|p| {
                    self.servers.write_from(
                        p.target,
                        p.lba,
                        slice_segments(bufs, &p.segments),
                        fua,
                        t,
                    )
                })
                .collect();
            let results = join::join_all(futs).await;
            let done = results.iter().map(|(_, d)| *d).max().unwrap_or(t);
            (results.into_iter().try_for_each(|(r, _)| r), done)
        };
        self.stats
            .record(Stage::Servers, done.saturating_duration_since(t));
        (r, done)
    }

    /// Reads `[offset, offset+len)` from one replica of each extent, trying the next replica
    /// when a server fails; also returns when the data was complete. With a `pipe`, a range
    /// that is one piece on one server is read into it (the payload never enters user
    /// memory); everything else, and every retry, comes back in a buffer.
    async fn read_range(
        &self,
        offset: u64,
        len: u64,
        pipe: Option<&Arc<SplicePipe>>,
    ) -> (Result<PipedRead, String>, Instant) {
        let replicas = self.table.geometry().replicas;
        let turn = self.read_turn.fetch_add(1, Ordering::Relaxed);
        let mut last = String::new();
        let mut done = Instant::now();
        for attempt in 0..replicas {
            // A failed attempt may have left part of its data in the pipe.
            let pipe = pipe.filter(|_| attempt == 0);
            let set = ReplicaSet::Rotate(turn.wrapping_add(attempt));
            let (pieces, t) = match self.pieces(offset, len, set) {
                Ok(p) => p,
                Err(e) => return (Err(e), Instant::now()),
            };
            let r = if let [p] = pieces.as_slice() {
                let whole = p.segments.len() == 1 && p.segments[0].buf_offset == 0;
                let pipe = pipe.filter(|_| whole);
                let (r, d) = self
                    .servers
                    .read_from(p.target, p.lba, p.len, pipe, t)
                    .await;
                done = d;
                self.stats
                    .record(Stage::Servers, done.saturating_duration_since(t));
                match r {
                    Ok(r) if whole => return (Ok(r), done),
                    r => buffered(r).map(|b| vec![b]),
                }
            } else {
                let futs: Vec<_> = pieces
                    .iter()
                    .map(|p| self.servers.read_from(p.target, p.lba, p.len, None, t))
                    .collect();
                let results = join::join_all(futs).await;
                done = results.iter().map(|(_, d)| *d).max().unwrap_or(t);
                self.stats
                    .record(Stage::Servers, done.saturating_duration_since(t));
                results.into_iter().map(|(r, _)| buffered(r)).collect()
            };
            match r {
                Ok(results) => {
                    let data = assemble(len, &pieces, &results);
                    return (Ok(PipedRead::Bytes(data)), done);
                }
                Err(e) => last = e,
            }
        }
        (Err(last), done)
    }

    /// TRIM: UNMAP on every replica.
    async fn trim_range(&self, offset: u64, len: u64) -> Result<(), String> {
        let (pieces, _) = self.pieces(offset, len, ReplicaSet::All)?;
        let futs: Vec<_> = pieces
            .iter()
            .map(|p| self.servers.unmap(p.target, p.lba, p.len))
            .collect();
        join::join_all(futs).await.into_iter().collect()
    }

    /// WRITE_ZEROES: WRITE SAME on every replica.
    async fn zero_range(&self, offset: u64, len: u64, may_trim: bool) -> Result<(), String> {
        let (pieces, _) = self.pieces(offset, len, ReplicaSet::All)?;
        let futs: Vec<_> = pieces
            .iter()
            .map(|p| {
                self.servers
                    .write_zeroes(p.target, p.lba, p.len, may_trim, &self.zeros)
            })
            .collect();
        join::join_all(futs).await.into_iter().collect()
    }
}

/// The data of a read made without a pipe (which always comes back in a buffer).
fn buffered(r: Result<PipedRead, String>) -> Result<Bytes, String> {
    r?.buffered().map_err(|e| e.to_string())
}

/// Copies each piece's data to its places in one buffer of `len` bytes (a read that spans
/// servers must come back as one buffer).
fn assemble(len: u64, pieces: &[ServerPiece], results: &[Bytes]) -> Bytes {
    let mut out = BytesMut::with_capacity(len as usize);
    out.put_bytes(0, len as usize);
    for (p, data) in pieces.iter().zip(results) {
        let mut at = 0usize;
        for s in &p.segments {
            let n = s.len as usize;
            let dst = s.buf_offset as usize;
            if at + n <= data.len() && dst + n <= out.len() {
                out[dst..dst + n].copy_from_slice(&data[at..at + n]);
            }
            at += n;
        }
    }
    out.freeze()
}

impl BlockBackend for VirtualDisk {
    fn size(&self) -> u64 {
        self.inner.table.geometry().size
    }

    fn block_size(&self) -> u32 {
        self.inner.block_size
    }

    fn max_request(&self) -> u32 {
        self.inner.max_request
    }

    async fn read(&self, offset: u64, len: u32) -> BackendResult<Bytes> {
        let r = queue::submit(&self.inner, offset, len as u64, None, false, None).await?;
        buffered(Ok(r)).map_err(BackendError::Failed)
    }

    async fn read_to_pipe(
        &self,
        offset: u64,
        len: u32,
        pipe: &Arc<SplicePipe>,
    ) -> BackendResult<PipedRead> {
        let r = queue::submit(&self.inner, offset, len as u64, None, false, Some(pipe)).await;
        let counter = match &r {
            Ok(PipedRead::InPipe(_)) => &self.inner.stats.spliced_reads,
            Ok(PipedRead::Bytes(_)) => &self.inner.stats.splice_fallbacks,
            Err(_) => return r,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        r
    }

    async fn write(&self, offset: u64, data: Bytes, fua: bool) -> BackendResult<()> {
        let len = data.len() as u64;
        queue::submit(&self.inner, offset, len, Some(data), fua, None)
            .await
            .map(|_| ())
    }

    async fn flush(&self) -> BackendResult<()> {
        let _g = self.inner.flush_lock.lock().await;
        self.inner
            .servers
            .flush(false)
            .await
            .map_err(BackendError::Failed)
    }

    async fn trim(&self, offset: u64, len: u32) -> BackendResult<()> {
        self.inner
            .trim_range(offset, len as u64)
            .await
            .map_err(BackendError::Failed)
    }

    async fn write_zeroes(&self, offset: u64, len: u32, may_trim: bool) -> BackendResult<()> {
        self.inner
            .zero_range(offset, len as u64, may_trim)
            .await
            .map_err(BackendError::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_segments_across_parts_without_copying() {
        let parts = vec![Bytes::from_static(b"abcd"), Bytes::from_static(b"efgh")];
        let segs = [
            Segment {
                buf_offset: 2,
                len: 4,
            },
            Segment {
                buf_offset: 7,
                len: 1,
            },
        ];
        let out = slice_segments(&parts, &segs);
        assert_eq!(out.len(), 3);
        assert_eq!(&out[0][..], b"cd");
        assert_eq!(&out[1][..], b"ef");
        assert_eq!(&out[2][..], b"h");
        assert_eq!(out[0].as_ptr(), parts[0][2..].as_ptr());
    }
}
