//! Zero-copy Data-In (RFC 7143 section 11.7 carries the payload; splice(2) and pipe(7) move
//! it): a READ's payload can be moved from the iSCSI socket into a pipe by page reference,
//! and from there into another socket the same way, so a relaying daemon never copies it
//! through its own memory.
//!
//! A [`SplicePipe`] is lent to [`crate::Session::read_to_pipe`]. The reader splices in-order
//! Data-In payloads into it; when it cannot (data digests, a PDU out of order, the pipe out
//! of slots) it takes what the pipe already holds back into an ordinary buffer and goes on
//! the ordinary way, so the caller gets either every byte in the pipe or every byte in a
//! buffer, never a mix. A pipe whose command was sent again on a new connection is marked
//! spoiled: the old connection's reader could still be putting bytes into it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::BytesMut;

/// Pipe size asked for (`F_SETPIPE_SZ`): its slots (one per socket fragment, which may be a
/// single 4 KiB page) bound how much of a payload fits before the reader falls back to a
/// buffer; 4 MiB holds the tapdisk's largest default request even in page-sized fragments.
pub const PIPE_BYTES: usize = 4 << 20;
/// Smaller sizes tried when the first is refused (an unprivileged user may not go above
/// `/proc/sys/fs/pipe-max-size`, 1 MiB by default, nor over its pipe quota).
const PIPE_BYTES_FALLBACKS: [usize; 2] = [1 << 20, 256 << 10];

/// A non-blocking pipe that READ payloads are spliced into (see the module documentation).
#[derive(Debug)]
pub struct SplicePipe {
    read: OwnedFd,
    write: OwnedFd,
    spoiled: AtomicBool,
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn check_len(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// Bytes waiting to be read on `fd` (FIONREAD; for a TCP socket, SIOCINQ).
pub fn readable_bytes(fd: RawFd) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer, which points at `n`.
    check(unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) })?;
    Ok(n.max(0) as usize)
}

impl SplicePipe {
    /// A new pipe (non-blocking, close-on-exec) of [`PIPE_BYTES`] if the system allows, else
    /// of a smaller size.
    pub fn new() -> io::Result<SplicePipe> {
        let p = SplicePipe::open()?;
        for size in std::iter::once(PIPE_BYTES).chain(PIPE_BYTES_FALLBACKS) {
            if p.resize(size).is_ok() {
                break;
            }
        }
        Ok(p)
    }

    /// A new pipe of `bytes` (rounded up to whole pages by the kernel); fails if the system
    /// refuses that size.
    pub fn with_capacity(bytes: usize) -> io::Result<SplicePipe> {
        let p = SplicePipe::open()?;
        p.resize(bytes)?;
        Ok(p)
    }

    fn open() -> io::Result<SplicePipe> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe2 writes two descriptors into the two-element array.
        check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) })?;
        // SAFETY: pipe2 succeeded, so both are open descriptors that nothing else owns.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(SplicePipe {
            read,
            write,
            spoiled: AtomicBool::new(false),
        })
    }

    fn resize(&self, bytes: usize) -> io::Result<()> {
        let bytes = libc::c_int::try_from(bytes)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pipe size over 2 GiB"))?;
        // SAFETY: F_SETPIPE_SZ takes an int argument and touches no memory of ours.
        check(unsafe { libc::fcntl(self.write.as_raw_fd(), libc::F_SETPIPE_SZ, bytes) })?;
        Ok(())
    }

    /// Bytes the pipe holds.
    pub fn buffered(&self) -> io::Result<usize> {
        readable_bytes(self.read.as_raw_fd())
    }

    /// Whether a reissued command spoiled the pipe (it must not serve another read).
    pub fn is_spoiled(&self) -> bool {
        self.spoiled.load(Ordering::Acquire)
    }

    /// Whether the pipe may serve another read: empty and not spoiled.
    pub fn is_reusable(&self) -> bool {
        !self.is_spoiled() && matches!(self.buffered(), Ok(0))
    }

    /// Marks the pipe as never to be reused.
    pub(crate) fn spoil(&self) {
        self.spoiled.store(true, Ordering::Release);
    }

    /// Moves up to `len` bytes from `socket` into the pipe by page reference. `WouldBlock`
    /// when the socket has nothing to read or the pipe has no free slot.
    pub(crate) fn splice_from(&self, socket: RawFd, len: usize) -> io::Result<usize> {
        // SAFETY: no offsets are passed (both are streams); the kernel moves data between two
        // descriptors we hold open for the whole call.
        check_len(unsafe {
            libc::splice(
                socket,
                std::ptr::null_mut(),
                self.write.as_raw_fd(),
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE,
            )
        })
    }

    /// Copies `bytes` into the pipe (payload bytes that were already read into a buffer).
    /// `WouldBlock` when the pipe is full; then a prefix may have been written, whose length
    /// is returned in `Ok` by the successful calls before it.
    pub fn push(&self, bytes: &[u8]) -> io::Result<usize> {
        let mut done = 0;
        while done < bytes.len() {
            let rest = &bytes[done..];
            // SAFETY: `rest` is a live slice; write only reads from it.
            let n =
                unsafe { libc::write(self.write.as_raw_fd(), rest.as_ptr().cast(), rest.len()) };
            match check_len(n) {
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(done),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Reads exactly `len` bytes out of the pipe onto the end of `out` (they must be there).
    pub fn drain_into(&self, out: &mut BytesMut, len: usize) -> io::Result<()> {
        out.reserve(len);
        let mut left = len;
        while left > 0 {
            let spare = out.spare_capacity_mut();
            let want = left.min(spare.len());
            // SAFETY: reads at most `want` bytes into the spare capacity of `out`.
            let n = unsafe { libc::read(self.read.as_raw_fd(), spare.as_mut_ptr().cast(), want) };
            match check_len(n) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    // SAFETY: the kernel initialised `n` bytes at the old end of `out`.
                    unsafe { out.set_len(out.len() + n) };
                    left -= n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::Error::other(format!(
                        "pipe holds {} bytes fewer than expected",
                        left
                    )))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Throws away whatever the pipe holds.
    pub(crate) fn discard(&self) -> io::Result<()> {
        let mut scratch = BytesMut::new();
        loop {
            let n = self.buffered()?;
            if n == 0 {
                return Ok(());
            }
            scratch.clear();
            self.drain_into(&mut scratch, n.min(1 << 20))?;
        }
    }

    /// Moves up to `len` bytes from the pipe into `socket` by page reference; `more` tells
    /// the socket that more data follows (MSG_MORE). `WouldBlock` when the socket is full.
    pub fn splice_to(&self, socket: RawFd, len: usize, more: bool) -> io::Result<usize> {
        let mut flags = libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE;
        if more {
            flags |= libc::SPLICE_F_MORE;
        }
        // SAFETY: as in `splice_from`, with the directions swapped.
        check_len(unsafe {
            libc::splice(
                self.read.as_raw_fd(),
                std::ptr::null_mut(),
                socket,
                std::ptr::null_mut(),
                len,
                flags,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_pushed_come_back_out_in_order() {
        let p = SplicePipe::new().unwrap();
        assert!(p.is_reusable());
        assert_eq!(p.push(b"hello ").unwrap(), 6);
        assert_eq!(p.push(b"world").unwrap(), 5);
        assert_eq!(p.buffered().unwrap(), 11);
        assert!(!p.is_reusable(), "a pipe holding bytes is not reused");
        let mut out = BytesMut::from(&b">"[..]);
        p.drain_into(&mut out, 11).unwrap();
        assert_eq!(&out[..], b">hello world");
        assert!(p.is_reusable());
        let mut more = BytesMut::new();
        let e = p.drain_into(&mut more, 1).unwrap_err();
        assert!(e.to_string().contains("fewer than expected"), "{e}");
    }

    #[test]
    fn a_full_pipe_takes_a_prefix_and_discard_empties_it() {
        let p = SplicePipe::new().unwrap();
        let big = vec![7u8; 8 << 20];
        let n = p.push(&big).unwrap();
        assert!(n > 0 && n < big.len(), "took {n} bytes");
        p.discard().unwrap();
        assert_eq!(p.buffered().unwrap(), 0);
    }

    #[test]
    fn a_spoiled_pipe_is_not_reused() {
        let p = SplicePipe::new().unwrap();
        assert!(!p.is_spoiled());
        p.spoil();
        assert!(p.is_spoiled());
        assert!(!p.is_reusable());
    }

    #[test]
    fn splices_between_sockets_and_the_pipe() {
        use std::io::{Read, Write};
        use std::os::unix::net::UnixStream;
        let (mut a, b) = UnixStream::pair().unwrap();
        let (c, mut d) = UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        let p = SplicePipe::new().unwrap();
        assert_eq!(
            p.splice_from(b.as_raw_fd(), 10).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        a.write_all(b"0123456789").unwrap();
        let mut got = 0;
        while got < 10 {
            got += p.splice_from(b.as_raw_fd(), 10 - got).unwrap();
        }
        assert_eq!(readable_bytes(b.as_raw_fd()).unwrap(), 0);
        let mut sent = 0;
        while sent < 10 {
            sent += p.splice_to(c.as_raw_fd(), 10 - sent, false).unwrap();
        }
        let mut out = [0u8; 10];
        d.read_exact(&mut out).unwrap();
        assert_eq!(&out, b"0123456789");
    }
}
