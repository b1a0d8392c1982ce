//! RFC 5531 sections 9 and 11: byte vectors captured from libtirpc peers (the rpcgen client
//! and server built from integration/rpc-test/pvdtest.x), parsed and re-encoded bit for bit.

use bytes::{Bytes, BytesMut};
use pvd_rpc::message::{
    encode_call, encode_reply, parse_message, AcceptedStatus, CallHeader, ReplyBody, RpcMessage,
};
use pvd_rpc::record::{encode_record, RecordDecoder};
use pvd_rpc::xdr;
use pvd_rpc::OpaqueAuth;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn one_record(wire: &[u8]) -> Bytes {
    let mut src = BytesMut::from(wire);
    let rec = RecordDecoder::new(1 << 20)
        .decode(&mut src)
        .unwrap()
        .unwrap();
    assert!(src.is_empty());
    rec
}

/// libtirpc `clnttcp_create` + `clnt_call` of pvdtest COUNT (procedure 2, void arguments).
const TIRPC_COUNT_CALL: &str =
    "80000028f36f81b400000000000000023000cafe000000010000000200000000000000000000000000000000";
/// libtirpc `svctcp_create` server's SUCCESS reply to it (result: unsigned int 0).
const TIRPC_COUNT_REPLY: &str = "8000001cf36f81b4000000010000000000000000000000000000000000000000";
/// The same server's PROG_MISMATCH reply to version 5 (it has version 1 only).
const TIRPC_PROG_MISMATCH: &str =
    "800000200000000800000001000000000000000000000000000000020000000100000001";

#[test]
fn libtirpc_call() {
    let wire = hex(TIRPC_COUNT_CALL);
    let rec = one_record(&wire);
    let (msg, args) = parse_message(&rec).unwrap();
    let expect = CallHeader {
        xid: 0xf36f81b4,
        rpcvers: 2,
        prog: 0x3000cafe,
        vers: 1,
        proc_: 2,
        cred: OpaqueAuth::none(),
        verf: OpaqueAuth::none(),
    };
    assert_eq!(msg, RpcMessage::Call(expect.clone()));
    assert!(args.is_empty());
    let mut ours = BytesMut::new();
    encode_record(&encode_call(&expect, &[]), 1 << 20, &mut ours);
    assert_eq!(&ours[..], &wire[..]);
}

#[test]
fn libtirpc_replies() {
    let wire = hex(TIRPC_COUNT_REPLY);
    let rec = one_record(&wire);
    let (msg, results) = parse_message(&rec).unwrap();
    let body = ReplyBody::Accepted {
        verf: OpaqueAuth::none(),
        status: AcceptedStatus::Success,
    };
    assert_eq!(
        msg,
        RpcMessage::Reply {
            xid: 0xf36f81b4,
            body: body.clone()
        }
    );
    assert_eq!(xdr::from_bytes::<u32>(&results).unwrap(), 0);
    let mut ours = BytesMut::new();
    encode_record(
        &encode_reply(0xf36f81b4, &body, &xdr::to_bytes(&0u32)),
        1 << 20,
        &mut ours,
    );
    assert_eq!(&ours[..], &wire[..]);

    let wire = hex(TIRPC_PROG_MISMATCH);
    let rec = one_record(&wire);
    let (msg, _) = parse_message(&rec).unwrap();
    let body = ReplyBody::Accepted {
        verf: OpaqueAuth::none(),
        status: AcceptedStatus::ProgMismatch { low: 1, high: 1 },
    };
    assert_eq!(
        msg,
        RpcMessage::Reply {
            xid: 8,
            body: body.clone()
        }
    );
    let mut ours = BytesMut::new();
    encode_record(&encode_reply(8, &body, &[]), 1 << 20, &mut ours);
    assert_eq!(&ours[..], &wire[..]);
}
