//! Starting `tgtd` (the Linux SCSI target framework, userspace) for interop tests.
//!
//! tgtd ignores SIGTERM, so its guard kills it with SIGKILL; each instance gets its own
//! control port (`tgtd -C N`, `tgtadm -C N`) so several can run at once. LUN 0 of a tgtd target is
//! a controller; the backing file is LUN 1.

use crate::{free_port, require_tool, run_ok, wait_for_port, Proc};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A running tgtd with one target whose LUN 1 is a backing file.
pub struct Tgtd {
    pub proc: Proc,
    pub port: u16,
    pub control_port: u16,
    pub iqn: String,
    pub tid: u32,
}

impl Tgtd {
    /// Starts tgtd on 127.0.0.1:`free port`, with target `iqn` (tid 1) and `backing` as LUN 1,
    /// bound to all initiators.
    pub fn start(iqn: &str, backing: &Path) -> Tgtd {
        Tgtd::start_on(iqn, backing, free_port())
    }

    /// Like [`Tgtd::start`] on a given port (e.g. to restart a killed tgtd where it was).
    pub fn start_on(iqn: &str, backing: &Path, port: u16) -> Tgtd {
        let tgtd = require_tool("tgtd");
        require_tool("tgtadm");
        let control_port = loop {
            let p = (rand_u16() % 2000) + 1000;
            if !Path::new(&format!("/var/run/tgtd/socket.{p}")).exists() {
                break p;
            }
        };
        let proc = Proc::spawn(
            "tgtd",
            Command::new(tgtd)
                .arg("-f")
                .arg("-C")
                .arg(control_port.to_string())
                .arg("--iscsi")
                .arg(format!("portal=127.0.0.1:{port}")),
        );
        wait_for_port(
            SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(10),
        );
        let t = Tgtd {
            proc,
            port,
            control_port,
            iqn: iqn.to_string(),
            tid: 1,
        };
        t.tgtadm(&["--op", "new", "--mode", "target", "--tid", "1", "-T", iqn]);
        t.tgtadm(&[
            "--op",
            "new",
            "--mode",
            "logicalunit",
            "--tid",
            "1",
            "--lun",
            "1",
            "-b",
            backing.to_str().expect("utf-8 path"),
        ]);
        t.tgtadm(&[
            "--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL",
        ]);
        t
    }

    /// Runs `tgtadm -C <control port> --lld iscsi ARGS`.
    pub fn tgtadm(&self, args: &[&str]) -> String {
        let out = run_ok(
            Command::new(require_tool("tgtadm"))
                .arg("-C")
                .arg(self.control_port.to_string())
                .arg("--lld")
                .arg("iscsi")
                .args(args),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sets a target-wide iSCSI parameter, e.g. `("MaxRecvDataSegmentLength", "8192")`.
    pub fn set_param(&self, name: &str, value: &str) {
        self.tgtadm(&[
            "--op", "update", "--mode", "target", "--tid", "1", "--name", name, "--value", value,
        ]);
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `iscsi://127.0.0.1:PORT/IQN/1` for libiscsi tools and QEMU.
    pub fn url(&self) -> String {
        format!("iscsi://127.0.0.1:{}/{}/1", self.port, self.iqn)
    }
}

fn rand_u16() -> u16 {
    use rand::Rng;
    rand::thread_rng().gen()
}
