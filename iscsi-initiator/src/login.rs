//! RFC 7143 sections 6.3 and 11.12-11.13: connecting to a portal and running the login phase
//! over one TCP connection, PDU by PDU, with the sans-IO [`InitiatorLogin`] state machine.

use bytes::BytesMut;
use iscsi_proto::digest::DigestConfig;
use iscsi_proto::framing::PduDecoder;
use iscsi_proto::limits::Limits;
use iscsi_proto::pdu::{LoginRequest, Pdu};
use iscsi_proto::text::{
    DigestKind, InitiatorLogin, InitiatorStep, LoginResponseHeader, SessionParams, SessionType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::config::SessionConfig;
use crate::error::{IscsiError, Result};

/// ITT of login requests.
const LOGIN_ITT: u32 = 0;

/// A connection in the full feature phase, before the session's tasks take it over.
pub(crate) struct LoggedIn {
    pub stream: PduStream,
    pub params: SessionParams,
    pub tsih: u16,
    /// The CmdSN of the next non-immediate command.
    pub cmd_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    /// StatSN + 1 of the last login response.
    pub exp_stat_sn: u32,
}

/// A TCP stream that reads and writes whole PDUs (login, discovery, logout).
pub(crate) struct PduStream {
    pub stream: TcpStream,
    pub decoder: PduDecoder,
    pub buf: BytesMut,
}

impl PduStream {
    pub fn new(stream: TcpStream) -> PduStream {
        PduStream {
            stream,
            decoder: PduDecoder::new(Limits::default(), DigestConfig::NONE),
            buf: BytesMut::with_capacity(64 * 1024),
        }
    }

    pub fn digests(&self) -> DigestConfig {
        self.decoder.digests()
    }

    pub async fn write_pdu(&mut self, pdu: &Pdu) -> Result<()> {
        let bytes = pdu.to_bytes(self.digests());
        self.stream.write_all(&bytes).await?;
        Ok(())
    }

    pub async fn read_pdu(&mut self) -> Result<Pdu> {
        loop {
            if let Some(p) = self.decoder.decode(&mut self.buf)? {
                return Ok(p);
            }
            let need = self.decoder.needed(&self.buf)?.max(1);
            self.buf.reserve(need);
            let n = self.stream.read_buf(&mut self.buf).await?;
            if n == 0 {
                return Err(IscsiError::Io("connection closed by the target".into()));
            }
        }
    }
}

/// Connects a TCP socket to `portal` (each address it resolves to in turn) with TCP_NODELAY
/// and the configured congestion control.
pub(crate) async fn connect_tcp(config: &SessionConfig) -> Result<TcpStream> {
    let addr = config.portal_addr();
    let stream = timeout(config.connect_timeout, connect_any(&addr, config))
        .await
        .map_err(|_| IscsiError::Timeout("TCP connect"))?
        .map_err(|e| IscsiError::Io(format!("connect to {addr}: {e}")))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The first address of `addr` that accepts a connection. The congestion control is set
/// before connecting: a connection established under another algorithm (BBR) and switched
/// afterwards would stay paced.
async fn connect_any(addr: &str, config: &SessionConfig) -> std::io::Result<TcpStream> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        if let Some(cc) = &config.tcp_congestion {
            if let Err(e) = socket2::SockRef::from(&socket).set_tcp_congestion(cc.as_bytes()) {
                tracing::debug!(algorithm = %cc, error = %e, "TCP congestion control refused; system default kept");
            }
        }
        match socket.connect(a).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no address to connect to")
    }))
}

/// Connects and logs in (normal or discovery session).
pub(crate) async fn connect_and_login(
    config: &SessionConfig,
    session_type: SessionType,
    isid: [u8; 6],
    tsih: u16,
    cmd_sn: u32,
) -> Result<LoggedIn> {
    let work = async {
        let stream = connect_tcp(config).await?;
        login(
            PduStream::new(stream),
            config,
            session_type,
            isid,
            tsih,
            cmd_sn,
        )
        .await
    };
    timeout(config.connect_timeout, work)
        .await
        .map_err(|_| IscsiError::Timeout("login"))?
}

async fn login(
    mut stream: PduStream,
    config: &SessionConfig,
    session_type: SessionType,
    isid: [u8; 6],
    tsih: u16,
    cmd_sn: u32,
) -> Result<LoggedIn> {
    let mut machine = InitiatorLogin::new(config.login_config(session_type, isid, tsih));
    let mut parts = machine.start();
    let mut exp_stat_sn = 0u32;
    let mut first = true;
    loop {
        let mut req = LoginRequest {
            itt: LOGIN_ITT,
            cid: 0,
            cmd_sn,
            exp_stat_sn,
            ..Default::default()
        };
        parts.apply_to(&mut req);
        tracing::trace!(text = %String::from_utf8_lossy(&req.data).replace('\0', " "), "login request");
        stream.write_pdu(&Pdu::LoginRequest(req)).await?;
        let resp = match stream.read_pdu().await? {
            Pdu::LoginResponse(r) => r,
            Pdu::Reject(r) => {
                return Err(IscsiError::Login(format!(
                    "login request rejected: {:?}",
                    r.reason
                )))
            }
            other => {
                return Err(IscsiError::Protocol(format!(
                    "{:?} during login",
                    other.opcode()
                )))
            }
        };
        if resp.itt != LOGIN_ITT {
            return Err(IscsiError::Protocol(
                "login response with a foreign ITT".into(),
            ));
        }
        if first || resp.status.class() == 0 {
            exp_stat_sn = resp.stat_sn.wrapping_add(1);
        }
        first = false;
        tracing::trace!(text = %String::from_utf8_lossy(&resp.data).replace('\0', " "), status = ?resp.status, "login response");
        let header = LoginResponseHeader::from(&resp);
        match machine.step(&header, &resp.data)? {
            InitiatorStep::Send(next) => parts = next,
            InitiatorStep::Complete(outcome) => {
                let params = outcome.params;
                let digests = DigestConfig {
                    header: params.header_digest == DigestKind::Crc32c,
                    data: params.data_digest == DigestKind::Crc32c,
                };
                stream.decoder.set_digests(digests);
                stream
                    .decoder
                    .set_limits(Limits::with_max_recv_data_segment_length(
                        params.max_recv_data_segment_length,
                    ));
                return Ok(LoggedIn {
                    stream,
                    params,
                    tsih: outcome.tsih,
                    cmd_sn,
                    exp_cmd_sn: resp.exp_cmd_sn,
                    max_cmd_sn: resp.max_cmd_sn,
                    exp_stat_sn,
                });
            }
        }
    }
}

/// The digests a negotiated session uses.
pub(crate) fn digests_of(params: &SessionParams) -> DigestConfig {
    DigestConfig {
        header: params.header_digest == DigestKind::Crc32c,
        data: params.data_digest == DigestKind::Crc32c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn algorithm_of(s: &TcpStream) -> String {
        let raw = socket2::SockRef::from(s).tcp_congestion().unwrap();
        String::from_utf8_lossy(&raw)
            .trim_end_matches('\0')
            .to_string()
    }

    #[tokio::test]
    async fn the_connection_uses_the_configured_congestion_control() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let portal = listener.local_addr().unwrap().to_string();
        let mut config = SessionConfig::new(portal, "iqn.2026-11.io.pvd:t");
        // `reno` is built into every Linux kernel and always allowed.
        config.tcp_congestion = Some("reno".into());
        let s = connect_tcp(&config).await.unwrap();
        assert_eq!(algorithm_of(&s), "reno");
        // A name the kernel does not know leaves the default and still connects.
        config.tcp_congestion = Some("no-such-cc".into());
        let s = connect_tcp(&config).await.unwrap();
        assert_ne!(algorithm_of(&s), "no-such-cc");
        assert!(s.nodelay().unwrap());
    }
}
