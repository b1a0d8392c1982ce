//! Fuzzes RFC 5531 message parsing and RFC 4506 decoding of the types pvd receives: the call
//! and reply headers, AUTH_SYS credentials, rpcbind lists, and generic containers.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pvd_rpc::auth::AuthSysParams;
use pvd_rpc::message::parse_message;
use pvd_rpc::rpcbind::{Mapping, Rpcb, XdrList};
use pvd_rpc::xdr::{self, Opaque};

fuzz_target!(|data: &[u8]| {
    if let Ok((msg, rest)) = parse_message(&Bytes::copy_from_slice(data)) {
        if let pvd_rpc::message::RpcMessage::Call(h) = msg {
            let _ = h.cred.as_auth_sys();
        }
        let _ = xdr::from_bytes::<(String, Vec<u64>, Option<Opaque>)>(&rest);
    }
    let _ = xdr::from_bytes::<AuthSysParams>(data);
    let _ = xdr::from_bytes::<XdrList<Mapping>>(data);
    let _ = xdr::from_bytes::<XdrList<Rpcb>>(data);
});
