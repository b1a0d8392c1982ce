//! The initiator against pvd's target in the same process: many tasks sharing one session,
//! overlapping pipelines of reads and writes, multi-buffer writes, and a dropped connection.

use std::time::Duration;

use bytes::Bytes;
use iscsi_initiator::{Session, SessionConfig};
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
