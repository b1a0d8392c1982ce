//! RFC 7143 sections 4.3 and 11.10-11.11, Appendix C: SendTargets discovery over a discovery
//! session (login, `SendTargets=All` Text Request with continuation, logout).

use bytes::Bytes;
use iscsi_proto::pdu::{LogoutReason, LogoutRequest, Pdu, TextRequest, RESERVED_TAG};
use iscsi_proto::text::{
    parse_send_targets_response, send_targets_request, DiscoveredTarget, SessionType,
};

use crate::config::{random_isid, SessionConfig};
use crate::error::{IscsiError, Result};
use crate::login::connect_and_login;

/// Most Text Response PDUs one SendTargets answer may span.
const MAX_TEXT_ROUNDS: usize = 256;
/// Largest SendTargets answer accepted.
const MAX_TEXT_BYTES: usize = 4 * 1024 * 1024;

/// Lists the targets (and their portals) the portal in `config` reports.
pub async fn discover(config: &SessionConfig) -> Result<Vec<DiscoveredTarget>> {
    let mut li = connect_and_login(config, SessionType::Discovery, random_isid(), 0, 1).await?;
    let mut cmd_sn = li.cmd_sn;
    let mut exp_stat_sn = li.exp_stat_sn;
    let mut ttt = RESERVED_TAG;
    let mut text = Vec::new();
    let mut data = Bytes::from(send_targets_request("All"));
    let itt = 1u32;
    for _ in 0..MAX_TEXT_ROUNDS {
        let req = TextRequest {
            immediate: false,
            final_bit: true,
            cont: false,
            itt,
            ttt,
            cmd_sn,
            exp_stat_sn,
            data: std::mem::take(&mut data),
            ..Default::default()
        };
        li.stream.write_pdu(&Pdu::TextRequest(req)).await?;
        let resp = loop {
            match li.stream.read_pdu().await? {
                Pdu::TextResponse(r) if r.itt == itt => break r,
                Pdu::NopIn(_) | Pdu::AsyncMessage(_) => continue,
                Pdu::Reject(r) => {
                    return Err(IscsiError::Protocol(format!(
                        "SendTargets rejected: {:?}",
                        r.reason
                    )))
                }
                other => {
                    return Err(IscsiError::Protocol(format!(
                        "unexpected {:?} during discovery",
                        other.opcode()
                    )))
                }
            }
        };
        exp_stat_sn = resp.stat_sn.wrapping_add(1);
        text.extend_from_slice(&resp.data);
        if text.len() > MAX_TEXT_BYTES {
            return Err(IscsiError::Protocol("SendTargets answer too long".into()));
        }
        if resp.final_bit && !resp.cont {
            cmd_sn = cmd_sn.wrapping_add(1);
            let targets = parse_send_targets_response(&text)?;
            let logout = LogoutRequest {
                immediate: true,
                reason: LogoutReason::CLOSE_SESSION,
                itt: itt + 1,
                cid: 0,
                cmd_sn,
                exp_stat_sn,
            };
            // Best effort: the answer is already in hand.
            if li
                .stream
                .write_pdu(&Pdu::LogoutRequest(logout))
                .await
                .is_ok()
            {
                let _ = tokio::time::timeout(config.connect_timeout, li.stream.read_pdu()).await;
            }
            return Ok(targets);
        }
        cmd_sn = cmd_sn.wrapping_add(1);
        ttt = resp.ttt;
    }
    Err(IscsiError::Protocol(
        "SendTargets answer spans too many PDUs".into(),
    ))
}
