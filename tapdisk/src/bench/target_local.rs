//! The "physical disk" baseline: a backing file driven in-process with `pread`/`pwrite` from a
//! pool of blocking threads (one per slot, so `queue_depth` requests really are concurrent),
//! each request then held until the disk model says the spindle finished it. No network, no
//! NBD, no iSCSI: what the virtual disk is compared against.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use super::service_time::{sleep_until_precise, ServiceTimeModel};
use super::workload::{IoEngine, IoRequest, Op, WorkloadTarget};
use super::BenchError;

/// A file (or block device) plus an optional service-time model.
#[derive(Clone)]
pub struct LocalFileTarget {
    pub path: PathBuf,
    pub model: Option<Arc<dyn ServiceTimeModel>>,
}

impl LocalFileTarget {
    pub fn new(path: impl Into<PathBuf>, model: Option<Arc<dyn ServiceTimeModel>>) -> Self {
        LocalFileTarget {
            path: path.into(),
            model,
        }
    }
}

impl WorkloadTarget for LocalFileTarget {
    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn open(
        &self,
        queue_depth: usize,
        max_len: usize,
        write_pattern: Arc<[u8]>,
    ) -> Result<Box<dyn IoEngine>, BenchError> {
        let io_err = |e| BenchError::Local {
            path: self.path.clone(),
            source: e,
        };
        let file = Arc::new(
            File::options()
                .read(true)
                .write(true)
                .open(&self.path)
                .map_err(io_err)?,
        );
        let capacity = block_capacity(&file).map_err(io_err)?;
        let (done_tx, done_rx) = mpsc::channel::<(usize, std::io::Result<()>)>();
        let mut workers = Vec::with_capacity(queue_depth);
        for slot in 0..queue_depth {
            let (tx, rx) = mpsc::channel::<IoRequest>();
            let file = Arc::clone(&file);
            let model = self.model.clone();
            let pattern = Arc::clone(&write_pattern);
            let done = done_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("bench-io-{slot}"))
                .spawn(move || worker(slot, &file, model.as_deref(), &pattern, max_len, &rx, &done))
                .map_err(io_err)?;
            workers.push((tx, handle));
        }
        Ok(Box::new(LocalEngine {
            path: self.path.clone(),
            capacity,
            workers,
            done: done_rx,
        }))
    }
}

/// Size of a regular file, or of a block device (whose metadata length is 0).
fn block_capacity(file: &File) -> std::io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    let len = file.metadata()?.len();
    if len > 0 {
        return Ok(len);
    }
    let mut f = file;
    f.seek(SeekFrom::End(0))
}

fn worker(
    slot: usize,
    file: &File,
    model: Option<&dyn ServiceTimeModel>,
    pattern: &[u8],
    max_len: usize,
    rx: &mpsc::Receiver<IoRequest>,
    done: &mpsc::Sender<(usize, std::io::Result<()>)>,
) {
    // Precise wake-ups for the disk model (default timer slack is 50 µs).
    // SAFETY: prctl(PR_SET_TIMERSLACK) only changes this thread's timer slack.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
    let mut buf = vec![0u8; max_len];
    while let Ok(req) = rx.recv() {
        let arrival = Instant::now();
        let len = req.len as usize;
        let result = if len > max_len || len > pattern.len() {
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "request larger than the engine's buffers",
            ))
        } else {
            match req.op {
                Op::Read => file.read_exact_at(&mut buf[..len], req.offset),
                Op::Write => file.write_all_at(&pattern[..len], req.offset),
            }
        };
        if let Some(m) = model {
            sleep_until_precise(m.complete_at(arrival, req.op, u64::from(req.len)));
        }
        if done.send((slot, result)).is_err() {
            return;
        }
    }
}

struct LocalEngine {
    path: PathBuf,
    capacity: u64,
    workers: Vec<(mpsc::Sender<IoRequest>, JoinHandle<()>)>,
    done: mpsc::Receiver<(usize, std::io::Result<()>)>,
}

impl IoEngine for LocalEngine {
    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn submit(&mut self, slot: usize, req: IoRequest) -> Result<(), BenchError> {
        let (tx, _) = self
            .workers
            .get(slot)
            .ok_or_else(|| BenchError::BadSpec(format!("slot {slot} beyond the queue depth")))?;
        tx.send(req).map_err(|_| {
            BenchError::Protocol(format!("{}: I/O worker {slot} exited", self.path.display()))
        })
    }

    fn wait_one(&mut self) -> Result<usize, BenchError> {
        let (slot, result) = self.done.recv().map_err(|_| {
            BenchError::Protocol(format!("{}: every I/O worker exited", self.path.display()))
        })?;
        result.map_err(|e| BenchError::Local {
            path: self.path.clone(),
            source: e,
        })?;
        Ok(slot)
    }
}

impl Drop for LocalEngine {
    fn drop(&mut self) {
        for (tx, handle) in self.workers.drain(..) {
            drop(tx);
            let _ = handle.join();
        }
    }
}
