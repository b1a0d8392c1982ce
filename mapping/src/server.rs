//! Storage servers and the addresses of extent replicas on them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A registered storage server (one LUN of one iSCSI target), numbered by the master.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServerId(pub u32);

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "server-{}", self.0)
    }
}

/// What a target announces when it registers a LUN with the master.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServerInfo {
    /// iSCSI portal, `host:port`.
    pub portal: String,
    /// Target IQN.
    pub iqn: String,
    /// Logical unit number.
    pub lun: u64,
    /// LUN capacity in bytes.
    pub capacity_bytes: u64,
    /// Logical block size in bytes (512 or 4096).
    pub block_size: u32,
}

impl ServerInfo {
    /// The identity of the LUN: registering the same (portal, IQN, LUN) again is a no-op.
    pub fn key(&self) -> (&str, &str, u64) {
        (&self.portal, &self.iqn, self.lun)
    }

    /// How many whole extents of `extent_size` bytes fit on this LUN. Extent `k` covers LBAs
    /// `[k*E/bs, (k+1)*E/bs)`.
    pub fn extent_slots(&self, extent_size: u64) -> u64 {
        if extent_size == 0
            || self.block_size == 0
            || !extent_size.is_multiple_of(self.block_size as u64)
        {
            return 0;
        }
        self.capacity_bytes / extent_size
    }
}

fn default_block_size() -> u32 {
    512
}

/// The address of one replica of an extent: which LUN of which target, and where it starts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExtentReplica {
    pub portal: String,
    pub iqn: String,
    pub lun: u64,
    /// First LBA of the extent on the LUN (in units of `block_size`).
    pub start_lba: u64,
    /// Logical block size of the LUN.
    #[serde(default = "default_block_size")]
    pub block_size: u32,
}

impl ExtentReplica {
    /// Byte offset of the extent's first byte on the LUN.
    pub fn start_byte(&self) -> u64 {
        self.start_lba * self.block_size as u64
    }
}
