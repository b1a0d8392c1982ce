//! NBD frontend over an in-memory pipe: a small hand-written client drives every
//! negotiation path, every command and every error the server reports.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use pvd::nbd::wire::{
    ChunkType, CommandType, Errno, InfoType, OptionCode, ReplyCode, TransmissionFlags, IHAVEOPT,
    NBD_MAGIC, OPTION_REPLY_MAGIC, SIMPLE_REPLY_MAGIC, STRUCTURED_REPLY_MAGIC,
};
use pvd::nbd::{BlockBackend, MemBackend, NbdConfig, NbdServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const SIZE: u64 = 4 << 20;
const MAX_REQ: u32 = 1 << 20;
const T: Duration = Duration::from_secs(20);

struct Client {
    s: DuplexStream,
}

struct Setup {
    server: NbdServer<MemBackend>,
    stop: watch::Sender<bool>,
}

impl Setup {
    fn new(config: NbdConfig) -> Setup {
        let backend = Arc::new(MemBackend::with_limits(SIZE, 512, MAX_REQ));
        let (stop, _) = watch::channel(false);
        Setup {
            server: NbdServer::new(backend, config),
            stop,
        }
    }

    fn connect(&self) -> (Client, JoinHandle<Result<(), pvd::nbd::ConnectionError>>) {
        let (a, b) = tokio::io::duplex(4 << 20);
        let server = self.server.clone();
        let stop = self.stop.subscribe();
        let h = tokio::spawn(async move { server.serve_stream(b, stop).await });
        (Client { s: a }, h)
    }
}

fn named(name: &str) -> NbdConfig {
    NbdConfig {
        export_name: name.into(),
        description: Some("test disk".into()),
        ..NbdConfig::default()
    }
}

struct OptReply {
    option: u32,
    code: ReplyCode,
    data: Vec<u8>,
}

impl Client {
    async fn greet(&mut self, client_flags: u32) {
        let mut g = [0u8; 18];
        self.s.read_exact(&mut g).await.unwrap();
        let mut b = &g[..];
        assert_eq!(b.get_u64(), NBD_MAGIC);
        assert_eq!(b.get_u64(), IHAVEOPT);
        assert_eq!(b.get_u16(), 3, "FIXED_NEWSTYLE | NO_ZEROES");
        self.s.write_u32(client_flags).await.unwrap();
    }

    async fn option(&mut self, code: OptionCode, data: &[u8]) {
        let mut out = Vec::new();
        out.put_u64(IHAVEOPT);
        out.put_u32(code.0);
        out.put_u32(data.len() as u32);
        out.put_slice(data);
        self.s.write_all(&out).await.unwrap();
    }

    async fn reply(&mut self) -> OptReply {
        let mut h = [0u8; 20];
        tokio::time::timeout(T, self.s.read_exact(&mut h))
            .await
            .unwrap()
            .unwrap();
        let mut b = &h[..];
        assert_eq!(b.get_u64(), OPTION_REPLY_MAGIC);
        let option = b.get_u32();
        let code = ReplyCode(b.get_u32());
        let mut data = vec![0u8; b.get_u32() as usize];
        self.s.read_exact(&mut data).await.unwrap();
        OptReply { option, code, data }
    }

    /// Sends INFO or GO and collects the INFO replies until ACK (or an error reply).
    async fn info(
        &mut self,
        code: OptionCode,
        name: &str,
        requests: &[InfoType],
    ) -> Result<Vec<(InfoType, Vec<u8>)>, ReplyCode> {
        let mut d = Vec::new();
        d.put_u32(name.len() as u32);
        d.put_slice(name.as_bytes());
        d.put_u16(requests.len() as u16);
        for r in requests {
            d.put_u16(r.0);
        }
        self.option(code, &d).await;
        let mut infos = Vec::new();
        loop {
            let r = self.reply().await;
            assert_eq!(r.option, code.0);
            match r.code {
                ReplyCode::INFO => {
                    let mut b = &r.data[..];
                    let t = InfoType(b.get_u16());
                    infos.push((t, b.to_vec()));
                }
                ReplyCode::ACK => return Ok(infos),
                e => return Err(e),
            }
        }
    }

    async fn go(&mut self) -> (u64, u16) {
        let infos = self
            .info(OptionCode::GO, "", &[InfoType::BLOCK_SIZE])
            .await
            .unwrap();
        let (_, e) = infos.iter().find(|(t, _)| *t == InfoType::EXPORT).unwrap();
        let mut b = &e[..];
        (b.get_u64(), b.get_u16())
    }

    async fn request(
        &mut self,
        cmd: CommandType,
        flags: u16,
        cookie: u64,
        off: u64,
        len: u32,
        payload: &[u8],
    ) {
        let mut out = Vec::with_capacity(28 + payload.len());
        out.put_u32(0x2560_9513);
        out.put_u16(flags);
        out.put_u16(cmd.0);
        out.put_u64(cookie);
        out.put_u64(off);
        out.put_u32(len);
        out.put_slice(payload);
        self.s.write_all(&out).await.unwrap();
    }

    /// Reads a simple reply; `data_len` bytes follow a successful READ.
    async fn simple(&mut self, data_len: usize) -> (u64, Errno, Vec<u8>) {
        let mut h = [0u8; 16];
        tokio::time::timeout(T, self.s.read_exact(&mut h))
            .await
            .unwrap()
            .unwrap();
        let mut b = &h[..];
        assert_eq!(b.get_u32(), SIMPLE_REPLY_MAGIC);
        let err = Errno(b.get_u32());
        let cookie = b.get_u64();
        let mut data = vec![];
        if err == Errno::OK {
            data = vec![0u8; data_len];
            self.s.read_exact(&mut data).await.unwrap();
        }
        (cookie, err, data)
    }

    async fn call(
        &mut self,
        cmd: CommandType,
        flags: u16,
        off: u64,
        len: u32,
        payload: &[u8],
    ) -> (Errno, Vec<u8>) {
        self.request(cmd, flags, 99, off, len, payload).await;
        let dl = if cmd == CommandType::READ {
            len as usize
        } else {
            0
        };
        let (c, e, d) = self.simple(dl).await;
        assert_eq!(c, 99);
        (e, d)
    }

    async fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(T, self.s.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

#[tokio::test]
async fn go_reports_export_and_block_sizes() {
    let setup = Setup::new(named("disk0"));
    let (mut c, h) = setup.connect();
    c.greet(3).await;
    let infos = c
        .info(
            OptionCode::GO,
            "disk0",
            &[
                InfoType::NAME,
                InfoType::DESCRIPTION,
                InfoType::BLOCK_SIZE,
                InfoType(77),
            ],
        )
        .await
        .unwrap();
    let get = |t: InfoType| infos.iter().find(|(x, _)| *x == t).unwrap().1.clone();
    let mut e = &get(InfoType::EXPORT)[..];
    assert_eq!(e.get_u64(), SIZE);
    let flags = TransmissionFlags(e.get_u16());
    for f in [
        TransmissionFlags::HAS_FLAGS,
        TransmissionFlags::SEND_FLUSH,
        TransmissionFlags::SEND_FUA,
        TransmissionFlags::SEND_TRIM,
        TransmissionFlags::SEND_WRITE_ZEROES,
        TransmissionFlags::CAN_MULTI_CONN,
    ] {
        assert!(flags.contains(f), "{f:?} missing from {flags:?}");
    }
    assert!(!flags.contains(TransmissionFlags::READ_ONLY));
    assert!(!flags.contains(TransmissionFlags::SEND_DF));
    assert_eq!(get(InfoType::NAME), b"disk0");
    assert_eq!(get(InfoType::DESCRIPTION), b"test disk");
    let mut bs = &get(InfoType::BLOCK_SIZE)[..];
    assert_eq!(
        (bs.get_u32(), bs.get_u32(), bs.get_u32()),
        (512, 4096, MAX_REQ)
    );
    // Transmission works; DISC ends the connection cleanly.
    let data = vec![0x5au8; 8192];
    assert_eq!(
        c.call(CommandType::WRITE, 1, 4096, 8192, &data).await.0,
        Errno::OK
    );
    let (err, back) = c.call(CommandType::READ, 0, 4096, 8192, &[]).await;
    assert_eq!((err, back), (Errno::OK, data));
    c.request(CommandType::DISC, 0, 1, 0, 0, &[]).await;
    assert!(c.closed().await);
    h.await.unwrap().unwrap();
}

#[tokio::test]
async fn option_paths() {
    let setup = Setup::new(named("disk0"));
    let (mut c, _h) = setup.connect();
    c.greet(1).await;
    // LIST: one SERVER reply with the name (and description), then ACK.
    c.option(OptionCode::LIST, &[]).await;
    let r = c.reply().await;
    assert_eq!(r.code, ReplyCode::SERVER);
    let mut b = &r.data[..];
    let n = b.get_u32() as usize;
    assert_eq!(&b[..n], b"disk0");
    assert_eq!(&b[n..], b"test disk");
    assert_eq!(c.reply().await.code, ReplyCode::ACK);
    // LIST with data is invalid.
    c.option(OptionCode::LIST, b"x").await;
    assert_eq!(c.reply().await.code, ReplyCode::ERR_INVALID);
    // Unknown options and STARTTLS are unsupported.
    c.option(OptionCode(0x4242), b"abc").await;
    let r = c.reply().await;
    assert_eq!((r.option, r.code), (0x4242, ReplyCode::ERR_UNSUP));
    c.option(OptionCode::STARTTLS, &[]).await;
    assert_eq!(c.reply().await.code, ReplyCode::ERR_UNSUP);
    // An oversized option is discarded and refused; the stream stays in sync.
    c.option(OptionCode::INFO, &vec![0u8; 64 * 1024]).await;
    assert_eq!(c.reply().await.code, ReplyCode::ERR_TOO_BIG);
    // INFO with a malformed payload, then with an unknown export.
    c.option(OptionCode::INFO, &[0, 0, 0, 200, 1]).await;
    assert_eq!(c.reply().await.code, ReplyCode::ERR_INVALID);
    assert_eq!(
        c.info(OptionCode::INFO, "nope", &[]).await.unwrap_err(),
        ReplyCode::ERR_UNKNOWN
    );
    assert_eq!(
        c.info(OptionCode::GO, "nope", &[]).await.unwrap_err(),
        ReplyCode::ERR_UNKNOWN
    );
    // INFO by name succeeds and stays in negotiation.
    let infos = c.info(OptionCode::INFO, "disk0", &[]).await.unwrap();
    assert!(infos.iter().any(|(t, _)| *t == InfoType::EXPORT));
    // Meta contexts: well-formed queries get an empty list; SET needs structured replies.
    let mut q = Vec::new();
    q.put_u32(0);
    q.put_u32(1);
    q.put_u32(15);
    q.put_slice(b"base:allocation");
    c.option(OptionCode::LIST_META_CONTEXT, &q).await;
    assert_eq!(c.reply().await.code, ReplyCode::ACK);
    c.option(OptionCode::SET_META_CONTEXT, &q).await;
    assert_eq!(c.reply().await.code, ReplyCode::ERR_INVALID);
    c.option(OptionCode::STRUCTURED_REPLY, b"x").await;
    assert_eq!(c.reply().await.code, ReplyCode::ERR_INVALID);
    c.option(OptionCode::STRUCTURED_REPLY, &[]).await;
    assert_eq!(c.reply().await.code, ReplyCode::ACK);
    c.option(OptionCode::SET_META_CONTEXT, &q).await;
    assert_eq!(c.reply().await.code, ReplyCode::ACK);
    c.option(OptionCode::SET_META_CONTEXT, &q[..q.len() - 1])
        .await;
    assert_eq!(c.reply().await.code, ReplyCode::ERR_INVALID);
    // With structured replies agreed, GO advertises SEND_DF.
    let (size, flags) = c.go().await;
    assert_eq!(size, SIZE);
    assert!(TransmissionFlags(flags).contains(TransmissionFlags::SEND_DF));
}

#[tokio::test]
async fn abort_and_export_name_paths() {
    let setup = Setup::new(named("disk0"));
    // ABORT: ACK, then the server closes.
    let (mut c, h) = setup.connect();
    c.greet(3).await;
    c.option(OptionCode::ABORT, &[]).await;
    assert_eq!(c.reply().await.code, ReplyCode::ACK);
    assert!(c.closed().await);
    h.await.unwrap().unwrap();

    // EXPORT_NAME with NO_ZEROES: size + flags only.
    let (mut c, _h) = setup.connect();
    c.greet(3).await;
    c.option(OptionCode::EXPORT_NAME, b"disk0").await;
    let mut r = [0u8; 10];
    c.s.read_exact(&mut r).await.unwrap();
    assert_eq!((&r[..8]).get_u64(), SIZE);
    assert_eq!(c.call(CommandType::FLUSH, 0, 0, 0, &[]).await.0, Errno::OK);

    // EXPORT_NAME without NO_ZEROES: 124 zero bytes follow.
    let (mut c, _h) = setup.connect();
    c.greet(1).await;
    c.option(OptionCode::EXPORT_NAME, b"").await;
    let mut r = [0xffu8; 134];
    c.s.read_exact(&mut r).await.unwrap();
    assert!(r[10..].iter().all(|&b| b == 0));
    assert_eq!(c.call(CommandType::READ, 0, 0, 512, &[]).await.0, Errno::OK);

    // EXPORT_NAME for an unknown export: the server can only close.
    let (mut c, h) = setup.connect();
    c.greet(3).await;
    c.option(OptionCode::EXPORT_NAME, b"other").await;
    assert!(c.closed().await);
    assert!(h.await.unwrap().is_err());
}

#[tokio::test]
async fn bad_greeting_input_closes() {
    let setup = Setup::new(NbdConfig::default());
    // Unknown client flags.
    let (mut c, h) = setup.connect();
    c.greet(1 << 7).await;
    assert!(c.closed().await);
    assert!(h.await.unwrap().is_err());
    // Wrong option magic.
    let (mut c, h) = setup.connect();
    c.greet(3).await;
    c.s.write_all(&[0x11; 16]).await.unwrap();
    assert!(c.closed().await);
    assert!(h.await.unwrap().is_err());
    // An option longer than anything the server discards.
    let (mut c, h) = setup.connect();
    c.greet(3).await;
    let mut o = Vec::new();
    o.put_u64(IHAVEOPT);
    o.put_u32(OptionCode::GO.0);
    o.put_u32(u32::MAX);
    c.s.write_all(&o).await.unwrap();
    assert!(c.closed().await);
    assert!(h.await.unwrap().is_err());
    assert_eq!(setup.server.counters().snapshot().handshakes_failed, 3);
}

#[tokio::test]
async fn command_errors() {
    let setup = Setup::new(NbdConfig::default());
    let (mut c, _h) = setup.connect();
    c.greet(3).await;
    c.go().await;
    let e = |v: (Errno, Vec<u8>)| v.0;
    // Past the end: EINVAL for reads and trims, ENOSPC for writes.
    assert_eq!(
        e(c.call(CommandType::READ, 0, SIZE - 512, 1024, &[]).await),
        Errno::EINVAL
    );
    assert_eq!(
        e(c.call(CommandType::TRIM, 0, SIZE, 512, &[]).await),
        Errno::EINVAL
    );
    assert_eq!(
        e(
            c.call(CommandType::WRITE, 0, SIZE - 512, 1024, &[1u8; 1024])
                .await
        ),
        Errno::ENOSPC
    );
    assert_eq!(
        e(c.call(CommandType::WRITE_ZEROES, 0, SIZE, 512, &[]).await),
        Errno::ENOSPC
    );
    assert_eq!(
        e(c.call(CommandType::READ, 0, u64::MAX - 100, 512, &[]).await),
        Errno::EINVAL
    );
    // Misaligned.
    assert_eq!(
        e(c.call(CommandType::READ, 0, 100, 512, &[]).await),
        Errno::EINVAL
    );
    assert_eq!(
        e(c.call(CommandType::WRITE, 0, 0, 100, &[2u8; 100]).await),
        Errno::EINVAL
    );
    // Unknown command, unsupported BLOCK_STATUS, unknown flags, DF without structured.
    assert_eq!(
        e(c.call(CommandType(0x77), 0, 0, 512, &[]).await),
        Errno::EINVAL
    );
    assert_eq!(
        e(c.call(CommandType::BLOCK_STATUS, 0, 0, 512, &[]).await),
        Errno::EINVAL
    );
    assert_eq!(
        e(c.call(CommandType::READ, 1 << 9, 0, 512, &[]).await),
        Errno::EINVAL
    );
    assert_eq!(
        e(c.call(CommandType::READ, 1 << 2, 0, 512, &[]).await),
        Errno::EINVAL
    );
    // Too long: a read is refused, a write's payload is read and discarded.
    assert_eq!(
        e(c.call(CommandType::READ, 0, 0, MAX_REQ + 512, &[]).await),
        Errno::EINVAL
    );
    let big = vec![3u8; (MAX_REQ + 512) as usize];
    assert_eq!(
        e(c.call(CommandType::WRITE, 0, 0, MAX_REQ + 512, &big).await),
        Errno::EINVAL
    );
    // The stream is still in sync and nothing was written.
    let (err, d) = c.call(CommandType::READ, 0, 0, 4096, &[]).await;
    assert_eq!(err, Errno::OK);
    assert!(d.iter().all(|&b| b == 0));
    // CACHE is a no-op; zero-length reads succeed.
    assert_eq!(
        e(c.call(CommandType::CACHE, 0, 0, 8192, &[]).await),
        Errno::OK
    );
    assert_eq!(e(c.call(CommandType::READ, 0, 0, 0, &[]).await), Errno::OK);
    // TRIM and WRITE_ZEROES larger than the maximum request are split for the backend.
    let pattern = vec![9u8; MAX_REQ as usize];
    for i in 0..3u64 {
        assert_eq!(
            e(
                c.call(CommandType::WRITE, 0, i * MAX_REQ as u64, MAX_REQ, &pattern)
                    .await
            ),
            Errno::OK
        );
    }
    assert_eq!(
        e(
            c.call(CommandType::WRITE_ZEROES, 3, 512, 3 * MAX_REQ - 1024, &[])
                .await
        ),
        Errno::OK
    );
    let (_, d) = c.call(CommandType::READ, 0, 0, MAX_REQ, &[]).await;
    assert_eq!(&d[..512], &pattern[..512]);
    assert!(d[512..].iter().all(|&b| b == 0));
    assert_eq!(
        e(c.call(CommandType::TRIM, 1, 0, 3 * MAX_REQ, &[]).await),
        Errno::OK
    );
    // A write too large even to discard closes the connection.
    c.request(CommandType::WRITE, 0, 5, 0, u32::MAX, &[]).await;
    assert!(c.closed().await);
}

#[tokio::test]
async fn read_only_export_refuses_writes() {
    let setup = Setup::new(NbdConfig {
        read_only: true,
        ..NbdConfig::default()
    });
    let (mut c, _h) = setup.connect();
    c.greet(3).await;
    let (_, flags) = c.go().await;
    let flags = TransmissionFlags(flags);
    assert!(flags.contains(TransmissionFlags::READ_ONLY));
    assert!(!flags.contains(TransmissionFlags::SEND_TRIM));
    assert_eq!(
        c.call(CommandType::WRITE, 0, 0, 512, &[1u8; 512]).await.0,
        Errno::EPERM
    );
    assert_eq!(
        c.call(CommandType::WRITE_ZEROES, 0, 0, 512, &[]).await.0,
        Errno::EPERM
    );
    assert_eq!(
        c.call(CommandType::TRIM, 0, 0, 512, &[]).await.0,
        Errno::EPERM
    );
    assert_eq!(c.call(CommandType::READ, 0, 0, 512, &[]).await.0, Errno::OK);
}

async fn chunk(c: &mut Client) -> (u16, ChunkType, u64, Vec<u8>) {
    let mut h = [0u8; 20];
    tokio::time::timeout(T, c.s.read_exact(&mut h))
        .await
        .unwrap()
        .unwrap();
    let mut b = &h[..];
    assert_eq!(b.get_u32(), STRUCTURED_REPLY_MAGIC);
    let flags = b.get_u16();
    let kind = ChunkType(b.get_u16());
    let cookie = b.get_u64();
    let mut data = vec![0u8; b.get_u32() as usize];
    c.s.read_exact(&mut data).await.unwrap();
    (flags, kind, cookie, data)
}

#[tokio::test]
async fn structured_replies() {
    let setup = Setup::new(NbdConfig::default());
    let (mut c, _h) = setup.connect();
    c.greet(3).await;
    c.option(OptionCode::STRUCTURED_REPLY, &[]).await;
    assert_eq!(c.reply().await.code, ReplyCode::ACK);
    c.go().await;
    c.request(CommandType::WRITE, 0, 1, 8192, 1024, &[7u8; 1024])
        .await;
    // Non-read commands keep simple replies.
    assert_eq!(c.simple(0).await, (1, Errno::OK, vec![]));
    // READ (with DF): one OFFSET_DATA chunk flagged DONE.
    c.request(CommandType::READ, 1 << 2, 2, 8192, 1024, &[])
        .await;
    let (flags, kind, cookie, data) = chunk(&mut c).await;
    assert_eq!((flags, kind, cookie), (1, ChunkType::OFFSET_DATA, 2));
    assert_eq!((&data[..8]).get_u64(), 8192);
    assert_eq!(&data[8..], &[7u8; 1024][..]);
    // A failed read: one ERROR chunk flagged DONE.
    c.request(CommandType::READ, 0, 3, SIZE, 512, &[]).await;
    let (flags, kind, cookie, data) = chunk(&mut c).await;
    assert_eq!((flags, kind, cookie), (1, ChunkType::ERROR, 3));
    let mut b = &data[..];
    assert_eq!((b.get_u32(), b.get_u16()), (Errno::EINVAL.0, 0));
    // A zero-length read: NONE flagged DONE.
    c.request(CommandType::READ, 0, 4, 0, 0, &[]).await;
    let (flags, kind, cookie, data) = chunk(&mut c).await;
    assert_eq!(
        (flags, kind, cookie, data.len()),
        (1, ChunkType::NONE, 4, 0)
    );
}

#[tokio::test]
async fn pipelined_requests_all_answered() {
    let setup = Setup::new(NbdConfig {
        max_in_flight: 8,
        ..NbdConfig::default()
    });
    let (mut c, _h) = setup.connect();
    c.greet(3).await;
    c.go().await;
    const N: u64 = 64;
    let mut burst = Vec::new();
    for i in 0..N {
        let payload = vec![i as u8; 4096];
        let mut out = Vec::new();
        out.put_u32(0x2560_9513);
        out.put_u16(0);
        out.put_u16(CommandType::WRITE.0);
        out.put_u64(1000 + i);
        out.put_u64(i * 4096);
        out.put_u32(4096);
        out.put_slice(&payload);
        burst.extend_from_slice(&out);
    }
    c.s.write_all(&burst).await.unwrap();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..N {
        let (cookie, err, _) = c.simple(0).await;
        assert_eq!(err, Errno::OK);
        assert!(seen.insert(cookie));
    }
    assert_eq!(seen.len() as u64, N);
    for i in 0..N {
        c.request(CommandType::READ, 0, 2000 + i, i * 4096, 4096, &[])
            .await;
    }
    for _ in 0..N {
        let (cookie, err, data) = c.simple(4096).await;
        assert_eq!(err, Errno::OK);
        let i = cookie - 2000;
        assert!(data.iter().all(|&b| b == i as u8), "data of block {i}");
    }
    let snap = setup.server.counters().snapshot();
    assert_eq!(snap.requests, 2 * N);
    assert_eq!(snap.bytes_written, N * 4096);
    assert_eq!(snap.bytes_read, N * 4096);
}

#[tokio::test]
async fn vanishing_client_does_not_disturb_others() {
    let setup = Setup::new(NbdConfig::default());
    let (mut good, _hg) = setup.connect();
    good.greet(3).await;
    good.go().await;
    let (mut bad, hb) = setup.connect();
    bad.greet(3).await;
    bad.go().await;
    // Half a write payload, then gone.
    bad.request(CommandType::WRITE, 0, 1, 0, 65536, &[1u8; 1000])
        .await;
    drop(bad);
    hb.await.unwrap().unwrap();
    let data = vec![0x33u8; 65536];
    assert_eq!(
        good.call(CommandType::WRITE, 0, 0, 65536, &data).await.0,
        Errno::OK
    );
    assert_eq!(good.call(CommandType::READ, 0, 0, 65536, &[]).await.1, data);
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let setup = Setup::new(NbdConfig::default());
    let (mut c, h) = setup.connect();
    c.greet(3).await;
    c.go().await;
    for i in 0..16u64 {
        c.request(CommandType::WRITE, 0, i, i * 512, 512, &[i as u8; 512])
            .await;
    }
    // Give the reader time to take the requests in, then shut down.
    tokio::time::sleep(Duration::from_millis(100)).await;
    setup.stop.send(true).unwrap();
    for _ in 0..16 {
        assert_eq!(c.simple(0).await.1, Errno::OK);
    }
    assert!(c.closed().await);
    h.await.unwrap().unwrap();
    let back = setup.server.backend().read(15 * 512, 512).await.unwrap();
    assert_eq!(back, Bytes::from(vec![15u8; 512]));
}

#[tokio::test]
async fn tcp_and_unix_listeners_serve_and_shut_down() {
    let setup = Setup::new(NbdConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("nbd.sock");
    let ul = pvd::nbd::bind_unix(&sock).unwrap();
    let (tx, rx) = watch::channel(false);
    let s1 = setup.server.clone();
    let s2 = setup.server.clone();
    let rx2 = rx.clone();
    let t = tokio::spawn(async move { s1.serve_tcp(listener, pvd::nbd::shutdown_on(rx)).await });
    let u = tokio::spawn(async move { s2.serve_unix(ul, pvd::nbd::shutdown_on(rx2)).await });
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut unix = tokio::net::UnixStream::connect(&sock).await.unwrap();
    let mut g = [0u8; 18];
    tcp.read_exact(&mut g).await.unwrap();
    assert_eq!((&g[..8]).get_u64(), NBD_MAGIC);
    unix.read_exact(&mut g).await.unwrap();
    assert_eq!((&g[..8]).get_u64(), NBD_MAGIC);
    tx.send(true).unwrap();
    tokio::time::timeout(T, t).await.unwrap().unwrap().unwrap();
    tokio::time::timeout(T, u).await.unwrap().unwrap().unwrap();
    // Connections in negotiation were dropped.
    let mut b = [0u8; 1];
    assert_eq!(tcp.read(&mut b).await.unwrap(), 0);
    assert_eq!(setup.server.counters().snapshot().connections_accepted, 2);
}

struct Recorder(std::sync::Mutex<Vec<pvd::nbd::RequestTiming>>);

impl pvd::nbd::RequestObserver for Recorder {
    fn on_request(&self, timing: &pvd::nbd::RequestTiming) {
        self.0.lock().unwrap().push(*timing);
    }
}

#[tokio::test]
async fn observer_sees_every_request_in_stage_order() {
    let rec = Arc::new(Recorder(std::sync::Mutex::new(Vec::new())));
    let backend = Arc::new(MemBackend::with_limits(SIZE, 512, MAX_REQ));
    let server = NbdServer::new(backend, NbdConfig::default()).with_observer(rec.clone());
    let (stop, rx) = watch::channel(false);
    let (a, b) = tokio::io::duplex(1 << 20);
    let h = tokio::spawn(async move { server.serve_stream(b, rx).await });
    let mut c = Client { s: a };
    c.greet(3).await;
    c.go().await;
    assert_eq!(
        c.call(CommandType::WRITE, 0, 0, 4096, &[1u8; 4096]).await.0,
        Errno::OK
    );
    assert_eq!(
        c.call(CommandType::READ, 0, 0, 4096, &[]).await.0,
        Errno::OK
    );
    assert_eq!(
        c.call(CommandType::READ, 0, SIZE, 512, &[]).await.0,
        Errno::EINVAL
    );
    c.request(CommandType::DISC, 0, 1, 0, 0, &[]).await;
    h.await.unwrap().unwrap();
    drop(stop);
    let seen = rec.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        seen.iter()
            .map(|t| (t.command, t.length, t.error))
            .collect::<Vec<_>>(),
        vec![
            (CommandType::WRITE, 4096, Errno::OK),
            (CommandType::READ, 4096, Errno::OK),
            (CommandType::READ, 512, Errno::EINVAL),
        ]
    );
    for t in &seen {
        assert!(t.received <= t.dispatched);
        assert!(t.dispatched <= t.completed);
        assert!(t.completed <= t.replied);
    }
}
