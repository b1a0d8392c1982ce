//! Durable master state: an append-only journal of checksummed records plus a snapshot.
//!
//! Journal record: `len: u32 BE | crc32c(payload): u32 BE | payload`, the payload being the JSON
//! of `{seq, record}`. Records are appended and fsynced before the master replies. At start-up
//! the snapshot is loaded and journal records with a higher sequence number are replayed. A torn
//! last record (a crash in the middle of an append: short, checksum mismatch at the very end, or
//! a zero-filled tail) is dropped and the journal truncated to the last whole record; a damaged
//! record followed by more data is corruption and refuses the start.
//!
//! Compaction writes the snapshot atomically (temp file, fsync, rename, fsync dir), then
//! truncates the journal; a crash in between is harmless because replay skips records the
//! snapshot already holds.

use super::state::{MasterState, Record};
use crate::mapfile::write_atomically;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Largest journal record accepted (a whole-disk ALLOCATE of the largest disk fits).
pub const MAX_RECORD_BYTES: u32 = 64 << 20;
/// Header bytes before each payload.
pub const RECORD_HEADER_BYTES: usize = 8;
/// Snapshot format version.
pub const SNAPSHOT_VERSION: u32 = 1;

const JOURNAL_FILE: &str = "journal";
const SNAPSHOT_FILE: &str = "snapshot.json";
const LOCK_FILE: &str = "master.lock";

/// Why the state could not be loaded or saved.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("state dir {dir}: {what}: {source}")]
    Io {
        dir: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("state dir {0} is in use by another master")]
    Busy(PathBuf),
    #[error("journal {path}: record at byte {offset} is damaged ({why}) and more records follow; refusing to start")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        why: String,
    },
    #[error("snapshot {path}: {why}")]
    BadSnapshot { path: PathBuf, why: String },
    #[error("state dir {dir} has a journal but no snapshot")]
    MissingSnapshot { dir: PathBuf },
    #[error(
        "state dir {dir} carves extents of {stored} bytes; --extent-size asks for {requested}"
    )]
    ExtentSizeMismatch {
        dir: PathBuf,
        stored: u64,
        requested: u64,
    },
    #[error("an earlier journal write failed; the master refuses further changes")]
    Poisoned,
    #[error("record does not apply to the state: {0}")]
    Apply(String),
}

#[derive(Serialize, Deserialize)]
struct Entry {
    seq: u64,
    record: Record,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    last_seq: u64,
    state: MasterState,
}

/// A test hook: crash the process right after a journal append is durable, before the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failpoint {
    None,
    /// `abort()` after the fsync of a record batch holding an allocation.
    CrashAfterAllocateJournaled,
}

impl Failpoint {
    /// Reads `PVD_MASTER_FAILPOINT` (`crash-after-journal`).
    pub fn from_env() -> Failpoint {
        match std::env::var("PVD_MASTER_FAILPOINT").as_deref() {
            Ok("crash-after-journal") => Failpoint::CrashAfterAllocateJournaled,
            _ => Failpoint::None,
        }
    }
}

/// Result of replay, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplayStats {
    pub records_replayed: u64,
    pub torn_bytes_dropped: u64,
}

/// The journalled state of a master.
pub struct Store {
    dir: PathBuf,
    journal: File,
    journal_len: u64,
    _lock: File,
    state: MasterState,
    next_seq: u64,
    since_snapshot: u64,
    compact_every: u64,
    poisoned: bool,
    failpoint: Failpoint,
    pub replay: ReplayStats,
}

fn io(dir: &Path, what: &'static str) -> impl Fn(std::io::Error) -> StoreError {
    let dir = dir.to_path_buf();
    move |source| StoreError::Io {
        dir: dir.clone(),
        what,
        source,
    }
}

fn encode(entry: &Entry) -> Vec<u8> {
    let payload = serde_json::to_vec(entry).expect("records serialise");
    let mut out = Vec::with_capacity(RECORD_HEADER_BYTES + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Splits journal bytes into entries; returns them and the length of the valid prefix.
fn parse_journal(path: &Path, bytes: &[u8]) -> Result<(Vec<Entry>, usize), StoreError> {
    let mut pos = 0usize;
    let mut entries = Vec::new();
    let torn_from = |pos: usize| bytes[pos..].iter().all(|&b| b == 0);
    while pos < bytes.len() {
        let rest = bytes.len() - pos;
        if rest < RECORD_HEADER_BYTES || torn_from(pos) {
            break; // torn header, or a zero-filled tail never written
        }
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes"));
        let crc = u32::from_be_bytes(bytes[pos + 4..pos + 8].try_into().expect("4 bytes"));
        let end = pos + RECORD_HEADER_BYTES + len as usize;
        if end > bytes.len() {
            break; // torn payload (or a garbled length at the tail)
        }
        let corrupt = |why: String| StoreError::Corrupt {
            path: path.to_path_buf(),
            offset: pos as u64,
            why,
        };
        if len > MAX_RECORD_BYTES {
            return Err(corrupt(format!(
                "length {len} above the limit {MAX_RECORD_BYTES}"
            )));
        }
        let payload = &bytes[pos + RECORD_HEADER_BYTES..end];
        if crc32c::crc32c(payload) != crc {
            if end == bytes.len() {
                break; // the last record was being written
            }
            return Err(corrupt("checksum mismatch".into()));
        }
        let entry: Entry = serde_json::from_slice(payload)
            .map_err(|e| corrupt(format!("checksum ok but payload unreadable: {e}")))?;
        entries.push(entry);
        pos = end;
    }
    Ok((entries, pos))
}

impl Store {
    /// Opens (or creates) the state in `dir`, replaying the journal. `extent_size` is required
    /// for a fresh directory and must match a stored one when given.
    pub fn open(
        dir: &Path,
        extent_size: Option<u64>,
        default_extent_size: u64,
    ) -> Result<Store, StoreError> {
        fs::create_dir_all(dir).map_err(io(dir, "create"))?;
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))
            .map_err(io(dir, "open lock file"))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(StoreError::Busy(dir.to_path_buf()));
        }
        let snap_path = dir.join(SNAPSHOT_FILE);
        let journal_path = dir.join(JOURNAL_FILE);
        let mut journal_bytes = Vec::new();
        if journal_path.exists() {
            File::open(&journal_path)
                .and_then(|mut f| f.read_to_end(&mut journal_bytes))
                .map_err(io(dir, "read journal"))?;
        }
        let (mut state, last_seq) = if snap_path.exists() {
            let bytes = fs::read(&snap_path).map_err(io(dir, "read snapshot"))?;
            let snap: Snapshot =
                serde_json::from_slice(&bytes).map_err(|e| StoreError::BadSnapshot {
                    path: snap_path.clone(),
                    why: e.to_string(),
                })?;
            if snap.version != SNAPSHOT_VERSION {
                return Err(StoreError::BadSnapshot {
                    path: snap_path,
                    why: format!(
                        "version {} (this master reads {SNAPSHOT_VERSION})",
                        snap.version
                    ),
                });
            }
            snap.state
                .check_invariants()
                .map_err(|why| StoreError::BadSnapshot {
                    path: snap_path.clone(),
                    why,
                })?;
            (snap.state, snap.last_seq)
        } else if journal_bytes.iter().any(|&b| b != 0) {
            return Err(StoreError::MissingSnapshot {
                dir: dir.to_path_buf(),
            });
        } else {
            let state = MasterState::new(extent_size.unwrap_or(default_extent_size));
            let snap = Snapshot {
                version: SNAPSHOT_VERSION,
                last_seq: 0,
                state: state.clone(),
            };
            write_atomically(&snap_path, &serde_json::to_vec(&snap).expect("serialise"))
                .map_err(io(dir, "write snapshot"))?;
            (state, 0)
        };
        if let Some(e) = extent_size {
            if e != state.extent_size {
                return Err(StoreError::ExtentSizeMismatch {
                    dir: dir.to_path_buf(),
                    stored: state.extent_size,
                    requested: e,
                });
            }
        }
        let (entries, valid) = parse_journal(&journal_path, &journal_bytes)?;
        let mut stats = ReplayStats {
            records_replayed: 0,
            torn_bytes_dropped: (journal_bytes.len() - valid) as u64,
        };
        let mut seq = last_seq;
        for (i, e) in entries.iter().enumerate() {
            if e.seq <= last_seq {
                continue; // already in the snapshot (crash between snapshot and truncation)
            }
            if e.seq != seq + 1 {
                return Err(StoreError::Corrupt {
                    path: journal_path.clone(),
                    offset: i as u64,
                    why: format!("record {i} has sequence {} after {seq}", e.seq),
                });
            }
            state.apply(&e.record).map_err(|why| StoreError::Corrupt {
                path: journal_path.clone(),
                offset: i as u64,
                why: format!("record {i} (seq {}) does not apply: {why}", e.seq),
            })?;
            seq = e.seq;
            stats.records_replayed += 1;
        }
        let journal = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&journal_path)
            .map_err(io(dir, "open journal"))?;
        if stats.torn_bytes_dropped > 0 {
            tracing::warn!(
                bytes = stats.torn_bytes_dropped,
                "dropping a torn last journal record"
            );
            journal
                .set_len(valid as u64)
                .and_then(|_| journal.sync_all())
                .map_err(io(dir, "truncate torn journal tail"))?;
        }
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir, "sync dir"))?;
        Ok(Store {
            dir: dir.to_path_buf(),
            journal,
            journal_len: valid as u64,
            _lock: lock,
            state,
            next_seq: seq + 1,
            since_snapshot: stats.records_replayed,
            compact_every: 1024,
            poisoned: false,
            failpoint: Failpoint::None,
            replay: stats,
        })
    }

    /// Sets the test hook.
    pub fn set_failpoint(&mut self, f: Failpoint) {
        self.failpoint = f;
    }

    /// Compacts after this many records (default 1024).
    pub fn set_compact_every(&mut self, n: u64) {
        self.compact_every = n.max(1);
    }

    pub fn state(&self) -> &MasterState {
        &self.state
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes `records` durable (one append, one fsync) and applies them. On an I/O error the
    /// journal is cut back to its previous length and the state is unchanged.
    pub fn commit(&mut self, records: Vec<Record>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        if self.poisoned {
            return Err(StoreError::Poisoned);
        }
        // Check the batch applies before making it durable.
        let mut next = self.state.clone();
        for r in &records {
            next.apply(r).map_err(StoreError::Apply)?;
        }
        let mut buf = Vec::new();
        let mut seq = self.next_seq;
        let allocates = records.iter().any(|r| matches!(r, Record::Allocate { .. }));
        for record in records {
            buf.extend_from_slice(&encode(&Entry { seq, record }));
            seq += 1;
        }
        let write = (|| {
            use std::io::{Seek, SeekFrom};
            self.journal.seek(SeekFrom::Start(self.journal_len))?;
            self.journal.write_all(&buf)?;
            self.journal.sync_data()
        })();
        if let Err(e) = write {
            if self
                .journal
                .set_len(self.journal_len)
                .and_then(|_| self.journal.sync_all())
                .is_err()
            {
                self.poisoned = true;
            }
            return Err(StoreError::Io {
                dir: self.dir.clone(),
                what: "append to journal",
                source: e,
            });
        }
        if allocates && self.failpoint == Failpoint::CrashAfterAllocateJournaled {
            eprintln!("pvd master: failpoint crash-after-journal");
            std::process::abort();
        }
        self.journal_len += buf.len() as u64;
        self.since_snapshot += seq - self.next_seq;
        self.next_seq = seq;
        self.state = next;
        if self.since_snapshot >= self.compact_every {
            if let Err(e) = self.compact() {
                tracing::warn!(error = %e, "journal compaction failed; the journal keeps growing");
            }
        }
        Ok(())
    }

    /// Writes a snapshot of the whole state, then empties the journal.
    pub fn compact(&mut self) -> Result<(), StoreError> {
        let snap = Snapshot {
            version: SNAPSHOT_VERSION,
            last_seq: self.next_seq - 1,
            state: self.state.clone(),
        };
        let bytes = serde_json::to_vec(&snap).expect("serialise");
        write_atomically(&self.dir.join(SNAPSHOT_FILE), &bytes)
            .map_err(io(&self.dir, "write snapshot"))?;
        self.journal
            .set_len(0)
            .and_then(|_| self.journal.sync_all())
            .map_err(io(&self.dir, "truncate journal"))?;
        self.journal_len = 0;
        self.since_snapshot = 0;
        Ok(())
    }

    /// Path of the journal file (tests damage it on purpose).
    pub fn journal_path(dir: &Path) -> PathBuf {
        dir.join(JOURNAL_FILE)
    }
}
