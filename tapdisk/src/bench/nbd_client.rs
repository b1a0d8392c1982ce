//! NBD protocol (doc/proto.md of the NBD project), client side: the fixed newstyle handshake
//! with `NBD_OPT_GO` (falling back to `NBD_OPT_EXPORT_NAME`) and the transmission phase with
//! simple replies only.
//!
//! The client is built for load generation: requests are written into a buffered writer and
//! replies are read back by the caller in whatever order the server sends them, so any number
//! of requests can be in flight on one connection. Payloads are never copied into owned
//! buffers: writes are sent from the caller's slice, reads land in the caller's slice.

use std::io::{self, BufReader, BufWriter, IoSlice, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use iscsi_target::tcp_congestion;

/// `NBDMAGIC`, the first eight bytes a server sends.
const NBD_MAGIC: u64 = 0x4e42_444d_4147_4943;
/// `IHAVEOPT`: newstyle negotiation magic, also prefixes every option the client sends.
const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
/// Magic of every option reply.
const OPTION_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
/// Magic of every request in the transmission phase.
const REQUEST_MAGIC: u32 = 0x2560_9513;
/// Magic of a simple reply.
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;

/// Handshake flag: the server speaks fixed newstyle.
const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
/// Handshake flag: the server may omit the 124 zero bytes after `NBD_OPT_EXPORT_NAME`.
const FLAG_NO_ZEROES: u16 = 1 << 1;

/// Option codes.
const OPT_EXPORT_NAME: u32 = 1;
const OPT_GO: u32 = 7;
/// Option reply types; bit 31 marks an error.
const REP_ACK: u32 = 1;
const REP_INFO: u32 = 3;
const REP_ERROR_BIT: u32 = 1 << 31;
const REP_ERR_UNSUP: u32 = REP_ERROR_BIT | 1;
/// `NBD_INFO_EXPORT`: export size and transmission flags.
const INFO_EXPORT: u16 = 0;

/// Command types of the transmission phase.
const CMD_READ: u16 = 0;
const CMD_WRITE: u16 = 1;
const CMD_DISC: u16 = 2;
const CMD_FLUSH: u16 = 3;

/// Largest option reply payload accepted during the handshake (the longest legitimate one,
/// NBD_REP_INFO with a name or description, is bounded by 4 KiB names plus a header).
pub const MAX_OPTION_REPLY_LEN: u32 = 64 * 1024;
/// Largest export name this client sends (the protocol's limit on names).
pub const MAX_EXPORT_NAME_LEN: usize = 4096;

/// Errors of the NBD client; each says which rule of the protocol broke.
#[derive(Debug, thiserror::Error)]
pub enum NbdClientError {
    #[error("NBD I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("server greeting magic {0:#018x} is not NBDMAGIC")]
    BadGreeting(u64),
    #[error("server does not speak newstyle negotiation (magic {0:#018x})")]
    NotNewstyle(u64),
    #[error("server does not support fixed newstyle negotiation")]
    NotFixedNewstyle,
    #[error("option reply magic {0:#018x} is wrong")]
    BadOptionReplyMagic(u64),
    #[error("option reply for option {got} while negotiating option {expected}")]
    OptionMismatch { expected: u32, got: u32 },
    #[error("option reply of {0} bytes exceeds the limit of {MAX_OPTION_REPLY_LEN}")]
    OptionReplyTooLong(u32),
    #[error("server refused the export with option reply error {0:#x}")]
    OptionRefused(u32),
    #[error("server ended NBD_OPT_GO without sending NBD_INFO_EXPORT")]
    NoExportInfo,
    #[error("NBD_INFO_EXPORT reply of {0} bytes, expected 12")]
    BadExportInfo(u32),
    #[error("export name of {0} bytes exceeds {MAX_EXPORT_NAME_LEN}")]
    ExportNameTooLong(usize),
    #[error("reply magic {0:#010x} is not the simple reply magic (structured replies are not negotiated)")]
    BadReplyMagic(u32),
    #[error("server answered request {handle} with errno {error}")]
    CommandFailed { handle: u64, error: u32 },
}

/// Where an NBD export is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NbdAddress {
    /// `host:port` over TCP.
    Tcp(String),
    /// A unix domain socket.
    Unix(PathBuf),
}

/// An NBD export: address plus export name (empty: the default export).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NbdTarget {
    pub address: NbdAddress,
    pub export: String,
}

impl NbdTarget {
    /// A TCP target, default export.
    pub fn tcp(addr: impl Into<String>) -> Self {
        NbdTarget {
            address: NbdAddress::Tcp(addr.into()),
            export: String::new(),
        }
    }

    /// A unix-socket target, default export.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        NbdTarget {
            address: NbdAddress::Unix(path.into()),
            export: String::new(),
        }
    }

    /// Parses `nbd://host[:port][/export]`, `nbd+unix:///[export]?socket=PATH`, a bare
    /// `host:port`, or a bare path to a socket (anything with a `/` and no scheme).
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(rest) = s.strip_prefix("nbd+unix://") {
            let (path_part, query) = rest
                .split_once('?')
                .ok_or_else(|| format!("{s}: nbd+unix URI needs ?socket=PATH"))?;
            let socket = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("socket="))
                .ok_or_else(|| format!("{s}: nbd+unix URI needs ?socket=PATH"))?;
            let export = path_part.trim_start_matches('/').to_string();
            return Ok(NbdTarget {
                address: NbdAddress::Unix(socket.into()),
                export,
            });
        }
        if let Some(rest) = s.strip_prefix("nbd://") {
            let (hostport, export) = match rest.split_once('/') {
                Some((h, e)) => (h, e.to_string()),
                None => (rest, String::new()),
            };
            if hostport.is_empty() {
                return Err(format!("{s}: missing host"));
            }
            let hostport = if hostport
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            {
                hostport.to_string()
            } else {
                format!("{hostport}:10809")
            };
            return Ok(NbdTarget {
                address: NbdAddress::Tcp(hostport),
                export,
            });
        }
        if s.contains("://") {
            return Err(format!("{s}: unsupported scheme (nbd:// or nbd+unix://)"));
        }
        if s.contains('/') {
            return Ok(NbdTarget::unix(s));
        }
        if s.rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            return Ok(NbdTarget::tcp(s));
        }
        Err(format!(
            "{s}: expected nbd://HOST:PORT, nbd+unix:///?socket=PATH, HOST:PORT or a socket path"
        ))
    }
}

impl std::fmt::Display for NbdTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.address {
            NbdAddress::Tcp(a) => write!(f, "nbd://{a}/{}", self.export),
            NbdAddress::Unix(p) => write!(f, "nbd+unix:///{}?socket={}", self.export, p.display()),
        }
    }
}

/// The header of a simple reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHeader {
    /// The handle (cookie) of the request this answers.
    pub handle: u64,
    /// 0 on success, else an NBD errno.
    pub error: u32,
}

/// One NBD connection in the transmission phase.
pub struct NbdConnection {
    reader: BufReader<Box<dyn Read + Send>>,
    writer: BufWriter<Box<dyn Write + Send>>,
    size: u64,
    transmission_flags: u16,
}

/// Buffer size of the writer: small requests (headers, read requests) coalesce into one
/// `write(2)`, payloads larger than this go straight from the caller's slice.
const WRITE_BUFFER: usize = 64 * 1024;
/// Buffer size of the reader: many 16-byte replies per `read(2)`.
const READ_BUFFER: usize = 64 * 1024;

/// The 28-byte header of a request (NBD protocol, "Transmission phase", request message).
fn request_header(cmd: u16, handle: u64, offset: u64, len: u32) -> [u8; 28] {
    let mut h = [0u8; 28];
    h[0..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
    h[4..6].copy_from_slice(&0u16.to_be_bytes());
    h[6..8].copy_from_slice(&cmd.to_be_bytes());
    h[8..16].copy_from_slice(&handle.to_be_bytes());
    h[16..24].copy_from_slice(&offset.to_be_bytes());
    h[24..28].copy_from_slice(&len.to_be_bytes());
    h
}

/// Connects to the first address of `addr` that answers, under the congestion control pvd's
/// own data connections default to (set before connecting, so the connection is never
/// established under another), so a host whose default is BBR does not stall the benchmark's
/// writes now and then.
fn connect_tcp(addr: &str) -> io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    use std::net::ToSocketAddrs;
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        let socket = Socket::new(Domain::for_address(a), Type::STREAM, None)?;
        tcp_congestion::apply(socket2::SockRef::from(&socket), tcp_congestion::DEFAULT);
        match socket.connect(&a.into()) {
            Ok(()) => return Ok(socket.into()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address to connect to")))
}

/// Writes `header` and then `payload`: vectored writes while any of the header is left (one
/// call when the socket takes everything), then plain writes of the payload's rest.
fn write_header_and_payload(w: &mut dyn Write, header: &[u8], payload: &[u8]) -> io::Result<()> {
    let mut sent = 0;
    while sent < header.len() {
        match w.write_vectored(&[IoSlice::new(&header[sent..]), IoSlice::new(payload)]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    w.write_all(&payload[sent - header.len()..])
}

impl NbdConnection {
    /// Connects and negotiates the export.
    pub fn connect(target: &NbdTarget) -> Result<Self, NbdClientError> {
        if target.export.len() > MAX_EXPORT_NAME_LEN {
            return Err(NbdClientError::ExportNameTooLong(target.export.len()));
        }
        let (r, w): (Box<dyn Read + Send>, Box<dyn Write + Send>) = match &target.address {
            NbdAddress::Tcp(addr) => {
                let s = connect_tcp(addr)?;
                s.set_nodelay(true)?;
                (Box::new(s.try_clone()?), Box::new(s))
            }
            NbdAddress::Unix(path) => {
                let s = UnixStream::connect(path)?;
                (Box::new(s.try_clone()?), Box::new(s))
            }
        };
        let mut conn = NbdConnection {
            reader: BufReader::with_capacity(READ_BUFFER, r),
            writer: BufWriter::with_capacity(WRITE_BUFFER, w),
            size: 0,
            transmission_flags: 0,
        };
        conn.handshake(&target.export)?;
        Ok(conn)
    }

    /// Like [`NbdConnection::connect`], retrying for up to `timeout` while nothing listens yet.
    pub fn connect_with_retry(
        target: &NbdTarget,
        timeout: Duration,
    ) -> Result<Self, NbdClientError> {
        let start = std::time::Instant::now();
        loop {
            match Self::connect(target) {
                Err(NbdClientError::Io(e)) if start.elapsed() < timeout => {
                    tracing::debug!(%target, error = %e, "NBD connect failed, retrying");
                    std::thread::sleep(Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    /// Export size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Transmission flags the server announced.
    pub fn transmission_flags(&self) -> u16 {
        self.transmission_flags
    }

    fn handshake(&mut self, export: &str) -> Result<(), NbdClientError> {
        let magic = self.read_u64()?;
        if magic != NBD_MAGIC {
            return Err(NbdClientError::BadGreeting(magic));
        }
        let magic = self.read_u64()?;
        if magic != IHAVEOPT {
            return Err(NbdClientError::NotNewstyle(magic));
        }
        let server_flags = self.read_u16()?;
        if server_flags & FLAG_FIXED_NEWSTYLE == 0 {
            return Err(NbdClientError::NotFixedNewstyle);
        }
        let no_zeroes = server_flags & FLAG_NO_ZEROES != 0;
        let client_flags = u32::from(FLAG_FIXED_NEWSTYLE)
            | if no_zeroes {
                u32::from(FLAG_NO_ZEROES)
            } else {
                0
            };
        self.writer.write_all(&client_flags.to_be_bytes())?;

        // NBD_OPT_GO: name length, name, zero information requests (NBD_INFO_EXPORT is
        // always sent).
        let name = export.as_bytes();
        self.writer.write_all(&IHAVEOPT.to_be_bytes())?;
        self.writer.write_all(&OPT_GO.to_be_bytes())?;
        self.writer
            .write_all(&(4 + name.len() as u32 + 2).to_be_bytes())?;
        self.writer.write_all(&(name.len() as u32).to_be_bytes())?;
        self.writer.write_all(name)?;
        self.writer.write_all(&0u16.to_be_bytes())?;
        self.writer.flush()?;

        let mut export_info: Option<(u64, u16)> = None;
        loop {
            let magic = self.read_u64()?;
            if magic != OPTION_REPLY_MAGIC {
                return Err(NbdClientError::BadOptionReplyMagic(magic));
            }
            let option = self.read_u32()?;
            if option != OPT_GO {
                return Err(NbdClientError::OptionMismatch {
                    expected: OPT_GO,
                    got: option,
                });
            }
            let reply = self.read_u32()?;
            let len = self.read_u32()?;
            if len > MAX_OPTION_REPLY_LEN {
                return Err(NbdClientError::OptionReplyTooLong(len));
            }
            let mut data = vec![0u8; len as usize];
            self.reader.read_exact(&mut data)?;
            match reply {
                REP_ACK => break,
                REP_INFO
                    if data.len() >= 2 && u16::from_be_bytes([data[0], data[1]]) == INFO_EXPORT =>
                {
                    if data.len() != 12 {
                        return Err(NbdClientError::BadExportInfo(len));
                    }
                    let size = u64::from_be_bytes(data[2..10].try_into().expect("8 bytes"));
                    let flags = u16::from_be_bytes([data[10], data[11]]);
                    export_info = Some((size, flags));
                }
                REP_INFO => {}
                REP_ERR_UNSUP => return self.export_name_fallback(name, no_zeroes),
                r if r & REP_ERROR_BIT != 0 => return Err(NbdClientError::OptionRefused(r)),
                _ => {}
            }
        }
        let (size, flags) = export_info.ok_or(NbdClientError::NoExportInfo)?;
        self.size = size;
        self.transmission_flags = flags;
        Ok(())
    }

    /// `NBD_OPT_EXPORT_NAME`, for servers that predate `NBD_OPT_GO`.
    fn export_name_fallback(&mut self, name: &[u8], no_zeroes: bool) -> Result<(), NbdClientError> {
        self.writer.write_all(&IHAVEOPT.to_be_bytes())?;
        self.writer.write_all(&OPT_EXPORT_NAME.to_be_bytes())?;
        self.writer.write_all(&(name.len() as u32).to_be_bytes())?;
        self.writer.write_all(name)?;
        self.writer.flush()?;
        self.size = self.read_u64()?;
        self.transmission_flags = self.read_u16()?;
        if !no_zeroes {
            let mut zeroes = [0u8; 124];
            self.reader.read_exact(&mut zeroes)?;
        }
        Ok(())
    }

    fn read_u64(&mut self) -> io::Result<u64> {
        let mut b = [0u8; 8];
        self.reader.read_exact(&mut b)?;
        Ok(u64::from_be_bytes(b))
    }

    fn read_u32(&mut self) -> io::Result<u32> {
        let mut b = [0u8; 4];
        self.reader.read_exact(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }

    fn read_u16(&mut self) -> io::Result<u16> {
        let mut b = [0u8; 2];
        self.reader.read_exact(&mut b)?;
        Ok(u16::from_be_bytes(b))
    }

    fn send_header(&mut self, cmd: u16, handle: u64, offset: u64, len: u32) -> io::Result<()> {
        self.writer
            .write_all(&request_header(cmd, handle, offset, len))
    }

    /// Queues `NBD_CMD_READ`; the reply's payload must be taken with [`Self::recv_payload`].
    pub fn send_read(&mut self, handle: u64, offset: u64, len: u32) -> io::Result<()> {
        self.send_header(CMD_READ, handle, offset, len)
    }

    /// Queues `NBD_CMD_WRITE` with `data` as payload. A payload too big for the buffer leaves
    /// with its header in one vectored write (a header written alone would go out as a packet
    /// of its own and wake the server once more).
    pub fn send_write(&mut self, handle: u64, offset: u64, data: &[u8]) -> io::Result<()> {
        let len = u32::try_from(data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "write over 4 GiB"))?;
        let header = request_header(CMD_WRITE, handle, offset, len);
        if header.len() + data.len() <= self.writer.capacity() - self.writer.buffer().len() {
            self.writer.write_all(&header)?;
            return self.writer.write_all(data);
        }
        // Requests queued before go first (nothing is written when none are).
        self.writer.flush()?;
        write_header_and_payload(self.writer.get_mut(), &header, data)
    }

    /// Queues `NBD_CMD_FLUSH`.
    pub fn send_flush(&mut self, handle: u64) -> io::Result<()> {
        self.send_header(CMD_FLUSH, handle, 0, 0)
    }

    /// Pushes every queued request to the socket.
    pub fn flush_sends(&mut self) -> io::Result<()> {
        self.writer.flush()
    }

    /// Reads the next simple reply header (queued requests are flushed first). A read's data
    /// follows a successful reply and must be consumed with [`Self::recv_payload`] before the
    /// next header.
    pub fn recv_reply(&mut self) -> Result<ReplyHeader, NbdClientError> {
        if !self.writer.buffer().is_empty() {
            self.writer.flush()?;
        }
        let mut b = [0u8; 16];
        self.reader.read_exact(&mut b)?;
        let magic = u32::from_be_bytes(b[0..4].try_into().expect("4 bytes"));
        if magic != SIMPLE_REPLY_MAGIC {
            return Err(NbdClientError::BadReplyMagic(magic));
        }
        Ok(ReplyHeader {
            error: u32::from_be_bytes(b[4..8].try_into().expect("4 bytes")),
            handle: u64::from_be_bytes(b[8..16].try_into().expect("8 bytes")),
        })
    }

    /// Reads a read reply's data into `buf` (exactly the length that was requested).
    pub fn recv_payload(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.reader.read_exact(buf)
    }

    /// Synchronous read of `buf.len()` bytes at `offset` (one request in flight).
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), NbdClientError> {
        let len = u32::try_from(buf.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "read over 4 GiB"))?;
        self.send_read(0, offset, len)?;
        let reply = self.recv_reply()?;
        if reply.error != 0 {
            return Err(NbdClientError::CommandFailed {
                handle: reply.handle,
                error: reply.error,
            });
        }
        self.recv_payload(buf)?;
        Ok(())
    }

    /// Synchronous write of `data` at `offset` (one request in flight).
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), NbdClientError> {
        self.send_write(0, offset, data)?;
        let reply = self.recv_reply()?;
        if reply.error != 0 {
            return Err(NbdClientError::CommandFailed {
                handle: reply.handle,
                error: reply.error,
            });
        }
        Ok(())
    }

    /// Synchronous flush.
    pub fn flush(&mut self) -> Result<(), NbdClientError> {
        self.send_flush(0)?;
        let reply = self.recv_reply()?;
        if reply.error != 0 {
            return Err(NbdClientError::CommandFailed {
                handle: reply.handle,
                error: reply.error,
            });
        }
        Ok(())
    }

    /// Sends `NBD_CMD_DISC` (no reply) and closes.
    pub fn disconnect(mut self) -> io::Result<()> {
        self.send_header(CMD_DISC, 0, 0, 0)?;
        self.writer.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes at most `chunk` bytes per call and records every call's size.
    struct Trickle {
        got: Vec<u8>,
        chunk: usize,
        calls: Vec<usize>,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let mut left = self.chunk;
            for b in bufs {
                let n = b.len().min(left);
                self.got.extend_from_slice(&b[..n]);
                left -= n;
            }
            self.calls.push(self.chunk - left);
            Ok(self.chunk - left)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn header_and_payload_keep_order_across_partial_writes() {
        let header: Vec<u8> = (0..28).collect();
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let want: Vec<u8> = header.iter().chain(&data).copied().collect();
        for chunk in [1, 5, 27, 28, 29, 500, 1028, 4096] {
            let mut w = Trickle {
                got: Vec::new(),
                chunk,
                calls: Vec::new(),
            };
            write_header_and_payload(&mut w, &header, &data).unwrap();
            assert_eq!(w.got, want, "chunk {chunk}");
            assert_eq!(w.calls.len(), want.len().div_ceil(chunk), "chunk {chunk}");
        }
    }

    #[test]
    fn a_write_too_big_for_the_buffer_follows_the_requests_queued_before_it() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut conn = NbdConnection {
            reader: BufReader::with_capacity(READ_BUFFER, Box::new(a.try_clone().unwrap())),
            writer: BufWriter::with_capacity(WRITE_BUFFER, Box::new(a)),
            size: 0,
            transmission_flags: 0,
        };
        let data = vec![0x5au8; WRITE_BUFFER * 2];
        let reader = std::thread::spawn(move || {
            let mut b = b;
            let mut got = vec![0u8; 28 + 28 + WRITE_BUFFER * 2];
            b.read_exact(&mut got).unwrap();
            got
        });
        conn.send_read(1, 4096, 512).unwrap();
        conn.send_write(2, 8192, &data).unwrap();
        let got = reader.join().unwrap();
        assert_eq!(&got[..28], &request_header(CMD_READ, 1, 4096, 512));
        assert_eq!(
            &got[28..56],
            &request_header(CMD_WRITE, 2, 8192, data.len() as u32)
        );
        assert!(got[56..].iter().all(|&x| x == 0x5a));
    }

    #[test]
    fn parses_target_forms() {
        assert_eq!(
            NbdTarget::parse("nbd://127.0.0.1:1234").unwrap(),
            NbdTarget::tcp("127.0.0.1:1234")
        );
        assert_eq!(
            NbdTarget::parse("nbd://host").unwrap(),
            NbdTarget::tcp("host:10809")
        );
        let t = NbdTarget::parse("nbd://h:5/disk0").unwrap();
        assert_eq!(t.export, "disk0");
        let u = NbdTarget::parse("nbd+unix:///e?socket=/tmp/s.sock").unwrap();
        assert_eq!(u.address, NbdAddress::Unix("/tmp/s.sock".into()));
        assert_eq!(u.export, "e");
        assert_eq!(
            NbdTarget::parse("/run/x.sock").unwrap(),
            NbdTarget::unix("/run/x.sock")
        );
        assert_eq!(
            NbdTarget::parse("localhost:10809").unwrap(),
            NbdTarget::tcp("localhost:10809")
        );
        assert!(NbdTarget::parse("http://x").is_err());
        assert!(NbdTarget::parse("nbd+unix:///e").is_err());
        assert!(NbdTarget::parse("garbage").is_err());
    }
}
