//! Serves a file (or an in-memory disk) over NBD with pvd's frontend: the "physical disk"
//! baseline of benchmarks and a quick way to poke the frontend with NBD clients.
//!
//! ```text
//! cargo run --release --example nbd_file_server -- --file disk.img --nbd 127.0.0.1:10809
//! cargo run --release --example nbd_file_server -- --mem 1G --nbd-unix /tmp/nbd.sock
//! ```
//! Runs until SIGINT/SIGTERM, then drains requests and flushes.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use pvd::nbd::{BlockBackend, FileBackend, MemBackend, NbdConfig, NbdServer};

#[derive(Parser, Debug)]
struct Args {
    /// File or block device to serve.
    #[arg(long, conflicts_with = "mem")]
    file: Option<PathBuf>,
    /// Serve an in-memory disk of this size (suffixes K, M, G).
    #[arg(long)]
    mem: Option<String>,
    /// TCP listen address.
    #[arg(long)]
    nbd: Option<String>,
    /// Unix socket path.
    #[arg(long)]
    nbd_unix: Option<PathBuf>,
    /// Export name (the empty name always works too).
    #[arg(long, default_value = "")]
    name: String,
    #[arg(long)]
    read_only: bool,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 128)]
    queue_depth: usize,
}

fn parse_size(s: &str) -> anyhow::Result<u64> {
    let (num, mult) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    Ok(num.parse::<u64>()? * mult)
}

async fn serve<B: BlockBackend>(backend: B, args: &Args) -> anyhow::Result<()> {
    let config = NbdConfig {
        export_name: args.name.clone(),
        read_only: args.read_only,
        max_in_flight: args.queue_depth,
        ..NbdConfig::default()
    };
    let server = NbdServer::new(Arc::new(backend), config);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        let _ = stop_tx.send(true);
    });
    let tcp = async {
        if let Some(addr) = &args.nbd {
            let l = tokio::net::TcpListener::bind(addr).await?;
            eprintln!("serving NBD on {}", l.local_addr()?);
            server
                .serve_tcp(l, pvd::nbd::shutdown_on(stop_rx.clone()))
                .await?;
        }
        anyhow::Ok(())
    };
    let unix = async {
        if let Some(path) = &args.nbd_unix {
            let l = pvd::nbd::bind_unix(path)?;
            eprintln!("serving NBD on {}", path.display());
            server
                .serve_unix(l, pvd::nbd::shutdown_on(stop_rx.clone()))
                .await?;
        }
        anyhow::Ok(())
    };
    let (a, b) = tokio::join!(tcp, unix);
    a?;
    b?;
    server.backend().flush().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.nbd.is_none() && args.nbd_unix.is_none() {
        anyhow::bail!("give --nbd ADDR and/or --nbd-unix PATH");
    }
    match (&args.file, &args.mem) {
        (Some(f), None) => serve(FileBackend::open(f, args.read_only)?, &args).await,
        (None, Some(m)) => serve(MemBackend::new(parse_size(m)?), &args).await,
        _ => anyhow::bail!("give exactly one of --file PATH or --mem SIZE"),
    }
}
