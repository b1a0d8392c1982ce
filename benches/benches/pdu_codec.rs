//! RFC 7143 section 11 codec cost: decoding and encoding a SCSI Command PDU and a 128 KiB
//! Data-In, with and without CRC32C digests.
//!
//! `cargo bench -p pvd-benches --bench pdu_codec`

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use iscsi_proto::digest::DigestConfig;
use iscsi_proto::framing::PduDecoder;
use iscsi_proto::limits::Limits;
use iscsi_proto::pdu::{trailer, DataIn, Lun, Pdu, ScsiCommand, ScsiStatus, TaskAttr};

fn read10() -> Pdu {
    let mut cmd = ScsiCommand {
        final_bit: true,
        read: true,
        attr: TaskAttr::SIMPLE,
        lun: Lun::from_number(1).unwrap(),
        itt: 0x1234,
        expected_data_transfer_length: 131072,
        cmd_sn: 42,
        exp_stat_sn: 17,
        ..Default::default()
    };
    cmd.set_cdb(&[0x28, 0, 0, 0, 0x10, 0, 0, 1, 0, 0]);
    Pdu::ScsiCommand(cmd)
}

fn data_in_128k() -> Pdu {
    let data: Bytes = (0..131072u32).map(|i| i as u8).collect::<Vec<u8>>().into();
    Pdu::DataIn(DataIn {
        final_bit: true,
        status: Some(ScsiStatus::GOOD),
        lun: Lun::from_number(1).unwrap(),
        itt: 0x1234,
        ttt: 0xffff_ffff,
        stat_sn: 17,
        exp_cmd_sn: 43,
        max_cmd_sn: 170,
        data,
        ..Default::default()
    })
}

const CONFIGS: [(&str, DigestConfig); 2] = [
    ("no_digest", DigestConfig::NONE),
    ("crc32c", DigestConfig::BOTH),
];

fn bench(c: &mut Criterion) {
    for (name, pdu) in [("scsi_command", read10()), ("data_in_128k", data_in_128k())] {
        for (dname, d) in CONFIGS {
            let wire = pdu.to_bytes(d);
            let mut g = c.benchmark_group(format!("pdu/{name}/{dname}"));
            g.throughput(Throughput::Bytes(wire.len() as u64));

            g.bench_function("decode", |b| {
                let limits = Limits::with_max_recv_data_segment_length(262144);
                let mut dec = PduDecoder::new(limits, d);
                b.iter_batched(
                    || BytesMut::from(&wire[..]),
                    |mut buf| black_box(dec.decode(&mut buf).unwrap().unwrap()),
                    BatchSize::SmallInput,
                )
            });

            // 64 back-to-back PDUs in one receive buffer, as a busy connection sees them.
            g.bench_function("decode_stream_per_pdu", |b| {
                let limits = Limits::with_max_recv_data_segment_length(262144);
                let mut dec = PduDecoder::new(limits, d);
                let mut stream = BytesMut::new();
                for _ in 0..64 {
                    stream.extend_from_slice(&wire);
                }
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    let mut left = iters;
                    while left > 0 {
                        let mut buf = stream.clone();
                        let n = left.min(64);
                        let start = Instant::now();
                        for _ in 0..n {
                            black_box(dec.decode(&mut buf).unwrap().unwrap());
                        }
                        total += start.elapsed();
                        left -= n;
                    }
                    total
                })
            });

            g.bench_function("encode", |b| {
                let mut out = BytesMut::with_capacity(wire.len());
                b.iter(|| {
                    out.clear();
                    black_box(&pdu).encode(d, &mut out);
                    black_box(out.len())
                })
            });

            g.bench_function("encode_header_and_trailer", |b| {
                let mut out = BytesMut::with_capacity(128);
                b.iter(|| {
                    out.clear();
                    let p = black_box(&pdu);
                    p.encode_header(d, &mut out);
                    let t = p.data().map(|data| trailer(data, d));
                    black_box((out.len(), t))
                })
            });
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
