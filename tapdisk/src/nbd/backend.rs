//! The seam between the NBD frontend and whatever stores the blocks (section "Request types"
//! of the NBD protocol defines the operations this trait mirrors).
//!
//! The frontend validates every request before calling a backend: offsets and lengths are
//! inside `[0, size())`, lengths are at most `max_request()`, and (when `block_size() > 1`)
//! offset and length are multiples of `block_size()`; zero-length requests never reach the
//! backend. A backend never sees the wire; it receives owned buffers and returns owned
//! buffers, so the frontend moves payloads without copying them:
//!
//! * WRITE: the payload is read from the socket into one buffer and handed down as [`Bytes`].
//! * READ: the backend returns exactly `len` bytes as [`Bytes`] (one buffer, or a buffer built
//!   from slices of cached data); the frontend writes them to the socket with a vectored
//!   write after the reply header. Or, offered a pipe ([`BlockBackend::read_to_pipe`]), the
//!   backend may leave the bytes in it and the frontend splices them to the socket, so they
//!   never pass through user memory.
//!
//! Many operations run concurrently on one backend (from several requests of one connection
//! and from several connections). Ordering between overlapping in-flight requests is not
//! defined by NBD; the backend may complete them in any order. Durability:
//! `write(.., fua: true)` completes only once that data is durable; `flush()` completes only
//! once every write that *completed* before flush was called (on any connection, when
//! [`BlockBackend::multi_conn_safe`] is true) is durable.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
pub use iscsi_initiator::{PipedRead, SplicePipe};

use super::wire::Errno;

/// Why a backend operation failed; [`BackendError::errno`] is what the client sees.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The underlying storage reported an I/O error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The storage failed for a reason that is not a local `io::Error` (e.g. a remote
    /// server's check condition); reported as EIO.
    #[error("storage failure: {0}")]
    Failed(String),
    /// No space left to store the data (thin provisioning exhausted, ENOSPC).
    #[error("no space left on the backing store")]
    NoSpace,
    /// The request is not acceptable to this backend (EINVAL).
    #[error("invalid request: {0}")]
    Invalid(&'static str),
    /// The operation is not permitted, e.g. a write to a read-only store (EPERM).
    #[error("operation not permitted: {0}")]
    NotPermitted(&'static str),
    /// A buffer could not be allocated (ENOMEM).
    #[error("out of memory")]
    OutOfMemory,
    /// The backend is shutting down and takes no new work (ESHUTDOWN).
    #[error("backend is shutting down")]
    Shutdown,
}

impl BackendError {
    /// The NBD error value sent to the client for this error.
    pub fn errno(&self) -> Errno {
        match self {
            BackendError::Io(e) => match e.raw_os_error() {
                Some(libc::ENOSPC) | Some(libc::EDQUOT) => Errno::ENOSPC,
                Some(libc::EPERM) | Some(libc::EROFS) | Some(libc::EACCES) => Errno::EPERM,
                Some(libc::ENOMEM) => Errno::ENOMEM,
                Some(libc::EINVAL) => Errno::EINVAL,
                _ => Errno::EIO,
            },
            BackendError::Failed(_) => Errno::EIO,
            BackendError::NoSpace => Errno::ENOSPC,
            BackendError::Invalid(_) => Errno::EINVAL,
            BackendError::NotPermitted(_) => Errno::EPERM,
            BackendError::OutOfMemory => Errno::ENOMEM,
            BackendError::Shutdown => Errno::ESHUTDOWN,
        }
    }
}

/// Result of a backend operation.
pub type BackendResult<T> = Result<T, BackendError>;

/// A block store served over NBD. Implementations must be cheap to call concurrently; the
/// server holds it in an `Arc` and calls it from many tasks.
pub trait BlockBackend: Send + Sync + 'static {
    /// Export size in bytes (fixed for the life of the server).
    fn size(&self) -> u64;

    /// Minimum block size (a power of two, 1..=65536). When above 1, the frontend rejects
    /// requests whose offset or length is not a multiple of it (EINVAL) and advertises it
    /// as NBD_INFO_BLOCK_SIZE minimum, so well-behaved clients never send them.
    fn block_size(&self) -> u32;

    /// Largest length of one READ/WRITE/TRIM/WRITE_ZEROES request; advertised as the
    /// maximum block size. Must be a multiple of `block_size()`.
    fn max_request(&self) -> u32;

    /// Reads `len` bytes at `offset`; the result must be exactly `len` bytes long.
    fn read(&self, offset: u64, len: u32) -> impl Future<Output = BackendResult<Bytes>> + Send;

    /// Reads `len` bytes at `offset`, into `pipe` if the backend can move them there without
    /// copying (then [`PipedRead::InPipe`] with `len` and the pipe holds exactly those bytes),
    /// else into a buffer like [`BlockBackend::read`]. The frontend offers a pipe only when it
    /// can splice the reply out of it.
    fn read_to_pipe(
        &self,
        offset: u64,
        len: u32,
        pipe: &Arc<SplicePipe>,
    ) -> impl Future<Output = BackendResult<PipedRead>> + Send {
        let _ = pipe;
        async move { self.read(offset, len).await.map(PipedRead::Bytes) }
    }

    /// Writes `data` at `offset`; with `fua`, completes only once the data is durable.
    fn write(
        &self,
        offset: u64,
        data: Bytes,
        fua: bool,
    ) -> impl Future<Output = BackendResult<()>> + Send;

    /// Makes every completed write durable.
    fn flush(&self) -> impl Future<Output = BackendResult<()>> + Send;

    /// Hints that `[offset, offset+len)` is no longer needed. Afterwards reads of the range
    /// may return anything that was ever written there or zeroes (the frontend advertises
    /// trim; a backend that cannot discard simply returns Ok).
    fn trim(&self, offset: u64, len: u32) -> impl Future<Output = BackendResult<()>> + Send;

    /// Makes `[offset, offset+len)` read as zeroes. With `may_trim` the backend may
    /// deallocate the range (client did not set NBD_CMD_FLAG_NO_HOLE).
    fn write_zeroes(
        &self,
        offset: u64,
        len: u32,
        may_trim: bool,
    ) -> impl Future<Output = BackendResult<()>> + Send;

    /// Whether a flush on one connection covers writes completed on every other
    /// connection, so the server may advertise NBD_FLAG_CAN_MULTI_CONN.
    fn multi_conn_safe(&self) -> bool {
        true
    }
}

impl<B: BlockBackend> BlockBackend for Arc<B> {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn block_size(&self) -> u32 {
        (**self).block_size()
    }
    fn max_request(&self) -> u32 {
        (**self).max_request()
    }
    fn read(&self, offset: u64, len: u32) -> impl Future<Output = BackendResult<Bytes>> + Send {
        (**self).read(offset, len)
    }
    fn read_to_pipe(
        &self,
        offset: u64,
        len: u32,
        pipe: &Arc<SplicePipe>,
    ) -> impl Future<Output = BackendResult<PipedRead>> + Send {
        (**self).read_to_pipe(offset, len, pipe)
    }
    fn write(
        &self,
        offset: u64,
        data: Bytes,
        fua: bool,
    ) -> impl Future<Output = BackendResult<()>> + Send {
        (**self).write(offset, data, fua)
    }
    fn flush(&self) -> impl Future<Output = BackendResult<()>> + Send {
        (**self).flush()
    }
    fn trim(&self, offset: u64, len: u32) -> impl Future<Output = BackendResult<()>> + Send {
        (**self).trim(offset, len)
    }
    fn write_zeroes(
        &self,
        offset: u64,
        len: u32,
        may_trim: bool,
    ) -> impl Future<Output = BackendResult<()>> + Send {
        (**self).write_zeroes(offset, len, may_trim)
    }
    fn multi_conn_safe(&self) -> bool {
        (**self).multi_conn_safe()
    }
}
