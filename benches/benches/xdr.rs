//! XDR (RFC 4506) and RPC message (RFC 5531) encode/decode throughput.

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use pvd_rpc::message::{encode_call, parse_message, CallHeader};
use pvd_rpc::record::{encode_record, RecordDecoder};
use pvd_rpc::xdr::{self, Opaque, XdrEncode};
use pvd_rpc::{AuthSysParams, OpaqueAuth};

pvd_rpc::xdr_struct! {
    /// Shaped like an extent allocation reply: a few scalars, a string, a list of records.
    #[derive(Debug, Clone, PartialEq)]
    struct Replica {
        portal: String [max = 255],
        iqn: String [max = 223],
        lun: u64,
        start_lba: u64,
    }
}

pvd_rpc::xdr_struct! {
    #[derive(Debug, Clone, PartialEq)]
    struct Allocation {
        vdisk: u64,
        extent: u64,
        replicas: Vec<Replica> [max = 16],
        payload: Opaque [max = 1 << 20],
    }
}

fn sample(payload: usize) -> Allocation {
    Allocation {
        vdisk: 42,
        extent: 7,
        replicas: (0..3)
            .map(|i| Replica {
                portal: format!("10.0.0.{i}:3260"),
                iqn: format!("iqn.2026-01.org.pvd:server{i}"),
                lun: i,
                start_lba: i * 2048,
            })
            .collect(),
        payload: vec![0xa5u8; payload].into(),
    }
}

fn xdr_struct(c: &mut Criterion) {
    for payload in [0usize, 64 << 10] {
        let v = sample(payload);
        let wire = xdr::to_bytes(&v);
        let mut g = c.benchmark_group(format!("xdr_allocation_{payload}"));
        g.throughput(Throughput::Bytes(wire.len() as u64));
        g.bench_function("encode", |b| {
            let mut buf = BytesMut::with_capacity(wire.len());
            b.iter(|| {
                buf.clear();
                black_box(&v).encode(&mut buf);
                black_box(buf.len())
            })
        });
        g.bench_function("decode", |b| {
            b.iter(|| xdr::from_bytes::<Allocation>(black_box(&wire)).unwrap())
        });
        g.finish();
    }
}

fn rpc_call(c: &mut Criterion) {
    let header = CallHeader {
        xid: 1,
        rpcvers: 2,
        prog: 0x2000_0001,
        vers: 1,
        proc_: 3,
        cred: OpaqueAuth::sys(&AuthSysParams {
            stamp: 1,
            machinename: "client.example".into(),
            uid: 0,
            gid: 0,
            gids: vec![0, 1, 2],
        }),
        verf: OpaqueAuth::none(),
    };
    let args = xdr::to_bytes(&sample(0));
    let msg = encode_call(&header, &args);
    let mut rec = BytesMut::new();
    encode_record(&msg, 1 << 20, &mut rec);
    let rec = rec.freeze();
    let mut g = c.benchmark_group("rpc_call");
    g.throughput(Throughput::Bytes(rec.len() as u64));
    g.bench_function("encode_call_and_record", |b| {
        b.iter(|| {
            let m = encode_call(black_box(&header), black_box(&args));
            let mut out = BytesMut::with_capacity(m.len() + 4);
            encode_record(&m, 1 << 20, &mut out);
            out
        })
    });
    g.bench_function("reassemble_and_parse", |b| {
        b.iter(|| {
            let mut src = BytesMut::from(&rec[..]);
            let mut dec = RecordDecoder::new(1 << 20);
            let r: Bytes = dec.decode(&mut src).unwrap().unwrap();
            parse_message(&r).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, xdr_struct, rpc_call);
criterion_main!(benches);
