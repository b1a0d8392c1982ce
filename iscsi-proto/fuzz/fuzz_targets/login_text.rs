//! Fuzz target: RFC 7143 section 6.1 login/text parsing and both login state machines
//! (sections 6.3, 11.12-11.13) on arbitrary bytes.
//!
//! The first bytes choose header fields; the rest is split into the data segments of a few
//! consecutive login PDUs.

#![no_main]

use iscsi_proto::text::sendtargets::{parse_send_targets_response, target_text_response};
use iscsi_proto::text::{
    parse_text, parse_text_repeatable, ChapAlgorithm, ChapCredentials, ExportedTarget,
    InitiatorConfig, InitiatorLogin, LoginRequestHeader, LoginResponseHeader, LoginStatus,
    SessionType, Stage, TargetChapConfig, TargetConfig, TargetLogin, TargetOutcome, TargetPortal,
};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let _ = parse_text(data);
    let _ = parse_text_repeatable(data);
    let _ = parse_send_targets_response(data);
    if data.len() < 4 {
        return;
    }
    let (ctl, rest) = data.split_at(4);
    let segments: Vec<&[u8]> = rest.split(|&b| b == 0xff).take(6).collect();

    let mut cfg = TargetConfig::new(vec![ExportedTarget::new(
        "iqn.2026-01.org.pvd:t",
        vec![TargetPortal::new("127.0.0.1", 3260, 1)],
    )]);
    if ctl[0] & 1 == 1 {
        cfg.chap = Some(TargetChapConfig {
            users: vec![ChapCredentials::new("u", b"fuzz-secret".to_vec())],
            mutual: Some(ChapCredentials::new("t", b"fuzz-target".to_vec())),
            algorithms: ChapAlgorithm::ALL.to_vec(),
        });
    }
    let _ = target_text_response(&cfg.targets, rest, "iqn.x", SessionType::Discovery, None);
    let mut target = TargetLogin::new(Arc::new(cfg), 1);
    for (n, seg) in segments.iter().enumerate() {
        let bits = ctl[1].rotate_left(n as u32);
        let h = LoginRequestHeader {
            transit: bits & 0x80 != 0,
            cont: bits & 0x40 != 0,
            csg: Stage((bits >> 2) & 3),
            nsg: Stage(bits & 3),
            version_max: 0,
            version_min: ctl[2] & 1,
            isid: [0; 6],
            tsih: 0,
        };
        if let TargetOutcome::Failed(_) = target.step(&h, seg).outcome {
            break;
        }
    }

    let mut initiator = if ctl[0] & 2 == 0 {
        InitiatorLogin::new(InitiatorConfig::normal(
            "iqn.i",
            "iqn.2026-01.org.pvd:t",
            [0; 6],
        ))
    } else {
        InitiatorLogin::new(InitiatorConfig::discovery("iqn.i", [0; 6]))
    };
    let mut csg = initiator.start().header.csg;
    for (n, seg) in segments.iter().enumerate() {
        let bits = ctl[3].rotate_left(n as u32);
        let h = LoginResponseHeader {
            transit: bits & 0x80 != 0,
            cont: bits & 0x40 != 0,
            csg,
            nsg: Stage(bits & 3),
            version_max: 0,
            version_active: 0,
            isid: [0; 6],
            tsih: 1,
            status: if bits & 0x20 == 0 {
                LoginStatus::SUCCESS
            } else {
                LoginStatus(u16::from(bits))
            },
        };
        match initiator.step(&h, seg) {
            Ok(iscsi_proto::text::InitiatorStep::Send(r)) => csg = r.header.csg,
            _ => break,
        }
    }
});
