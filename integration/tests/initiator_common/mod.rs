//! Shared pieces of the initiator interop tests: data generation, write/read/verify streams,
//! a TCP proxy that can cut connections, and QEMU (libiscsi) copies.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use iscsi_initiator::{Session, SessionConfig};
use pvd_integration::{require_tool, run_ok};
use rand::{RngCore, SeedableRng};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Reproducible pseudo-random bytes.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

/// A session config with short timeouts for tests.
pub fn config(portal: SocketAddr, iqn: &str) -> SessionConfig {
    let mut c = SessionConfig::new(portal.to_string(), iqn);
    c.connect_timeout = Duration::from_secs(20);
    c.replacement_timeout = Duration::from_secs(60);
    c
}

/// Splits `[0, total)` into consecutive pieces whose sizes cycle through `sizes` (the last is
/// cut to fit).
pub fn pieces(total: usize, sizes: &[usize]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < total {
        let n = sizes[i % sizes.len()].min(total - at);
        out.push((at, n));
        at += n;
        i += 1;
    }
    out
}

/// Writes `data` at byte `base` of `lun` in pieces of the given sizes with `qd` in flight,
/// flushes, then reads it back in pieces of the reversed size cycle and compares.
pub async fn write_read_verify(
    s: &Session,
    lun: u64,
    base: u64,
    data: Arc<Vec<u8>>,
    sizes: &[usize],
    qd: usize,
) {
    let bl = s.block_len(lun).await.expect("block length") as u64;
    assert_eq!(base % bl, 0);
    let src = Bytes::from(data.as_ref().clone());
    let mut set = JoinSet::new();
    for (at, n) in pieces(src.len(), sizes) {
        while set.len() >= qd {
            set.join_next().await.unwrap().unwrap();
        }
        let s = s.clone();
        let chunk = src.slice(at..at + n);
        set.spawn(async move {
            // Split some writes into several buffers to exercise the vectored path.
            let segs: Vec<Bytes> = if n >= 4096 && (at / 512) % 2 == 0 {
                let h = (n / 2 / 512) * 512;
                vec![chunk.slice(..h), chunk.slice(h..)]
            } else {
                vec![chunk]
            };
            s.write_segments(lun, (base + at as u64) / bl, &segs, false)
                .await
                .unwrap_or_else(|e| panic!("write of {n} bytes at {at}: {e}"));
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    s.flush(lun).await.expect("flush");
    let mut rev: Vec<usize> = sizes.to_vec();
    rev.reverse();
    let mut set = JoinSet::new();
    for (at, n) in pieces(src.len(), &rev) {
        while set.len() >= qd {
            set.join_next().await.unwrap().unwrap();
        }
        let s = s.clone();
        let want = src.slice(at..at + n);
        set.spawn(async move {
            let got = s
                .read(lun, (base + at as u64) / bl, (n as u64 / bl) as u32)
                .await
                .unwrap_or_else(|e| panic!("read of {n} bytes at {at}: {e}"));
            assert!(got == want, "data differs in the {n} bytes at offset {at}");
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
}

/// Transfer sizes from 512 bytes to 16 MiB.
pub const SIZES: &[usize] = &[
    512,
    4096,
    1536,
    65536,
    8192,
    131072,
    1 << 20,
    7680,
    262144,
    4 << 20,
    16 << 20,
    3584,
    2 << 20,
];

/// A TCP proxy whose connections can be cut, and which can refuse new ones for a while.
pub struct Proxy {
    pub addr: SocketAddr,
    cut: watch::Sender<u64>,
    refuse: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, rx) = watch::channel(0u64);
        let refuse = Arc::new(AtomicBool::new(false));
        let refuse2 = refuse.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if refuse2.load(Ordering::Acquire) {
                    drop(client);
                    continue;
                }
                let mut rx = rx.clone();
                rx.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = rx.changed() => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            cut,
            refuse,
            task,
        }
    }

    /// Drops every open connection.
    pub fn cut(&self) {
        self.cut.send_modify(|g| *g += 1);
    }

    /// Refuses (closes) new connections while `on`.
    pub fn refuse(&self, on: bool) {
        self.refuse.store(on, Ordering::Release);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

/// `qemu-img convert` from an iSCSI URL (libiscsi) to a raw file.
pub fn qemu_export(url: &str, out: &Path) {
    run_ok(
        Command::new(require_tool("qemu-img"))
            .args(["convert", "-f", "raw", "-O", "raw", url])
            .arg(out),
    );
}

/// `qemu-img convert` of a raw file onto an iSCSI URL (libiscsi), without creating it.
pub fn qemu_import(src: &Path, url: &str) {
    run_ok(
        Command::new(require_tool("qemu-img"))
            .args(["convert", "-n", "-f", "raw", "-O", "raw"])
            .arg(src)
            .arg(url),
    );
}

/// Writes with pvd's initiator, reads back with libiscsi (QEMU), and the other way round.
/// `len` bytes at offset 0 of the LUN; `url` is the libiscsi URL of the same LUN.
pub async fn libiscsi_both_ways(s: &Session, lun: u64, url: &str, dir: &Path, len: usize) {
    // pvd writes, QEMU reads.
    let data = random_bytes(len, 41);
    let bl = s.block_len(lun).await.unwrap() as usize;
    let cap = s.read_capacity(lun).await.unwrap();
    let src = Bytes::from(data.clone());
    let mut set = JoinSet::new();
    for (at, n) in pieces(len, &[1 << 20]) {
        let s = s.clone();
        let c = src.slice(at..at + n);
        set.spawn(async move { s.write(lun, (at / bl) as u64, c, false).await.unwrap() });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    s.flush(lun).await.unwrap();
    let out = dir.join("qemu-out.raw");
    let url2 = url.to_string();
    let out2 = out.clone();
    tokio::task::spawn_blocking(move || qemu_export(&url2, &out2))
        .await
        .unwrap();
    let exported = std::fs::read(&out).unwrap();
    assert_eq!(exported.len() as u64, cap.bytes(), "qemu-img exported size");
    assert!(
        exported[..len] == data[..],
        "libiscsi reads what pvd's initiator wrote"
    );
    // QEMU writes, pvd reads.
    let data2 = random_bytes(len, 43);
    let src2 = dir.join("qemu-in.raw");
    let mut full = data2.clone();
    full.resize(cap.bytes() as usize, 0);
    std::fs::write(&src2, &full).unwrap();
    drop(full);
    let url2 = url.to_string();
    tokio::task::spawn_blocking(move || qemu_import(&src2, &url2))
        .await
        .unwrap();
    for (at, n) in pieces(len, &[4 << 20]) {
        let got = s
            .read(lun, (at / bl) as u64, (n / bl) as u32)
            .await
            .unwrap();
        assert!(
            got[..] == data2[at..at + n],
            "pvd's initiator reads what libiscsi wrote (offset {at})"
        );
    }
}

/// A QD32 stream of 64 KiB writes to distinct offsets while `disturb` cuts connections;
/// every write must complete and read back.
pub async fn writes_survive<F, Fut>(s: &Session, lun: u64, writes: usize, disturb: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    const N: usize = 64 * 1024;
    let bl = s.block_len(lun).await.unwrap() as usize;
    let data = Bytes::from(random_bytes(writes * N, 77));
    let mut set = JoinSet::new();
    let s2 = s.clone();
    let data2 = data.clone();
    let writer = tokio::spawn(async move {
        for i in 0..writes {
            while set.len() >= 32 {
                set.join_next().await.unwrap().unwrap();
            }
            let s = s2.clone();
            // Scatter: slot order is a permutation of 0..writes.
            let slot = (i * 7919) % writes;
            let c = data2.slice(slot * N..(slot + 1) * N);
            set.spawn(async move {
                s.write(lun, (slot * N / bl) as u64, c, false)
                    .await
                    .unwrap_or_else(|e| panic!("write {slot} failed: {e}"));
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
    });
    disturb().await;
    tokio::time::timeout(Duration::from_secs(120), writer)
        .await
        .expect("writes finish after reconnect")
        .unwrap();
    s.flush(lun).await.unwrap();
    for (at, n) in pieces(writes * N, &[1 << 20]) {
        let got = s
            .read(lun, (at / bl) as u64, (n / bl) as u32)
            .await
            .unwrap();
        assert!(got[..] == data[at..at + n], "data at {at} after reconnects");
    }
}

/// The fault scenario both targets face: a QD32 stream of 1200 writes through `proxy`, which
/// cuts the connection twice (refusing new ones for 0.8 s after the second cut); every write
/// completes and verifies, and the session logged in again at least twice.
pub async fn writes_survive_two_cuts(s: &Session, lun: u64, proxy: &Proxy) {
    let g0 = s.connection_generation();
    writes_survive(s, lun, 1200, || async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.cut();
        tokio::time::sleep(Duration::from_millis(500)).await;
        proxy.refuse(true);
        proxy.cut();
        tokio::time::sleep(Duration::from_millis(800)).await;
        proxy.refuse(false);
    })
    .await;
    assert!(
        s.connection_generation() >= g0 + 2,
        "the session reconnected ({} logins)",
        s.connection_generation()
    );
}
