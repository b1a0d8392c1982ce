//! RFC 7143 section 12.1.3: CHAP (RFC 1994) as used in the iSCSI security stage.
//!
//! The response to a challenge is `H(identifier || secret || challenge)` where H is the
//! algorithm chosen with CHAP_A. Algorithm numbers follow the IANA PPP registry as LIO and
//! open-iscsi use them: 5 MD5, 6 SHA-1, 7 SHA-256, 8 SHA3-256. Binary values travel as `0x` hex
//! or `0b` base64 (RFC 7143 section 6.1); we emit hex.

use super::error::ChapError;
use base64::Engine;
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use sha3::Sha3_256;
use std::fmt;

/// A CHAP_A algorithm number (open: unknown numbers parse and policy refuses them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChapAlgorithm(pub u8);

impl ChapAlgorithm {
    pub const MD5: ChapAlgorithm = ChapAlgorithm(5);
    pub const SHA1: ChapAlgorithm = ChapAlgorithm(6);
    pub const SHA256: ChapAlgorithm = ChapAlgorithm(7);
    pub const SHA3_256: ChapAlgorithm = ChapAlgorithm(8);

    /// Every algorithm we implement, strongest first.
    pub const ALL: [ChapAlgorithm; 4] = [
        ChapAlgorithm::SHA3_256,
        ChapAlgorithm::SHA256,
        ChapAlgorithm::SHA1,
        ChapAlgorithm::MD5,
    ];

    /// What an initiator offers by default, strongest first: SHA3-256, SHA-1, MD5. SHA-256 (7)
    /// is left out because tgtd 1.0.85 uses the number 7 for SHA-1 (checked against a live
    /// tgtd: it accepts an SHA-1 response to CHAP_A=7 and refuses an SHA-256 one), so offering
    /// it breaks CHAP with tgtd; tgtd picks MD5 from this list.
    pub const INITIATOR_DEFAULT: [ChapAlgorithm; 3] = [
        ChapAlgorithm::SHA3_256,
        ChapAlgorithm::SHA1,
        ChapAlgorithm::MD5,
    ];

    /// Digest length in bytes, or None for an algorithm we do not implement.
    pub fn digest_len(self) -> Option<usize> {
        match self {
            ChapAlgorithm::MD5 => Some(16),
            ChapAlgorithm::SHA1 => Some(20),
            ChapAlgorithm::SHA256 | ChapAlgorithm::SHA3_256 => Some(32),
            _ => None,
        }
    }

    /// Whether we implement it.
    pub fn is_supported(self) -> bool {
        self.digest_len().is_some()
    }

    /// `H(id || secret || challenge)`, or None for an algorithm we do not implement.
    pub fn response(self, id: u8, secret: &[u8], challenge: &[u8]) -> Option<Vec<u8>> {
        fn run<D: Digest>(id: u8, secret: &[u8], challenge: &[u8]) -> Vec<u8> {
            let mut h = D::new();
            h.update([id]);
            h.update(secret);
            h.update(challenge);
            h.finalize().to_vec()
        }
        match self {
            ChapAlgorithm::MD5 => Some(run::<Md5>(id, secret, challenge)),
            ChapAlgorithm::SHA1 => Some(run::<Sha1>(id, secret, challenge)),
            ChapAlgorithm::SHA256 => Some(run::<Sha256>(id, secret, challenge)),
            ChapAlgorithm::SHA3_256 => Some(run::<Sha3_256>(id, secret, challenge)),
            _ => None,
        }
    }

    /// The challenge length we send with this algorithm: at least the digest size, at least 16.
    pub fn challenge_len(self) -> usize {
        self.digest_len().unwrap_or(16).max(16)
    }
}

impl fmt::Display for ChapAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Shortest challenge we accept from a peer.
pub const MIN_CHALLENGE_LEN: usize = 8;
/// Longest challenge we accept from a peer (RFC 7143 section 12.1.3 bounds CHAP_C at 1024
/// bytes).
pub const MAX_CHALLENGE_LEN: usize = 1024;

/// Parses a CHAP_A list (`5,6,7`), keeping the numbers 0..=255 in order and skipping the rest.
pub fn parse_algorithm_list(value: &str) -> Vec<ChapAlgorithm> {
    value
        .split(',')
        .filter_map(|s| s.trim().parse::<u8>().ok())
        .map(ChapAlgorithm)
        .collect()
}

/// Formats a CHAP_A list.
pub fn format_algorithm_list(list: &[ChapAlgorithm]) -> String {
    list.iter()
        .map(|a| a.0.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Decodes a binary value: `0x`/`0X` hex (an odd digit count has an implied leading zero) or
/// `0b`/`0B` base64 (RFC 7143 section 6.1).
pub fn decode_binary(value: &str) -> Result<Vec<u8>, ChapError> {
    let bad = || ChapError::BadBinaryEncoding {
        value: value.chars().take(64).collect(),
    };
    if let Some(h) = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        if h.is_empty() {
            return Err(bad());
        }
        let padded;
        let h = if h.len() % 2 == 1 {
            padded = format!("0{h}");
            padded.as_str()
        } else {
            h
        };
        return hex::decode(h).map_err(|_| bad());
    }
    if let Some(b) = value
        .strip_prefix("0b")
        .or_else(|| value.strip_prefix("0B"))
    {
        if b.is_empty() {
            return Err(bad());
        }
        return base64::engine::general_purpose::STANDARD
            .decode(b)
            .map_err(|_| bad());
    }
    Err(bad())
}

/// Encodes a binary value as `0x` lower-case hex.
pub fn encode_binary(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// Parses CHAP_I: a decimal number 0..=255.
pub fn parse_identifier(value: &str) -> Result<u8, ChapError> {
    let bad = || ChapError::InvalidIdentifier {
        value: value.chars().take(64).collect(),
    };
    let n = super::keys::parse_number(value).ok_or_else(bad)?;
    u8::try_from(n).map_err(|_| bad())
}

/// Checks a received challenge's length.
pub fn check_challenge(challenge: &[u8]) -> Result<(), ChapError> {
    if challenge.len() < MIN_CHALLENGE_LEN || challenge.len() > MAX_CHALLENGE_LEN {
        return Err(ChapError::ChallengeLength {
            len: challenge.len(),
            min: MIN_CHALLENGE_LEN,
            max: MAX_CHALLENGE_LEN,
        });
    }
    Ok(())
}

/// Compares a received CHAP_R with the expected response in constant time.
pub fn verify_response(
    algorithm: ChapAlgorithm,
    id: u8,
    secret: &[u8],
    challenge: &[u8],
    received: &[u8],
) -> Result<(), ChapError> {
    let expected =
        algorithm
            .response(id, secret, challenge)
            .ok_or(ChapError::NoCommonAlgorithm {
                value: algorithm.to_string(),
            })?;
    if received.len() != expected.len() {
        return Err(ChapError::ResponseLength {
            len: received.len(),
            expected: expected.len(),
        });
    }
    let diff = expected
        .iter()
        .zip(received)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff != 0 {
        return Err(ChapError::ResponseMismatch);
    }
    Ok(())
}

/// A fresh random challenge for `algorithm` and a random identifier.
pub fn new_challenge(algorithm: ChapAlgorithm) -> (u8, Vec<u8>) {
    use rand::RngCore;
    let mut rng = rand::thread_rng();
    let mut c = vec![0u8; algorithm.challenge_len()];
    rng.fill_bytes(&mut c);
    let id = (rng.next_u32() & 0xff) as u8;
    (id, c)
}

/// A CHAP name and secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ChapCredentials {
    pub name: String,
    pub secret: Vec<u8>,
}

impl ChapCredentials {
    /// Credentials from a name and a secret.
    pub fn new(name: impl Into<String>, secret: impl Into<Vec<u8>>) -> ChapCredentials {
        ChapCredentials {
            name: name.into(),
            secret: secret.into(),
        }
    }
}

impl fmt::Debug for ChapCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChapCredentials")
            .field("name", &self.name)
            .field("secret", &"<hidden>")
            .finish()
    }
}
