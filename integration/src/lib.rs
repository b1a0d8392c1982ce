//! Helpers for tests that run pvd's real programs against real peers (tgtd, libiscsi, QEMU,
//! rpcbind, libnbd, fio).
//!
//! Every server a test starts listens on 127.0.0.1 on a free port (or in a namespace the test
//! made) and is killed when its [`Proc`] guard drops. Peers are installed by `scripts/test`
//! (through `scripts/install-peers`); a missing peer fails the test loudly instead of skipping it.

pub mod rpcbind;
pub mod tgtd;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `pvd` binary of this build (same profile as the running test).
///
/// `PVD_BIN` overrides it. Cargo builds `pvd` before running the tests because the `pvd`
/// package has integration tests of its own.
pub fn pvd_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PVD_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test-binary>
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("test binary lives in target/<profile>/deps");
    let bin = profile_dir.join("pvd");
    assert!(
        bin.exists(),
        "pvd binary not found at {} (build it with `cargo build --bin pvd` in the same profile, or set PVD_BIN)",
        bin.display()
    );
    bin
}

/// A `Command` for `pvd` with logs at warn unless `PVD_LOG` says otherwise.
pub fn pvd() -> Command {
    let mut c = Command::new(pvd_bin());
    if std::env::var_os("PVD_LOG").is_none() {
        c.env("PVD_LOG", "warn");
    }
    c
}

/// Fails the test (loudly) unless `tool` is installed; `scripts/install-peers` installs them all.
pub fn require_tool(tool: &str) -> PathBuf {
    for dir in [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/bin",
        "/usr/local/sbin",
    ] {
        let p = PathBuf::from(dir).join(tool);
        if p.exists() {
            return p;
        }
    }
    panic!("peer program `{tool}` is not installed; run ./scripts/install-peers (as root)");
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// Ports are drawn at random below Linux's ephemeral range (32768-60999), so no client socket's
/// source port can take the port between this check and the server's bind, and a client can never
/// connect to itself while the server is still starting (a self-connect on a port in the ephemeral
/// range looks like a listening server). Checked by binding, so parallel tests rarely collide.
pub fn free_port() -> u16 {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    loop {
        let port: u16 = rng.gen_range(10_000..32_000);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Waits until something accepts TCP connections on `addr`.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listening on {addr} after {timeout:?}");
}

/// A child process killed (SIGKILL) and reaped when dropped.
pub struct Proc {
    pub name: String,
    pub child: Child,
}

impl Proc {
    /// Spawns `cmd` with stdout/stderr inherited (so test output shows them on failure).
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name: name.to_string(),
            child,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGKILL now and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `cmd` to completion, panicking with its output if it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Runs `cmd` expecting it to fail cleanly (non-zero exit, no panic); returns its stderr.
pub fn run_fails(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "{cmd:?} should fail; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!err.contains("panicked"), "{cmd:?} panicked:\n{err}");
    err
}

/// A file of `len` bytes of reproducible pseudo-random data.
pub fn random_file(path: &std::path::Path, len: usize, seed: u64) {
    use rand::{RngCore, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut buf = vec![0u8; len];
    rng.fill_bytes(&mut buf);
    std::fs::write(path, &buf).expect("write random file");
}

/// A sparse file of `len` bytes (a fresh backing store for a LUN).
pub fn sparse_file(path: &std::path::Path, len: u64) {
    let f = std::fs::File::create(path).expect("create backing file");
    f.set_len(len).expect("set_len");
}
