//! One pipelined iSCSI session per distinct server (portal + IQN), and the SCSI commands the
//! data path sends to each LUN (SBC-3 READ/WRITE with FUA, SYNCHRONIZE CACHE, UNMAP, WRITE
//! SAME), each counted and timed per LUN, each failure logged with server, LUN, LBA and op.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use iscsi_initiator::{IscsiError, PipedRead, Session, SessionConfig, SplicePipe};
use pvd_mapping::TargetAddr;

use super::VdiskError;
use crate::stats::VdiskStats;

/// One LUN the disk uses, reached through one of the sessions.
struct LunRef {
    session: usize,
    lun: u64,
    block_size: u32,
    name: String,
    /// Written (or unmapped) since the last successful SYNCHRONIZE CACHE.
    dirty: AtomicBool,
}

/// The sessions of a disk and its LUNs (indexed like `ExtentTable::targets`).
pub struct Servers {
    sessions: Vec<Session>,
    luns: Vec<LunRef>,
    stats: Arc<VdiskStats>,
}

/// What a failed command was doing, for the log line and the error text.
fn failure(name: &str, lun: u64, lba: u64, op: &str, e: &IscsiError) -> String {
    tracing::error!(server = name, lun, lba, op, error = %e, "iSCSI command failed");
    format!("server {name} LUN {lun} LBA {lba} {op}: {e}")
}

impl Servers {
    /// Logs in to every distinct portal+IQN of `targets` (concurrently) and checks that each LUN
    /// has the block size the mapping says.
    pub async fn connect(
        targets: &[TargetAddr],
        template: &SessionConfig,
        stats: Arc<VdiskStats>,
    ) -> Result<Servers, VdiskError> {
        let mut keys: Vec<(String, String)> = Vec::new();
        let mut luns = Vec::new();
        for t in targets {
            let key = (t.portal.clone(), t.iqn.clone());
            let session = match keys.iter().position(|k| *k == key) {
                Some(i) => i,
                None => {
                    keys.push(key);
                    keys.len() - 1
                }
            };
            luns.push(LunRef {
                session,
                lun: t.lun,
                block_size: t.block_size,
                name: server_name(t),
                dirty: AtomicBool::new(false),
            });
        }
        let mut set = tokio::task::JoinSet::new();
        for (i, (portal, iqn)) in keys.iter().enumerate() {
            let mut cfg = template.clone();
            cfg.portal = portal.clone();
            cfg.target_name = iqn.clone();
            set.spawn(async move { (i, Session::connect(cfg).await) });
        }
        let mut sessions: Vec<Option<Session>> = keys.iter().map(|_| None).collect();
        while let Some(joined) = set.join_next().await {
            let (i, r) = joined.map_err(|e| VdiskError::Internal(e.to_string()))?;
            let (portal, iqn) = &keys[i];
            sessions[i] = Some(r.map_err(|source| VdiskError::Connect {
                server: format!("{portal} {iqn}"),
                source,
            })?);
        }
        let sessions: Vec<Session> = sessions.into_iter().flatten().collect();
        for l in &luns {
            let cap = sessions[l.session]
                .read_capacity(l.lun)
                .await
                .map_err(|source| VdiskError::Connect {
                    server: l.name.clone(),
                    source,
                })?;
            if cap.block_len != l.block_size {
                return Err(VdiskError::BlockSize {
                    server: l.name.clone(),
                    mapped: l.block_size,
                    actual: cap.block_len,
                });
            }
        }
        Ok(Servers {
            sessions,
            luns,
            stats,
        })
    }

    /// Capacity in bytes of LUN `t` (asked from the server).
    pub async fn capacity(&self, t: u32) -> Result<u64, VdiskError> {
        let l = &self.luns[t as usize];
        self.sessions[l.session]
            .read_capacity(l.lun)
            .await
            .map(|c| c.bytes())
            .map_err(|source| VdiskError::Connect {
                server: l.name.clone(),
                source,
            })
    }

    pub fn name(&self, t: u32) -> &str {
        &self.luns[t as usize].name
    }

    pub fn block_size(&self, t: u32) -> u32 {
        self.luns[t as usize].block_size
    }

    pub fn len(&self) -> usize {
        self.luns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.luns.is_empty()
    }

    /// WRITE of the concatenation of `bufs` at `lba` of LUN `t`.
    pub async fn write(&self, t: u32, lba: u64, bufs: Vec<Bytes>, fua: bool) -> Result<(), String> {
        self.write_from(t, lba, bufs, fua, Instant::now()).await.0
    }

    /// [`Servers::write`] sent at `start` (its round trip is timed from there); also returns
    /// when it completed.
    pub async fn write_from(
        &self,
        t: u32,
        lba: u64,
        bufs: Vec<Bytes>,
        fua: bool,
        start: Instant,
    ) -> (Result<(), String>, Instant) {
        let l = &self.luns[t as usize];
        let s = &self.stats.servers[t as usize];
        let len: usize = bufs.iter().map(Bytes::len).sum();
        let r = self.sessions[l.session]
            .write_segments(l.lun, lba, &bufs, fua)
            .await;
        let done = Instant::now();
        s.round_trip.record(done.saturating_duration_since(start));
        s.writes.fetch_add(1, Ordering::Relaxed);
        let r = match r {
            Ok(()) => {
                s.bytes_written.fetch_add(len as u64, Ordering::Relaxed);
                l.dirty.store(true, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                s.errors.fetch_add(1, Ordering::Relaxed);
                Err(failure(
                    &l.name,
                    l.lun,
                    lba,
                    if fua { "WRITE(FUA)" } else { "WRITE" },
                    &e,
                ))
            }
        };
        (r, done)
    }

    /// READ of `len` bytes at `lba` of LUN `t`, sent at `start` (its round trip is timed from
    /// there), into `pipe` when the initiator can splice the payload there
    /// ([`Session::read_to_pipe`]); also returns when it completed.
    pub async fn read_from(
        &self,
        t: u32,
        lba: u64,
        len: u64,
        pipe: Option<&Arc<SplicePipe>>,
        start: Instant,
    ) -> (Result<PipedRead, String>, Instant) {
        let l = &self.luns[t as usize];
        let s = &self.stats.servers[t as usize];
        let Ok(blocks) = u32::try_from(len / l.block_size as u64) else {
            let e = format!("server {} read of {len} bytes is too long", l.name);
            return (Err(e), start);
        };
        let session = &self.sessions[l.session];
        let r = match pipe {
            Some(p) => session.read_to_pipe(l.lun, lba, blocks, p).await,
            None => session.read(l.lun, lba, blocks).await.map(PipedRead::Bytes),
        };
        let done = Instant::now();
        s.round_trip.record(done.saturating_duration_since(start));
        s.reads.fetch_add(1, Ordering::Relaxed);
        let r = match r {
            Ok(p) => {
                s.bytes_read.fetch_add(len, Ordering::Relaxed);
                Ok(p)
            }
            Err(e) => {
                s.errors.fetch_add(1, Ordering::Relaxed);
                Err(failure(&l.name, l.lun, lba, "READ", &e))
            }
        };
        (r, done)
    }

    /// UNMAP of `len` bytes at `lba`. A target without UNMAP support is not an error (trim is a
    /// hint).
    pub async fn unmap(&self, t: u32, lba: u64, len: u64) -> Result<(), String> {
        let l = &self.luns[t as usize];
        let s = &self.stats.servers[t as usize];
        let blocks = u32::try_from(len / l.block_size as u64)
            .map_err(|_| format!("server {} unmap of {len} bytes is too long", l.name))?;
        let start = Instant::now();
        let r = self.sessions[l.session]
            .unmap(l.lun, &[(lba, blocks)])
            .await;
        s.round_trip.record(start.elapsed());
        s.other_commands.fetch_add(1, Ordering::Relaxed);
        match r {
            Ok(()) => {
                l.dirty.store(true, Ordering::Release);
                Ok(())
            }
            Err(e) if !e.is_transport() && !matches!(e, IscsiError::ReplacementTimeout(_)) => {
                tracing::debug!(server = %l.name, error = %e, "UNMAP refused; trim ignored");
                Ok(())
            }
            Err(e) => {
                s.errors.fetch_add(1, Ordering::Relaxed);
                Err(failure(&l.name, l.lun, lba, "UNMAP", &e))
            }
        }
    }

    /// WRITE SAME of zeroes (with the UNMAP bit when `unmap`) over `len` bytes at `lba`; when the
    /// target refuses the command, writes zero buffers instead (`zeros` is sliced, never copied).
    pub async fn write_zeroes(
        &self,
        t: u32,
        lba: u64,
        len: u64,
        unmap: bool,
        zeros: &Bytes,
    ) -> Result<(), String> {
        let l = &self.luns[t as usize];
        let s = &self.stats.servers[t as usize];
        let blocks = u32::try_from(len / l.block_size as u64)
            .map_err(|_| format!("server {} write zeroes of {len} bytes is too long", l.name))?;
        let start = Instant::now();
        let r = self.sessions[l.session]
            .write_same(l.lun, lba, blocks, unmap)
            .await;
        s.round_trip.record(start.elapsed());
        s.other_commands.fetch_add(1, Ordering::Relaxed);
        match r {
            Ok(()) => {
                l.dirty.store(true, Ordering::Release);
                Ok(())
            }
            Err(e) if !e.is_transport() && !matches!(e, IscsiError::ReplacementTimeout(_)) => {
                tracing::debug!(server = %l.name, error = %e, "WRITE SAME refused; writing zeroes");
                self.stats.zero_fallbacks.fetch_add(1, Ordering::Relaxed);
                let chunk = zeros.len() as u64;
                let mut done = 0u64;
                while done < len {
                    let n = (len - done).min(chunk);
                    let lba_n = lba + done / l.block_size as u64;
                    self.write(t, lba_n, vec![zeros.slice(..n as usize)], false)
                        .await?;
                    done += n;
                }
                Ok(())
            }
            Err(e) => {
                s.errors.fetch_add(1, Ordering::Relaxed);
                Err(failure(&l.name, l.lun, lba, "WRITE SAME", &e))
            }
        }
    }

    /// SYNCHRONIZE CACHE on every LUN written since its last flush (`all`: on every LUN).
    pub async fn flush(&self, all: bool) -> Result<(), String> {
        let mut futs = Vec::new();
        for (t, l) in self.luns.iter().enumerate() {
            if all || l.dirty.swap(false, Ordering::AcqRel) {
                futs.push(async move {
                    let s = &self.stats.servers[t];
                    let start = Instant::now();
                    let r = self.sessions[l.session].flush(l.lun).await;
                    s.round_trip.record(start.elapsed());
                    s.other_commands.fetch_add(1, Ordering::Relaxed);
                    r.map_err(|e| {
                        l.dirty.store(true, Ordering::Release);
                        s.errors.fetch_add(1, Ordering::Relaxed);
                        failure(&l.name, l.lun, 0, "SYNCHRONIZE CACHE", &e)
                    })
                });
            }
        }
        for r in super::join::join_all(futs).await {
            r?;
        }
        Ok(())
    }

    /// Logs out of every session.
    pub async fn logout(&self) {
        for s in &self.sessions {
            let _ = s.logout().await;
        }
    }
}

/// `portal iqn lun N`: how a LUN is named in logs and statistics.
pub fn server_name(t: &TargetAddr) -> String {
    format!("{} {} lun {}", t.portal, t.iqn, t.lun)
}
