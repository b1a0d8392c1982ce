//! A [`BlockBackend`] over a regular file or block device: pread/pwrite on tokio's blocking
//! pool, flush = fdatasync, trim = punch hole (fallocate(2) FALLOC_FL_PUNCH_HOLE),
//! write-zeroes = punch hole or FALLOC_FL_ZERO_RANGE, falling back to writing zeroes.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::backend::{BackendError, BackendResult, BlockBackend};
use super::mem_backend::{DEFAULT_BLOCK_SIZE, DEFAULT_MAX_REQUEST};

/// Size of the zero buffer used when write-zeroes must fall back to plain writes.
const ZERO_WRITE_CHUNK: usize = 1 << 20;

/// Block store on a file (or block device).
pub struct FileBackend {
    file: Arc<File>,
    size: u64,
    block_size: u32,
    max_request: u32,
    read_only: bool,
}

impl FileBackend {
    /// Opens `path` read-write (or read-only); the export size is the file's size.
    pub fn open(path: &Path, read_only: bool) -> io::Result<FileBackend> {
        let file = OpenOptions::new().read(true).write(!read_only).open(path)?;
        FileBackend::from_file(file, read_only)
    }

    /// Wraps an open file; the export size is its current size (or the device size).
    pub fn from_file(file: File, read_only: bool) -> io::Result<FileBackend> {
        let size = {
            use std::io::{Seek, SeekFrom};
            let mut f = &file;
            f.seek(SeekFrom::End(0))?
        };
        Ok(FileBackend {
            file: Arc::new(file),
            size,
            block_size: DEFAULT_BLOCK_SIZE,
            max_request: DEFAULT_MAX_REQUEST,
            read_only,
        })
    }

    /// Overrides the advertised minimum block size and maximum request size.
    pub fn with_limits(mut self, block_size: u32, max_request: u32) -> FileBackend {
        self.block_size = block_size;
        self.max_request = max_request;
        self
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&File) -> io::Result<T> + Send + 'static,
    ) -> BackendResult<T> {
        let file = self.file.clone();
        match tokio::task::spawn_blocking(move || f(&file)).await {
            Ok(r) => r.map_err(BackendError::Io),
            Err(_) => Err(BackendError::Failed("blocking I/O task panicked".into())),
        }
    }

    fn writable(&self) -> BackendResult<()> {
        if self.read_only {
            Err(BackendError::NotPermitted("file opened read-only"))
        } else {
            Ok(())
        }
    }
}

fn fallocate(file: &File, mode: libc::c_int, offset: u64, len: u64) -> io::Result<()> {
    // SAFETY: fallocate only reads its integer arguments; the fd is open for the call.
    let r = unsafe { libc::fallocate(file.as_raw_fd(), mode, offset as i64, len as i64) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads from the page cache without blocking (preadv2 with RWF_NOWAIT): `Some(n)` bytes
/// were read, `None` if the kernel would have had to wait for the device.
fn read_nowait(file: &File, buf: &mut [u8], offset: u64) -> Option<usize> {
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: `iov` points at `buf`, which stays borrowed mutably for the whole call.
    let r = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, offset as i64, libc::RWF_NOWAIT) };
    (r > 0).then_some(r as usize)
}

/// Writes into the page cache without blocking (pwritev2 with RWF_NOWAIT); `None` if the
/// write would block (or the kernel does not support the flag for this file).
fn write_nowait(file: &File, buf: &[u8], offset: u64) -> Option<usize> {
    let iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `iov` points at `buf`, which the kernel only reads during the call.
    let r = unsafe { libc::pwritev2(file.as_raw_fd(), &iov, 1, offset as i64, libc::RWF_NOWAIT) };
    (r > 0).then_some(r as usize)
}

fn write_zero_bytes(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let zeros = vec![0u8; ZERO_WRITE_CHUNK.min(len as usize)];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], offset + done)?;
        done += n as u64;
    }
    Ok(())
}

fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) | Some(libc::EINVAL) | Some(libc::ENODEV)
    )
}

impl BlockBackend for FileBackend {
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
        let mut buf = vec![0u8; len as usize];
        // Page-cache hits are served on the calling task; the rest goes to the pool.
        let done = read_nowait(&self.file, &mut buf, offset).unwrap_or(0);
        if done == buf.len() {
            return Ok(Bytes::from(buf));
        }
        self.blocking(move |f| {
            f.read_exact_at(&mut buf[done..], offset + done as u64)?;
            Ok(Bytes::from(buf))
        })
        .await
    }

    async fn write(&self, offset: u64, data: Bytes, fua: bool) -> BackendResult<()> {
        self.writable()?;
        if !fua {
            match write_nowait(&self.file, &data, offset) {
                Some(n) if n == data.len() => return Ok(()),
                Some(n) => {
                    let rest = data.slice(n..);
                    let at = offset + n as u64;
                    return self.blocking(move |f| f.write_all_at(&rest, at)).await;
                }
                None => {}
            }
        }
        self.blocking(move |f| {
            f.write_all_at(&data, offset)?;
            if fua {
                f.sync_data()?;
            }
            Ok(())
        })
        .await
    }

    async fn flush(&self) -> BackendResult<()> {
        if self.read_only {
            return Ok(());
        }
        self.blocking(|f| f.sync_data()).await
    }

    async fn trim(&self, offset: u64, len: u32) -> BackendResult<()> {
        self.writable()?;
        self.blocking(move |f| {
            match fallocate(
                f,
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                offset,
                len as u64,
            ) {
                // Trim is advisory: a store that cannot discard keeps the data.
                Err(e) if unsupported(&e) => Ok(()),
                r => r,
            }
        })
        .await
    }

    async fn write_zeroes(&self, offset: u64, len: u32, may_trim: bool) -> BackendResult<()> {
        self.writable()?;
        self.blocking(move |f| {
            let len = len as u64;
            let first = if may_trim {
                fallocate(
                    f,
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    offset,
                    len,
                )
            } else {
                fallocate(
                    f,
                    libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
                    offset,
                    len,
                )
            };
            match first {
                Err(e) if unsupported(&e) => write_zero_bytes(f, offset, len),
                r => r,
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_round_trip_and_zeroes() {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.as_file().set_len(1 << 20).unwrap();
        let b = FileBackend::open(tmp.path(), false).unwrap();
        assert_eq!(b.size(), 1 << 20);
        let data = Bytes::from(vec![0xabu8; 8192]);
        b.write(4096, data.clone(), true).await.unwrap();
        assert_eq!(b.read(4096, 8192).await.unwrap(), data);
        b.write_zeroes(4096, 4096, false).await.unwrap();
        b.trim(8192, 4096).await.unwrap();
        let back = b.read(4096, 8192).await.unwrap();
        assert!(back.iter().all(|&x| x == 0));
        b.flush().await.unwrap();
        let ro = FileBackend::open(tmp.path(), true).unwrap();
        assert!(matches!(
            ro.write(0, data, false).await,
            Err(BackendError::NotPermitted(_))
        ));
    }
}
