//! NBD protocol (the NetworkBlockDevice project's doc/proto.md): the frontend through which
//! VMs, qemu, fio and nbdcopy reach a pvd virtual disk.
//!
//! * [`wire`]: constants and fixed-size messages.
//! * [`handshake`]: fixed-newstyle negotiation (options, info, export list).
//! * [`transmission`]: request validation, concurrent dispatch, simple/structured replies.
//! * [`server`]: TCP and unix listeners, graceful shutdown.
//! * [`backend`]: the [`BlockBackend`] trait the data path implements.
//! * [`mem_backend`], [`file_backend`]: in-memory and file backends.
//! * [`observer`]: per-request timestamps and counters for statistics.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::sync::Arc;
//! use pvd::nbd::{BlockBackend, MemBackend, NbdConfig, NbdServer};
//! let server = NbdServer::new(Arc::new(MemBackend::new(1 << 30)), NbdConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:10809").await?;
//! server.serve_tcp(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! server.backend().flush().await.ok();
//! # Ok(()) }
//! ```

pub mod backend;
pub mod file_backend;
pub mod handshake;
pub mod mem_backend;
pub mod observer;
mod reply_out;
pub mod server;
pub mod transmission;
pub mod wire;

pub use backend::{BackendError, BackendResult, BlockBackend};
pub use file_backend::FileBackend;
pub use handshake::{ExportInfo, HandshakeError, Negotiated};
pub use mem_backend::{MemBackend, DEFAULT_BLOCK_SIZE, DEFAULT_MAX_REQUEST};
pub use observer::{CountersSnapshot, RequestObserver, RequestTiming, ServerCounters};
pub use server::{bind_unix, shutdown_on, ConnectionError, NbdConfig, NbdServer};
pub use transmission::TransmissionError;
