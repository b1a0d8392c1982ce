//! The configuration of a running target: where it listens, which targets (IQNs) it exports,
//! their logical units and their access rules (RFC 7143 sections 4.2.7 names, 12 CHAP).
//!
//! The same structure is the JSON schema of `pvd target --config FILE`:
//!
//! ```json
//! {
//!   "listen": "0.0.0.0:3260",
//!   "advertise": "10.0.0.5:3260",
//!   "targets": [
//!     {
//!       "iqn": "iqn.2026-11.io.pvd:disk0",
//!       "alias": "disk0",
//!       "allow_initiators": ["iqn.2026-11.io.pvd:client"],
//!       "chap": {"user": "u", "secret": "0123456789ab"},
//!       "chap_mutual": {"user": "target", "secret": "ba9876543210"},
//!       "luns": [
//!         {"path": "/srv/disk0.img", "block_size": 512, "read_only": false,
//!          "emulate_disk": "latency_us=4000,mbps=120", "io_engine": "adaptive"}
//!       ]
//!     }
//!   ],
//!   "cmd_window": 128,
//!   "nop_interval_secs": 10,
//!   "nop_timeout_secs": 30,
//!   "tcp_congestion": "cubic"
//! }
//! ```
//!
//! Every field but `listen`, `targets[].iqn` and `luns[].path` is optional.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::lu::{DiskEmulation, IoEngine, LuConfig};

/// Most commands a session may have outstanding (MaxCmdSN - ExpCmdSN + 1 when idle).
pub const DEFAULT_CMD_WINDOW: u32 = 128;
/// Upper bound for [`ServerConfig::cmd_window`].
pub const MAX_CMD_WINDOW: u32 = 4096;
/// Seconds of silence from an initiator before the target pings it with a NOP-In.
pub const DEFAULT_NOP_INTERVAL_SECS: u64 = 10;
/// Seconds a pinged initiator has to answer before its connection is dropped.
pub const DEFAULT_NOP_TIMEOUT_SECS: u64 = 30;

/// A whole target server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on (port 0 picks a free one; see `TargetHandle::local_addr`).
    pub listen: SocketAddr,
    /// `host:port` announced in SendTargets answers and to the master (default: `listen`).
    #[serde(default)]
    pub advertise: Option<String>,
    pub targets: Vec<TargetSpec>,
    /// Commands one session may have outstanding.
    #[serde(default = "default_cmd_window")]
    pub cmd_window: u32,
    /// Seconds of silence before a NOP-In ping (0: never ping).
    #[serde(default = "default_nop_interval")]
    pub nop_interval_secs: u64,
    /// Seconds an initiator has to answer a ping.
    #[serde(default = "default_nop_timeout")]
    pub nop_timeout_secs: u64,
    /// Microseconds the event loop keeps polling its sockets after a command arrives or is
    /// answered, instead of sleeping (0: never poll; see [`crate::busy_poll`] for which
    /// commands count).
    #[serde(default)]
    pub poll_us: u64,
    /// TCP congestion control of accepted connections ([`crate::tcp_congestion`]; `system`:
    /// the system default).
    #[serde(default = "default_tcp_congestion")]
    pub tcp_congestion: String,
}

pub(crate) fn default_tcp_congestion() -> String {
    crate::tcp_congestion::DEFAULT.to_string()
}

/// One exported target (IQN).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    pub iqn: String,
    #[serde(default)]
    pub alias: Option<String>,
    /// LUN n is `luns[n]`.
    pub luns: Vec<LunSpec>,
    /// Initiator names allowed to log in; empty: everyone.
    #[serde(default)]
    pub allow_initiators: Vec<String>,
    /// CHAP credentials initiators must present.
    #[serde(default)]
    pub chap: Option<ChapSpec>,
    /// Credentials the target answers mutual CHAP with.
    #[serde(default)]
    pub chap_mutual: Option<ChapSpec>,
}

/// A CHAP user name and secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChapSpec {
    pub user: String,
    pub secret: String,
}

impl std::str::FromStr for ChapSpec {
    type Err = ConfigError;

    /// `USER:SECRET`.
    fn from_str(s: &str) -> Result<ChapSpec, ConfigError> {
        let (user, secret) = s
            .split_once(':')
            .filter(|(u, s)| !u.is_empty() && !s.is_empty())
            .ok_or_else(|| ConfigError::BadChap(s.to_string()))?;
        Ok(ChapSpec {
            user: user.to_string(),
            secret: secret.to_string(),
        })
    }
}

/// One logical unit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LunSpec {
    /// Regular file or block device; its size is the capacity.
    pub path: PathBuf,
    #[serde(default = "default_block_size")]
    pub block_size: u32,
    #[serde(default)]
    pub read_only: bool,
    /// `latency_us=L,mbps=B`: model a spinning disk.
    #[serde(default)]
    pub emulate_disk: Option<String>,
    /// Unit serial number (VPD page 80h); derived from the path when absent.
    #[serde(default)]
    pub serial: Option<String>,
    /// How backing-store I/O runs: `adaptive` (default: page-cache hits inline, the rest on
    /// I/O threads), `pool` (always I/O threads) or `inline` (on the event loop).
    #[serde(default)]
    pub io_engine: Option<String>,
}

impl LunSpec {
    /// A read-write LUN over `path` with 512-byte blocks.
    pub fn new(path: impl Into<PathBuf>) -> LunSpec {
        LunSpec {
            path: path.into(),
            block_size: 512,
            read_only: false,
            emulate_disk: None,
            serial: None,
            io_engine: None,
        }
    }

    /// The logical unit configuration for LUN `lun`.
    pub fn lu_config(&self, lun: u64) -> Result<LuConfig, ConfigError> {
        let mut c = LuConfig::new(&self.path, lun);
        c.block_size = self.block_size;
        c.read_only = self.read_only;
        c.serial = self.serial.clone();
        if let Some(e) = &self.io_engine {
            c.engine = parse_io_engine(e)?;
        }
        if let Some(e) = &self.emulate_disk {
            let model: DiskEmulation = e
                .parse()
                .map_err(|err| ConfigError::BadEmulation(format!("{e}: {err}")))?;
            c.emulate = Some(model);
            c.non_rotating = false;
        }
        Ok(c)
    }
}

/// `adaptive`, `pool` or `inline`.
pub fn parse_io_engine(s: &str) -> Result<IoEngine, ConfigError> {
    match s {
        "adaptive" => Ok(IoEngine::Adaptive),
        "pool" => Ok(IoEngine::BlockingPool),
        "inline" => Ok(IoEngine::Inline),
        other => Err(ConfigError::BadIoEngine(other.to_string())),
    }
}

/// Why a configuration was refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("CHAP credentials `{0}` are not USER:SECRET")]
    BadChap(String),
    #[error("I/O engine `{0}` is not adaptive, pool or inline")]
    BadIoEngine(String),
    #[error("disk emulation {0}")]
    BadEmulation(String),
    #[error("no target configured")]
    NoTargets,
    #[error("target {0} has no LUN")]
    NoLuns(String),
    #[error("target {0} is configured twice")]
    DuplicateTarget(String),
    #[error("target {iqn} has {count} LUNs, at most {max} are supported")]
    TooManyLuns {
        iqn: String,
        count: usize,
        max: usize,
    },
    #[error("poll_us {0} is above {max}", max = crate::busy_poll::MAX_POLL_BUDGET.as_micros())]
    BadPoll(u64),
    #[error("cmd_window {0} is not within 1..={MAX_CMD_WINDOW}")]
    BadWindow(u32),
    #[error("tcp_congestion: {0}")]
    BadTcpCongestion(#[from] crate::tcp_congestion::CongestionNameError),
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Most LUNs per target (flat space addressing, SAM-5 section 4.7.7).
pub const MAX_LUNS_PER_TARGET: usize = 16384;

impl ServerConfig {
    /// A server with one target `iqn` whose LUNs are `paths`.
    pub fn single(listen: SocketAddr, iqn: &str, paths: &[PathBuf]) -> ServerConfig {
        ServerConfig {
            listen,
            advertise: None,
            targets: vec![TargetSpec {
                iqn: iqn.to_string(),
                alias: None,
                luns: paths.iter().map(LunSpec::new).collect(),
                allow_initiators: Vec::new(),
                chap: None,
                chap_mutual: None,
            }],
            cmd_window: DEFAULT_CMD_WINDOW,
            nop_interval_secs: DEFAULT_NOP_INTERVAL_SECS,
            nop_timeout_secs: DEFAULT_NOP_TIMEOUT_SECS,
            poll_us: 0,
            tcp_congestion: default_tcp_congestion(),
        }
    }

    /// Reads a JSON configuration file.
    pub fn from_file(path: &std::path::Path) -> Result<ServerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Checks the rules the types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.targets.is_empty() {
            return Err(ConfigError::NoTargets);
        }
        if self.cmd_window == 0 || self.cmd_window > MAX_CMD_WINDOW {
            return Err(ConfigError::BadWindow(self.cmd_window));
        }
        if std::time::Duration::from_micros(self.poll_us) > crate::busy_poll::MAX_POLL_BUDGET {
            return Err(ConfigError::BadPoll(self.poll_us));
        }
        crate::tcp_congestion::parse_name(&self.tcp_congestion)?;
        for (i, t) in self.targets.iter().enumerate() {
            if t.luns.is_empty() {
                return Err(ConfigError::NoLuns(t.iqn.clone()));
            }
            if t.luns.len() > MAX_LUNS_PER_TARGET {
                return Err(ConfigError::TooManyLuns {
                    iqn: t.iqn.clone(),
                    count: t.luns.len(),
                    max: MAX_LUNS_PER_TARGET,
                });
            }
            if self.targets[..i].iter().any(|o| o.iqn == t.iqn) {
                return Err(ConfigError::DuplicateTarget(t.iqn.clone()));
            }
        }
        Ok(())
    }
}

fn default_cmd_window() -> u32 {
    DEFAULT_CMD_WINDOW
}
fn default_nop_interval() -> u64 {
    DEFAULT_NOP_INTERVAL_SECS
}
fn default_nop_timeout() -> u64 {
    DEFAULT_NOP_TIMEOUT_SECS
}
fn default_block_size() -> u32 {
    512
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_budget_is_checked() {
        let mut c = ServerConfig::single(
            "127.0.0.1:0".parse().unwrap(),
            "iqn.2026-11.io.pvd:t",
            &[PathBuf::from("/dev/null")],
        );
        assert!(c.validate().is_ok());
        c.poll_us = 10_000;
        assert!(c.validate().is_ok());
        c.poll_us = 10_001;
        let e = c.validate().unwrap_err();
        assert!(matches!(e, ConfigError::BadPoll(10_001)), "{e}");
        assert_eq!(e.to_string(), "poll_us 10001 is above 10000");
    }

    #[test]
    fn tcp_congestion_defaults_to_cubic_and_is_checked() {
        let json = r#"{"listen": "127.0.0.1:3260",
            "targets": [{"iqn": "iqn.2026-11.io.pvd:t", "luns": [{"path": "/dev/null"}]}]}"#;
        let mut c: ServerConfig = serde_json::from_str(json).unwrap();
        assert_eq!(c.tcp_congestion, "cubic");
        assert!(c.validate().is_ok());
        c.tcp_congestion = "system".into();
        assert!(c.validate().is_ok());
        c.tcp_congestion = "bb r".into();
        let e = c.validate().unwrap_err();
        assert!(matches!(e, ConfigError::BadTcpCongestion(_)), "{e}");
    }
}
