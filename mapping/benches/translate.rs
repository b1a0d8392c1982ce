//! Cost of translating one request into merged per-server pieces (the per-request metadata
//! cost the thesis says must stay small): 4 KiB random and 1 MiB / 8 MiB sequential requests on
//! W = 1, 2, 4 with R = 1 and 2.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pvd_mapping::{ExtentReplica, ExtentTable, Geometry, ReplicaSet};
use std::hint::black_box;

const MIB: u64 = 1 << 20;

fn table(w: u32, r: u32) -> ExtentTable {
    let g = Geometry::new(64 << 30, 64 * MIB, w, MIB, r).unwrap();
    let servers = (w * r).max(r) as u64;
    let mut next = vec![0u64; servers as usize];
    let extents: Vec<Vec<ExtentReplica>> = (0..g.extent_count())
        .map(|x| {
            (0..r as u64)
                .map(|k| {
                    let s = ((x % w as u64) * r as u64 + k) % servers;
                    let slot = next[s as usize];
                    next[s as usize] += 1;
                    ExtentReplica {
                        portal: format!("10.0.0.{s}:3260"),
                        iqn: "iqn.2026-01.org.pvd:bench".into(),
                        lun: 0,
                        start_lba: slot * g.extent_size / 512,
                        block_size: 512,
                    }
                })
                .collect()
        })
        .collect();
    ExtentTable::new(g, &extents).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("server_pieces");
    for (w, r) in [(1, 1), (2, 1), (4, 1), (2, 2)] {
        let t = table(w, r);
        let mut scratch = Vec::new();
        let mut out = Vec::new();
        for (label, len) in [("4KiB", 4096u64), ("1MiB", MIB), ("8MiB", 8 * MIB)] {
            group.throughput(Throughput::Elements(1));
            let id = BenchmarkId::new(format!("W{w}R{r}"), label);
            let mut off = 0u64;
            group.bench_function(id, |b| {
                b.iter(|| {
                    // Walk the disk so successive requests hit different extents.
                    off = (off + 7 * MIB + 4096) % (t.geometry().size - len);
                    let off = off & !4095;
                    t.server_pieces(off, len, ReplicaSet::All, &mut scratch, &mut out)
                        .unwrap();
                    black_box(out.len())
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
