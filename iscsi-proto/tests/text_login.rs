//! In-memory initiator <-> target logins through the two login state machines of
//! `iscsi_proto::text` (RFC 7143 sections 6.3, 11.12-11.13, 12.1.3).

use iscsi_proto::text::chap::{ChapAlgorithm, ChapCredentials};
use iscsi_proto::text::sendtargets::{
    parse_send_targets_response, send_targets_request, target_text_response,
};
use iscsi_proto::text::{
    DigestKind, ExportedTarget, InitiatorChapConfig, InitiatorConfig, InitiatorLogin,
    InitiatorStep, LoginError, LoginOutcome, LoginStatus, MutualChap, SessionParams, SessionType,
    TargetChapConfig, TargetConfig, TargetLogin, TargetOutcome, TargetPortal,
};
use std::sync::Arc;

const TARGET: &str = "iqn.2026-01.org.pvd:disk1";
const INITIATOR: &str = "iqn.2026-01.org.pvd:client";
const ISID: [u8; 6] = [0x80, 0, 0, 0x12, 0x34, 0];

fn target_config() -> TargetConfig {
    let mut t = ExportedTarget::new(TARGET, vec![TargetPortal::new("127.0.0.1", 3260, 1)]);
    t.alias = Some("disk one".to_string());
    let other = ExportedTarget {
        allowed_initiators: Some(vec!["iqn.2026-01.org.pvd:other".to_string()]),
        ..ExportedTarget::new(
            "iqn.2026-01.org.pvd:private",
            vec![TargetPortal::new("::1", 3261, 2)],
        )
    };
    TargetConfig::new(vec![t, other])
}

/// Runs a login to the end; returns both sides' results.
fn run(
    init: InitiatorConfig,
    target: TargetConfig,
) -> (
    Result<LoginOutcome, LoginError>,
    Result<SessionParams, LoginError>,
    usize,
) {
    let mut i = InitiatorLogin::new(init);
    let mut t = TargetLogin::new(Arc::new(target), 7);
    let mut req = i.start();
    for round in 1..40 {
        let step = t.step(&req.header, &req.text);
        let target_result = match &step.outcome {
            TargetOutcome::Continue => None,
            TargetOutcome::Complete(p) => Some(Ok((**p).clone())),
            TargetOutcome::Failed(e) => Some(Err(e.clone())),
        };
        let r = i.step(&step.response.header, &step.response.text);
        match (r, target_result) {
            (Ok(InitiatorStep::Send(next)), None) => req = next,
            (Ok(InitiatorStep::Complete(o)), Some(Ok(p))) => {
                assert_eq!(step.response.header.tsih, 7);
                return (Ok(*o), Ok(p), round);
            }
            (Err(e), Some(Err(te))) => return (Err(e), Err(te), round),
            (Err(e), None) => return (Err(e), Err(LoginError::Finished), round),
            (a, b) => panic!("sides disagree: initiator {a:?}, target {b:?}"),
        }
    }
    panic!("login did not finish");
}

fn assert_consistent(i: &SessionParams, t: &SessionParams) {
    assert_eq!(i.max_burst_length, t.max_burst_length);
    assert_eq!(i.first_burst_length, t.first_burst_length);
    assert_eq!(i.initial_r2t, t.initial_r2t);
    assert_eq!(i.immediate_data, t.immediate_data);
    assert_eq!(i.max_outstanding_r2t, t.max_outstanding_r2t);
    assert_eq!(i.header_digest, t.header_digest);
    assert_eq!(i.data_digest, t.data_digest);
    assert_eq!(i.error_recovery_level, t.error_recovery_level);
    assert_eq!(i.default_time2wait, t.default_time2wait);
    assert_eq!(i.default_time2retain, t.default_time2retain);
    assert_eq!(i.data_pdu_in_order, t.data_pdu_in_order);
    assert_eq!(i.data_sequence_in_order, t.data_sequence_in_order);
    assert_eq!(i.max_connections, t.max_connections);
    assert_eq!(i.session_type, t.session_type);
    assert_eq!(i.initiator_name, t.initiator_name);
    assert_eq!(i.target_name, t.target_name);
    // MaxRecvDataSegmentLength is declarative per direction.
    assert_eq!(
        i.max_send_data_segment_length,
        t.max_recv_data_segment_length
    );
    assert_eq!(
        t.max_send_data_segment_length,
        i.max_recv_data_segment_length
    );
}

#[test]
fn plain_login_negotiates_consistent_params() {
    let mut init = InitiatorConfig::normal(INITIATOR, TARGET, ISID);
    init.offers.max_burst_length = 4 << 20;
    init.offers.max_recv_data_segment_length = 65536;
    init.offers.header_digest = vec![DigestKind::Crc32c, DigestKind::None];
    let mut target = target_config();
    target.offers.max_burst_length = 1 << 20;
    target.offers.max_recv_data_segment_length = 131072;
    target.offers.initial_r2t = false;
    let (i, t, _) = run(init, target);
    let i = i.unwrap();
    let t = t.unwrap();
    assert_eq!(i.tsih, 7);
    assert_consistent(&i.params, &t);
    assert_eq!(i.params.max_burst_length, 1 << 20);
    assert_eq!(i.params.header_digest, DigestKind::Crc32c);
    assert_eq!(i.params.data_digest, DigestKind::None);
    assert_eq!(i.params.max_send_data_segment_length, 131072);
    assert_eq!(i.params.max_recv_data_segment_length, 65536);
    assert!(!i.params.initial_r2t);
    assert!(i.params.immediate_data);
    assert_eq!(i.params.target_portal_group_tag, Some(1));
    assert_eq!(i.params.target_alias.as_deref(), Some("disk one"));
    assert_eq!(t.initiator_name, INITIATOR);
}

fn chap_target(mutual: bool) -> TargetConfig {
    let mut t = target_config();
    t.chap = Some(TargetChapConfig {
        users: vec![ChapCredentials::new("alice", b"alice-secret-123".to_vec())],
        mutual: mutual.then(|| ChapCredentials::new("tgt", b"target-secret-456".to_vec())),
        algorithms: ChapAlgorithm::ALL.to_vec(),
    });
    t
}

fn chap_initiator(
    secret: &[u8],
    mutual: Option<&[u8]>,
    algs: Vec<ChapAlgorithm>,
) -> InitiatorConfig {
    let mut i = InitiatorConfig::normal(INITIATOR, TARGET, ISID);
    i.chap = Some(InitiatorChapConfig {
        credentials: ChapCredentials::new("alice", secret.to_vec()),
        mutual: mutual.map(|s| MutualChap {
            expected_name: Some("tgt".to_string()),
            secret: s.to_vec(),
        }),
        algorithms: algs,
    });
    i
}

#[test]
fn chap_one_way_every_algorithm() {
    for alg in ChapAlgorithm::ALL {
        let (i, t, _) = run(
            chap_initiator(b"alice-secret-123", None, vec![alg]),
            chap_target(false),
        );
        let i = i.unwrap_or_else(|e| panic!("algorithm {alg}: {e}"));
        assert_consistent(&i.params, &t.unwrap());
    }
}

#[test]
fn chap_mutual() {
    let (i, t, _) = run(
        chap_initiator(
            b"alice-secret-123",
            Some(b"target-secret-456"),
            vec![ChapAlgorithm::SHA256, ChapAlgorithm::MD5],
        ),
        chap_target(true),
    );
    assert_consistent(&i.unwrap().params, &t.unwrap());
}

#[test]
fn chap_mutual_wrong_target_secret_refused_by_initiator() {
    let (i, _, _) = run(
        chap_initiator(
            b"alice-secret-123",
            Some(b"not-the-secret!!"),
            vec![ChapAlgorithm::MD5],
        ),
        chap_target(true),
    );
    assert!(
        matches!(
            i,
            Err(LoginError::Chap(
                iscsi_proto::text::ChapError::ResponseMismatch
            ))
        ),
        "{i:?}"
    );
}

#[test]
fn chap_wrong_secret_refused() {
    let (i, t, _) = run(
        chap_initiator(b"wrong-secret-000", None, vec![ChapAlgorithm::SHA1]),
        chap_target(false),
    );
    assert_eq!(
        i.unwrap_err(),
        LoginError::Rejected {
            status: LoginStatus::AUTHENTICATION_FAILURE
        }
    );
    assert!(matches!(t, Err(LoginError::Chap(_))));
}

#[test]
fn chap_required_but_initiator_has_none() {
    let (i, _, _) = run(
        InitiatorConfig::normal(INITIATOR, TARGET, ISID),
        chap_target(false),
    );
    assert_eq!(
        i.unwrap_err(),
        LoginError::Rejected {
            status: LoginStatus::AUTHENTICATION_FAILURE
        }
    );
}

#[test]
fn unknown_target_and_acl() {
    let (i, _, _) = run(
        InitiatorConfig::normal(INITIATOR, "iqn.2026-01.org.pvd:nope", ISID),
        target_config(),
    );
    assert_eq!(
        i.unwrap_err(),
        LoginError::Rejected {
            status: LoginStatus::NOT_FOUND
        }
    );
    let (i, _, _) = run(
        InitiatorConfig::normal(INITIATOR, "iqn.2026-01.org.pvd:private", ISID),
        target_config(),
    );
    assert_eq!(
        i.unwrap_err(),
        LoginError::Rejected {
            status: LoginStatus::AUTHORIZATION_FAILURE
        }
    );
}

#[test]
fn discovery_session_then_send_targets() {
    let cfg = target_config();
    let (i, t, _) = run(InitiatorConfig::discovery(INITIATOR, ISID), cfg.clone());
    let i = i.unwrap();
    let t = t.unwrap();
    assert_eq!(i.params.session_type, SessionType::Discovery);
    assert_eq!(t.session_type, SessionType::Discovery);
    assert_eq!(t.target_name, None);
    let req = send_targets_request("All");
    let resp =
        target_text_response(&cfg.targets, &req, INITIATOR, SessionType::Discovery, None).unwrap();
    let found = parse_send_targets_response(&resp).unwrap();
    // The private target is hidden from this initiator.
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name, TARGET);
    assert_eq!(
        found[0].addresses,
        vec![TargetPortal::new("127.0.0.1", 3260, 1)]
    );
    let resp = target_text_response(
        &cfg.targets,
        &req,
        "iqn.2026-01.org.pvd:other",
        SessionType::Discovery,
        None,
    )
    .unwrap();
    let found = parse_send_targets_response(&resp).unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found[1].addresses[0].host, "::1");
}

#[test]
fn parts_convert_to_and_from_pdus() {
    use iscsi_proto::pdu;
    use iscsi_proto::text::{LoginRequestHeader, LoginResponseHeader};
    let mut i = InitiatorLogin::new(InitiatorConfig::normal(INITIATOR, TARGET, ISID));
    let req = i.start();
    let mut wire = pdu::LoginRequest {
        itt: 9,
        cid: 1,
        ..Default::default()
    };
    req.apply_to(&mut wire);
    assert_eq!(wire.itt, 9);
    assert_eq!(&wire.data[..], &req.text[..]);
    assert_eq!(LoginRequestHeader::from(&wire), req.header);
    let mut t = TargetLogin::new(Arc::new(target_config()), 0x22);
    let step = t.step(&LoginRequestHeader::from(&wire), &wire.data);
    let mut out = pdu::LoginResponse {
        stat_sn: 5,
        ..Default::default()
    };
    step.response.apply_to(&mut out);
    assert_eq!(out.tsih, 0x22);
    assert_eq!(out.stat_sn, 5);
    assert_eq!(LoginResponseHeader::from(&out), step.response.header);
    assert!(matches!(
        i.step(&LoginResponseHeader::from(&out), &out.data).unwrap(),
        InitiatorStep::Complete(_)
    ));
}
