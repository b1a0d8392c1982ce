//! RFC 7143 sections 6 and 13: what an initiator asks for when it logs in, and how it behaves
//! when the connection drops.

use std::time::Duration;

use iscsi_proto::text::{
    ChapCredentials, DigestKind, InitiatorChapConfig, InitiatorConfig, MutualChap,
    OperationalOffers, SessionType,
};

/// Default initiator name.
pub const DEFAULT_INITIATOR_NAME: &str = "iqn.2026-01.org.pvd:initiator";

/// The largest MaxBurstLength RFC 7143 allows (2^24 - 1), rounded down to whole 512 byte
/// blocks: 16 MiB - 1 KiB.
pub const MAX_BURST_LENGTH: u32 = 16 * 1024 * 1024 - 1024;

/// FirstBurstLength we offer: a write up to 1 MiB goes out as immediate plus unsolicited data
/// without waiting for an R2T (a 512 KiB write to a target whose MaxRecvDataSegmentLength is
/// 256 KiB would otherwise pay one extra round trip for its second half).
pub const FIRST_BURST_LENGTH: u32 = 1024 * 1024;

/// Largest value of the 24-bit length keys (RFC 7143 sections 13.12-13.14).
const MAX_24BIT: u32 = 0x00ff_ffff;

/// A CHAP user name and secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChapSecret {
    pub user: String,
    pub secret: String,
}

impl ChapSecret {
    /// Parses `USER:SECRET`.
    pub fn parse(s: &str) -> Option<ChapSecret> {
        let (user, secret) = s.split_once(':')?;
        if user.is_empty() || secret.is_empty() {
            return None;
        }
        Some(ChapSecret {
            user: user.to_string(),
            secret: secret.to_string(),
        })
    }
}

/// Login parameters and session behaviour.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// `HOST:PORT` (port 3260 when omitted).
    pub portal: String,
    /// The target IQN (ignored by discovery).
    pub target_name: String,
    pub initiator_name: String,
    /// One-way CHAP: our name and secret.
    pub chap: Option<ChapSecret>,
    /// Mutual CHAP: the name and secret the target must prove (requires `chap`).
    pub mutual_chap: Option<ChapSecret>,
    /// Require CRC32C header digests.
    pub header_digest: bool,
    /// Require CRC32C data digests.
    pub data_digest: bool,
    /// What we declare we can receive per PDU.
    pub max_recv_data_segment_length: u32,
    pub max_burst_length: u32,
    pub first_burst_length: u32,
    pub immediate_data: bool,
    pub initial_r2t: bool,
    pub max_outstanding_r2t: u32,
    /// ISID; random (type "random", RFC 7143 section 11.12.5) when None.
    pub isid: Option<[u8; 6]>,
    /// TCP connect and login timeout.
    pub connect_timeout: Duration,
    /// How long commands wait for a lost connection to be replaced before they fail.
    pub replacement_timeout: Duration,
    /// NOP-Out keepalive interval when idle (None: no keepalive).
    pub nop_interval: Option<Duration>,
    /// How long a NOP-Out may stay unanswered before the connection is declared dead.
    pub nop_timeout: Duration,
    /// How long BUSY / TASK SET FULL are retried.
    pub busy_retry_timeout: Duration,
    /// TCP congestion control algorithm of the connection (`TCP_CONGESTION`); None keeps the
    /// system default. A kernel that refuses the name leaves the default (logged, not fatal).
    pub tcp_congestion: Option<String>,
}

impl SessionConfig {
    /// Defaults for a normal session to `target_name` at `portal`.
    pub fn new(portal: impl Into<String>, target_name: impl Into<String>) -> SessionConfig {
        SessionConfig {
            portal: portal.into(),
            target_name: target_name.into(),
            initiator_name: DEFAULT_INITIATOR_NAME.to_string(),
            chap: None,
            mutual_chap: None,
            header_digest: false,
            data_digest: false,
            max_recv_data_segment_length: 256 * 1024,
            max_burst_length: MAX_BURST_LENGTH,
            first_burst_length: FIRST_BURST_LENGTH,
            immediate_data: true,
            initial_r2t: false,
            max_outstanding_r2t: 16,
            isid: None,
            connect_timeout: Duration::from_secs(10),
            replacement_timeout: Duration::from_secs(30),
            nop_interval: Some(Duration::from_secs(5)),
            nop_timeout: Duration::from_secs(15),
            busy_retry_timeout: Duration::from_secs(30),
            tcp_congestion: None,
        }
    }

    /// The portal with the default port added when missing.
    pub fn portal_addr(&self) -> String {
        with_default_port(&self.portal)
    }

    pub(crate) fn offers(&self) -> OperationalOffers {
        let digest = |on: bool| {
            if on {
                vec![DigestKind::Crc32c]
            } else {
                vec![DigestKind::None]
            }
        };
        OperationalOffers {
            header_digest: digest(self.header_digest),
            data_digest: digest(self.data_digest),
            max_recv_data_segment_length: self.max_recv_data_segment_length.clamp(512, MAX_24BIT),
            max_burst_length: self.max_burst_length.clamp(512, MAX_24BIT),
            first_burst_length: self.first_burst_length.clamp(512, MAX_24BIT),
            initial_r2t: self.initial_r2t,
            immediate_data: self.immediate_data,
            max_outstanding_r2t: self.max_outstanding_r2t,
            ..OperationalOffers::default()
        }
    }

    pub(crate) fn login_config(
        &self,
        session_type: SessionType,
        isid: [u8; 6],
        tsih: u16,
    ) -> InitiatorConfig {
        let mut c = match session_type {
            SessionType::Normal => {
                InitiatorConfig::normal(&self.initiator_name, &self.target_name, isid)
            }
            SessionType::Discovery => InitiatorConfig::discovery(&self.initiator_name, isid),
        };
        c.tsih = tsih;
        c.offers = self.offers();
        c.chap = self.chap.as_ref().map(|ch| InitiatorChapConfig {
            credentials: ChapCredentials::new(ch.user.clone(), ch.secret.as_bytes().to_vec()),
            mutual: self.mutual_chap.as_ref().map(|m| MutualChap {
                expected_name: Some(m.user.clone()),
                secret: m.secret.as_bytes().to_vec(),
            }),
            algorithms: Vec::new(),
        });
        c
    }
}

/// `host` -> `host:3260`; `host:port` and `[v6]:port` unchanged.
pub fn with_default_port(portal: &str) -> String {
    let has_port = if let Some(rest) = portal.strip_prefix('[') {
        rest.contains("]:")
    } else {
        portal.matches(':').count() == 1
    };
    if has_port {
        portal.to_string()
    } else {
        format!("{portal}:3260")
    }
}

/// A random ISID of type "random" (RFC 7143 section 11.12.5: T = 0b11).
pub fn random_isid() -> [u8; 6] {
    let r: [u8; 6] = rand::random();
    [0xc0 | (r[0] & 0x3f), r[1], r[2], r[3], r[4], r[5]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chap_secret() {
        let c = ChapSecret::parse("user:se:cret").unwrap();
        assert_eq!((c.user.as_str(), c.secret.as_str()), ("user", "se:cret"));
        assert!(ChapSecret::parse("nocolon").is_none());
        assert!(ChapSecret::parse(":secret").is_none());
        assert!(ChapSecret::parse("user:").is_none());
    }

    #[test]
    fn default_port() {
        assert_eq!(with_default_port("10.0.0.1"), "10.0.0.1:3260");
        assert_eq!(with_default_port("10.0.0.1:3261"), "10.0.0.1:3261");
        assert_eq!(with_default_port("[::1]:3262"), "[::1]:3262");
        assert_eq!(with_default_port("[::1]"), "[::1]:3260");
    }

    #[test]
    fn isid_is_random_type() {
        assert_eq!(random_isid()[0] >> 6, 0b11);
    }

    #[test]
    fn offers_stay_within_24_bits() {
        let mut c = SessionConfig::new("h", "t");
        c.max_burst_length = u32::MAX;
        c.max_recv_data_segment_length = 1;
        let o = c.offers();
        assert_eq!(o.max_burst_length, 0x00ff_ffff);
        assert_eq!(o.max_recv_data_segment_length, 512);
        assert!(SessionConfig::new("h", "t").offers().max_burst_length <= 0x00ff_ffff);
    }
}
