//! Starting the system's `rpcbind` for tests that register ONC RPC programs.
//!
//! All tests share one rpcbind on 127.0.0.1:111. [`ensure_rpcbind`] starts it (as root, with
//! `rpcbind -w`) if no rpcbind runs; a file lock in the temp directory serialises the check
//! across test threads and test processes. An rpcbind started here is left running for the
//! tests that follow (it holds no state a later test could trip over: every test registers a
//! random program number and unregisters it).

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

/// The rpcbind address tests use.
pub const RPCBIND_ADDR: &str = "127.0.0.1:111";

/// Makes sure rpcbind runs and answers on 127.0.0.1:111; panics if it cannot be started.
pub fn ensure_rpcbind() {
    let rpcbind = crate::require_tool("rpcbind");
    let lock_path = std::env::temp_dir().join("pvd-rpcbind.lock");
    let lock = std::fs::File::create(&lock_path).expect("create rpcbind lock file");
    // SAFETY: flock on a file descriptor we own; released when `lock` is closed.
    let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock {}", lock_path.display());
    let addr: SocketAddr = RPCBIND_ADDR.parse().expect("rpcbind address");
    let running = Command::new("pgrep")
        .args(["-x", "rpcbind"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !running {
        let out = Command::new(&rpcbind)
            .arg("-w")
            .output()
            .unwrap_or_else(|e| panic!("cannot start rpcbind: {e}"));
        assert!(
            out.status.success(),
            "rpcbind -w failed (tests that use rpcbind run as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    crate::wait_for_port(addr, Duration::from_secs(10));
    drop(lock);
}

/// A random ONC RPC program number in the user range 0x20000000-0x3fffffff.
pub fn random_program() -> u32 {
    use rand::Rng;
    rand::thread_rng().gen_range(0x2000_0000..=0x3fff_ffff)
}
