//! `pvd tapdisk` in a real cluster: a master, three `pvd target`s on temporary files that
//! register with it, `pvd vdisk create`, and the tapdisk serving the disk over NBD, for
//! (stripes, replicas) = (1,1), (2,1), (1,2), (2,2). Real NBD clients (fio with crc32c verify,
//! nbdcopy, qemu-io, qemu-img) read and write it; after a flush every replica's backing file
//! holds the disk's bytes where the layout arithmetic puts them. Sequential 4 KiB writes at
//! queue depth 32 become far fewer iSCSI commands (merging), seen through `pvd tapdisk stats`
//! and the Prometheus endpoint. SIGTERM drains, flushes, releases the lock and exits 0.

use pvd_integration::{
    free_port, pvd, random_file, require_tool, run_fails, run_ok, wait_for_port, Proc,
};
use pvd_mapping::{MappingFile, MappingLock, ReplicaSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
const DISK: u64 = 256 * MIB;

struct Cluster {
    dir: tempfile::TempDir,
    _master: Proc,
    _targets: Vec<Proc>,
    /// (portal, backing file) of every target.
    luns: Vec<(String, PathBuf)>,
    tapdisk: Proc,
    map: PathBuf,
    nbd: SocketAddr,
    metrics: SocketAddr,
}

impl Cluster {
    /// `tapdisk_args`: extra `pvd tapdisk` options.
    fn start(stripes: u32, replicas: u32, tapdisk_args: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mport = free_port();
        let master = format!("127.0.0.1:{mport}");
        let m = Proc::spawn(
            "pvd master",
            pvd()
                .args(["master", "--listen", &master, "--state-dir"])
                .arg(dir.path().join("state"))
                .args(["--extent-size", "16MiB"]),
        );
        wait_for_port(master.parse().unwrap(), Duration::from_secs(30));
        let mut targets = Vec::new();
        let mut luns = Vec::new();
        for i in 0..3 {
            let port = free_port();
            let portal = format!("127.0.0.1:{port}");
            let file = dir.path().join(format!("lun{i}.img"));
            std::fs::File::create(&file)
                .unwrap()
                .set_len(320 * MIB)
                .unwrap();
            targets.push(Proc::spawn(
                "pvd target",
                pvd()
                    .args(["target", "--listen", &portal, "--iqn"])
                    .arg(format!("iqn.2026-11.io.pvd:tapdisk-test{i}"))
                    .arg("--lun")
                    .arg(&file)
                    .args(["--register", &master, "--advertise", &portal]),
            ));
            wait_for_port(portal.parse().unwrap(), Duration::from_secs(30));
            luns.push((portal, file));
        }
        // Targets register in the background; wait until the master knows all three.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = pvd()
                .args(["master", "status", "--master", &master])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&out.stdout).contains(" 3 servers") {
                break;
            }
            assert!(Instant::now() < deadline, "targets did not register");
            std::thread::sleep(Duration::from_millis(100));
        }
        let map = dir.path().join("disk.map");
        run_ok(
            pvd()
                .args([
                    "vdisk", "create", "d", "--master", &master, "--size", "256MiB",
                ])
                .args(["--stripes", &stripes.to_string(), "--stripe-unit", "64KiB"])
                .args(["--replicas", &replicas.to_string(), "--map"])
                .arg(&map)
                .args(["--timeout", "30"]),
        );
        let nbd: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let tapdisk = Proc::spawn(
            "pvd tapdisk",
            pvd()
                .arg("tapdisk")
                .arg("--map")
                .arg(&map)
                .args(["--nbd", &nbd.to_string(), "--metrics", &metrics.to_string()])
                .arg("--nbd-unix")
                .arg(dir.path().join("nbd.sock"))
                .args(tapdisk_args),
        );
        wait_for_port(nbd, Duration::from_secs(30));
        Cluster {
            dir,
            _master: m,
            _targets: targets,
            luns,
            tapdisk,
            map,
            nbd,
            metrics,
        }
    }

    fn uri(&self) -> String {
        format!("nbd://{}", self.nbd)
    }

    fn unix_uri(&self) -> String {
        format!(
            "nbd+unix:///?socket={}",
            self.dir.path().join("nbd.sock").display()
        )
    }

    fn stats_json(&self) -> serde_json::Value {
        let out = run_ok(
            pvd()
                .args(["tapdisk", "stats", "--json", "--map"])
                .arg(&self.map),
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Every replica's backing file holds `expected` at virtual offset `v`.
    fn check_replicas(&self, v: u64, expected: &[u8]) {
        let table = MappingFile::load(&self.map).unwrap().table().unwrap();
        let (mut scratch, mut pieces) = (Vec::new(), Vec::new());
        table
            .server_pieces(
                v,
                expected.len() as u64,
                ReplicaSet::All,
                &mut scratch,
                &mut pieces,
            )
            .unwrap();
        let r = table.geometry().replicas as u64;
        assert_eq!(
            pieces.iter().map(|p| p.len).sum::<u64>(),
            expected.len() as u64 * r
        );
        for p in &pieces {
            let portal = &table.targets()[p.target as usize].portal;
            let file = &self.luns.iter().find(|(pt, _)| pt == portal).unwrap().1;
            let mut buf = vec![0u8; p.len as usize];
            std::fs::File::open(file)
                .unwrap()
                .read_exact_at(&mut buf, p.lun_offset)
                .unwrap();
            let mut at = 0usize;
            for s in &p.segments {
                let want = &expected[s.buf_offset as usize..(s.buf_offset + s.len) as usize];
                assert!(
                    buf[at..at + s.len as usize] == *want,
                    "replica on {portal} at LUN byte {} (virtual {}) differs",
                    p.lun_offset + at as u64,
                    v + s.buf_offset
                );
                at += s.len as usize;
            }
        }
    }

    /// SIGTERM: drains, flushes, exits 0 and releases the mapping lock.
    fn stop(mut self) {
        let st = self.tapdisk.terminate(Duration::from_secs(30));
        assert!(matches!(st, Some(s) if s.success()), "tapdisk exit: {st:?}");
        drop(MappingLock::acquire(&self.map).expect("lock released after exit"));
        assert!(!self.dir.path().join("disk.map.ctl").exists());
    }
}

fn fio(args: &[&str]) -> String {
    let out = run_ok(Command::new(require_tool("fio")).args(args));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn same_files(a: &Path, b: &Path) -> bool {
    let (mut fa, mut fb) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut ba).unwrap();
        let mut m = 0;
        while m < n {
            let k = fb.read(&mut bb[m..n]).unwrap();
            if k == 0 {
                return false;
            }
            m += k;
        }
        if n == 0 {
            return fb.read(&mut bb).unwrap() == 0;
        }
        if ba[..n] != bb[..n] {
            return false;
        }
    }
}

fn exercise(stripes: u32, replicas: u32, tapdisk_args: &[&str]) {
    let c = Cluster::start(stripes, replicas, tapdisk_args);
    let uri = c.uri();

    // fio: random writes of mixed sizes, verified with crc32c.
    fio(&[
        "--name=mixed",
        "--ioengine=nbd",
        &format!("--uri={uri}"),
        "--rw=randwrite",
        "--bssplit=4k/40:16k/20:64k/20:256k/20",
        "--size=48M",
        "--offset=200M",
        "--iodepth=16",
        "--verify=crc32c",
        "--verify_state_save=0",
        "--do_verify=1",
        "--randrepeat=1",
    ]);

    // nbdcopy a 256 MiB random file in and out.
    let input = c.dir.path().join("in.img");
    let output = c.dir.path().join("out.img");
    random_file(
        &input,
        DISK as usize,
        1000 + stripes as u64 * 10 + replicas as u64,
    );
    let nbdcopy = require_tool("nbdcopy");
    run_ok(Command::new(&nbdcopy).arg(&input).arg(&uri));
    run_ok(Command::new(&nbdcopy).arg(&uri).arg(&output));
    assert!(same_files(&input, &output), "nbdcopy round trip differs");
    std::fs::remove_file(&output).unwrap();
    // Out again over the unix socket (READ data spliced into a unix socket).
    run_ok(Command::new(&nbdcopy).arg(c.unix_uri()).arg(&output));
    assert!(
        same_files(&input, &output),
        "nbdcopy over the unix socket differs"
    );
    std::fs::remove_file(&output).unwrap();

    // qemu-io writes, reads back and flushes; qemu-img sees the size and converts.
    let qemu_io = require_tool("qemu-io");
    let out = run_ok(Command::new(&qemu_io).args([
        "-f",
        "raw",
        &uri,
        "-c",
        "write -P 0xa5 1536k 192k",
        "-c",
        "read -P 0xa5 1536k 192k",
        "-c",
        "flush",
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("Pattern verification failed"), "{text}");
    let qemu_img = require_tool("qemu-img");
    let out = run_ok(Command::new(&qemu_img).args(["info", "-f", "raw", &uri]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("268435456"));
    let small = c.dir.path().join("small.img");
    random_file(&small, 4 << 20, 77);
    run_ok(
        Command::new(&qemu_img)
            .args(["convert", "-n", "-f", "raw", "-O", "raw"])
            .arg(&small)
            .arg(&uri),
    );
    let back = c.dir.path().join("back.img");
    run_ok(
        Command::new(&qemu_img)
            .args(["convert", "-f", "raw", "-O", "raw", &uri])
            .arg(&back),
    );
    // (qemu-img convert -n writes only the source's length.)
    let mut expected = std::fs::read(&input).unwrap();
    let smallv = std::fs::read(&small).unwrap();
    expected[1536 * 1024..1728 * 1024].fill(0xa5);
    expected[..smallv.len()].copy_from_slice(&smallv);
    let backv = std::fs::read(&back).unwrap();
    if let Some(i) = (0..expected.len()).find(|&i| backv.get(i) != Some(&expected[i])) {
        panic!(
            "qemu-img convert out differs first at byte {i} (of {})",
            backv.len()
        );
    }
    std::fs::remove_file(&back).unwrap();

    // After the flush every replica holds the bytes at the mapped places.
    for &(v, len) in &[
        (0u64, 64 * 1024usize),
        (1536 * 1024, 192 * 1024),
        (17 * MIB - 4096, 256 * 1024),
        (100 * MIB + 12288, 4096),
        (DISK - 128 * 1024, 128 * 1024),
    ] {
        c.check_replicas(v, &expected[v as usize..v as usize + len]);
    }

    let stats = c.stats_json();
    let servers = stats["servers"].as_array().unwrap();
    let busy = servers
        .iter()
        .filter(|s| s["bytes_written"].as_u64().unwrap() > 0)
        .count() as u32;
    assert!(
        busy >= stripes.max(replicas),
        "{busy} servers written: {stats}"
    );
    // Large reads that sit on one server went from the iSCSI socket to the NBD socket through
    // a pipe (nbdcopy and qemu-img read in pieces of at least 64 KiB).
    if stripes == 1 {
        assert!(
            stats["spliced_reads"].as_u64().unwrap() > 0,
            "no read was spliced: {stats}"
        );
    }
    let text = String::from_utf8_lossy(
        &run_ok(pvd().args(["tapdisk", "stats", "--map"]).arg(&c.map)).stdout,
    )
    .into_owned();
    assert!(
        text.contains("iscsi commands")
            && text.contains("reads spliced")
            && text.contains("queue wait"),
        "{text}"
    );
    c.stop();
}

#[test]
fn stripes1_replicas1() {
    exercise(1, 1, &[]);
}

#[test]
fn stripes2_replicas1() {
    exercise(2, 1, &[]);
}

#[test]
fn stripes1_replicas2() {
    exercise(1, 2, &[]);
}

#[test]
fn stripes2_replicas2() {
    // This one polls its sockets (`--poll-us`): the same checks hold for a tapdisk whose
    // thread never sleeps while requests come.
    exercise(2, 2, &["--poll-us", "200"]);
}

fn http_get(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn sequential_writes_at_depth_32_merge() {
    let c = Cluster::start(1, 1, &[]);
    fio(&[
        "--name=seq",
        "--ioengine=nbd",
        &format!("--uri={}", c.uri()),
        "--rw=write",
        "--bs=4k",
        "--iodepth=32",
        "--size=32M",
    ]);
    let stats = c.stats_json();
    let nbd_writes = stats["nbd_requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p[0] == "write")
        .unwrap()[1]
        .as_u64()
        .unwrap();
    let iscsi_writes: u64 = stats["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["writes"].as_u64().unwrap())
        .sum();
    assert_eq!(nbd_writes, 8192);
    assert!(
        iscsi_writes * 2 < nbd_writes,
        "{nbd_writes} NBD writes became {iscsi_writes} iSCSI writes"
    );
    eprintln!("merging: {nbd_writes} NBD writes -> {iscsi_writes} iSCSI writes");
    let metrics = http_get(c.metrics);
    assert!(metrics.starts_with("HTTP/1.0 200"), "{metrics}");
    assert!(
        metrics.contains("pvd_tapdisk_merged_requests_total"),
        "{metrics}"
    );
    assert!(metrics.contains("pvd_tapdisk_stage_seconds_bucket{stage=\"queue_wait\""));
    c.stop();
}

/// Runs `pvd` with `args`, expects it to fail without a panic, returns its stderr.
fn fails(args: &[&std::ffi::OsStr]) -> String {
    run_fails(pvd().args(args))
}

#[test]
fn bad_invocations_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.map");
    let missing = missing.as_os_str();
    let err = fails(&["tapdisk".as_ref(), "--map".as_ref(), missing]);
    assert!(err.contains("missing.map"), "{err}");
    fails(&["tapdisk".as_ref(), "--bogus".as_ref()]);
    let err = fails(&[
        "tapdisk".as_ref(),
        "stats".as_ref(),
        "--map".as_ref(),
        missing,
    ]);
    assert!(err.contains("control socket"), "{err}");
    let help = run_ok(pvd().args(["tapdisk", "--help"]));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--queue-depth"));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--poll-us"));
    let err = fails(&[
        "tapdisk".as_ref(),
        "--poll-us".as_ref(),
        "20000".as_ref(),
        "--map".as_ref(),
        missing,
    ]);
    assert!(err.contains("--poll-us 20000 is above 10000"), "{err}");
}
