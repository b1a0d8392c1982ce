//! How statistics leave the daemon: a unix control socket next to the mapping file
//! (`FILE.ctl`; a client writes one command line, `text` or `json`, and reads the answer until
//! EOF) and an HTTP/1.0 endpoint in the Prometheus text format (exposition format 0.0.4).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener, UnixStream};

use super::{StatsSnapshot, VdiskStats};
use crate::bench::StageBreakdown;

/// Longest command line accepted on the control socket.
pub const MAX_CONTROL_LINE: u64 = 256;
/// Largest HTTP request head read by the metrics endpoint.
pub const MAX_HTTP_HEAD: usize = 8192;
/// How long one control or metrics client may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The control socket path of the daemon serving `map`: `map` with `.ctl` appended.
pub fn control_path(map: &Path) -> PathBuf {
    let mut s = map.as_os_str().to_owned();
    s.push(".ctl");
    PathBuf::from(s)
}

/// Answers control clients until the task is dropped.
pub async fn serve_control(listener: UnixListener, stats: Arc<VdiskStats>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let stats = stats.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(CLIENT_TIMEOUT, control_client(stream, &stats)).await;
        });
    }
}

async fn control_client(stream: UnixStream, stats: &VdiskStats) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut line = String::new();
    BufReader::new(r.take(MAX_CONTROL_LINE))
        .read_line(&mut line)
        .await?;
    let snap = stats.snapshot();
    let answer = match line.trim() {
        "" | "text" => snap.to_text(),
        "json" => serde_json::to_string(&snap).map_err(std::io::Error::other)? + "\n",
        "prometheus" => snap.to_prometheus(),
        other => format!("error: unknown command {other:?} (text, json, prometheus)\n"),
    };
    w.write_all(answer.as_bytes()).await?;
    w.shutdown().await
}

/// Sends `command` to the daemon serving `map` and returns its answer.
pub async fn query(map: &Path, command: &str) -> std::io::Result<String> {
    let path = control_path(map);
    let mut s = UnixStream::connect(&path).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "cannot reach the tapdisk control socket {} ({e}); is `pvd tapdisk --map {}` running?",
                path.display(),
                map.display()
            ),
        )
    })?;
    s.write_all(format!("{command}\n").as_bytes()).await?;
    let mut out = String::new();
    tokio::time::timeout(CLIENT_TIMEOUT, s.read_to_string(&mut out))
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "control socket timed out")
        })??;
    Ok(out)
}

/// The statistics of the daemon serving `map`.
pub async fn fetch_snapshot(map: &Path) -> std::io::Result<StatsSnapshot> {
    let text = query(map, "json").await?;
    serde_json::from_str(&text).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad statistics from the daemon: {e}"),
        )
    })
}

/// The per-stage table (thesis Table 3.2 analogue) of the daemon serving `map`, from a
/// synchronous caller (e.g. the benchmark harness's `Cluster::stages`).
pub fn fetch_stage_breakdown(map: &Path) -> std::io::Result<Vec<StageBreakdown>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(fetch_snapshot(map))?.stage_breakdown())
}

/// Serves `GET /metrics` (any path, in fact) over HTTP/1.0 until the task is dropped.
pub async fn serve_metrics(listener: TcpListener, stats: Arc<VdiskStats>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let stats = stats.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(CLIENT_TIMEOUT, metrics_client(stream, &stats)).await;
        });
    }
}

async fn metrics_client(
    mut stream: tokio::net::TcpStream,
    stats: &VdiskStats,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_HTTP_HEAD {
            stream
                .write_all(
                    b"HTTP/1.0 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n",
                )
                .await?;
            return Ok(());
        }
    }
    let (status, body) = if head.starts_with(b"GET ") || head.starts_with(b"HEAD ") {
        ("200 OK", stats.snapshot().to_prometheus())
    } else {
        ("405 Method Not Allowed", String::new())
    };
    let reply = format!(
        "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(reply.as_bytes()).await?;
    if !head.starts_with(b"HEAD ") {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}
