//! RFC 4506 / RFC 5531 section 11: property tests of the XDR codec and the record layer —
//! round trips of every type, negative vectors for every decoding rule, and random or
//! mutated input that must be refused cleanly (no panic, no allocation beyond the input).

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use pvd_rpc::auth::AuthSysParams;
use pvd_rpc::message::{
    encode_call, encode_reply, parse_message, AcceptedStatus, CallHeader, RejectedReply, ReplyBody,
};
use pvd_rpc::record::{encode_record, RecordDecoder, RecordError};
use pvd_rpc::rpcbind::{Mapping, Rpcb, XdrList};
use pvd_rpc::xdr::{self, FixedOpaque, Opaque, XdrDecode, XdrEncode, XdrError, XdrReader};
use pvd_rpc::{AuthStat, OpaqueAuth};

pvd_rpc::xdr_enum! {
    pub enum Kind { A = 1, B = 2, C = -3 }
}

pvd_rpc::xdr_struct! {
    #[derive(Debug, Clone, PartialEq)]
    pub struct Inner {
        pub k: Kind,
        pub f: f32,
        pub d: f64,
        pub fixed: FixedOpaque<5>,
        pub arr: [u32; 3],
    }
}

pvd_rpc::xdr_union! {
    #[derive(Debug, Clone, PartialEq)]
    pub enum Choice {
        1 => One(i32),
        2 => Two(String [max = 8]),
        Kind::C.0 => Three(());
        default => Unknown,
    }
}

pvd_rpc::xdr_struct! {
    #[derive(Debug, Clone, PartialEq)]
    pub struct Outer {
        pub a: i32,
        pub b: u32,
        pub c: i64,
        pub d: u64,
        pub e: bool,
        pub name: String [max = 16],
        pub blob: Opaque [max = 64],
        pub list: Vec<Inner> [max = 4],
        pub opt: Option<Box<Outer>>,
        pub choice: Choice,
        pub pair: (u32, String),
    }
}

fn inner() -> impl Strategy<Value = Inner> {
    (
        prop_oneof![
            Just(Kind::A),
            Just(Kind::B),
            Just(Kind::C),
            any::<i32>().prop_map(Kind)
        ],
        any::<u32>(),
        any::<u64>(),
        any::<[u8; 5]>(),
        any::<[u32; 3]>(),
    )
        .prop_map(|(k, f, d, fixed, arr)| Inner {
            k,
            // Compare bit patterns: NaN != NaN.
            f: f32::from_bits(f & 0x7f7f_ffff),
            d: f64::from_bits(d & 0x7fef_ffff_ffff_ffff),
            fixed: FixedOpaque(fixed),
            arr,
        })
}

fn choice() -> impl Strategy<Value = Choice> {
    prop_oneof![
        any::<i32>().prop_map(Choice::One),
        "[a-z]{0,8}".prop_map(Choice::Two),
        Just(Choice::Three(())),
        (10..1000i32).prop_map(Choice::Unknown),
    ]
}

fn outer_leaf() -> impl Strategy<Value = Outer> {
    (
        (
            any::<i32>(),
            any::<u32>(),
            any::<i64>(),
            any::<u64>(),
            any::<bool>(),
        ),
        "[ -~]{0,16}",
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::vec(inner(), 0..4),
        choice(),
        (any::<u32>(), "\\PC{0,5}"),
    )
        .prop_map(|((a, b, c, d, e), name, blob, list, choice, pair)| Outer {
            a,
            b,
            c,
            d,
            e,
            name,
            blob: blob.into(),
            list,
            opt: None,
            choice,
            pair,
        })
}

fn outer() -> impl Strategy<Value = Outer> {
    (outer_leaf(), prop::option::of(outer_leaf())).prop_map(|(mut o, child)| {
        o.opt = child.map(Box::new);
        o
    })
}

proptest! {
    #[test]
    fn struct_round_trip(v in outer()) {
        let wire = xdr::to_bytes(&v);
        prop_assert_eq!(wire.len(), v.encoded_len());
        prop_assert_eq!(wire.len() % 4, 0);
        prop_assert_eq!(xdr::from_bytes::<Outer>(&wire).unwrap(), v);
    }

    #[test]
    fn truncated_input_is_refused(v in outer(), cut in any::<prop::sample::Index>()) {
        let wire = xdr::to_bytes(&v);
        let n = cut.index(wire.len());
        prop_assert!(xdr::from_bytes::<Outer>(&wire[..n]).is_err());
    }

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = xdr::from_bytes::<Outer>(&data);
        let _ = xdr::from_bytes::<AuthSysParams>(&data);
        let _ = xdr::from_bytes::<XdrList<Rpcb>>(&data);
        let _ = xdr::from_bytes::<XdrList<Mapping>>(&data);
        let _ = parse_message(&Bytes::from(data.clone()));
        let mut src = BytesMut::from(&data[..]);
        let mut dec = RecordDecoder::new(4096);
        while let Ok(Some(_)) = dec.decode(&mut src) {}
        // The decoder never reserves more than the limit (plus what the input already held).
        prop_assert!(src.capacity() <= 4096 + 4 + data.len());
    }

    #[test]
    fn mutated_messages_never_panic(
        v in outer(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let header = CallHeader {
            xid: 1,
            rpcvers: 2,
            prog: 3,
            vers: 4,
            proc_: 5,
            cred: OpaqueAuth::sys(&AuthSysParams::current(9)),
            verf: OpaqueAuth::none(),
        };
        let mut msg = encode_call(&header, &xdr::to_bytes(&v)).to_vec();
        for (i, b) in flips {
            let i = i.index(msg.len());
            msg[i] ^= b;
        }
        if let Ok((_, args)) = parse_message(&Bytes::from(msg)) {
            let _ = xdr::from_bytes::<Outer>(&args);
        }
    }

    #[test]
    fn records_reassemble_at_any_fragment_size(
        records in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..5),
        frag in 1usize..100,
        chunk in 1usize..64,
    ) {
        let mut wire = BytesMut::new();
        for r in &records {
            encode_record(r, frag, &mut wire);
        }
        let mut dec = RecordDecoder::new(1000);
        let mut src = BytesMut::new();
        let mut got = vec![];
        for piece in wire.chunks(chunk) {
            src.put_slice(piece);
            while let Some(r) = dec.decode(&mut src).unwrap() {
                got.push(r.to_vec());
            }
        }
        prop_assert_eq!(got, records);
    }
}

#[test]
fn negative_vectors_one_per_rule() {
    // UnexpectedEof
    assert!(matches!(
        xdr::from_bytes::<u64>(&[0, 0, 0, 1]),
        Err(XdrError::UnexpectedEof {
            needed: 4,
            remaining: 0
        })
    ));
    // LengthOverMax: a string<16> of 17 bytes.
    let mut w = BytesMut::new();
    w.put_u32(17);
    w.put_bytes(b'a', 20);
    let mut r = XdrReader::new(&w);
    assert_eq!(
        r.get_string(16),
        Err(XdrError::LengthOverMax { len: 17, max: 16 })
    );
    // LengthOverRemaining: an opaque claiming 4 GiB in 8 bytes, refused before allocating.
    assert!(matches!(
        xdr::from_bytes::<Opaque>(&[0xff, 0xff, 0xff, 0xfc, 0, 0, 0, 0]),
        Err(XdrError::LengthOverMax { .. }) | Err(XdrError::LengthOverRemaining { .. })
    ));
    assert_eq!(
        xdr::from_bytes::<Opaque>(&[0, 0, 0x10, 0, 0, 0, 0, 0]),
        Err(XdrError::LengthOverRemaining {
            len: 4096,
            remaining: 4
        })
    );
    // A Vec<u32> claiming a million elements in four bytes.
    assert!(xdr::from_bytes::<Vec<u32>>(&[0, 0x0f, 0x42, 0x40, 0, 0, 0, 1]).is_err());
    // InvalidBool
    assert_eq!(
        xdr::from_bytes::<bool>(&[0, 0, 0, 2]),
        Err(XdrError::InvalidBool(2))
    );
    assert_eq!(
        xdr::from_bytes::<Option<u32>>(&[0, 0, 0, 7]),
        Err(XdrError::InvalidBool(7))
    );
    // NonZeroPadding
    assert_eq!(
        xdr::from_bytes::<String>(&[0, 0, 0, 1, b'a', 0, 1, 0]),
        Err(XdrError::NonZeroPadding)
    );
    // InvalidUtf8
    assert_eq!(
        xdr::from_bytes::<String>(&[0, 0, 0, 1, 0xff, 0, 0, 0]),
        Err(XdrError::InvalidUtf8)
    );
    // UnknownDiscriminant (a union without a default arm).
    pvd_rpc::xdr_union! {
        #[derive(Debug)]
        enum Strict { 0 => Zero(()) }
    }
    assert!(matches!(
        xdr::from_bytes::<Strict>(&[0, 0, 0, 5]),
        Err(XdrError::UnknownDiscriminant { value: 5, .. })
    ));
    // TrailingBytes
    assert_eq!(
        xdr::from_bytes::<u32>(&[0, 0, 0, 1, 0, 0, 0, 0]),
        Err(XdrError::TrailingBytes(4))
    );
    // ListTooLong is covered by the bound in XdrList; TooDeep: a 2000-deep optional chain.
    pvd_rpc::xdr_struct! {
        #[derive(Debug)]
        struct Chain { next: Option<Box<Chain>> }
    }
    let mut w = BytesMut::new();
    for _ in 0..2000 {
        w.put_u32(1);
    }
    w.put_u32(0);
    assert!(matches!(
        xdr::from_bytes::<Chain>(&w),
        Err(XdrError::TooDeep { .. })
    ));
    // AUTH_SYS limits: 17 gids.
    let too_many = AuthSysParams {
        gids: (0..17).collect(),
        ..AuthSysParams::default()
    };
    assert_eq!(
        xdr::from_bytes::<AuthSysParams>(&xdr::to_bytes(&too_many)),
        Err(XdrError::LengthOverMax { len: 17, max: 16 })
    );
    // opaque_auth body over 400 bytes.
    let big_auth = OpaqueAuth {
        flavor: pvd_rpc::AuthFlavor::AUTH_SYS,
        body: Bytes::from(vec![0u8; 404]),
    };
    assert_eq!(
        xdr::from_bytes::<OpaqueAuth>(&xdr::to_bytes(&big_auth)),
        Err(XdrError::LengthOverMax { len: 404, max: 400 })
    );
}

#[test]
fn two_gib_record_mark_refused_before_allocating() {
    let mut src = BytesMut::with_capacity(8);
    src.put_u32(0xffff_ffff); // last fragment, 2 GiB - 1
    let mut dec = RecordDecoder::new(pvd_rpc::record::DEFAULT_MAX_RECORD_SIZE);
    let cap = src.capacity();
    assert!(matches!(
        dec.decode(&mut src),
        Err(RecordError::TooLarge {
            claimed: 0x7fff_ffff,
            ..
        })
    ));
    assert_eq!(
        src.capacity(),
        cap,
        "nothing reserved for the claimed fragment"
    );
}

#[test]
fn reply_headers_round_trip() {
    let bodies = [
        ReplyBody::Accepted {
            verf: OpaqueAuth::none(),
            status: AcceptedStatus::Success,
        },
        ReplyBody::Accepted {
            verf: OpaqueAuth::none(),
            status: AcceptedStatus::ProgMismatch { low: 1, high: 3 },
        },
        ReplyBody::Accepted {
            verf: OpaqueAuth::none(),
            status: AcceptedStatus::GarbageArgs,
        },
        ReplyBody::Denied(RejectedReply::RpcMismatch { low: 2, high: 2 }),
        ReplyBody::Denied(RejectedReply::AuthError(AuthStat::AUTH_TOOWEAK)),
    ];
    for body in bodies {
        let msg = encode_reply(7, &body, b"");
        assert_eq!(msg.len(), 8 + body.encoded_len());
        let (parsed, rest) = parse_message(&msg).unwrap();
        assert!(rest.is_empty());
        assert_eq!(parsed, pvd_rpc::message::RpcMessage::Reply { xid: 7, body });
    }
}

#[test]
fn known_wire_vector_of_auth_sys_call() {
    // A NULL call with AUTH_SYS, assembled by hand from RFC 5531 section 9 and appendix A.
    let params = AuthSysParams {
        stamp: 0x11223344,
        machinename: "host".into(),
        uid: 0,
        gid: 0,
        gids: vec![0],
    };
    let header = CallHeader {
        xid: 0xdeadbeef,
        rpcvers: 2,
        prog: 100000,
        vers: 2,
        proc_: 0,
        cred: OpaqueAuth::sys(&params),
        verf: OpaqueAuth::none(),
    };
    let msg = encode_call(&header, &[]);
    let expect = hex_bytes(
        "deadbeef 00000000 00000002 000186a0 00000002 00000000 \
         00000001 0000001c 11223344 00000004 686f7374 00000000 00000000 00000001 00000000 \
         00000000 00000000",
    );
    assert_eq!(&msg[..], &expect[..]);
    let Decoded(h) = Decoded::from(&msg);
    assert_eq!(h, header);
}

struct Decoded(CallHeader);
impl Decoded {
    fn from(msg: &Bytes) -> Decoded {
        match parse_message(msg).unwrap().0 {
            pvd_rpc::message::RpcMessage::Call(h) => Decoded(h),
            other => panic!("{other:?}"),
        }
    }
}

fn hex_bytes(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn decode_from_reader_leaves_the_rest() {
    let mut w = BytesMut::new();
    7u32.encode(&mut w);
    "abc".encode(&mut w);
    let mut r = XdrReader::new(&w);
    assert_eq!(u32::decode(&mut r).unwrap(), 7);
    assert_eq!(r.remaining(), 8);
    assert_eq!(String::decode(&mut r).unwrap(), "abc");
    r.finish().unwrap();
}
