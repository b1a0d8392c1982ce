//! RFC 7143 section 6.1 text format: parsing, encoding, limits, continued texts, and one
//! negative vector per parsing error.

use iscsi_proto::text::kv::{
    encode_pair, find, parse_pair, split_text, value_limit, MAX_KEY_LEN, MAX_LARGE_VALUE_LEN,
    MAX_TEXT_LEN, MAX_VALUE_LEN,
};
use iscsi_proto::text::sendtargets::{parse_send_targets_response, TargetPortal};
use iscsi_proto::text::{
    encode_text, parse_text, parse_text_repeatable, KeyValue, TextAccumulator, TextError,
};
use proptest::prelude::*;

#[test]
fn parses_pairs_with_and_without_final_nul() {
    let want = vec![
        KeyValue::new("InitiatorName", "iqn.2026-01.org.pvd:x"),
        KeyValue::new("MaxBurstLength", "262144"),
    ];
    assert_eq!(
        parse_text(b"InitiatorName=iqn.2026-01.org.pvd:x\0MaxBurstLength=262144\0").unwrap(),
        want
    );
    assert_eq!(
        parse_text(b"InitiatorName=iqn.2026-01.org.pvd:x\0MaxBurstLength=262144").unwrap(),
        want
    );
    // Padding NULs after the last pair are not pairs.
    assert_eq!(
        parse_text(b"InitiatorName=iqn.2026-01.org.pvd:x\0MaxBurstLength=262144\0\0\0").unwrap(),
        want
    );
}

#[test]
fn empty_segment_and_empty_value() {
    assert_eq!(parse_text(b"").unwrap(), vec![]);
    assert_eq!(parse_text(b"\0\0\0\0").unwrap(), vec![]);
    assert_eq!(
        parse_text(b"SendTargets=\0").unwrap(),
        vec![KeyValue::new("SendTargets", "")]
    );
}

#[test]
fn value_may_contain_equals_sign() {
    let p = parse_text(b"CHAP_C=0bAAECAw==\0X-a.b=c=d\0").unwrap();
    assert_eq!(find(&p, "CHAP_C"), Some("0bAAECAw=="));
    assert_eq!(find(&p, "X-a.b"), Some("c=d"));
}

#[test]
fn key_charset() {
    parse_text(b"X-com.example+a@b_c-d.9=1\0").unwrap();
    assert_eq!(
        parse_text(b"Max Burst=1\0"),
        Err(TextError::InvalidKeyChar { byte: b' ' })
    );
}

#[test]
fn repeatable_keys_for_send_targets() {
    let data = b"TargetName=iqn.a\0TargetAddress=10.0.0.1:3260,1\0TargetAddress=[fe80::1]:3261,2\0TargetName=iqn.b\0TargetAddress=host.example,3\0";
    assert!(matches!(
        parse_text(data),
        Err(TextError::DuplicateKey { .. })
    ));
    assert_eq!(parse_text_repeatable(data).unwrap().len(), 5);
    let found = parse_send_targets_response(data).unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(
        found[0].addresses,
        vec![
            TargetPortal::new("10.0.0.1", 3260, 1),
            TargetPortal::new("fe80::1", 3261, 2)
        ]
    );
    assert_eq!(
        found[1].addresses[0],
        TargetPortal {
            host: "host.example".into(),
            port: None,
            portal_group_tag: Some(3)
        }
    );
}

#[test]
fn target_portal_forms() {
    for (s, host, port, tag) in [
        ("10.1.2.3", "10.1.2.3", None, None),
        ("10.1.2.3:3260", "10.1.2.3", Some(3260), None),
        ("10.1.2.3,7", "10.1.2.3", None, Some(7)),
        ("[::1]:3260,1", "::1", Some(3260), Some(1)),
        ("[::1]", "::1", None, None),
        ("[2001:db8::5],4", "2001:db8::5", None, Some(4)),
        ("2001:db8::5", "2001:db8::5", None, None),
        (
            "disk.example.org:860,65535",
            "disk.example.org",
            Some(860),
            Some(65535),
        ),
    ] {
        let p = TargetPortal::parse(s).unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.portal_group_tag),
            (host, port, tag),
            "{s}"
        );
        assert_eq!(TargetPortal::parse(&p.to_string()).unwrap(), p);
    }
    for bad in [
        "",
        ":3260",
        "h:70000",
        "h:3260,65536",
        "h:x",
        "[::1",
        "[::1]3260",
        "h,",
    ] {
        assert!(
            matches!(
                TargetPortal::parse(bad),
                Err(TextError::InvalidTargetAddress { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn accumulator_joins_split_pairs() {
    let text = encode_text(&[
        KeyValue::new("InitiatorName", "iqn.2026-01.org.pvd:initiator"),
        KeyValue::new("TargetName", "iqn.2026-01.org.pvd:target"),
    ]);
    for size in [1, 3, 7, 16, 1000] {
        let mut acc = TextAccumulator::default();
        for part in split_text(&text, size) {
            assert!(part.len() <= size);
            acc.push(part).unwrap();
        }
        assert_eq!(acc.len(), text.len());
        let pairs = acc.finish().unwrap();
        assert_eq!(pairs.len(), 2);
        assert!(acc.is_empty());
    }
    assert_eq!(split_text(b"", 10), vec![&b""[..]]);
}

#[test]
fn limits_are_named() {
    assert_eq!(MAX_KEY_LEN, 63);
    assert_eq!(MAX_VALUE_LEN, 255);
    assert_eq!(value_limit("CHAP_C"), MAX_LARGE_VALUE_LEN);
    assert_eq!(value_limit("CHAP_R"), MAX_LARGE_VALUE_LEN);
    assert_eq!(value_limit("TargetName"), MAX_VALUE_LEN);
    let key = "K".repeat(MAX_KEY_LEN);
    parse_pair(format!("{key}=v").as_bytes()).unwrap();
    let v = "v".repeat(MAX_VALUE_LEN);
    parse_pair(format!("A={v}").as_bytes()).unwrap();
    let c = format!("0x{}", "ab".repeat((MAX_LARGE_VALUE_LEN - 2) / 2));
    parse_pair(format!("CHAP_C={c}").as_bytes()).unwrap();
}

// One negative vector per parsing error.

#[test]
fn error_text_too_long() {
    let big = vec![b'a'; MAX_TEXT_LEN + 1];
    assert_eq!(
        parse_text(&big),
        Err(TextError::TextTooLong {
            len: MAX_TEXT_LEN + 1,
            limit: MAX_TEXT_LEN
        })
    );
    let mut acc = TextAccumulator::new(10);
    acc.push(b"A=12345\0").unwrap();
    assert_eq!(
        acc.push(b"B=1\0"),
        Err(TextError::TextTooLong { len: 12, limit: 10 })
    );
}

#[test]
fn error_empty_pair() {
    assert_eq!(parse_text(b"A=1\0\0B=2\0"), Err(TextError::EmptyPair));
    assert_eq!(parse_text(b"\0A=1\0"), Err(TextError::EmptyPair));
}

#[test]
fn error_missing_separator() {
    assert_eq!(parse_text(b"A=1\0Abc\0"), Err(TextError::MissingSeparator));
}

#[test]
fn error_empty_key() {
    assert_eq!(parse_text(b"=x\0"), Err(TextError::EmptyKey));
}

#[test]
fn error_key_too_long() {
    let key = "K".repeat(MAX_KEY_LEN + 1);
    assert_eq!(
        parse_text(format!("{key}=1\0").as_bytes()),
        Err(TextError::KeyTooLong {
            len: 64,
            limit: MAX_KEY_LEN
        })
    );
}

#[test]
fn error_invalid_key_char() {
    assert_eq!(
        parse_text(b"Key\xc3\xa9=1\0"),
        Err(TextError::InvalidKeyChar { byte: 0xc3 })
    );
}

#[test]
fn error_value_too_long() {
    let v = "v".repeat(MAX_VALUE_LEN + 1);
    assert_eq!(
        parse_text(format!("TargetName={v}\0").as_bytes()),
        Err(TextError::ValueTooLong {
            key: "TargetName".into(),
            len: 256,
            limit: MAX_VALUE_LEN
        })
    );
    let v = "a".repeat(MAX_LARGE_VALUE_LEN + 1);
    assert!(matches!(
        parse_text(format!("CHAP_R={v}\0").as_bytes()),
        Err(TextError::ValueTooLong { .. })
    ));
}

#[test]
fn error_invalid_utf8() {
    assert_eq!(
        parse_text(b"TargetAlias=\xff\xfe\0"),
        Err(TextError::InvalidUtf8)
    );
}

#[test]
fn error_duplicate_key() {
    assert_eq!(
        parse_text(b"MaxBurstLength=512\0MaxBurstLength=1024\0"),
        Err(TextError::DuplicateKey {
            key: "MaxBurstLength".into()
        })
    );
}

#[test]
fn error_orphan_target_address() {
    assert_eq!(
        parse_send_targets_response(b"TargetAddress=1.2.3.4:3260,1\0"),
        Err(TextError::OrphanTargetAddress)
    );
}

fn key_strategy() -> impl Strategy<Value = String> {
    "[A-Za-z0-9.+@_-]{1,63}"
}

fn value_strategy() -> impl Strategy<Value = String> {
    // Any UTF-8 without NUL, at most 255 bytes.
    "[^\u{0}]{0,60}".prop_filter("value limit", |v| v.len() <= MAX_VALUE_LEN)
}

proptest! {
    #[test]
    fn encode_parse_round_trip(pairs in proptest::collection::vec((key_strategy(), value_strategy()), 0..20)) {
        let mut seen = std::collections::HashSet::new();
        let pairs: Vec<KeyValue> = pairs
            .into_iter()
            .filter(|(k, _)| seen.insert(k.clone()))
            .filter(|(k, _)| k != "CHAP_C" && k != "CHAP_R")
            .map(|(k, v)| KeyValue::new(k, v))
            .collect();
        let bytes = encode_text(&pairs);
        prop_assert_eq!(parse_text(&bytes).unwrap(), pairs.clone());
        // Encoding pair by pair gives the same bytes.
        let mut again = Vec::new();
        for p in &pairs {
            encode_pair(&p.key, &p.value, &mut again);
        }
        prop_assert_eq!(again, bytes);
    }

    #[test]
    fn split_and_accumulate_round_trip(
        pairs in proptest::collection::vec((key_strategy(), value_strategy()), 0..10),
        size in 1usize..64,
    ) {
        let pairs: Vec<KeyValue> = pairs.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect();
        let bytes = encode_text(&pairs);
        let mut acc = TextAccumulator::default();
        for part in split_text(&bytes, size) {
            acc.push(part).unwrap();
        }
        prop_assert_eq!(parse_text_repeatable(&acc.take()).unwrap(), pairs);
    }

    #[test]
    fn parser_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_text(&data);
        let _ = parse_text_repeatable(&data);
        let _ = parse_send_targets_response(&data);
    }
}
