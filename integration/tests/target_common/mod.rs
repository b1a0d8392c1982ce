//! Starting `pvd target` for the target interop tests.

#![allow(dead_code)]

pub mod raw;

use pvd_integration::{free_port, pvd, wait_for_port, Proc};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub const IQN: &str = "iqn.2026-11.io.pvd:test";
pub const INITIATOR: &str = "iqn.2026-11.io.test:init";
pub const INITIATOR2: &str = "iqn.2026-11.io.test:init2";

/// A running `pvd target` serving `luns` as LUN 0, 1, ...
pub struct PvdTarget {
    pub proc: Proc,
    pub port: u16,
}

impl PvdTarget {
    pub fn start(luns: &[&Path], extra: &[&str]) -> PvdTarget {
        Self::start_on(free_port(), luns, extra)
    }

    pub fn start_on(port: u16, luns: &[&Path], extra: &[&str]) -> PvdTarget {
        let mut cmd = pvd();
        cmd.arg("target")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--iqn")
            .arg(IQN);
        for l in luns {
            cmd.arg("--lun").arg(l);
        }
        cmd.args(extra);
        let mut proc = Proc::spawn("pvd target", &mut cmd);
        wait_for_port(Self::addr_of(port), Duration::from_secs(20));
        // Whatever answered must be this target, not another test's server on a reused port.
        if let Ok(Some(status)) = proc.child.try_wait() {
            panic!("pvd target on port {port} exited at start-up: {status}");
        }
        PvdTarget { proc, port }
    }

    fn addr_of(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    pub fn addr(&self) -> SocketAddr {
        Self::addr_of(self.port)
    }

    /// `iscsi://127.0.0.1:PORT/IQN/LUN`.
    pub fn url(&self, lun: u32) -> String {
        format!("iscsi://127.0.0.1:{}/{IQN}/{lun}", self.port)
    }
}
