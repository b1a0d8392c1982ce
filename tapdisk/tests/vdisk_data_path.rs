//! The virtual disk over real in-process iSCSI targets (pvd target on temporary files): striping
//! and replication put every byte at the place the layout arithmetic says on every replica;
//! concurrent adjacent writes merge; bad NBD requests get NBD errors and leave other clients
//! and the disk intact.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use iscsi_initiator::{PipedRead, SplicePipe};
use iscsi_target::{ServerConfig, Target, TargetHandle};
use pvd::nbd::{BlockBackend, NbdConfig, NbdServer};
use pvd::vdisk::{VdiskConfig, VirtualDisk};
use pvd_mapping::{ExtentReplica, ExtentTable, Geometry, ReplicaSet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LUN_BYTES: u64 = 64 << 20;
const EXTENT: u64 = 4 << 20;

struct Servers {
    _dir: tempfile::TempDir,
    files: Vec<PathBuf>,
    handles: Vec<TargetHandle>,
}

async fn start_servers(n: usize) -> Servers {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut handles = Vec::new();
    for i in 0..n {
        let f = dir.path().join(format!("lun{i}.img"));
        std::fs::File::create(&f)
            .unwrap()
            .set_len(LUN_BYTES)
            .unwrap();
        let cfg = ServerConfig::single(
            "127.0.0.1:0".parse().unwrap(),
            &format!("iqn.2026-11.io.pvd:test{i}"),
            std::slice::from_ref(&f),
        );
        handles.push(Target::bind(cfg).await.unwrap());
        files.push(f);
    }
    Servers {
        _dir: dir,
        files,
        handles,
    }
}

/// Extents of a disk of `size` placed round-robin over the servers (replica k of extent x on
/// server (x + k) % n), each server's extents packed from LBA 0.
fn table(s: &Servers, size: u64, stripes: u32, unit: u64, replicas: u32) -> ExtentTable {
    let g = Geometry::new(size, EXTENT, stripes, unit, replicas).unwrap();
    let n = s.handles.len();
    let mut next = vec![0u64; n];
    let extents: Vec<Vec<ExtentReplica>> = (0..g.extent_count())
        .map(|x| {
            (0..replicas as usize)
                .map(|k| {
                    let srv = (x as usize + k) % n;
                    let start = next[srv];
                    next[srv] += EXTENT;
                    ExtentReplica {
                        portal: s.handles[srv].local_addr().to_string(),
                        iqn: format!("iqn.2026-11.io.pvd:test{srv}"),
                        lun: 0,
                        start_lba: start / 512,
                        block_size: 512,
                    }
                })
                .collect()
        })
        .collect();
    ExtentTable::new(g, &extents).unwrap()
}

fn pattern(seed: u64, len: usize) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

/// Every replica's backing file holds `expected` at the virtual offset `v`.
fn check_replicas(s: &Servers, t: &ExtentTable, v: u64, expected: &[u8]) {
    let mut scratch = Vec::new();
    let mut pieces = Vec::new();
    t.server_pieces(
        v,
        expected.len() as u64,
        ReplicaSet::All,
        &mut scratch,
        &mut pieces,
    )
    .unwrap();
    let copies: u64 = pieces.iter().map(|p| p.len).sum();
    assert_eq!(copies, expected.len() as u64 * t.geometry().replicas as u64);
    for p in &pieces {
        let addr = &t.targets()[p.target as usize];
        let srv = s
            .handles
            .iter()
            .position(|h| h.local_addr().to_string() == addr.portal)
            .unwrap();
        let on_disk = read_at(&s.files[srv], p.lun_offset, p.len as usize);
        let mut at = 0usize;
        for seg in &p.segments {
            let want = &expected[seg.buf_offset as usize..(seg.buf_offset + seg.len) as usize];
            assert!(
                on_disk[at..at + seg.len as usize] == *want,
                "server {srv} LUN offset {} (virtual {}) differs",
                p.lun_offset + at as u64,
                v + seg.buf_offset
            );
            at += seg.len as usize;
        }
    }
}

fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, offset).unwrap();
    buf
}

async fn layout_round_trip(stripes: u32, replicas: u32) {
    let s = start_servers(3).await;
    let size = 24 << 20;
    let t = table(&s, size, stripes, 64 << 10, replicas);
    let disk = VirtualDisk::connect(t.clone(), VdiskConfig::default())
        .await
        .unwrap();
    // Requests of assorted sizes at assorted places, crossing stripe units and extents.
    let cases: Vec<(u64, usize)> = vec![
        (0, 4096),
        (60 << 10, 8192),
        ((4 << 20) - 4096, 512 << 10),
        (7 << 20, 1 << 20),
        (size - 8192, 8192),
        (12345 * 512, 192 * 1024 + 512),
    ];
    for (i, &(off, len)) in cases.iter().enumerate() {
        disk.write(off, pattern(i as u64, len), false)
            .await
            .unwrap();
    }
    for (i, &(off, len)) in cases.iter().enumerate() {
        let got = disk.read(off, len as u32).await.unwrap();
        assert!(got == pattern(i as u64, len), "read back {off}+{len}");
    }
    // The same through pipes: a read on one server lands in the pipe, one that spans servers
    // or extents comes back in a buffer; the bytes are the same either way.
    let mut in_pipe = 0;
    for (i, &(off, len)) in cases.iter().enumerate() {
        let pipe = Arc::new(SplicePipe::new().unwrap());
        let got = match disk.read_to_pipe(off, len as u32, &pipe).await.unwrap() {
            PipedRead::InPipe(n) => {
                assert_eq!(n, len);
                in_pipe += 1;
                let mut b = BytesMut::new();
                pipe.drain_into(&mut b, n).unwrap();
                b.freeze()
            }
            PipedRead::Bytes(b) => b,
        };
        assert!(got == pattern(i as u64, len), "piped read {off}+{len}");
        assert!(pipe.is_reusable());
    }
    let snap = disk.stats().snapshot();
    assert_eq!(snap.spliced_reads, in_pipe);
    assert_eq!(snap.splice_fallbacks, cases.len() as u64 - in_pipe);
    // (0, 4096) sits in one stripe unit of one extent; (7 MiB, 1 MiB) spans stripe units.
    assert!(in_pipe >= 1, "no read went into its pipe");
    if stripes > 1 {
        assert!(
            snap.splice_fallbacks >= 1,
            "a read across servers was spliced"
        );
    }
    disk.flush().await.unwrap();
    for (i, &(off, len)) in cases.iter().enumerate() {
        check_replicas(&s, &t, off, &pattern(i as u64, len));
    }
    // Zeroing and trimming reach every replica too.
    disk.write_zeroes(7 << 20, 128 << 10, false).await.unwrap();
    disk.flush().await.unwrap();
    check_replicas(&s, &t, 7 << 20, &vec![0u8; 128 << 10]);
    assert!(disk
        .read(7 << 20, 4096)
        .await
        .unwrap()
        .iter()
        .all(|&b| b == 0));
    disk.trim(0, 4096).await.unwrap();

    let snap = disk.stats().snapshot();
    let written: u64 = snap.servers.iter().map(|s| s.bytes_written).sum();
    let payload: u64 = cases.iter().map(|c| c.1 as u64).sum();
    assert!(
        written >= payload * replicas as u64,
        "{written} < {payload} x {replicas}"
    );
    if stripes > 1 {
        let busy = snap.servers.iter().filter(|s| s.writes > 0).count();
        assert!(busy >= 2, "striped writes reached {busy} servers");
    }
    disk.shutdown().await.unwrap();
    for h in s.handles {
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stripe_one_replica() {
    layout_round_trip(1, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stripes_one_replica() {
    layout_round_trip(2, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stripe_two_replicas() {
    layout_round_trip(1, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stripes_two_replicas() {
    layout_round_trip(2, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sequential_writes_merge() {
    let s = start_servers(1).await;
    let t = table(&s, 16 << 20, 1, 64 << 10, 1);
    let disk = Arc::new(
        VirtualDisk::connect(t.clone(), VdiskConfig::default())
            .await
            .unwrap(),
    );
    let n = 512u64;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let d = disk.clone();
        set.spawn(async move { d.write(i * 4096, pattern(i, 4096), false).await });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap().unwrap();
    }
    let all = disk.read(0, (n * 4096) as u32).await.unwrap();
    for i in 0..n as usize {
        assert!(all[i * 4096..(i + 1) * 4096] == pattern(i as u64, 4096));
    }
    let snap = disk.stats().snapshot();
    let writes = snap.iscsi_writes();
    assert!(snap.merged_requests > 0);
    assert!(
        writes * 2 < n,
        "{n} concurrent adjacent writes became {writes} iSCSI writes"
    );
    assert_eq!(
        disk.stats().merged_requests.load(Ordering::Relaxed),
        snap.merged_requests
    );
    disk.shutdown().await.unwrap();
}

/// A raw NBD client: fixed newstyle, NBD_OPT_EXPORT_NAME, simple replies.
struct RawNbd {
    s: TcpStream,
    size: u64,
}

impl RawNbd {
    async fn connect(addr: std::net::SocketAddr) -> RawNbd {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut hello = [0u8; 18];
        s.read_exact(&mut hello).await.unwrap();
        assert_eq!(&hello[..8], b"NBDMAGIC");
        s.write_all(&3u32.to_be_bytes()).await.unwrap(); // FIXED_NEWSTYLE | NO_ZEROES
        s.write_all(b"IHAVEOPT").await.unwrap();
        s.write_all(&1u32.to_be_bytes()).await.unwrap(); // NBD_OPT_EXPORT_NAME
        s.write_all(&0u32.to_be_bytes()).await.unwrap();
        let mut info = [0u8; 10];
        s.read_exact(&mut info).await.unwrap();
        RawNbd {
            s,
            size: u64::from_be_bytes(info[..8].try_into().unwrap()),
        }
    }

    async fn send(&mut self, ty: u16, cookie: u64, offset: u64, len: u32, payload: &[u8]) {
        let mut req = Vec::with_capacity(28 + payload.len());
        req.extend_from_slice(&0x2560_9513u32.to_be_bytes());
        req.extend_from_slice(&0u16.to_be_bytes());
        req.extend_from_slice(&ty.to_be_bytes());
        req.extend_from_slice(&cookie.to_be_bytes());
        req.extend_from_slice(&offset.to_be_bytes());
        req.extend_from_slice(&len.to_be_bytes());
        req.extend_from_slice(payload);
        self.s.write_all(&req).await.unwrap();
    }

    /// Reads one simple reply: (error, cookie), plus `data_len` bytes when the error is 0.
    async fn reply(&mut self, data_len: usize) -> (u32, u64, Vec<u8>) {
        let mut h = [0u8; 16];
        self.s.read_exact(&mut h).await.unwrap();
        assert_eq!(u32::from_be_bytes(h[..4].try_into().unwrap()), 0x6744_6698);
        let err = u32::from_be_bytes(h[4..8].try_into().unwrap());
        let cookie = u64::from_be_bytes(h[8..].try_into().unwrap());
        let mut data = vec![0u8; if err == 0 { data_len } else { 0 }];
        self.s.read_exact(&mut data).await.unwrap();
        (err, cookie, data)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_nbd_errors_and_spare_other_clients() {
    let s = start_servers(2).await;
    let t = table(&s, 16 << 20, 2, 64 << 10, 1);
    let disk = VirtualDisk::connect(t.clone(), VdiskConfig::default())
        .await
        .unwrap();
    let stats = disk.stats();
    let server = NbdServer::new(Arc::new(disk), NbdConfig::default()).with_observer(stats);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let srv = server.clone();
    let serving = tokio::spawn(async move {
        srv.serve_tcp(listener, pvd::nbd::shutdown_on(stop_rx))
            .await
    });

    let mut good = RawNbd::connect(addr).await;
    assert_eq!(good.size, 16 << 20);
    let data = pattern(7, 128 << 10);
    good.send(1, 1, 1 << 20, data.len() as u32, &data).await;
    assert_eq!(good.reply(0).await.0, 0);

    let mut bad = RawNbd::connect(addr).await;
    // Past the end, straddling the end, misaligned, unknown command.
    bad.send(0, 10, 16 << 20, 4096, &[]).await;
    assert_eq!(bad.reply(4096).await.0, 22, "read past the end: EINVAL");
    bad.send(1, 11, (16 << 20) - 512, 1024, &[0u8; 1024]).await;
    let (e, c, _) = bad.reply(0).await;
    assert_eq!(
        (c, e == 22 || e == 28),
        (11, true),
        "write across the end: {e}"
    );
    bad.send(0, 12, 100, 4096, &[]).await;
    assert_eq!(bad.reply(4096).await.0, 22, "misaligned read: EINVAL");
    bad.send(77, 13, 0, 0, &[]).await;
    assert_eq!(bad.reply(0).await.0, 22, "unknown command: EINVAL");
    // A client that vanishes in the middle of a write payload.
    let mut vanishing = RawNbd::connect(addr).await;
    let mut req = Vec::new();
    req.extend_from_slice(&0x2560_9513u32.to_be_bytes());
    req.extend_from_slice(&0u16.to_be_bytes());
    req.extend_from_slice(&1u16.to_be_bytes());
    req.extend_from_slice(&5u64.to_be_bytes());
    req.extend_from_slice(&(2u64 << 20).to_be_bytes());
    req.extend_from_slice(&(1u32 << 20).to_be_bytes());
    req.extend_from_slice(&[0xee; 4096]);
    vanishing.s.write_all(&req).await.unwrap();
    drop(vanishing);
    // Many reads in flight, then vanish before reading replies.
    let mut reader = RawNbd::connect(addr).await;
    for i in 0..32u64 {
        reader.send(0, i, i * 65536, 65536, &[]).await;
    }
    drop(reader);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The good client and the disk are unaffected.
    good.send(0, 2, 1 << 20, data.len() as u32, &[]).await;
    let (e, c, got) = good.reply(data.len()).await;
    assert_eq!((e, c), (0, 2));
    assert!(got == data[..]);
    good.send(0, 3, 2 << 20, 4096, &[]).await;
    let (e, _, got) = good.reply(4096).await;
    assert_eq!(e, 0);
    assert!(
        got.iter().all(|&b| b == 0),
        "a half-received write reached the disk"
    );
    good.send(3, 4, 0, 0, &[]).await;
    assert_eq!(good.reply(0).await.0, 0, "flush");

    let _ = stop_tx.send(true);
    drop(good);
    drop(bad);
    tokio::time::timeout(Duration::from_secs(30), serving)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    server.backend().shutdown().await.unwrap();
    for h in s.handles {
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_named() {
    let s = start_servers(2).await;
    let t = table(&s, 16 << 20, 2, 64 << 10, 1);
    let dead = s.handles[1].local_addr().to_string();
    let mut handles = s.handles;
    let h1 = handles.pop().unwrap();
    h1.shutdown().await;
    let mut cfg = VdiskConfig::default();
    cfg.session.connect_timeout = Duration::from_secs(3);
    let err = match VirtualDisk::connect(t, cfg).await {
        Ok(_) => panic!("connected to a stopped server"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&dead), "{err}");
    for h in handles {
        h.shutdown().await;
    }
}
