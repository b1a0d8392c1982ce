//! NBD frontend against the real peers: nbdinfo, nbdcopy (libnbd), qemu-io and qemu-img
//! (QEMU's NBD client) and fio's nbd engine. The server runs in this process on its own
//! runtime thread; the peers are external processes connecting over TCP or a unix socket.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use pvd::nbd::{BlockBackend, FileBackend, MemBackend, NbdConfig, NbdServer};
use tokio::sync::watch;

const MIB: u64 = 1 << 20;

struct TestServer {
    addr: SocketAddr,
    sock: PathBuf,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    fn start<B: BlockBackend>(backend: B, config: NbdConfig) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("nbd.sock");
        let (stop, rx) = watch::channel(false);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let sock2 = sock.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let server = NbdServer::new(Arc::new(backend), config);
                let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let unix = pvd::nbd::bind_unix(&sock2).unwrap();
                addr_tx.send(tcp.local_addr().unwrap()).unwrap();
                let (a, b) = tokio::join!(
                    server.serve_tcp(tcp, pvd::nbd::shutdown_on(rx.clone())),
                    server.serve_unix(unix, pvd::nbd::shutdown_on(rx)),
                );
                a.unwrap();
                b.unwrap();
                server.backend().flush().await.unwrap();
            });
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        TestServer {
            addr,
            sock,
            stop,
            thread: Some(thread),
            _dir: dir,
        }
    }

    fn uri(&self) -> String {
        format!("nbd://{}", self.addr)
    }

    fn unix_uri(&self) -> String {
        format!("nbd+unix:///?socket={}", self.sock.display())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn require(tool: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(tool);
        if p.exists() {
            return p;
        }
    }
    panic!("peer program `{tool}` is not installed; run ./scripts/install-peers (as root)");
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn random_file(path: &Path, len: u64, seed: u64) {
    let mut state = seed | 1;
    let mut buf = vec![0u8; len as usize];
    for chunk in buf.chunks_mut(8) {
        // xorshift64*: cheap, reproducible content.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let v = state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    std::fs::write(path, buf).unwrap();
}

fn qemu_io(uri: &str, cmds: &[&str]) -> String {
    let mut c = Command::new(require("qemu-io"));
    c.args(["-f", "raw", uri]);
    for x in cmds {
        c.args(["-c", x]);
    }
    let out = text(&run(&mut c));
    assert!(
        !out.contains("failed") && !out.contains("error"),
        "qemu-io reported a failure:\n{out}"
    );
    out
}

#[test]
fn nbdinfo_shows_export_and_list() {
    require("nbdinfo");
    let srv = TestServer::start(
        MemBackend::new(64 * MIB),
        NbdConfig {
            export_name: "disk0".into(),
            description: Some("pvd test disk".into()),
            ..NbdConfig::default()
        },
    );
    let out = text(&run(Command::new("nbdinfo").arg(srv.uri())));
    assert!(out.contains("export-size: 67108864"), "{out}");
    assert!(out.contains("using structured packets"), "{out}");
    assert!(out.contains("can_flush: true"), "{out}");
    assert!(out.contains("can_multi_conn: true"), "{out}");
    assert!(out.contains("block_size_minimum: 512"), "{out}");
    assert!(out.contains("block_size_preferred: 4096"), "{out}");
    let out = text(&run(
        Command::new("nbdinfo").args(["--list".to_string(), srv.uri()])
    ));
    assert!(out.contains("export=\"disk0\""), "{out}");
    assert!(out.contains("pvd test disk"), "{out}");
    // Named export by URI path, and over the unix socket.
    let out = text(&run(
        Command::new("nbdinfo").arg(format!("{}/disk0", srv.uri()))
    ));
    assert!(out.contains("export-size: 67108864"), "{out}");
    let out = text(&run(Command::new("nbdinfo").arg(srv.unix_uri())));
    assert!(out.contains("export-size: 67108864"), "{out}");
    // An unknown export is refused.
    let out = Command::new("nbdinfo")
        .arg(format!("{}/other", srv.uri()))
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn nbdcopy_and_qemu_img_round_trip_64mib() {
    require("nbdcopy");
    require("qemu-img");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.img");
    random_file(&input, 64 * MIB, 42);
    let srv = TestServer::start(MemBackend::new(64 * MIB), NbdConfig::default());
    // In and out with nbdcopy over TCP.
    run(Command::new("nbdcopy").arg(&input).arg(srv.uri()));
    let out1 = dir.path().join("out1.img");
    std::fs::File::create(&out1)
        .unwrap()
        .set_len(64 * MIB)
        .unwrap();
    run(Command::new("nbdcopy").arg(srv.uri()).arg(&out1));
    assert!(std::fs::read(&input).unwrap() == std::fs::read(&out1).unwrap());
    // Out with qemu-img convert over the unix socket.
    let out2 = dir.path().join("out2.img");
    run(Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "raw"])
        .arg(srv.unix_uri())
        .arg(&out2));
    assert!(std::fs::read(&input).unwrap() == std::fs::read(&out2).unwrap());
    // In with qemu-img convert (a different pattern), read back with nbdcopy.
    let input2 = dir.path().join("in2.img");
    random_file(&input2, 64 * MIB, 7);
    run(Command::new("qemu-img")
        .args(["convert", "-n", "-f", "raw", "-O", "raw"])
        .arg(&input2)
        .arg(srv.uri()));
    let out3 = dir.path().join("out3.img");
    std::fs::File::create(&out3)
        .unwrap()
        .set_len(64 * MIB)
        .unwrap();
    run(Command::new("nbdcopy").arg(srv.unix_uri()).arg(&out3));
    assert!(std::fs::read(&input2).unwrap() == std::fs::read(&out3).unwrap());
}

#[test]
fn qemu_io_patterns_unaligned_and_aio_on_file_backend() {
    require("qemu-io");
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(32 * MIB)
        .unwrap();
    let backend = FileBackend::open(&disk, false).unwrap();
    let srv = TestServer::start(backend, NbdConfig::default());
    let out = qemu_io(
        &srv.uri(),
        &[
            "write -P 0xab 0 1M",
            "read -P 0xab 0 1M",
            // Unaligned: QEMU does read-modify-write around the 512-byte minimum.
            "write -P 0xcd 1000 3000",
            "read -P 0xcd 1000 3000",
            "read -P 0xab 0 1000",
            "read -P 0xab 4000 4096",
            "aio_write -P 0x11 2M 64k",
            "aio_write -P 0x22 3M 128k",
            "aio_write -f -P 0x44 4M 256k",
            "aio_flush",
            "read -P 0x11 2M 64k",
            "read -P 0x22 3M 128k",
            "read -P 0x44 4M 256k",
            "write -z 2M 64k",
            "read -P 0 2M 64k",
            "discard 3M 128k",
            "write -f -P 0x33 31M 1M",
            "read -P 0x33 31M 1M",
            "flush",
        ],
    );
    assert!(
        out.contains("read 1048576/1048576 bytes at offset 0"),
        "{out}"
    );
    assert!(out.contains("read 3000/3000 bytes at offset 1000"), "{out}");
    drop(srv);
    // The data really reached the file.
    let bytes = std::fs::read(&disk).unwrap();
    assert!(bytes[..1000].iter().all(|&b| b == 0xab));
    assert!(bytes[1000..4000].iter().all(|&b| b == 0xcd));
    assert!(bytes[31 * MIB as usize..].iter().all(|&b| b == 0x33));
    // The unix socket works for qemu-io too.
    let srv = TestServer::start(
        FileBackend::open(&disk, true).unwrap(),
        NbdConfig {
            read_only: true,
            ..NbdConfig::default()
        },
    );
    let ro = text(&run(Command::new(require("qemu-io")).args([
        "-r",
        "-f",
        "raw",
        &srv.unix_uri(),
        "-c",
        "read -P 0xcd 1000 3000",
    ])));
    assert!(ro.contains("read 3000/3000 bytes at offset 1000"), "{ro}");
    let bad = Command::new(require("qemu-io"))
        .args(["-f", "raw", &srv.uri(), "-c", "write -P 1 0 4k"])
        .output()
        .unwrap();
    let t = text(&bad);
    assert!(
        !bad.status.success() || t.contains("failed") || t.contains("ermission"),
        "a write to a read-only export must fail: {t}"
    );
}

#[test]
fn fio_random_writes_verify() {
    require("fio");
    let srv = TestServer::start(MemBackend::new(64 * MIB), NbdConfig::default());
    let out = run(Command::new("fio").args([
        "--name=verify",
        "--ioengine=nbd",
        &format!("--uri={}", srv.uri()),
        "--rw=randwrite",
        "--bssplit=4k/40:16k/30:64k/30",
        "--verify=crc32c",
        "--verify_state_save=0",
        "--iodepth=16",
        "--size=32M",
        "--output-format=terse",
    ]));
    let t = text(&out);
    assert!(!t.contains("verify: bad"), "{t}");
    // Terse format: field 5 is the error count ("0" on success).
    let line = t
        .lines()
        .find(|l| l.starts_with("3;"))
        .expect("fio terse line");
    assert_eq!(line.split(';').nth(4), Some("0"), "{line}");
}

/// A raw client speaking bad NBD while qemu-io keeps working on another connection.
#[test]
fn bad_raw_client_does_not_disturb_qemu_io() {
    require("qemu-io");
    let srv = TestServer::start(MemBackend::new(16 * MIB), NbdConfig::default());
    let addr = srv.addr;
    let bad = std::thread::spawn(move || {
        for round in 0..5 {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut g = [0u8; 18];
            s.read_exact(&mut g).unwrap();
            s.write_all(&3u32.to_be_bytes()).unwrap();
            let mut o = Vec::new();
            o.extend_from_slice(b"IHAVEOPT");
            o.extend_from_slice(&1u32.to_be_bytes());
            o.extend_from_slice(&0u32.to_be_bytes());
            s.write_all(&o).unwrap();
            let mut r = [0u8; 10];
            s.read_exact(&mut r).unwrap();
            let req = |cmd: u16, off: u64, len: u32| {
                let mut v = Vec::new();
                v.extend_from_slice(&0x2560_9513u32.to_be_bytes());
                v.extend_from_slice(&0u16.to_be_bytes());
                v.extend_from_slice(&cmd.to_be_bytes());
                v.extend_from_slice(&7u64.to_be_bytes());
                v.extend_from_slice(&off.to_be_bytes());
                v.extend_from_slice(&len.to_be_bytes());
                v
            };
            // Past the end, unknown command, huge read: three EINVAL replies.
            s.write_all(&req(0, 16 * MIB, 4096)).unwrap();
            s.write_all(&req(0x55, 0, 512)).unwrap();
            s.write_all(&req(0, 0, 0xffff_fe00)).unwrap();
            for _ in 0..3 {
                let mut rep = [0u8; 16];
                s.read_exact(&mut rep).unwrap();
                assert_eq!(u32::from_be_bytes(rep[4..8].try_into().unwrap()), 22);
            }
            // Then vanish in the middle of a write payload (or send garbage).
            if round % 2 == 0 {
                s.write_all(&req(1, 0, 1 << 20)).unwrap();
                s.write_all(&[0u8; 1000]).unwrap();
            } else {
                s.write_all(&[0xee; 28]).unwrap();
            }
            drop(s);
        }
    });
    for i in 0..5 {
        let p = 0x40 + i;
        qemu_io(
            &srv.uri(),
            &[&format!("write -P {p} 0 4M"), &format!("read -P {p} 0 4M")],
        );
    }
    bad.join().unwrap();
}
