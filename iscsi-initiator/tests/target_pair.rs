//! The initiator against pvd's target in the same process: many tasks sharing one session,
//! overlapping pipelines of reads and writes, multi-buffer writes, a dropped connection, and
//! reads spliced into pipes (with their fallbacks).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use iscsi_initiator::{PipedRead, Session, SessionConfig, SplicePipe};
use iscsi_target::{ServerConfig, Target};

const IQN: &str = "iqn.2026-01.org.pvd:pair";

async fn pair(size: u64) -> (tempfile::TempDir, iscsi_target::TargetHandle, Session) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lun.img");
    std::fs::File::create(&path).unwrap().set_len(size).unwrap();
    let cfg = ServerConfig::single("127.0.0.1:0".parse().unwrap(), IQN, &[path]);
    let t = Target::bind(cfg).await.unwrap();
    let mut c = SessionConfig::new(t.local_addr().to_string(), IQN);
    c.replacement_timeout = Duration::from_secs(30);
    let s = Session::connect(c).await.unwrap();
    (dir, t, s)
}

fn pattern(block: u64, len: usize) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (block as usize * 31 + i * 7) as u8)
            .collect::<Vec<u8>>(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_one_session() {
    let (_dir, t, s) = pair(64 << 20).await;
    let bl = s.block_len(0).await.unwrap() as u64;
    let mut tasks = Vec::new();
    for w in 0..16u64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..32u64 {
                let lba = (w * 32 + i) * 16;
                let data = pattern(lba, 16 * bl as usize);
                let (a, b) = (data.slice(..3 * 512), data.slice(3 * 512..));
                s.write_segments(0, lba, &[a, b], i % 5 == 0).await.unwrap();
                assert_eq!(s.read(0, lba, 16).await.unwrap(), data);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    s.flush(0).await.unwrap();
    s.logout().await.unwrap();
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_is_replaced() {
    let (_dir, t, s) = pair(32 << 20).await;
    let src = pattern(1, 8 << 20);
    let mut tasks = Vec::new();
    for i in 0..64usize {
        let s2 = s.clone();
        let c = src.slice(i * 131072..(i + 1) * 131072);
        tasks.push(tokio::spawn(async move {
            s2.write(0, (i * 256) as u64, c, false).await.unwrap();
        }));
        if i == 20 {
            s.drop_connection();
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(s.connection_generation() >= 2);
    assert_eq!(s.read(0, 0, 16384).await.unwrap(), src);
    s.logout().await.unwrap();
    t.shutdown().await;
}

/// Reads `len` bytes at `lba` into `pipe` and returns them, from the pipe or the buffer.
async fn read_via_pipe(s: &Session, lba: u64, len: usize, pipe: &Arc<SplicePipe>) -> (Bytes, bool) {
    match s
        .read_to_pipe(0, lba, (len / 512) as u32, pipe)
        .await
        .unwrap()
    {
        PipedRead::InPipe(n) => {
            assert_eq!(n, len);
            assert_eq!(pipe.buffered().unwrap(), len);
            let mut out = BytesMut::new();
            pipe.drain_into(&mut out, n).unwrap();
            (out.freeze(), true)
        }
        PipedRead::Bytes(b) => (b, false),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_spliced_into_pipes() {
    let (_dir, t, s) = pair(32 << 20).await;
    let src = pattern(3, 4 << 20);
    s.write(0, 0, src.clone(), false).await.unwrap();
    let pipe = Arc::new(SplicePipe::new().unwrap());
    // One PDU, two PDUs (512 KiB is above the target's MaxRecvDataSegmentLength), one block.
    for (lba, len) in [
        (0u64, 128 << 10),
        (256, 512 << 10),
        (7, 512),
        (4096, 64 << 10),
    ] {
        let (got, spliced) = read_via_pipe(&s, lba, len, &pipe).await;
        let at = lba as usize * 512;
        assert!(got == src.slice(at..at + len), "{len} bytes at LBA {lba}");
        assert!(spliced, "{len} bytes at LBA {lba} came back in a buffer");
        assert!(pipe.is_reusable());
    }
    // 4 MiB: spliced when the pipe has slots for every socket fragment, else in a buffer;
    // the same bytes either way.
    let (got, _) = read_via_pipe(&s, 0, 4 << 20, &pipe).await;
    assert!(got == src, "4 MiB read differs");
    assert!(pipe.is_reusable());
    // Many at once, each with its own pipe, among ordinary reads.
    let mut tasks = Vec::new();
    for i in 0..32usize {
        let s = s.clone();
        let want = src.slice(i * 131072..(i + 1) * 131072);
        tasks.push(tokio::spawn(async move {
            let lba = (i * 256) as u64;
            if i % 3 == 0 {
                assert!(s.read(0, lba, 256).await.unwrap() == want);
            } else {
                let pipe = Arc::new(SplicePipe::new().unwrap());
                let (got, spliced) = read_via_pipe(&s, lba, 131072, &pipe).await;
                assert!(got == want && spliced, "read {i}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    s.logout().await.unwrap();
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipe_out_of_slots_or_data_digests_fall_back_to_a_buffer_header_digests_do_not() {
    let (_dir, t, s) = pair(32 << 20).await;
    let src = pattern(5, 2 << 20);
    s.write(0, 0, src.clone(), false).await.unwrap();
    // One page of pipe cannot hold 2 MiB: what was spliced comes back with the rest.
    let small = Arc::new(SplicePipe::with_capacity(4096).unwrap());
    let (got, spliced) = read_via_pipe(&s, 0, 2 << 20, &small).await;
    assert!(got == src, "fallback read differs");
    assert!(!spliced);
    assert!(small.is_reusable(), "the pipe is left empty");
    s.logout().await.unwrap();

    // With data digests the payload must be checked, so it is never spliced.
    let mut c = SessionConfig::new(t.local_addr().to_string(), IQN);
    c.data_digest = true;
    let d = Session::connect(c).await.unwrap();
    let pipe = Arc::new(SplicePipe::new().unwrap());
    let (got, spliced) = read_via_pipe(&d, 0, 1 << 20, &pipe).await;
    assert!(got == src.slice(..1 << 20) && !spliced);
    assert!(pipe.is_reusable());
    d.logout().await.unwrap();

    // Header digests alone do not stop splicing (the payload is not checked).
    let mut c = SessionConfig::new(t.local_addr().to_string(), IQN);
    c.header_digest = true;
    let h = Session::connect(c).await.unwrap();
    for _ in 0..3 {
        let (got, spliced) = read_via_pipe(&h, 0, 512 << 10, &pipe).await;
        assert!(got == src.slice(..512 << 10) && spliced);
    }
    h.logout().await.unwrap();
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_into_pipes_survive_a_dropped_connection() {
    // A slow disk (20 ms a command, one at a time) keeps reads in flight across the drop.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lun.img");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let mut cfg = ServerConfig::single("127.0.0.1:0".parse().unwrap(), IQN, &[path]);
    cfg.targets[0].luns[0].emulate_disk = Some("latency_us=20000,mbps=1000".into());
    let t = Target::bind(cfg).await.unwrap();
    let mut c = SessionConfig::new(t.local_addr().to_string(), IQN);
    c.replacement_timeout = Duration::from_secs(30);
    let s = Session::connect(c).await.unwrap();
    let src = pattern(9, 1 << 20);
    s.write(0, 0, src.clone(), false).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8usize {
        let s2 = s.clone();
        let want = src.slice(i * 131072..(i + 1) * 131072);
        tasks.push(tokio::spawn(async move {
            let pipe = Arc::new(SplicePipe::new().unwrap());
            let (got, spliced) = read_via_pipe(&s2, (i * 256) as u64, 131072, &pipe).await;
            assert!(got == want, "read {i} differs");
            // Spliced whole: the pipe is empty again. Reissued on the new connection: the
            // data came in a buffer and the pipe is spoiled (the old reader may write to it).
            assert_eq!(pipe.is_reusable(), spliced, "read {i}");
            spliced
        }));
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    s.drop_connection();
    let mut spliced = 0;
    for t in tasks {
        spliced += t.await.unwrap() as usize;
    }
    assert!(s.connection_generation() >= 2);
    assert!(spliced < 8, "every read finished before the drop");
    // The reinstated connection splices again.
    let pipe = Arc::new(SplicePipe::new().unwrap());
    let (got, again) = read_via_pipe(&s, 0, 131072, &pipe).await;
    assert!(got == src.slice(..131072) && again);
    s.logout().await.unwrap();
    t.shutdown().await;
}
