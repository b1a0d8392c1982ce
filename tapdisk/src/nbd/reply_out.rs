//! Where a connection's replies go (NBD protocol section "Transmission phase": a READ reply is
//! its header followed by the data). Any byte stream takes replies from buffers; a TCP or unix
//! socket also takes a READ's data straight out of a pipe with splice(2), so data that a
//! backend spliced from an iSCSI socket into the pipe reaches the client without passing
//! through user memory.

use std::future::Future;
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, RawFd};

use bytes::BytesMut;
use iscsi_initiator::SplicePipe;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, Interest};

/// The writing half of an NBD connection.
pub(crate) trait ReplyOut: AsyncWrite + Unpin + Send + Sized {
    /// Whether READ data may be handed over in pipes (then it is spliced, not copied).
    fn splices(&self) -> bool {
        false
    }

    /// Writes every buffer of `head`, then `len` bytes taken out of `pipe`. This default
    /// copies them through a buffer.
    fn send_piped(
        &mut self,
        head: &[&[u8]],
        pipe: &SplicePipe,
        len: usize,
    ) -> impl Future<Output = io::Result<()>> + Send {
        async move {
            write_all_vectored(self, head).await?;
            copy_out_of_pipe(self, pipe, len).await
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Send> ReplyOut for tokio::io::WriteHalf<S> {}

/// The readiness calls tokio's socket types share, for [`splice_out`].
trait ReadySocket: AsRawFd + Sync {
    fn ready_to_write(&self) -> impl Future<Output = io::Result<()>> + Send;
    fn try_write_with<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R>;
}

impl ReadySocket for tokio::net::TcpStream {
    fn ready_to_write(&self) -> impl Future<Output = io::Result<()>> + Send {
        self.writable()
    }
    fn try_write_with<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        self.try_io(Interest::WRITABLE, f)
    }
}

impl ReadySocket for tokio::net::UnixStream {
    fn ready_to_write(&self) -> impl Future<Output = io::Result<()>> + Send {
        self.writable()
    }
    fn try_write_with<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        self.try_io(Interest::WRITABLE, f)
    }
}

/// The writing half of a socket splices: `splice_out`, or a copy when the socket refuses.
macro_rules! splicing_reply_out {
    ($half:ty) => {
        impl ReplyOut for $half {
            fn splices(&self) -> bool {
                true
            }
            async fn send_piped(
                &mut self,
                head: &[&[u8]],
                pipe: &SplicePipe,
                len: usize,
            ) -> io::Result<()> {
                if splice_out(self.as_ref(), head, pipe, len).await? {
                    return Ok(());
                }
                copy_out_of_pipe(self, pipe, len).await
            }
        }
    };
}

splicing_reply_out!(tokio::net::tcp::OwnedWriteHalf);
splicing_reply_out!(tokio::net::unix::OwnedWriteHalf);

/// Sends `head` (held back with MSG_MORE, so it leaves with the data) and then splices `len`
/// bytes from `pipe`. Returns false, having sent only `head`, when the socket refuses splice
/// (EINVAL): the caller then copies the data.
async fn splice_out<S: ReadySocket>(
    sock: &S,
    head: &[&[u8]],
    pipe: &SplicePipe,
    len: usize,
) -> io::Result<bool> {
    let fd = sock.as_raw_fd();
    let (mut idx, mut off) = (0usize, 0usize);
    while idx < head.len() {
        sock.ready_to_write().await?;
        let n = match sock.try_write_with(|| send_more(fd, &head[idx..], off)) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        advance(head, &mut idx, &mut off, n);
    }
    let mut left = len;
    while left > 0 {
        sock.ready_to_write().await?;
        match sock.try_write_with(|| pipe.splice_to(fd, left, false)) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => left -= n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && left == len => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Most buffers one [`send_more`] hands to the kernel (on the stack, no allocation per reply;
/// the caller's loop sends the rest).
const SEND_MORE_IOVECS: usize = 64;

/// One sendmsg(MSG_MORE) of `bufs` (the first one from `off`).
fn send_more(fd: RawFd, bufs: &[&[u8]], off: usize) -> io::Result<usize> {
    let empty = libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    };
    let mut iov = [empty; SEND_MORE_IOVECS];
    let n = bufs.len().min(SEND_MORE_IOVECS);
    for (i, (slot, b)) in iov.iter_mut().zip(bufs).enumerate() {
        let b = if i == 0 { &b[off..] } else { b };
        slot.iov_base = b.as_ptr() as *mut libc::c_void;
        slot.iov_len = b.len();
    }
    // SAFETY: a zeroed msghdr is valid (no name, no control data); the first `n` iovecs
    // point into live slices that the kernel only reads during the call.
    let sent = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = n as _;
        libc::sendmsg(fd, &msg, libc::MSG_MORE | libc::MSG_NOSIGNAL)
    };
    if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(sent as usize)
    }
}

/// Moves the position (`idx`, `off`) in `bufs` forward by `n` bytes.
fn advance(bufs: &[&[u8]], idx: &mut usize, off: &mut usize, mut n: usize) {
    while n > 0 && *idx < bufs.len() {
        let left = bufs[*idx].len() - *off;
        if n >= left {
            n -= left;
            *idx += 1;
            *off = 0;
        } else {
            *off += n;
            n = 0;
        }
    }
    // Skip empty buffers so the caller's loop ends.
    while *idx < bufs.len() && bufs[*idx].len() == *off {
        *idx += 1;
        *off = 0;
    }
}

/// Reads `len` bytes out of `pipe` and writes them to `w`.
async fn copy_out_of_pipe<W: AsyncWrite + Unpin>(
    w: &mut W,
    pipe: &SplicePipe,
    len: usize,
) -> io::Result<()> {
    let mut buf = BytesMut::with_capacity(len);
    pipe.drain_into(&mut buf, len)?;
    w.write_all(&buf).await
}

/// Writes every (non-empty) buffer of `bufs`, in order, with as few syscalls as the socket
/// allows.
pub(crate) async fn write_all_vectored<W: AsyncWrite + Unpin>(
    w: &mut W,
    bufs: &[&[u8]],
) -> io::Result<()> {
    let (mut idx, mut off) = (0usize, 0usize);
    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(bufs.len());
    while idx < bufs.len() {
        slices.clear();
        slices.push(IoSlice::new(&bufs[idx][off..]));
        slices.extend(bufs[idx + 1..].iter().map(|b| IoSlice::new(b)));
        let n = w.write_vectored(&slices).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        advance(bufs, &mut idx, &mut off, n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_crosses_buffers_and_skips_empty_ones() {
        let bufs: [&[u8]; 4] = [b"abc", b"", b"de", b"f"];
        let (mut idx, mut off) = (0, 0);
        advance(&bufs, &mut idx, &mut off, 2);
        assert_eq!((idx, off), (0, 2));
        advance(&bufs, &mut idx, &mut off, 1);
        assert_eq!((idx, off), (2, 0), "the empty buffer is skipped");
        advance(&bufs, &mut idx, &mut off, 3);
        assert_eq!((idx, off), (4, 0));
    }

    /// Sends three replies (a head, then 200,000 bytes out of a pipe) through `w` and returns
    /// what they should look like on the wire.
    async fn send_three<W: ReplyOut>(w: &mut W) -> Vec<u8> {
        assert!(w.splices());
        let pipe = SplicePipe::new().unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut expected = Vec::new();
        for round in 0..3u8 {
            assert_eq!(pipe.push(&data).unwrap(), data.len());
            let head = [round; 5];
            w.send_piped(&[&head[..], b"|"], &pipe, data.len())
                .await
                .unwrap();
            expected.extend_from_slice(&head);
            expected.push(b'|');
            expected.extend_from_slice(&data);
        }
        assert_eq!(pipe.buffered().unwrap(), 0);
        w.shutdown().await.unwrap();
        expected
    }

    #[tokio::test]
    async fn a_tcp_socket_gets_head_and_pipe_data_in_order() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut all = Vec::new();
            s.read_to_end(&mut all).await.unwrap();
            all
        });
        let (server, _) = listener.accept().await.unwrap();
        let (_r, mut w) = server.into_split();
        let expected = send_three(&mut w).await;
        drop(w);
        assert!(client.await.unwrap() == expected, "bytes differ");
    }

    #[tokio::test]
    async fn more_head_buffers_than_one_sendmsg_takes_go_out_in_order() {
        use tokio::io::AsyncReadExt;
        let (a, mut b) = tokio::net::UnixStream::pair().unwrap();
        let (_r, mut w) = a.into_split();
        let heads: Vec<Vec<u8>> = (0..3 * SEND_MORE_IOVECS as u32)
            .map(|i| i.to_be_bytes().to_vec())
            .collect();
        let head: Vec<&[u8]> = heads.iter().map(Vec::as_slice).collect();
        let pipe = SplicePipe::new().unwrap();
        pipe.push(b"tail").unwrap();
        w.send_piped(&head, &pipe, 4).await.unwrap();
        let mut expected = heads.concat();
        expected.extend_from_slice(b"tail");
        let mut got = vec![0u8; expected.len()];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(got, expected);
    }

    #[tokio::test]
    async fn a_unix_socket_gets_head_and_pipe_data_in_order() {
        use tokio::io::AsyncReadExt;
        let (a, mut b) = tokio::net::UnixStream::pair().unwrap();
        let client = tokio::spawn(async move {
            let mut all = Vec::new();
            b.read_to_end(&mut all).await.unwrap();
            all
        });
        let (_r, mut w) = a.into_split();
        let expected = send_three(&mut w).await;
        drop(w);
        drop(_r);
        assert!(client.await.unwrap() == expected, "bytes differ");
    }

    #[tokio::test]
    async fn any_stream_gets_the_copied_fallback() {
        use tokio::io::AsyncReadExt;
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let (_r, mut w) = tokio::io::split(a);
        assert!(!w.splices());
        let pipe = SplicePipe::new().unwrap();
        pipe.push(b"payload").unwrap();
        w.send_piped(&[b"hdr:"], &pipe, 7).await.unwrap();
        let mut got = [0u8; 11];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hdr:payload");
    }
}
