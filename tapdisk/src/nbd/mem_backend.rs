//! An in-memory [`BlockBackend`]: sparse 1 MiB chunks, each behind its own lock, allocated on
//! first write and dropped by trim/write-zeroes that cover them whole. For tests and as the
//! "no storage cost" baseline of frontend benchmarks.

use std::sync::RwLock;

use bytes::{Bytes, BytesMut};

use super::backend::{BackendError, BackendResult, BlockBackend};

/// Size of one allocation unit of a [`MemBackend`].
pub const MEM_CHUNK: usize = 1 << 20;
/// Default maximum request size of the bundled backends (the spec's interoperable maximum).
pub const DEFAULT_MAX_REQUEST: u32 = 32 << 20;
/// Default minimum block size of the bundled backends.
pub const DEFAULT_BLOCK_SIZE: u32 = 512;

/// In-memory block store.
pub struct MemBackend {
    size: u64,
    block_size: u32,
    max_request: u32,
    chunks: Vec<RwLock<Option<Box<[u8]>>>>,
}

impl MemBackend {
    /// A zero-filled store of `size` bytes with the default limits.
    pub fn new(size: u64) -> MemBackend {
        MemBackend::with_limits(size, DEFAULT_BLOCK_SIZE, DEFAULT_MAX_REQUEST)
    }

    /// A zero-filled store with the given minimum block size and maximum request.
    pub fn with_limits(size: u64, block_size: u32, max_request: u32) -> MemBackend {
        let n = size.div_ceil(MEM_CHUNK as u64) as usize;
        MemBackend {
            size,
            block_size,
            max_request,
            chunks: (0..n).map(|_| RwLock::new(None)).collect(),
        }
    }

    /// Calls `f(chunk index, offset in chunk, offset in request, length)` for every piece of
    /// `[offset, offset+len)`.
    fn pieces(offset: u64, len: usize, mut f: impl FnMut(usize, usize, usize, usize)) {
        let mut done = 0usize;
        while done < len {
            let pos = offset + done as u64;
            let idx = (pos / MEM_CHUNK as u64) as usize;
            let within = (pos % MEM_CHUNK as u64) as usize;
            let n = (MEM_CHUNK - within).min(len - done);
            f(idx, within, done, n);
            done += n;
        }
    }

    fn check(&self, offset: u64, len: u64) -> BackendResult<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(BackendError::Invalid("range beyond the end of the store")),
        }
    }

    fn zero_range(&self, offset: u64, len: usize) {
        MemBackend::pieces(offset, len, |idx, within, _, n| {
            let mut chunk = self.chunks[idx].write().unwrap_or_else(|e| e.into_inner());
            if n == MEM_CHUNK {
                *chunk = None;
            } else if let Some(c) = chunk.as_mut() {
                c[within..within + n].fill(0);
            }
        });
    }
}

impl BlockBackend for MemBackend {
    fn size(&self) -> u64 {
        self.size
    }

    fn block_size(&self) -> u32 {
        self.block_size
    }

    fn max_request(&self) -> u32 {
        self.max_request
    }

    async fn read(&self, offset: u64, len: u32) -> BackendResult<Bytes> {
        self.check(offset, len as u64)?;
        let mut out = BytesMut::with_capacity(len as usize);
        MemBackend::pieces(offset, len as usize, |idx, within, _, n| {
            let chunk = self.chunks[idx].read().unwrap_or_else(|e| e.into_inner());
            match chunk.as_ref() {
                Some(c) => out.extend_from_slice(&c[within..within + n]),
                None => out.resize(out.len() + n, 0),
            }
        });
        Ok(out.freeze())
    }

    async fn write(&self, offset: u64, data: Bytes, _fua: bool) -> BackendResult<()> {
        self.check(offset, data.len() as u64)?;
        MemBackend::pieces(offset, data.len(), |idx, within, at, n| {
            let mut chunk = self.chunks[idx].write().unwrap_or_else(|e| e.into_inner());
            let c = chunk.get_or_insert_with(|| vec![0u8; MEM_CHUNK].into_boxed_slice());
            c[within..within + n].copy_from_slice(&data[at..at + n]);
        });
        Ok(())
    }

    async fn flush(&self) -> BackendResult<()> {
        Ok(())
    }

    async fn trim(&self, offset: u64, len: u32) -> BackendResult<()> {
        self.check(offset, len as u64)?;
        self.zero_range(offset, len as usize);
        Ok(())
    }

    async fn write_zeroes(&self, offset: u64, len: u32, _may_trim: bool) -> BackendResult<()> {
        self.check(offset, len as u64)?;
        self.zero_range(offset, len as usize);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn write_read_across_chunks() {
        let m = MemBackend::new(4 * MEM_CHUNK as u64);
        let data: Vec<u8> = (0..3 * MEM_CHUNK).map(|i| (i % 251) as u8).collect();
        let off = MEM_CHUNK as u64 / 2;
        m.write(off, Bytes::from(data.clone()), false)
            .await
            .unwrap();
        let back = m.read(off, data.len() as u32).await.unwrap();
        assert_eq!(&back[..], &data[..]);
        let head = m.read(0, 512).await.unwrap();
        assert!(head.iter().all(|&b| b == 0));
        m.write_zeroes(off, MEM_CHUNK as u32 * 2, true)
            .await
            .unwrap();
        let z = m.read(off, MEM_CHUNK as u32 * 2).await.unwrap();
        assert!(z.iter().all(|&b| b == 0));
        let tail = m.read(off + 2 * MEM_CHUNK as u64, 16).await.unwrap();
        assert_eq!(&tail[..], &data[2 * MEM_CHUNK..2 * MEM_CHUNK + 16]);
        assert!(m.read(4 * MEM_CHUNK as u64 - 8, 16).await.is_err());
    }
}
