//! Real-peer vectors: the login and text PDUs libiscsi sent to tgtd and tgtd's answers
//! (tests/vectors/login_plain.txt, login_chap.txt), fed to our state machines: our target
//! answers libiscsi's requests, our initiator accepts tgtd's responses, and our CHAP arithmetic
//! reproduces both peers' CHAP_R values.

use iscsi_proto::text::chap::{decode_binary, parse_identifier, verify_response, ChapAlgorithm};
use iscsi_proto::text::kv::find;
use iscsi_proto::text::sendtargets::{parse_send_targets_response, target_text_response};
use iscsi_proto::text::{
    parse_text, ChapCredentials, ChapError, DigestKind, ExportedTarget, InitiatorChapConfig,
    InitiatorConfig, InitiatorLogin, InitiatorStep, LoginError, LoginRequestHeader,
    LoginResponseHeader, LoginStatus, SessionType, Stage, TargetChapConfig, TargetConfig,
    TargetLogin, TargetOutcome, TargetPortal,
};
use std::sync::Arc;

const TARGET: &str = "iqn.2026-01.org.pvd:cap";
const INITIATOR: &str = "iqn.2026-01.org.pvd:libiscsi";

#[derive(Debug)]
struct Pdu {
    from_initiator: bool,
    bytes: Vec<u8>,
}

impl Pdu {
    fn opcode(&self) -> u8 {
        self.bytes[0] & 0x3f
    }
    fn data(&self) -> &[u8] {
        let ahs = self.bytes[4] as usize * 4;
        &self.bytes[48 + ahs..]
    }
    fn flags(&self) -> (bool, bool, Stage, Stage) {
        let f = self.bytes[1];
        (
            f & 0x80 != 0,
            f & 0x40 != 0,
            Stage((f >> 2) & 3),
            Stage(f & 3),
        )
    }
    fn isid(&self) -> [u8; 6] {
        self.bytes[8..14].try_into().unwrap()
    }
    fn tsih(&self) -> u16 {
        u16::from_be_bytes([self.bytes[14], self.bytes[15]])
    }
    fn request_header(&self) -> LoginRequestHeader {
        let (transit, cont, csg, nsg) = self.flags();
        LoginRequestHeader {
            transit,
            cont,
            csg,
            nsg,
            version_max: self.bytes[2],
            version_min: self.bytes[3],
            isid: self.isid(),
            tsih: self.tsih(),
        }
    }
    fn response_header(&self) -> LoginResponseHeader {
        let (transit, cont, csg, nsg) = self.flags();
        LoginResponseHeader {
            transit,
            cont,
            csg,
            nsg,
            version_max: self.bytes[2],
            version_active: self.bytes[3],
            isid: self.isid(),
            tsih: self.tsih(),
            status: LoginStatus::from_parts(self.bytes[36], self.bytes[37]),
        }
    }
}

/// Connections, each a list of PDUs in capture order.
fn load(text: &str) -> Vec<Vec<Pdu>> {
    let mut conns: Vec<Vec<Pdu>> = Vec::new();
    for line in text.lines() {
        if line == "# connection" {
            conns.push(Vec::new());
        } else if let Some(h) = line.strip_prefix("> ").or_else(|| line.strip_prefix("< ")) {
            conns.last_mut().unwrap().push(Pdu {
                from_initiator: line.starts_with('>'),
                bytes: hex::decode(h).unwrap(),
            });
        }
    }
    conns
}

const PLAIN: &str = include_str!("vectors/login_plain.txt");
const CHAP: &str = include_str!("vectors/login_chap.txt");

fn our_target(chap: bool) -> TargetConfig {
    let mut cfg = TargetConfig::new(vec![ExportedTarget::new(
        TARGET,
        vec![TargetPortal::new("127.0.0.1", 3260, 1)],
    )]);
    if chap {
        cfg.chap = Some(TargetChapConfig {
            users: vec![ChapCredentials::new("alice", b"alicesecret12".to_vec())],
            mutual: Some(ChapCredentials::new("tgtuser", b"targetsecret34".to_vec())),
            algorithms: vec![ChapAlgorithm::MD5],
        });
    }
    cfg
}

#[test]
fn vectors_parse() {
    for conn in load(PLAIN).iter().chain(load(CHAP).iter()) {
        assert!(!conn.is_empty());
        for pdu in conn {
            assert!(matches!(pdu.opcode(), 0x03 | 0x04 | 0x23 | 0x24));
            parse_text(pdu.data()).unwrap();
        }
    }
}

#[test]
fn our_target_answers_libiscsi_plain_login() {
    let conns = load(PLAIN);
    for (n, conn) in conns.iter().enumerate() {
        let req = &conn[0];
        assert!(req.from_initiator && req.opcode() == 0x03);
        let cfg = Arc::new(our_target(false));
        let mut t = TargetLogin::new(cfg.clone(), 0x0100);
        let step = t.step(&req.request_header(), req.data());
        let TargetOutcome::Complete(params) = step.outcome else {
            panic!("connection {n}: {:?}", step.outcome);
        };
        let h = step.response.header;
        assert!(h.transit && h.csg == Stage::LOGIN_OPERATIONAL_NEGOTIATION);
        assert_eq!(h.nsg, Stage::FULL_FEATURE_PHASE);
        assert_eq!(h.status, LoginStatus::SUCCESS);
        assert_eq!(h.tsih, 0x0100);
        assert_eq!(h.isid, req.isid());
        let answer = parse_text(&step.response.text).unwrap();
        // libiscsi offered HeaderDigest=None,CRC32C: we pick its first acceptable choice.
        if find(&answer, "HeaderDigest").is_some() {
            assert_eq!(find(&answer, "HeaderDigest"), Some("None"));
        }
        assert_eq!(find(&answer, "InitialR2T"), Some("No"));
        assert_eq!(find(&answer, "MaxBurstLength"), Some("262144"));
        assert_eq!(find(&answer, "DefaultTime2Retain"), Some("0"));
        assert_eq!(find(&answer, "IFMarker"), Some("No"));
        assert!(find(&answer, "MaxRecvDataSegmentLength").is_some());
        assert_eq!(params.initiator_name, INITIATOR);
        assert_eq!(params.max_send_data_segment_length, 262144);
        assert_eq!(params.max_burst_length, 262144);
        assert_eq!(params.first_burst_length, 262144);
        assert!(!params.initial_r2t);
        if n == 0 {
            assert_eq!(params.session_type, SessionType::Normal);
            assert_eq!(params.target_name.as_deref(), Some(TARGET));
        } else {
            assert_eq!(params.session_type, SessionType::Discovery);
            // The SendTargets=All text request that followed.
            let text_req = &conn[2];
            assert_eq!(text_req.opcode(), 0x04);
            let resp = target_text_response(
                &cfg.targets,
                text_req.data(),
                INITIATOR,
                SessionType::Discovery,
                None,
            )
            .unwrap();
            let found = parse_send_targets_response(&resp).unwrap();
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].name, TARGET);
        }
    }
}

#[test]
fn our_initiator_accepts_tgtd_plain_responses() {
    let conns = load(PLAIN);
    // Normal session.
    let resp = &conns[0][1];
    let mut i = InitiatorLogin::new(InitiatorConfig::normal(INITIATOR, TARGET, resp.isid()));
    let req = i.start();
    assert_eq!(req.header.csg, Stage::LOGIN_OPERATIONAL_NEGOTIATION);
    let InitiatorStep::Complete(out) = i.step(&resp.response_header(), resp.data()).unwrap() else {
        panic!("tgtd's final response did not complete the login");
    };
    assert_eq!(out.tsih, resp.tsih());
    let p = &out.params;
    assert_eq!(p.target_portal_group_tag, Some(1));
    assert_eq!(p.header_digest, DigestKind::None);
    assert!(p.initial_r2t);
    assert!(p.immediate_data);
    assert_eq!(p.max_burst_length, 262144);
    assert_eq!(p.first_burst_length, 65536);
    assert_eq!(p.default_time2retain, 0);
    // tgtd declared no MaxRecvDataSegmentLength: the default 8192 bounds what we send.
    assert_eq!(p.max_send_data_segment_length, 8192);
    // Discovery session, then tgtd's SendTargets answer.
    let resp = &conns[1][1];
    let mut i = InitiatorLogin::new(InitiatorConfig::discovery(INITIATOR, resp.isid()));
    i.start();
    assert!(matches!(
        i.step(&resp.response_header(), resp.data()).unwrap(),
        InitiatorStep::Complete(_)
    ));
    let found = parse_send_targets_response(conns[1][3].data()).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name, TARGET);
    assert_eq!(found[0].addresses[0].host, "127.0.0.1");
    assert_eq!(found[0].addresses[0].port, Some(39261));
    assert_eq!(found[0].addresses[0].portal_group_tag, Some(1));
}

#[test]
fn chap_arithmetic_matches_libiscsi_and_tgtd() {
    let conns = load(CHAP);
    for conn in &conns {
        let challenge_resp = parse_text(conn[3].data()).unwrap();
        let answer = parse_text(conn[4].data()).unwrap();
        let id = parse_identifier(find(&challenge_resp, "CHAP_I").unwrap()).unwrap();
        let challenge = decode_binary(find(&challenge_resp, "CHAP_C").unwrap()).unwrap();
        let response = decode_binary(find(&answer, "CHAP_R").unwrap()).unwrap();
        verify_response(
            ChapAlgorithm::MD5,
            id,
            b"alicesecret12",
            &challenge,
            &response,
        )
        .unwrap();
        assert_eq!(
            verify_response(
                ChapAlgorithm::MD5,
                id,
                b"alicesecret13",
                &challenge,
                &response
            ),
            Err(ChapError::ResponseMismatch)
        );
    }
    // Mutual: tgtd answered libiscsi's challenge with the outgoing account.
    let conn = &conns[1];
    let ours = parse_text(conn[4].data()).unwrap();
    let theirs = parse_text(conn[5].data()).unwrap();
    let id = parse_identifier(find(&ours, "CHAP_I").unwrap()).unwrap();
    let challenge = decode_binary(find(&ours, "CHAP_C").unwrap()).unwrap();
    assert_eq!(find(&theirs, "CHAP_N"), Some("tgtuser"));
    let response = decode_binary(find(&theirs, "CHAP_R").unwrap()).unwrap();
    verify_response(
        ChapAlgorithm::MD5,
        id,
        b"targetsecret34",
        &challenge,
        &response,
    )
    .unwrap();
}

#[test]
fn our_initiator_answers_tgtd_chap_like_libiscsi() {
    let conn = &load(CHAP)[0];
    let mut cfg = InitiatorConfig::normal(INITIATOR, TARGET, conn[0].isid());
    cfg.chap = Some(InitiatorChapConfig {
        credentials: ChapCredentials::new("alice", b"alicesecret12".to_vec()),
        mutual: None,
        algorithms: vec![ChapAlgorithm::MD5],
    });
    let mut i = InitiatorLogin::new(cfg);
    let first = i.start();
    assert_eq!(
        find(&parse_text(&first.text).unwrap(), "AuthMethod"),
        Some("CHAP,None")
    );
    // tgtd: AuthMethod=CHAP.
    let InitiatorStep::Send(r) = i.step(&conn[1].response_header(), conn[1].data()).unwrap() else {
        panic!()
    };
    assert_eq!(find(&parse_text(&r.text).unwrap(), "CHAP_A"), Some("5"));
    // tgtd: CHAP_A/CHAP_I/CHAP_C; our CHAP_R must equal libiscsi's.
    let InitiatorStep::Send(r) = i.step(&conn[3].response_header(), conn[3].data()).unwrap() else {
        panic!()
    };
    let ours = parse_text(&r.text).unwrap();
    let libiscsi = parse_text(conn[4].data()).unwrap();
    assert_eq!(find(&ours, "CHAP_N"), Some("alice"));
    assert_eq!(
        find(&ours, "CHAP_R").unwrap().to_ascii_lowercase(),
        find(&libiscsi, "CHAP_R").unwrap().to_ascii_lowercase()
    );
    assert!(r.header.transit);
    // tgtd: transit to the operational stage.
    let InitiatorStep::Send(r) = i.step(&conn[5].response_header(), conn[5].data()).unwrap() else {
        panic!()
    };
    assert_eq!(r.header.csg, Stage::LOGIN_OPERATIONAL_NEGOTIATION);
    // tgtd: final response.
    let InitiatorStep::Complete(out) = i.step(&conn[7].response_header(), conn[7].data()).unwrap()
    else {
        panic!()
    };
    assert_eq!(out.tsih, conn[7].tsih());
    assert_eq!(out.params.target_portal_group_tag, Some(1));
}

#[test]
fn our_target_answers_libiscsi_chap_requests() {
    for (n, conn) in load(CHAP).iter().enumerate() {
        let mut t = TargetLogin::new(Arc::new(our_target(true)), 9);
        let s = t.step(&conn[0].request_header(), conn[0].data());
        assert_eq!(s.outcome, TargetOutcome::Continue);
        assert!(!s.response.header.transit);
        let text = parse_text(&s.response.text).unwrap();
        assert_eq!(find(&text, "AuthMethod"), Some("CHAP"));
        assert_eq!(find(&text, "TargetPortalGroupTag"), Some("1"));
        let s = t.step(&conn[2].request_header(), conn[2].data());
        assert_eq!(s.outcome, TargetOutcome::Continue);
        let text = parse_text(&s.response.text).unwrap();
        assert_eq!(find(&text, "CHAP_A"), Some("5"));
        let c = decode_binary(find(&text, "CHAP_C").unwrap()).unwrap();
        assert!(c.len() >= 16);
        // libiscsi's recorded CHAP_R answers tgtd's challenge, not ours: refused.
        let s = t.step(&conn[4].request_header(), conn[4].data());
        assert_eq!(
            s.outcome,
            TargetOutcome::Failed(LoginError::Chap(ChapError::ResponseMismatch)),
            "connection {n}"
        );
        assert_eq!(
            s.response.header.status,
            LoginStatus::AUTHENTICATION_FAILURE
        );
    }
}
