//! Fuzzes RFC 5531 section 11 record reassembly: arbitrary stream bytes, delivered in chunks
//! whose sizes come from the input, must yield records no longer than the limit and never
//! make the decoder reserve more than the limit.
#![no_main]

use bytes::{BufMut, BytesMut};
use libfuzzer_sys::fuzz_target;
use pvd_rpc::record::RecordDecoder;

const LIMIT: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut dec = RecordDecoder::new(LIMIT);
    let mut src = BytesMut::new();
    for piece in stream.chunks(chunk) {
        src.put_slice(piece);
        loop {
            match dec.decode(&mut src) {
                Ok(Some(rec)) => assert!(rec.len() <= LIMIT),
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(src.capacity() <= LIMIT + 4 + stream.len());
    }
});
