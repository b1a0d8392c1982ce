//! The TCP congestion control of pvd's data connections (`TCP_CONGESTION`, Linux tcp(7)):
//! `pvd target --tcp-congestion`, `pvd tapdisk --tcp-congestion` and the bench client.
//!
//! Why pvd chooses one instead of taking the system's: a storage connection carries bursts
//! (a 512 KiB write) followed by a wait for a small answer, and some algorithms handle that
//! badly. BBR paces each burst and, on loopback, now and then held a request's data back for
//! 18-63 ms. Measured on a 2-vCPU machine whose default is BBR: 512 KiB and 1 MiB writes at
//! queue depth 1, in 0.35 s points, lost 10-20% of a point's throughput in about one point
//! out of four. Under cubic, 12 alternated demo runs showed no such dip. So pvd's data
//! connections use [`DEFAULT`] unless told otherwise; [`SYSTEM`] keeps the system default
//! (`net.ipv4.tcp_congestion_control`).

use std::sync::atomic::{AtomicBool, Ordering};

use socket2::SockRef;
use thiserror::Error;

/// The algorithm pvd's data connections use unless told otherwise.
pub const DEFAULT: &str = "cubic";
/// The `--tcp-congestion` value that leaves sockets on the system default.
pub const SYSTEM: &str = "system";
/// Longest algorithm name the kernel accepts (`TCP_CA_NAME_MAX` is 16 with the NUL).
pub const MAX_NAME_LEN: usize = 15;

/// Why a `--tcp-congestion` value was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CongestionNameError {
    #[error("TCP congestion control name is empty")]
    Empty,
    #[error("TCP congestion control name is {0} bytes long; the kernel takes at most {max}", max = MAX_NAME_LEN)]
    TooLong(usize),
    #[error("`{0}` is not a TCP congestion control name (letters, digits, `_` and `-` only)")]
    BadCharacter(String),
}

/// Checks a `--tcp-congestion` value: [`SYSTEM`], or an algorithm name such as `cubic`
/// (whether this kernel has it is only known when a socket takes it).
pub fn parse_name(s: &str) -> Result<String, CongestionNameError> {
    if s.is_empty() {
        return Err(CongestionNameError::Empty);
    }
    if s.len() > MAX_NAME_LEN {
        return Err(CongestionNameError::TooLong(s.len()));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(CongestionNameError::BadCharacter(s.to_string()));
    }
    Ok(s.to_string())
}

/// The algorithm a `--tcp-congestion` value asks for: None for [`SYSTEM`].
pub fn algorithm(name: &str) -> Option<&str> {
    (name != SYSTEM).then_some(name)
}

/// Whether a socket refused the algorithm already (so it is reported once per process).
static REFUSAL_REPORTED: AtomicBool = AtomicBool::new(false);

/// Puts `sock` on the algorithm `name` ([`SYSTEM`]: leaves it alone). A kernel that lacks the
/// algorithm, or does not allow it to this user (`net.ipv4.tcp_allowed_congestion_control`),
/// leaves the socket on the system default: the connection works either way, so that is a
/// warning (once per process), not an error. Returns whether the socket now uses `name`.
pub fn apply(sock: SockRef<'_>, name: &str) -> bool {
    let Some(name) = algorithm(name) else {
        return false;
    };
    match sock.set_tcp_congestion(name.as_bytes()) {
        Ok(()) => true,
        Err(e) => {
            if !REFUSAL_REPORTED.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    algorithm = name,
                    error = %e,
                    "TCP congestion control not available; connections keep the system default"
                );
            }
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    fn algorithm_of(s: &TcpStream) -> String {
        let raw = SockRef::from(s).tcp_congestion().unwrap();
        String::from_utf8_lossy(&raw)
            .trim_end_matches('\0')
            .to_string()
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(parse_name("cubic").unwrap(), "cubic");
        assert_eq!(parse_name(SYSTEM).unwrap(), SYSTEM);
        assert_eq!(algorithm("cubic"), Some("cubic"));
        assert_eq!(algorithm(SYSTEM), None);
        assert_eq!(parse_name(""), Err(CongestionNameError::Empty));
        assert_eq!(
            parse_name("a-name-far-too-long"),
            Err(CongestionNameError::TooLong(19))
        );
        assert!(matches!(
            parse_name("cu bic"),
            Err(CongestionNameError::BadCharacter(_))
        ));
    }

    #[test]
    fn connections_take_the_listeners_algorithm() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(apply(SockRef::from(&listener), "reno"));
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert_eq!(algorithm_of(&accepted), "reno");
    }

    #[test]
    fn a_socket_takes_the_algorithm_or_keeps_its_own() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let s = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        // `reno` is built into every Linux kernel and always allowed.
        assert!(apply(SockRef::from(&s), "reno"));
        assert_eq!(algorithm_of(&s), "reno");
        // `system` leaves the socket alone; an unknown algorithm is refused, not fatal.
        assert!(!apply(SockRef::from(&s), SYSTEM));
        assert_eq!(algorithm_of(&s), "reno");
        assert!(!apply(SockRef::from(&s), "no-such-cc"));
        assert_eq!(algorithm_of(&s), "reno");
    }
}
