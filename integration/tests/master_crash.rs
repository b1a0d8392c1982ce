//! At-least-once allocation (DESIGN.md "Control path"): lost replies, a master killed between
//! journaling an allocation and replying, and `kill -9` at random moments under a stream of
//! allocations. Every acknowledged allocation must survive, a retried call must return the same
//! extents, and no extent may be held by two vdisks; the journal (replayed by opening the state
//! directory) is the judge.

use pvd_integration::{free_port, pvd, run_ok, wait_for_port, Proc};
use pvd_mapping::master::proto::XVdiskMap;
use pvd_mapping::master::{register_luns_with, MasterClient, RegisterOptions, Store};
use pvd_mapping::{ExtentReplica, Geometry, MappingFile, ServerId, ServerInfo};
use rand::Rng;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

fn start_master(state: &Path, port: u16, env: &[(&str, &str)], extra: &[&str]) -> Proc {
    let mut cmd = pvd();
    cmd.args([
        "master",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--state-dir",
    ])
    .arg(state)
    .args(["--extent-size", "1MiB"])
    .args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let p = Proc::spawn("pvd master", &mut cmd);
    wait_for_port(
        format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_secs(30),
    );
    p
}

fn register_servers(master: &str, n: u16, capacity: &str) {
    for i in 0..n {
        run_ok(pvd().args([
            "master",
            "register",
            "--master",
            master,
            "--portal",
            &format!("127.0.0.1:{}", 3260 + i),
            "--iqn",
            &format!("iqn.2026-01.org.pvd:s{i}"),
            "--capacity",
            capacity,
        ]));
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Extent index and its replicas, in index order.
type Extents = Vec<(u64, Vec<ExtentReplica>)>;

/// (index, replicas) of a wire answer.
fn extents_of(m: &XVdiskMap) -> Extents {
    m.extents
        .iter()
        .map(|e| {
            (
                e.index,
                e.replicas
                    .iter()
                    .cloned()
                    .map(ExtentReplica::from)
                    .collect(),
            )
        })
        .collect()
}

/// Opens the state directory (the master must be dead) and checks its invariants.
fn journal_state(dir: &Path) -> pvd_mapping::master::MasterState {
    let store = Store::open(dir, None, MIB).expect("state replays");
    let st = store.state().clone();
    st.check_invariants()
        .expect("no extent held twice, no leak");
    st
}

/// A proxy that swallows the replies of the first `drop_first` connections: it forwards the
/// call, reads the reply, and closes both sides without passing the reply on.
fn lossy_proxy(upstream: SocketAddr, drop_first: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    std::thread::spawn(move || {
        for (i, conn) in listener.incoming().enumerate() {
            let Ok(client) = conn else { return };
            let Ok(server) = TcpStream::connect(upstream) else {
                continue;
            };
            let (mut c_rd, mut s_wr) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_rd, &mut s_wr);
                let _ = s_wr.shutdown(Shutdown::Write);
            });
            let (mut s_rd, mut c_wr) = (server, client);
            let d = d.clone();
            std::thread::spawn(move || {
                if i < drop_first {
                    let mut buf = [0u8; 4096];
                    if matches!(s_rd.read(&mut buf), Ok(n) if n > 0) {
                        d.fetch_add(1, Ordering::SeqCst);
                    }
                    let _ = c_wr.shutdown(Shutdown::Both);
                    let _ = s_rd.shutdown(Shutdown::Both);
                } else {
                    let mut buf = [0u8; 65536];
                    while let Ok(n) = s_rd.read(&mut buf) {
                        if n == 0 || c_wr.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = c_wr.shutdown(Shutdown::Write);
                }
            });
        }
    });
    (addr, dropped)
}

#[test]
fn lost_replies_are_retried_and_return_the_same_extents() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let port = free_port();
    let master = format!("127.0.0.1:{port}");
    let mut m = start_master(&state, port, &[], &[]);
    register_servers(&master, 3, "32MiB");

    // Three lost replies: two inside the RPC client's own retransmission, one more for the
    // caller's retry loop (a new xid, so only the master's records can make it idempotent).
    let (proxy, dropped) = lossy_proxy(master.parse().unwrap(), 3);
    let g = Geometry::new(8 * MIB, MIB, 2, 256 << 10, 2).unwrap();
    let rt = rt();
    let via_proxy = MasterClient::new(&proxy.to_string(), Duration::from_secs(60));
    let answer = rt.block_on(via_proxy.allocate("lossy", &g, &[])).unwrap();
    assert_eq!(dropped.load(Ordering::SeqCst), 3, "three replies were lost");
    assert_eq!(answer.extents.len(), 8);

    let direct = MasterClient::new(&master, Duration::from_secs(30));
    let looked = rt.block_on(direct.lookup(0, "lossy")).unwrap();
    assert_eq!(extents_of(&answer), extents_of(&looked));
    let st = rt.block_on(direct.status()).unwrap();
    assert_eq!(
        st.extents_used, 16,
        "8 extents x 2 replicas, nothing leaked"
    );

    m.kill();
    let s = journal_state(&state);
    assert_eq!(s.vdisks.len(), 1);
    assert_eq!(s.totals().used, 16);
}

#[test]
fn master_killed_between_journal_and_reply_gives_the_same_extents_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let port = free_port();
    let master = format!("127.0.0.1:{port}");
    let mut m = start_master(
        &state,
        port,
        &[("PVD_MASTER_FAILPOINT", "crash-after-journal")],
        &[],
    );
    register_servers(&master, 2, "16MiB");

    let map = dir.path().join("f1.map");
    let mut create = pvd();
    create
        .args([
            "vdisk", "create", "f1", "--master", &master, "--size", "4MiB",
        ])
        .args([
            "--stripes",
            "2",
            "--replicas",
            "2",
            "--timeout",
            "120",
            "--map",
        ])
        .arg(&map);
    let mut client = Proc::spawn("pvd vdisk create", &mut create);

    // The master journals the allocation durably, then dies before replying.
    let start = Instant::now();
    let status = loop {
        if let Some(st) = m.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "failpoint never fired"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "master must have crashed: {status:?}");
    let journaled = journal_state(&state);
    let v = journaled.find_vdisk(0, "f1").expect("allocation journaled");
    let recorded = journaled.allocation(v.id, &[]).unwrap().extents;
    assert_eq!(recorded.len(), 4);

    // Restart without the failpoint (and without the old duplicate-request cache); the client's
    // retry gets the journaled extents.
    let _m2 = start_master(&state, port, &[], &[]);
    let start = Instant::now();
    let status = loop {
        if let Some(st) = client.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "create never finished"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "create failed: {status:?}");
    let mf = MappingFile::load(&map).unwrap();
    let got: Vec<(u64, Vec<ExtentReplica>)> = mf
        .extents
        .iter()
        .map(|e| (e.index, e.replicas.clone()))
        .collect();
    assert_eq!(got, recorded, "the retry returned the journaled extents");
    let st = rt()
        .block_on(MasterClient::new(&master, Duration::from_secs(30)).status())
        .unwrap();
    assert_eq!((st.vdisks, st.extents_used), (1, 8));
}

#[test]
fn kill_9_under_a_stream_of_allocations_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let port = free_port();
    let master = format!("127.0.0.1:{port}");
    // Frequent snapshots, so kills also land around compaction.
    let extra = ["--compact-every", "5"];
    let mut m = start_master(&state, port, &[], &extra);
    register_servers(&master, 4, "1GiB");

    let stop = Arc::new(AtomicBool::new(false));
    // name -> acknowledged extents; and names whose release was acknowledged.
    let acked: Arc<Mutex<Vec<(String, Extents)>>> = Arc::default();
    let released: Arc<Mutex<Vec<String>>> = Arc::default();
    let stream = {
        let (stop, acked, released, master) = (
            stop.clone(),
            acked.clone(),
            released.clone(),
            master.clone(),
        );
        std::thread::spawn(move || {
            let rt = rt();
            let c = MasterClient::new(&master, Duration::from_secs(60));
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let name = format!("s{i}");
                let w = 1 + (i % 2) as u32;
                let r = 1 + i.is_multiple_of(3) as u32;
                let g = Geometry::new((1 + i % 3) * MIB, MIB, w, 256 << 10, r).unwrap();
                let a = rt.block_on(c.allocate(&name, &g, &[])).expect("allocate");
                acked.lock().unwrap().push((name, extents_of(&a)));
                // Every other disk is released again, so the stream never runs out of room.
                if i % 2 == 1 {
                    let victim = format!("s{}", i - 1);
                    rt.block_on(c.release(0, &victim)).expect("release");
                    released.lock().unwrap().push(victim);
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };

    let mut rng = rand::thread_rng();
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(rng.gen_range(150..600)));
        m.kill(); // SIGKILL
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..200)));
        m = start_master(&state, port, &[], &extra);
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    stream.join().expect("allocation stream");
    m.kill();

    let acked = acked.lock().unwrap().clone();
    let released = released.lock().unwrap().clone();
    assert!(
        acked.len() >= 10,
        "too few allocations went through: {}",
        acked.len()
    );
    let st = journal_state(&state);
    let mut live = 0;
    for (name, extents) in &acked {
        let v = st.find_vdisk(0, name);
        if released.contains(name) {
            assert!(v.is_none(), "{name} was released but is back");
            continue;
        }
        let v = v.unwrap_or_else(|| panic!("acknowledged {name} lost"));
        assert_eq!(
            &st.allocation(v.id, &[]).unwrap().extents,
            extents,
            "{name} changed"
        );
        live += 1;
    }
    assert_eq!(st.vdisks.len(), live, "only acknowledged vdisks exist");
    eprintln!(
        "{} allocations and {} releases acknowledged across 6 kills",
        acked.len(),
        released.len()
    );
}

#[test]
fn targets_register_before_the_master_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let master = format!("127.0.0.1:{port}");
    let luns: Vec<ServerInfo> = (0..2u16)
        .map(|i| ServerInfo {
            portal: format!("127.0.0.1:{}", 3260 + i),
            iqn: "iqn.2026-01.org.pvd:early".into(),
            lun: i as u64,
            capacity_bytes: 8 * MIB,
            block_size: 512,
        })
        .collect();
    let early = {
        let (master, luns) = (master.clone(), luns.clone());
        std::thread::spawn(move || {
            rt().block_on(register_luns_with(
                &master,
                luns,
                RegisterOptions {
                    overall_timeout: Some(Duration::from_secs(60)),
                },
            ))
        })
    };
    std::thread::sleep(Duration::from_millis(800));
    let _m = start_master(&dir.path().join("state"), port, &[], &[]);
    let ids = early
        .join()
        .unwrap()
        .expect("registration once the master is up");
    assert_eq!(ids, vec![ServerId(1), ServerId(2)]);
    // Registering again (a restarted target) gives the same ids.
    let again = rt()
        .block_on(register_luns_with(
            &master,
            luns,
            RegisterOptions::default(),
        ))
        .unwrap();
    assert_eq!(again, ids);

    // With nobody listening, the bounded timeout gives a clear error.
    let nobody = format!("127.0.0.1:{}", free_port());
    let start = Instant::now();
    let err = rt()
        .block_on(register_luns_with(
            &nobody,
            vec![ServerInfo {
                portal: "127.0.0.1:3260".into(),
                iqn: "iqn.x".into(),
                lun: 0,
                capacity_bytes: 8 * MIB,
                block_size: 512,
            }],
            RegisterOptions {
                overall_timeout: Some(Duration::from_secs(2)),
            },
        ))
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(20));
    assert!(err.to_string().contains("no answer from master"), "{err}");
}
