//! RFC 7143 sections 6.2 and 13: every key's result function, range and default, the special
//! answers Reject / Irrelevant / NotUnderstood, and the negotiation errors.

use iscsi_proto::text::keys::{key_def, KeyPhase, ResultFunction, KEYS};
use iscsi_proto::text::{
    DigestKind, KeyValue, NegotiationPhase, Negotiator, OperationalOffers, Role, SessionParams,
    TextError,
};

const LOGIN: NegotiationPhase = NegotiationPhase::Login;

fn target() -> Negotiator {
    Negotiator::new(Role::Target, OperationalOffers::default())
}

/// The target's answer to a single offered key.
fn answer(n: &mut Negotiator, key: &str, value: &str) -> Option<String> {
    let out = n.process(&[KeyValue::new(key, value)], LOGIN).unwrap();
    assert!(out.len() <= 1);
    out.into_iter().next().map(|kv| {
        assert_eq!(kv.key, key);
        kv.value
    })
}

fn answer_fresh(key: &str, value: &str) -> Option<String> {
    answer(&mut target(), key, value)
}

#[test]
fn registry_has_every_rfc7143_key() {
    for name in [
        "HeaderDigest",
        "DataDigest",
        "MaxConnections",
        "SendTargets",
        "TargetName",
        "InitiatorName",
        "TargetAlias",
        "InitiatorAlias",
        "TargetAddress",
        "TargetPortalGroupTag",
        "InitialR2T",
        "ImmediateData",
        "MaxRecvDataSegmentLength",
        "MaxBurstLength",
        "FirstBurstLength",
        "DefaultTime2Wait",
        "DefaultTime2Retain",
        "MaxOutstandingR2T",
        "DataPDUInOrder",
        "DataSequenceInOrder",
        "ErrorRecoveryLevel",
        "SessionType",
        "AuthMethod",
        "CHAP_A",
        "CHAP_I",
        "CHAP_C",
        "CHAP_N",
        "CHAP_R",
        "OFMarker",
        "IFMarker",
        "OFMarkInt",
        "IFMarkInt",
        "TaskReporting",
        "iSCSIProtocolLevel",
    ] {
        assert!(key_def(name).is_some(), "{name}");
    }
    assert_eq!(key_def("AuthMethod").unwrap().phase, KeyPhase::Security);
    assert_eq!(
        key_def("MaxBurstLength").unwrap().function,
        ResultFunction::Min
    );
    assert_eq!(
        key_def("DefaultTime2Wait").unwrap().function,
        ResultFunction::Max
    );
    assert_eq!(key_def("InitialR2T").unwrap().function, ResultFunction::Or);
    assert_eq!(
        key_def("ImmediateData").unwrap().function,
        ResultFunction::And
    );
    // Every default is a valid value of its key.
    for k in KEYS {
        if let Some(d) = k.default {
            if k.function != ResultFunction::Special {
                assert!(k.valid_value(d), "{} default {d}", k.name);
            }
        }
    }
}

#[test]
fn defaults_when_nothing_is_negotiated() {
    let p = target().finish();
    assert_eq!(p, SessionParams::default());
    assert_eq!(p.header_digest, DigestKind::None);
    assert_eq!(p.max_recv_data_segment_length, 8192);
    assert_eq!(p.max_send_data_segment_length, 8192);
    assert_eq!(p.max_burst_length, 262_144);
    assert_eq!(p.first_burst_length, 65_536);
    assert!(p.initial_r2t);
    assert!(p.immediate_data);
    assert_eq!(p.max_outstanding_r2t, 1);
    assert_eq!(p.max_connections, 1);
    assert_eq!(p.error_recovery_level, 0);
    assert_eq!(p.default_time2wait, 2);
    assert_eq!(p.default_time2retain, 20);
    assert!(p.data_pdu_in_order);
    assert!(p.data_sequence_in_order);
}

#[test]
fn digests_are_list_selection() {
    assert_eq!(
        answer_fresh("HeaderDigest", "CRC32C,None").as_deref(),
        Some("CRC32C")
    );
    assert_eq!(
        answer_fresh("DataDigest", "None,CRC32C").as_deref(),
        Some("None")
    );
    assert_eq!(
        answer_fresh("HeaderDigest", "MD5,CRC32C").as_deref(),
        Some("CRC32C")
    );
    assert_eq!(
        answer_fresh("HeaderDigest", "MD5").as_deref(),
        Some("Reject")
    );
    let only_crc = OperationalOffers {
        data_digest: vec![DigestKind::Crc32c],
        ..Default::default()
    };
    let mut n = Negotiator::new(Role::Target, only_crc);
    assert_eq!(
        answer(&mut n, "DataDigest", "None").as_deref(),
        Some("Reject")
    );
    let mut n = target();
    answer(&mut n, "HeaderDigest", "CRC32C");
    assert_eq!(n.finish().header_digest, DigestKind::Crc32c);
}

#[test]
fn numeric_min_keys() {
    // Ours: MaxConnections 1, MaxBurstLength 1 MiB, MaxOutstandingR2T 1, ERL 0, Time2Retain 20.
    assert_eq!(answer_fresh("MaxConnections", "4").as_deref(), Some("1"));
    assert_eq!(
        answer_fresh("MaxConnections", "0").as_deref(),
        Some("Reject")
    );
    assert_eq!(
        answer_fresh("MaxBurstLength", "262144").as_deref(),
        Some("262144")
    );
    assert_eq!(
        answer_fresh("MaxBurstLength", "16777215").as_deref(),
        Some("1048576")
    );
    assert_eq!(
        answer_fresh("MaxBurstLength", "511").as_deref(),
        Some("Reject")
    );
    assert_eq!(
        answer_fresh("MaxBurstLength", "16777216").as_deref(),
        Some("Reject")
    );
    assert_eq!(
        answer_fresh("MaxBurstLength", "0x1000").as_deref(),
        Some("4096")
    );
    assert_eq!(
        answer_fresh("MaxBurstLength", "12ab").as_deref(),
        Some("Reject")
    );
    assert_eq!(answer_fresh("MaxOutstandingR2T", "8").as_deref(), Some("1"));
    assert_eq!(
        answer_fresh("MaxOutstandingR2T", "0").as_deref(),
        Some("Reject")
    );
    assert_eq!(
        answer_fresh("MaxOutstandingR2T", "65536").as_deref(),
        Some("Reject")
    );
    assert_eq!(
        answer_fresh("ErrorRecoveryLevel", "2").as_deref(),
        Some("0")
    );
    assert_eq!(
        answer_fresh("ErrorRecoveryLevel", "3").as_deref(),
        Some("Reject")
    );
    assert_eq!(
        answer_fresh("DefaultTime2Retain", "0").as_deref(),
        Some("0")
    );
    assert_eq!(
        answer_fresh("DefaultTime2Retain", "3601").as_deref(),
        Some("Reject")
    );
    assert_eq!(
        answer_fresh("iSCSIProtocolLevel", "2").as_deref(),
        Some("1")
    );
    assert_eq!(
        answer_fresh("iSCSIProtocolLevel", "32").as_deref(),
        Some("Reject")
    );
}

#[test]
fn numeric_max_key() {
    assert_eq!(answer_fresh("DefaultTime2Wait", "0").as_deref(), Some("2"));
    assert_eq!(
        answer_fresh("DefaultTime2Wait", "10").as_deref(),
        Some("10")
    );
    assert_eq!(
        answer_fresh("DefaultTime2Wait", "3601").as_deref(),
        Some("Reject")
    );
}

#[test]
fn first_burst_never_exceeds_max_burst() {
    let mut n = target();
    n.process(
        &[
            KeyValue::new("MaxBurstLength", "65536"),
            KeyValue::new("FirstBurstLength", "262144"),
        ],
        LOGIN,
    )
    .unwrap();
    let p = n.finish();
    assert_eq!(p.max_burst_length, 65536);
    assert_eq!(p.first_burst_length, 65536);
    // Offered the other way round, the finish clamps.
    let mut n = target();
    assert_eq!(
        answer(&mut n, "FirstBurstLength", "262144").as_deref(),
        Some("262144")
    );
    assert_eq!(
        answer(&mut n, "MaxBurstLength", "4096").as_deref(),
        Some("4096")
    );
    assert_eq!(n.finish().first_burst_length, 4096);
}

#[test]
fn boolean_or_keys() {
    // Ours: InitialR2T No, DataPDUInOrder Yes, DataSequenceInOrder Yes.
    assert_eq!(answer_fresh("InitialR2T", "No").as_deref(), Some("No"));
    assert_eq!(answer_fresh("InitialR2T", "Yes").as_deref(), Some("Yes"));
    assert_eq!(answer_fresh("DataPDUInOrder", "No").as_deref(), Some("Yes"));
    assert_eq!(
        answer_fresh("DataSequenceInOrder", "No").as_deref(),
        Some("Yes")
    );
    assert_eq!(answer_fresh("InitialR2T", "yes").as_deref(), Some("Reject"));
}

#[test]
fn boolean_and_keys() {
    // Ours: ImmediateData Yes; markers always No.
    assert_eq!(answer_fresh("ImmediateData", "Yes").as_deref(), Some("Yes"));
    assert_eq!(answer_fresh("ImmediateData", "No").as_deref(), Some("No"));
    let no_imm = OperationalOffers {
        immediate_data: false,
        ..Default::default()
    };
    let mut n = Negotiator::new(Role::Target, no_imm);
    assert_eq!(
        answer(&mut n, "ImmediateData", "Yes").as_deref(),
        Some("No")
    );
    assert!(!n.finish().immediate_data);
    assert_eq!(answer_fresh("OFMarker", "Yes").as_deref(), Some("No"));
    assert_eq!(answer_fresh("IFMarker", "No").as_deref(), Some("No"));
    assert_eq!(answer_fresh("IFMarker", "Maybe").as_deref(), Some("Reject"));
}

#[test]
fn marker_intervals_are_irrelevant() {
    assert_eq!(
        answer_fresh("OFMarkInt", "2048~8192").as_deref(),
        Some("Irrelevant")
    );
    assert_eq!(
        answer_fresh("IFMarkInt", "1024").as_deref(),
        Some("Irrelevant")
    );
}

#[test]
fn task_reporting_list() {
    assert_eq!(
        answer_fresh("TaskReporting", "FastAbort,RFC3720").as_deref(),
        Some("RFC3720")
    );
    assert_eq!(
        answer_fresh("TaskReporting", "FastAbort").as_deref(),
        Some("Reject")
    );
}

#[test]
fn declarative_max_recv_data_segment_length() {
    let mut n = target();
    assert_eq!(answer(&mut n, "MaxRecvDataSegmentLength", "65536"), None);
    let p = n.finish();
    assert_eq!(p.max_send_data_segment_length, 65536);
    // We did not declare ours yet: the peer assumes the default.
    assert_eq!(p.max_recv_data_segment_length, 8192);
    let decl = n.declarations();
    assert_eq!(
        decl,
        vec![KeyValue::new("MaxRecvDataSegmentLength", "262144")]
    );
    assert!(n.declarations().is_empty());
    assert_eq!(n.finish().max_recv_data_segment_length, 262144);
    assert_eq!(
        answer_fresh("MaxRecvDataSegmentLength", "511").as_deref(),
        Some("Reject")
    );
    assert_eq!(
        answer_fresh("MaxRecvDataSegmentLength", "16777216").as_deref(),
        Some("Reject")
    );
    // Declared again: a protocol error.
    assert_eq!(
        n.process(&[KeyValue::new("MaxRecvDataSegmentLength", "4096")], LOGIN),
        Err(TextError::KeyRenegotiated {
            key: "MaxRecvDataSegmentLength".into()
        })
    );
}

#[test]
fn unknown_and_extension_keys_are_not_understood() {
    for key in ["X-com.example.mode", "X#vendor", "Foo", "Y#experimental"] {
        assert_eq!(answer_fresh(key, "1").as_deref(), Some("NotUnderstood"));
    }
    // A NotUnderstood answer to something we never sent needs no reply.
    assert_eq!(answer_fresh("X-com.example.mode", "NotUnderstood"), None);
}

#[test]
fn keys_of_the_wrong_phase() {
    assert_eq!(
        answer_fresh("SendTargets", "All").as_deref(),
        Some("Reject")
    );
    let mut n = target();
    assert_eq!(
        n.process(
            &[KeyValue::new("MaxBurstLength", "4096")],
            NegotiationPhase::FullFeature
        )
        .unwrap(),
        vec![KeyValue::new("MaxBurstLength", "Reject")]
    );
    assert_eq!(
        target().process(&[KeyValue::new("CHAP_A", "5")], LOGIN),
        Err(TextError::WrongPhase {
            key: "CHAP_A".into(),
            phase: "operational negotiation"
        })
    );
}

#[test]
fn initiator_offers_and_answers() {
    let offers = OperationalOffers {
        max_burst_length: 65536,
        ..Default::default()
    };
    let mut n = Negotiator::new(Role::Initiator, offers);
    let sent = n.offer(&[
        "MaxBurstLength",
        "InitialR2T",
        "HeaderDigest",
        "MaxRecvDataSegmentLength",
    ]);
    assert_eq!(
        sent,
        vec![
            KeyValue::new("MaxBurstLength", "65536"),
            KeyValue::new("InitialR2T", "No"),
            KeyValue::new("HeaderDigest", "None,CRC32C"),
            KeyValue::new("MaxRecvDataSegmentLength", "262144"),
        ]
    );
    // Offering again sends nothing new.
    assert!(n.offer(&["MaxBurstLength"]).is_empty());
    assert_eq!(n.pending().len(), 3);
    let reply = n
        .process(
            &[
                KeyValue::new("MaxBurstLength", "16384"),
                KeyValue::new("InitialR2T", "Yes"),
                KeyValue::new("HeaderDigest", "CRC32C"),
                KeyValue::new("MaxRecvDataSegmentLength", "8192"),
            ],
            LOGIN,
        )
        .unwrap();
    assert!(reply.is_empty());
    assert!(n.pending().is_empty());
    let p = n.finish();
    assert_eq!(p.max_burst_length, 16384);
    assert!(p.initial_r2t);
    assert_eq!(p.header_digest, DigestKind::Crc32c);
    assert_eq!(p.max_send_data_segment_length, 8192);
    assert_eq!(p.max_recv_data_segment_length, 262144);
}

#[test]
fn special_answers_fall_back() {
    let mut n = Negotiator::new(Role::Initiator, OperationalOffers::default());
    n.offer(&[
        "MaxBurstLength",
        "ImmediateData",
        "HeaderDigest",
        "ErrorRecoveryLevel",
    ]);
    n.process(
        &[
            KeyValue::new("MaxBurstLength", "Reject"),
            KeyValue::new("ImmediateData", "NotUnderstood"),
            KeyValue::new("HeaderDigest", "Irrelevant"),
        ],
        LOGIN,
    )
    .unwrap();
    // Unanswered offer: our offer combined with the default (min(0, 0)).
    assert_eq!(n.pending(), vec!["ErrorRecoveryLevel"]);
    let p = n.finish();
    // min(our 1 MiB, default 256 KiB).
    assert_eq!(p.max_burst_length, 262_144);
    // AND(our Yes, default Yes).
    assert!(p.immediate_data);
    assert_eq!(p.header_digest, DigestKind::None);
    assert_eq!(p.error_recovery_level, 0);
}

#[test]
fn error_invalid_answer() {
    let offers = OperationalOffers {
        max_burst_length: 65536,
        ..Default::default()
    };
    let mut n = Negotiator::new(Role::Initiator, offers);
    n.offer(&["MaxBurstLength", "HeaderDigest", "DefaultTime2Wait"]);
    // A min-function answer above our offer.
    assert_eq!(
        n.clone()
            .process(&[KeyValue::new("MaxBurstLength", "131072")], LOGIN),
        Err(TextError::InvalidAnswer {
            key: "MaxBurstLength".into(),
            value: "131072".into()
        })
    );
    // A list answer that we did not offer, or a list instead of one value.
    assert!(matches!(
        n.clone()
            .process(&[KeyValue::new("HeaderDigest", "MD5")], LOGIN),
        Err(TextError::InvalidAnswer { .. })
    ));
    assert!(matches!(
        n.clone()
            .process(&[KeyValue::new("HeaderDigest", "None,CRC32C")], LOGIN),
        Err(TextError::InvalidAnswer { .. })
    ));
    // A max-function answer below our offer.
    assert!(matches!(
        n.clone()
            .process(&[KeyValue::new("DefaultTime2Wait", "1")], LOGIN),
        Err(TextError::InvalidAnswer { .. })
    ));
    // Reject for a key we never sent.
    assert!(matches!(
        target().process(&[KeyValue::new("MaxBurstLength", "Reject")], LOGIN),
        Err(TextError::InvalidAnswer { .. })
    ));
}

#[test]
fn error_key_renegotiated() {
    let mut n = target();
    answer(&mut n, "MaxBurstLength", "4096");
    assert_eq!(
        n.process(&[KeyValue::new("MaxBurstLength", "8192")], LOGIN),
        Err(TextError::KeyRenegotiated {
            key: "MaxBurstLength".into()
        })
    );
}
