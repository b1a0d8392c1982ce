//! One negative vector per login and CHAP error (RFC 7143 sections 6.3, 11.12-11.13, 12.1.3),
//! driving the two login state machines with hand-made PDUs' fields and texts.

use iscsi_proto::text::chap::{
    check_challenge, decode_binary, encode_binary, parse_identifier, verify_response,
    ChapAlgorithm, ChapCredentials, MAX_CHALLENGE_LEN, MIN_CHALLENGE_LEN,
};
use iscsi_proto::text::kv::find;
use iscsi_proto::text::{
    encode_text, parse_text, ChapError, ExportedTarget, InitiatorChapConfig, InitiatorConfig,
    InitiatorLogin, InitiatorStep, KeyValue, LoginError, LoginRequestHeader, LoginResponseHeader,
    LoginStatus, MutualChap, Stage, TargetChapConfig, TargetConfig, TargetLogin, TargetOutcome,
    TargetPortal, TextError,
};
use std::sync::Arc;

const TARGET: &str = "iqn.2026-01.org.pvd:t";
const INITIATOR: &str = "iqn.2026-01.org.pvd:i";
const ISID: [u8; 6] = [0x40, 1, 2, 3, 4, 5];
const S0: Stage = Stage::SECURITY_NEGOTIATION;
const S1: Stage = Stage::LOGIN_OPERATIONAL_NEGOTIATION;
const S3: Stage = Stage::FULL_FEATURE_PHASE;

fn config(chap: Option<(bool, Vec<ChapAlgorithm>)>) -> Arc<TargetConfig> {
    let mut acl = ExportedTarget::new(
        "iqn.2026-01.org.pvd:acl",
        vec![TargetPortal::new("10.0.0.1", 3260, 1)],
    );
    acl.allowed_initiators = Some(vec!["iqn.2026-01.org.pvd:friend".into()]);
    let mut cfg = TargetConfig::new(vec![
        ExportedTarget::new(TARGET, vec![TargetPortal::new("10.0.0.1", 3260, 1)]),
        acl,
    ]);
    cfg.chap = chap.map(|(mutual, algorithms)| TargetChapConfig {
        users: vec![ChapCredentials::new("user", b"user-secret-01".to_vec())],
        mutual: mutual.then(|| ChapCredentials::new("target", b"target-secret-02".to_vec())),
        algorithms,
    });
    Arc::new(cfg)
}

fn hdr(transit: bool, cont: bool, csg: Stage, nsg: Stage) -> LoginRequestHeader {
    LoginRequestHeader {
        transit,
        cont,
        csg,
        nsg,
        version_max: 0,
        version_min: 0,
        isid: ISID,
        tsih: 0,
    }
}

fn text(pairs: &[(&str, &str)]) -> Vec<u8> {
    encode_text(
        &pairs
            .iter()
            .map(|(k, v)| KeyValue::new(*k, *v))
            .collect::<Vec<_>>(),
    )
}

const HELLO: &[(&str, &str)] = &[("InitiatorName", INITIATOR), ("TargetName", TARGET)];

fn fails(t: &mut TargetLogin, h: LoginRequestHeader, data: &[u8]) -> (LoginError, LoginStatus) {
    let s = t.step(&h, data);
    match s.outcome {
        TargetOutcome::Failed(e) => {
            assert_eq!(s.response.header.status, e.status());
            assert!(!s.response.header.transit);
            (e, s.response.header.status)
        }
        other => panic!("expected failure, got {other:?}"),
    }
}

fn ok(t: &mut TargetLogin, h: LoginRequestHeader, data: &[u8]) -> Vec<KeyValue> {
    let s = t.step(&h, data);
    assert!(
        !matches!(s.outcome, TargetOutcome::Failed(_)),
        "{:?}",
        s.outcome
    );
    parse_text(&s.response.text).unwrap()
}

fn fresh(chap: Option<(bool, Vec<ChapAlgorithm>)>) -> TargetLogin {
    TargetLogin::new(config(chap), 3)
}

// ---- target-side LoginError vectors ----

#[test]
fn transit_and_continue() {
    let (e, st) = fails(&mut fresh(None), hdr(true, true, S1, S3), &text(HELLO));
    assert_eq!(e, LoginError::TransitAndContinue);
    assert_eq!(st, LoginStatus::INITIATOR_ERROR);
}

#[test]
fn invalid_transition() {
    let (e, _) = fails(&mut fresh(None), hdr(true, false, S1, S0), &text(HELLO));
    assert_eq!(e, LoginError::InvalidTransition { csg: S1, nsg: S0 });
    let (e, _) = fails(
        &mut fresh(None),
        hdr(true, false, S0, Stage(2)),
        &text(HELLO),
    );
    assert!(matches!(e, LoginError::InvalidTransition { .. }));
    let (e, _) = fails(&mut fresh(None), hdr(false, false, S3, S3), &text(HELLO));
    assert!(matches!(e, LoginError::InvalidTransition { .. }));
}

#[test]
fn unexpected_stage() {
    let mut t = fresh(None);
    ok(&mut t, hdr(false, false, S0, S0), &text(HELLO));
    let (e, _) = fails(&mut t, hdr(true, false, S1, S3), &[]);
    assert_eq!(
        e,
        LoginError::UnexpectedStage {
            expected: S0,
            got: S1
        }
    );
}

#[test]
fn session_identity_changed() {
    let mut t = fresh(None);
    ok(&mut t, hdr(false, false, S0, S0), &text(HELLO));
    let mut h = hdr(true, false, S0, S1);
    h.isid = [0; 6];
    assert_eq!(fails(&mut t, h, &[]).0, LoginError::SessionIdentityChanged);
}

#[test]
fn unsupported_version() {
    let mut h = hdr(true, false, S1, S3);
    h.version_min = 1;
    h.version_max = 2;
    let (e, st) = fails(&mut fresh(None), h, &text(HELLO));
    assert_eq!(e, LoginError::UnsupportedVersion { min: 1, max: 2 });
    assert_eq!(st, LoginStatus::UNSUPPORTED_VERSION);
}

#[test]
fn missing_initiator_name_and_target_name() {
    let (e, st) = fails(
        &mut fresh(None),
        hdr(true, false, S1, S3),
        &text(&[("TargetName", TARGET)]),
    );
    assert_eq!(
        e,
        LoginError::MissingKey {
            key: "InitiatorName"
        }
    );
    assert_eq!(st, LoginStatus::MISSING_PARAMETER);
    let (e, _) = fails(
        &mut fresh(None),
        hdr(true, false, S1, S3),
        &text(&[("InitiatorName", INITIATOR)]),
    );
    assert_eq!(e, LoginError::MissingKey { key: "TargetName" });
}

#[test]
fn target_not_found() {
    let (e, st) = fails(
        &mut fresh(None),
        hdr(true, false, S1, S3),
        &text(&[("InitiatorName", INITIATOR), ("TargetName", "iqn.x")]),
    );
    assert_eq!(
        e,
        LoginError::TargetNotFound {
            name: "iqn.x".into()
        }
    );
    assert_eq!(st, LoginStatus::NOT_FOUND);
}

#[test]
fn not_authorized() {
    let (e, st) = fails(
        &mut fresh(None),
        hdr(true, false, S1, S3),
        &text(&[
            ("InitiatorName", INITIATOR),
            ("TargetName", "iqn.2026-01.org.pvd:acl"),
        ]),
    );
    assert_eq!(
        e,
        LoginError::NotAuthorized {
            name: INITIATOR.into()
        }
    );
    assert_eq!(st, LoginStatus::AUTHORIZATION_FAILURE);
    // The friend gets in.
    let mut t = fresh(None);
    let s = t.step(
        &hdr(true, false, S1, S3),
        &text(&[
            ("InitiatorName", "iqn.2026-01.org.pvd:friend"),
            ("TargetName", "iqn.2026-01.org.pvd:acl"),
        ]),
    );
    assert!(matches!(s.outcome, TargetOutcome::Complete(_)));
}

#[test]
fn unsupported_session_type() {
    let (e, st) = fails(
        &mut fresh(None),
        hdr(true, false, S1, S3),
        &text(&[("InitiatorName", INITIATOR), ("SessionType", "Bogus")]),
    );
    assert_eq!(
        e,
        LoginError::UnsupportedSessionType {
            value: "Bogus".into()
        }
    );
    assert_eq!(st, LoginStatus::SESSION_TYPE_NOT_SUPPORTED);
    let mut cfg = (*config(None)).clone();
    cfg.allow_discovery = false;
    let mut t = TargetLogin::new(Arc::new(cfg), 1);
    let (e, _) = fails(
        &mut t,
        hdr(true, false, S1, S3),
        &text(&[("InitiatorName", INITIATOR), ("SessionType", "Discovery")]),
    );
    assert!(matches!(e, LoginError::UnsupportedSessionType { .. }));
}

#[test]
fn session_does_not_exist() {
    let mut h = hdr(true, false, S1, S3);
    h.tsih = 5;
    let (e, st) = fails(&mut fresh(None), h, &text(HELLO));
    assert_eq!(e, LoginError::SessionDoesNotExist { tsih: 5 });
    assert_eq!(st, LoginStatus::SESSION_DOES_NOT_EXIST);
}

#[test]
fn no_auth_method() {
    let mut pairs = HELLO.to_vec();
    pairs.push(("AuthMethod", "KRB5,SRP"));
    let (e, st) = fails(
        &mut fresh(Some((false, ChapAlgorithm::ALL.to_vec()))),
        hdr(true, false, S0, S1),
        &text(&pairs),
    );
    assert_eq!(
        e,
        LoginError::NoAuthMethod {
            offered: "KRB5,SRP".into()
        }
    );
    assert_eq!(st, LoginStatus::AUTHENTICATION_FAILURE);
    // Without CHAP configured, an initiator insisting on CHAP is refused too.
    pairs.pop();
    pairs.push(("AuthMethod", "CHAP"));
    let (e, _) = fails(&mut fresh(None), hdr(true, false, S0, S1), &text(&pairs));
    assert!(matches!(e, LoginError::NoAuthMethod { .. }));
}

#[test]
fn authentication_required() {
    // Skipping the security stage.
    let (e, st) = fails(
        &mut fresh(Some((false, ChapAlgorithm::ALL.to_vec()))),
        hdr(true, false, S1, S3),
        &text(HELLO),
    );
    assert_eq!(e, LoginError::AuthenticationRequired);
    assert_eq!(st, LoginStatus::AUTHENTICATION_FAILURE);
    // Leaving the security stage without AuthMethod.
    let (e, _) = fails(
        &mut fresh(Some((false, ChapAlgorithm::ALL.to_vec()))),
        hdr(true, false, S0, S1),
        &text(HELLO),
    );
    assert_eq!(e, LoginError::AuthenticationRequired);
}

#[test]
fn too_many_rounds() {
    let mut t = fresh(None);
    ok(&mut t, hdr(false, false, S1, S1), &text(HELLO));
    let mut last = None;
    for _ in 0..40 {
        let s = t.step(&hdr(false, false, S1, S1), &[]);
        if let TargetOutcome::Failed(e) = s.outcome {
            last = Some(e);
            break;
        }
    }
    assert_eq!(last, Some(LoginError::TooManyRounds { limit: 32 }));
}

#[test]
fn finished() {
    let mut t = fresh(None);
    let s = t.step(&hdr(true, false, S1, S3), &text(HELLO));
    assert!(matches!(s.outcome, TargetOutcome::Complete(_)));
    assert!(t.is_complete());
    assert_eq!(s.response.header.tsih, 3);
    let (e, _) = fails(&mut t, hdr(true, false, S1, S3), &[]);
    assert_eq!(e, LoginError::Finished);
}

#[test]
fn text_errors_in_login() {
    // Malformed text.
    let (e, st) = fails(
        &mut fresh(None),
        hdr(true, false, S1, S3),
        b"InitiatorName\0",
    );
    assert_eq!(e, LoginError::Text(TextError::MissingSeparator));
    assert_eq!(st, LoginStatus::INITIATOR_ERROR);
    // Security keys in the operational stage.
    let mut pairs = HELLO.to_vec();
    pairs.push(("CHAP_A", "5"));
    let (e, _) = fails(&mut fresh(None), hdr(true, false, S1, S3), &text(&pairs));
    assert_eq!(
        e,
        LoginError::Text(TextError::WrongPhase {
            key: "CHAP_A".into(),
            phase: "operational stage"
        })
    );
    // Names declared twice.
    let mut t = fresh(None);
    ok(&mut t, hdr(false, false, S1, S1), &text(HELLO));
    let (e, _) = fails(&mut t, hdr(true, false, S1, S3), &text(HELLO));
    assert!(matches!(
        e,
        LoginError::Text(TextError::KeyRenegotiated { .. })
    ));
}

#[test]
fn continued_request_text() {
    let mut pairs = HELLO.to_vec();
    pairs.push(("MaxBurstLength", "65536"));
    let data = text(&pairs);
    let mut t = fresh(None);
    let (a, b) = data.split_at(17);
    let s = t.step(&hdr(false, true, S1, S3), a);
    assert_eq!(s.outcome, TargetOutcome::Continue);
    assert!(s.response.text.is_empty());
    let s = t.step(&hdr(true, false, S1, S3), b);
    let TargetOutcome::Complete(p) = s.outcome else {
        panic!("{:?}", s.outcome)
    };
    assert_eq!(p.max_burst_length, 65536);
    assert_eq!(p.initiator_name, INITIATOR);
}

#[test]
fn target_waits_for_transit_request() {
    let mut t = fresh(None);
    let s = t.step(&hdr(false, false, S1, S1), &text(HELLO));
    assert!(!s.response.header.transit);
    assert_eq!(s.outcome, TargetOutcome::Continue);
    let s = t.step(&hdr(true, false, S1, S3), &[]);
    assert!(s.response.header.transit);
    assert!(matches!(s.outcome, TargetOutcome::Complete(_)));
}

// ---- CHAP vectors (target side) ----

fn chap_until_challenge(mutual: bool) -> (TargetLogin, u8, Vec<u8>) {
    let mut t = fresh(Some((mutual, vec![ChapAlgorithm::MD5])));
    let mut pairs = HELLO.to_vec();
    pairs.push(("AuthMethod", "CHAP"));
    let r = ok(&mut t, hdr(true, false, S0, S1), &text(&pairs));
    assert_eq!(find(&r, "AuthMethod"), Some("CHAP"));
    let r = ok(
        &mut t,
        hdr(true, false, S0, S1),
        &text(&[("CHAP_A", "7,5")]),
    );
    assert_eq!(find(&r, "CHAP_A"), Some("5"));
    let id = parse_identifier(find(&r, "CHAP_I").unwrap()).unwrap();
    let c = decode_binary(find(&r, "CHAP_C").unwrap()).unwrap();
    (t, id, c)
}

fn chap_error(t: &mut TargetLogin, pairs: &[(&str, &str)]) -> ChapError {
    match fails(t, hdr(true, false, S0, S1), &text(pairs)).0 {
        LoginError::Chap(c) => c,
        other => panic!("{other:?}"),
    }
}

#[test]
fn chap_no_common_algorithm() {
    let mut t = fresh(Some((false, vec![ChapAlgorithm::SHA256])));
    let mut pairs = HELLO.to_vec();
    pairs.push(("AuthMethod", "CHAP,None"));
    ok(&mut t, hdr(true, false, S0, S1), &text(&pairs));
    assert_eq!(
        chap_error(&mut t, &[("CHAP_A", "5,99")]),
        ChapError::NoCommonAlgorithm {
            value: "5,99".into()
        }
    );
}

#[test]
fn chap_missing_key() {
    let (mut t, _, _) = chap_until_challenge(false);
    assert_eq!(
        chap_error(&mut t, &[("CHAP_N", "user")]),
        ChapError::MissingKey { key: "CHAP_R" }
    );
}

#[test]
fn chap_unknown_name() {
    let (mut t, id, c) = chap_until_challenge(false);
    let r = ChapAlgorithm::MD5
        .response(id, b"user-secret-01", &c)
        .unwrap();
    assert_eq!(
        chap_error(
            &mut t,
            &[("CHAP_N", "mallory"), ("CHAP_R", &encode_binary(&r))]
        ),
        ChapError::UnknownName {
            name: "mallory".into()
        }
    );
}

#[test]
fn chap_response_length_and_mismatch() {
    let (mut t, _, _) = chap_until_challenge(false);
    assert_eq!(
        chap_error(&mut t, &[("CHAP_N", "user"), ("CHAP_R", "0x0102")]),
        ChapError::ResponseLength {
            len: 2,
            expected: 16
        }
    );
    let (mut t, id, c) = chap_until_challenge(false);
    let r = ChapAlgorithm::MD5.response(id, b"wrong", &c).unwrap();
    assert_eq!(
        chap_error(
            &mut t,
            &[("CHAP_N", "user"), ("CHAP_R", &encode_binary(&r))]
        ),
        ChapError::ResponseMismatch
    );
}

#[test]
fn chap_base64_response_accepted() {
    use base64::Engine;
    let (mut t, id, c) = chap_until_challenge(false);
    let r = ChapAlgorithm::MD5
        .response(id, b"user-secret-01", &c)
        .unwrap();
    let b64 = format!("0b{}", base64::engine::general_purpose::STANDARD.encode(&r));
    let s = t.step(
        &hdr(true, false, S0, S1),
        &text(&[("CHAP_N", "user"), ("CHAP_R", &b64)]),
    );
    assert_eq!(s.outcome, TargetOutcome::Continue);
    assert!(s.response.header.transit);
    assert_eq!(s.response.header.nsg, S1);
}

#[test]
fn chap_reflected_challenge() {
    let (mut t, id, c) = chap_until_challenge(true);
    let r = ChapAlgorithm::MD5
        .response(id, b"user-secret-01", &c)
        .unwrap();
    assert_eq!(
        chap_error(
            &mut t,
            &[
                ("CHAP_N", "user"),
                ("CHAP_R", &encode_binary(&r)),
                ("CHAP_I", "9"),
                ("CHAP_C", &encode_binary(&c)),
            ]
        ),
        ChapError::ReflectedChallenge
    );
}

#[test]
fn chap_mutual_not_configured_and_short_challenge() {
    let (mut t, id, c) = chap_until_challenge(false);
    let r = ChapAlgorithm::MD5
        .response(id, b"user-secret-01", &c)
        .unwrap();
    assert_eq!(
        chap_error(
            &mut t,
            &[
                ("CHAP_N", "user"),
                ("CHAP_R", &encode_binary(&r)),
                ("CHAP_I", "9"),
                ("CHAP_C", "0x00112233445566778899aabbccddeeff"),
            ]
        ),
        ChapError::UnexpectedKey {
            key: "CHAP_C".into()
        }
    );
    let (mut t, id, c) = chap_until_challenge(true);
    let r = ChapAlgorithm::MD5
        .response(id, b"user-secret-01", &c)
        .unwrap();
    assert_eq!(
        chap_error(
            &mut t,
            &[
                ("CHAP_N", "user"),
                ("CHAP_R", &encode_binary(&r)),
                ("CHAP_I", "9"),
                ("CHAP_C", "0x0011"),
            ]
        ),
        ChapError::ChallengeLength {
            len: 2,
            min: MIN_CHALLENGE_LEN,
            max: MAX_CHALLENGE_LEN
        }
    );
}

#[test]
fn chap_unexpected_key_before_auth_method() {
    let mut t = fresh(Some((false, vec![ChapAlgorithm::MD5])));
    let mut pairs = HELLO.to_vec();
    pairs.push(("CHAP_A", "5"));
    let (e, _) = fails(&mut t, hdr(true, false, S0, S1), &text(&pairs));
    assert_eq!(
        e,
        LoginError::Chap(ChapError::UnexpectedKey {
            key: "CHAP_A".into()
        })
    );
}

#[test]
fn chap_value_codecs() {
    assert_eq!(decode_binary("0x0a0B").unwrap(), vec![0x0a, 0x0b]);
    assert_eq!(decode_binary("0XABC").unwrap(), vec![0x0a, 0xbc]);
    assert_eq!(decode_binary("0bAQID").unwrap(), vec![1, 2, 3]);
    for bad in ["", "0x", "0b", "abcd", "0xzz", "0b!!"] {
        assert!(
            matches!(decode_binary(bad), Err(ChapError::BadBinaryEncoding { .. })),
            "{bad:?}"
        );
    }
    assert_eq!(encode_binary(&[0xde, 0xad]), "0xdead");
    assert_eq!(parse_identifier("255").unwrap(), 255);
    for bad in ["256", "-1", "", "x"] {
        assert!(matches!(
            parse_identifier(bad),
            Err(ChapError::InvalidIdentifier { .. })
        ));
    }
    assert!(check_challenge(&[0; MAX_CHALLENGE_LEN + 1]).is_err());
    assert!(check_challenge(&[0; MIN_CHALLENGE_LEN]).is_ok());
    // RFC 1994: MD5(id || secret || challenge), known answer.
    let r = ChapAlgorithm::MD5
        .response(1, b"secret", b"challenge")
        .unwrap();
    assert_eq!(r.len(), 16);
    verify_response(ChapAlgorithm::MD5, 1, b"secret", b"challenge", &r).unwrap();
    assert_eq!(ChapAlgorithm(99).response(1, b"s", b"c"), None);
    assert_eq!(ChapAlgorithm::SHA1.digest_len(), Some(20));
    assert_eq!(ChapAlgorithm::SHA3_256.digest_len(), Some(32));
}

// ---- initiator-side vectors ----

fn resp(transit: bool, csg: Stage, nsg: Stage, status: LoginStatus) -> LoginResponseHeader {
    LoginResponseHeader {
        transit,
        cont: false,
        csg,
        nsg,
        version_max: 0,
        version_active: 0,
        isid: ISID,
        tsih: 0,
        status,
    }
}

fn plain_initiator() -> InitiatorLogin {
    let mut i = InitiatorLogin::new(InitiatorConfig::normal(INITIATOR, TARGET, ISID));
    let r = i.start();
    assert_eq!(r.header.csg, S1);
    assert!(r.header.transit);
    i
}

#[test]
fn initiator_rejected_and_redirected() {
    let mut i = plain_initiator();
    assert_eq!(
        i.step(&resp(false, S1, S0, LoginStatus::NOT_FOUND), &[]),
        Err(LoginError::Rejected {
            status: LoginStatus::NOT_FOUND
        })
    );
    assert_eq!(
        i.step(&resp(false, S1, S0, LoginStatus::SUCCESS), &[]),
        Err(LoginError::Finished)
    );
    let mut i = plain_initiator();
    assert_eq!(
        i.step(
            &resp(false, S1, S0, LoginStatus::TARGET_MOVED_TEMPORARILY),
            &text(&[("TargetAddress", "10.9.9.9:3260,1")])
        ),
        Err(LoginError::Redirected {
            status: LoginStatus::TARGET_MOVED_TEMPORARILY,
            address: Some("10.9.9.9:3260,1".into())
        })
    );
}

#[test]
fn initiator_stage_errors() {
    let mut i = plain_initiator();
    assert_eq!(
        i.step(&resp(false, S0, S0, LoginStatus::SUCCESS), &[]),
        Err(LoginError::UnexpectedStage {
            expected: S1,
            got: S0
        })
    );
    let mut i = plain_initiator();
    let mut h = resp(true, S1, S3, LoginStatus::SUCCESS);
    h.cont = true;
    assert_eq!(i.step(&h, &[]), Err(LoginError::TransitAndContinue));
    let mut i = plain_initiator();
    assert_eq!(
        i.step(&resp(true, S1, S0, LoginStatus::SUCCESS), &[]),
        Err(LoginError::InvalidTransition { csg: S1, nsg: S0 })
    );
    let mut i = plain_initiator();
    let mut h = resp(false, S1, S0, LoginStatus::SUCCESS);
    h.version_active = 2;
    assert!(matches!(
        i.step(&h, &[]),
        Err(LoginError::UnsupportedVersion { .. })
    ));
}

#[test]
fn initiator_unrequested_transit() {
    // CHAP: after CHAP_A the initiator does not ask to transit.
    let mut cfg = InitiatorConfig::normal(INITIATOR, TARGET, ISID);
    cfg.chap = Some(InitiatorChapConfig {
        credentials: ChapCredentials::new("user", b"user-secret-01".to_vec()),
        mutual: None,
        algorithms: vec![ChapAlgorithm::MD5],
    });
    let mut i = InitiatorLogin::new(cfg);
    i.start();
    let InitiatorStep::Send(r) = i
        .step(
            &resp(false, S0, S0, LoginStatus::SUCCESS),
            &text(&[("AuthMethod", "CHAP")]),
        )
        .unwrap()
    else {
        panic!()
    };
    assert!(!r.header.transit);
    assert_eq!(
        i.step(&resp(true, S0, S1, LoginStatus::SUCCESS), &[]),
        Err(LoginError::UnrequestedTransit)
    );
}

fn chap_initiator(mutual: bool, algorithms: Vec<ChapAlgorithm>) -> InitiatorLogin {
    let mut cfg = InitiatorConfig::normal(INITIATOR, TARGET, ISID);
    cfg.chap = Some(InitiatorChapConfig {
        credentials: ChapCredentials::new("user", b"user-secret-01".to_vec()),
        mutual: mutual.then(|| MutualChap {
            expected_name: Some("target".into()),
            secret: b"target-secret-02".to_vec(),
        }),
        algorithms,
    });
    let mut i = InitiatorLogin::new(cfg);
    let first = i.start();
    let expected = if mutual { "CHAP" } else { "CHAP,None" };
    assert_eq!(
        find(&parse_text(&first.text).unwrap(), "AuthMethod"),
        Some(expected)
    );
    i
}

#[test]
fn initiator_no_auth_method() {
    let mut i = chap_initiator(true, vec![ChapAlgorithm::MD5]);
    assert_eq!(
        i.step(
            &resp(true, S0, S1, LoginStatus::SUCCESS),
            &text(&[("AuthMethod", "None")])
        ),
        Err(LoginError::NoAuthMethod {
            offered: "None".into()
        })
    );
}

#[test]
fn initiator_unoffered_algorithm_and_short_challenge() {
    let mut i = chap_initiator(false, vec![ChapAlgorithm::MD5]);
    i.step(
        &resp(false, S0, S0, LoginStatus::SUCCESS),
        &text(&[("AuthMethod", "CHAP")]),
    )
    .unwrap();
    assert_eq!(
        i.step(
            &resp(false, S0, S0, LoginStatus::SUCCESS),
            &text(&[
                ("CHAP_A", "7"),
                ("CHAP_I", "1"),
                ("CHAP_C", "0x00112233445566778899aabbccddeeff")
            ])
        ),
        Err(LoginError::Chap(ChapError::UnofferedAlgorithm {
            value: "7".into()
        }))
    );
    let mut i = chap_initiator(false, vec![ChapAlgorithm::MD5]);
    i.step(
        &resp(false, S0, S0, LoginStatus::SUCCESS),
        &text(&[("AuthMethod", "CHAP")]),
    )
    .unwrap();
    assert!(matches!(
        i.step(
            &resp(false, S0, S0, LoginStatus::SUCCESS),
            &text(&[("CHAP_A", "5"), ("CHAP_I", "1"), ("CHAP_C", "0x01")])
        ),
        Err(LoginError::Chap(ChapError::ChallengeLength { .. }))
    ));
}

#[test]
fn initiator_mutual_missing() {
    let mut i = chap_initiator(true, vec![ChapAlgorithm::MD5]);
    i.step(
        &resp(false, S0, S0, LoginStatus::SUCCESS),
        &text(&[("AuthMethod", "CHAP")]),
    )
    .unwrap();
    let InitiatorStep::Send(r) = i
        .step(
            &resp(false, S0, S0, LoginStatus::SUCCESS),
            &text(&[
                ("CHAP_A", "5"),
                ("CHAP_I", "1"),
                ("CHAP_C", "0x00112233445566778899aabbccddeeff"),
            ]),
        )
        .unwrap()
    else {
        panic!()
    };
    let sent = parse_text(&r.text).unwrap();
    assert!(find(&sent, "CHAP_C").is_some());
    assert!(r.header.transit);
    // The target transits without answering our challenge.
    assert_eq!(
        i.step(&resp(true, S0, S1, LoginStatus::SUCCESS), &[]),
        Err(LoginError::Chap(ChapError::MutualMissing))
    );
}

#[test]
fn initiator_invalid_portal_group_tag() {
    let mut i = plain_initiator();
    assert_eq!(
        i.step(
            &resp(true, S1, S3, LoginStatus::SUCCESS),
            &text(&[("TargetPortalGroupTag", "70000")])
        ),
        Err(LoginError::Text(TextError::InvalidValue {
            key: "TargetPortalGroupTag".into(),
            value: "70000".into()
        }))
    );
}

#[test]
fn initiator_answers_target_offers_and_continued_responses() {
    let mut i = plain_initiator();
    // The target does not transit yet and offers a key of its own; the text comes in two PDUs.
    let data = text(&[("MaxBurstLength", "65536"), ("iSCSIProtocolLevel", "2")]);
    let (a, b) = data.split_at(9);
    let mut h = resp(false, S1, S0, LoginStatus::SUCCESS);
    h.cont = true;
    let InitiatorStep::Send(r) = i.step(&h, a).unwrap() else {
        panic!()
    };
    assert!(r.text.is_empty());
    assert!(!r.header.transit);
    let InitiatorStep::Send(r) = i
        .step(&resp(false, S1, S0, LoginStatus::SUCCESS), b)
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        parse_text(&r.text).unwrap(),
        vec![KeyValue::new("iSCSIProtocolLevel", "1")]
    );
    assert!(r.header.transit);
    assert_eq!(r.header.nsg, S3);
    let mut h = resp(true, S1, S3, LoginStatus::SUCCESS);
    h.tsih = 0x1234;
    let InitiatorStep::Complete(out) = i.step(&h, &[]).unwrap() else {
        panic!()
    };
    assert_eq!(out.tsih, 0x1234);
    assert_eq!(out.params.max_burst_length, 65536);
    assert_eq!(out.params.protocol_level, 1);
}

#[test]
fn initiator_invalid_answer() {
    // We offered MaxOutstandingR2T=1; a min-function answer of 4 breaks the rule.
    let mut i = plain_initiator();
    assert_eq!(
        i.step(
            &resp(true, S1, S3, LoginStatus::SUCCESS),
            &text(&[("MaxOutstandingR2T", "4")])
        ),
        Err(LoginError::Text(TextError::InvalidAnswer {
            key: "MaxOutstandingR2T".into(),
            value: "4".into()
        }))
    );
}
