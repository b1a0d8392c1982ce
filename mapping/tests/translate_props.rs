//! Property tests: translation and merging against a byte-by-byte model of the layout formula;
//! placement invariants.

use proptest::prelude::*;
use pvd_mapping::{
    place, ExtentReplica, ExtentTable, Geometry, ReplicaSet, ServerFree, ServerId, ServerPiece,
};
use std::collections::{BTreeMap, HashMap};

/// A geometry with small numbers so a byte-by-byte model stays cheap.
fn geometry() -> impl Strategy<Value = Geometry> {
    (1u64..=8, 1u64..=6, 1u32..=4, 1u32..=3, 1u64..=5).prop_map(|(u_sect, units, w, r, groups)| {
        let u = u_sect * 512;
        let e = u * units;
        // Size: a few groups, the last one possibly partial (sector aligned).
        let size = (e * w as u64 * (groups - 1) + u * (1 + units / 2)).max(512);
        Geometry::new(size, e, w, u, r).unwrap()
    })
}

/// Places replica k of extent x on server `(x + scramble + k) % n` with `n >= R` servers, each
/// extent on a slot of its own.
fn table(g: &Geometry, servers: u32, scramble: u64) -> ExtentTable {
    let n = servers.max(g.replicas);
    let mut next_slot = vec![0u64; n as usize];
    // Odd servers use 4096-byte blocks when the stripe unit allows it.
    let big = g.stripe_unit.is_multiple_of(4096);
    let bs = |s: u32| if s % 2 == 1 && big { 4096u32 } else { 512 };
    let extents: Vec<Vec<ExtentReplica>> = (0..g.extent_count())
        .map(|x| {
            (0..g.replicas)
                .map(|k| {
                    let s = ((x + scramble) % n as u64) as u32;
                    let s = (s + k) % n;
                    let slot = next_slot[s as usize];
                    next_slot[s as usize] += 1;
                    ExtentReplica {
                        portal: format!("127.0.0.1:{}", 3260 + s),
                        iqn: "iqn.2026-01.org.pvd:prop".into(),
                        lun: 0,
                        start_lba: slot * g.extent_size / bs(s) as u64,
                        block_size: bs(s),
                    }
                })
                .collect()
        })
        .collect();
    ExtentTable::new(*g, &extents).unwrap()
}

/// Every (buffer byte, target, LUN byte) the server pieces say.
fn bytes_of(pieces: &[ServerPiece]) -> Vec<(u64, u32, u64)> {
    let mut out = Vec::new();
    for p in pieces {
        let mut lun = p.lun_offset;
        let mut total = 0;
        for s in &p.segments {
            for i in 0..s.len {
                out.push((s.buf_offset + i, p.target, lun));
                lun += 1;
            }
            total += s.len;
        }
        assert_eq!(total, p.len, "segments sum to the piece length");
    }
    out.sort_unstable();
    out
}

fn request(g: &Geometry) -> impl Strategy<Value = (u64, u64)> {
    let size = g.size;
    (0..size).prop_flat_map(move |off| (Just(off), 0..=(size - off).min(40_000)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn pieces_follow_the_formula(
        (g, (off, len)) in geometry().prop_flat_map(|g| (Just(g), request(&g)))
    ) {
        let mut pieces = Vec::new();
        pvd_mapping::translate(&g, off, len, &mut pieces).unwrap();
        let mut covered = 0;
        for p in &pieces {
            prop_assert_eq!(p.offset_in_request, covered);
            prop_assert_eq!(p.column as u64, p.extent % g.stripes as u64);
            for i in 0..p.len {
                let l = g.locate(off + p.offset_in_request + i);
                prop_assert_eq!(l.extent, p.extent);
                prop_assert_eq!(l.offset_in_extent, p.offset_in_extent + i);
            }
            // Pieces never cross extents.
            prop_assert!(p.offset_in_extent + p.len <= g.extent_size);
            covered += p.len;
        }
        prop_assert_eq!(covered, len);
    }

    #[test]
    fn merged_server_pieces_match_byte_model(
        (g, (off, len)) in geometry().prop_flat_map(|g| (Just(g), request(&g))),
        servers in 1u32..6,
        scramble in 0u64..7,
        only in 0u32..3,
    ) {
        let t = table(&g, servers, scramble);
        let mut scratch = Vec::new();
        let mut out = Vec::new();

        // Reads: one replica, every buffer byte exactly once at the formula's place.
        let k = only % g.replicas;
        t.server_pieces(off, len, ReplicaSet::Only(k), &mut scratch, &mut out).unwrap();
        let got = bytes_of(&out);
        let mut want = Vec::with_capacity(len as usize);
        for b in 0..len {
            let l = g.locate(off + b);
            let slot = t.replica(l.extent, k);
            want.push((b, slot.target, slot.start_byte + l.offset_in_extent));
        }
        prop_assert_eq!(&got, &want);
        // Merged: no two pieces of one target are contiguous on it.
        for w in out.windows(2) {
            prop_assert!(!(w[0].target == w[1].target && w[0].lun_offset + w[0].len == w[1].lun_offset));
            prop_assert!((w[0].target, w[0].lun_offset) < (w[1].target, w[1].lun_offset));
        }
        for p in &out {
            let bs = t.targets()[p.target as usize].block_size as u64;
            prop_assert_eq!(p.lba, p.lun_offset / bs);
        }

        // Reads spread over replicas: replica (extent + k) % R of each extent.
        t.server_pieces(off, len, ReplicaSet::Rotate(k), &mut scratch, &mut out).unwrap();
        let got = bytes_of(&out);
        let mut want = Vec::with_capacity(len as usize);
        for b in 0..len {
            let l = g.locate(off + b);
            let kk = ((l.extent + k as u64) % g.replicas as u64) as u32;
            let slot = t.replica(l.extent, kk);
            want.push((b, slot.target, slot.start_byte + l.offset_in_extent));
        }
        prop_assert_eq!(&got, &want);

        // Writes: every replica.
        t.server_pieces(off, len, ReplicaSet::All, &mut scratch, &mut out).unwrap();
        let got = bytes_of(&out);
        let mut want = Vec::new();
        for b in 0..len {
            let l = g.locate(off + b);
            for k in 0..g.replicas {
                let slot = t.replica(l.extent, k);
                want.push((b, slot.target, slot.start_byte + l.offset_in_extent));
            }
        }
        want.sort_unstable();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn placement_invariants(
        nservers in 1u32..8,
        frees in proptest::collection::vec(0u64..20, 8),
        w in 1u32..4,
        r in 1u32..4,
        groups in 1u64..6,
    ) {
        let servers: Vec<ServerFree> = (0..nservers)
            .map(|i| ServerFree { id: ServerId(i), free: frees[i as usize] })
            .collect();
        let extents: Vec<u64> = (0..groups * w as u64).collect();
        match place(&servers, w, r, &extents, &BTreeMap::new()) {
            Ok(p) => {
                let mut used: HashMap<ServerId, u64> = HashMap::new();
                for (&x, reps) in &p {
                    prop_assert_eq!(reps.len(), r as usize);
                    let mut d = reps.clone();
                    d.sort();
                    d.dedup();
                    prop_assert_eq!(d.len(), r as usize, "replicas of extent {} distinct", x);
                    for s in reps { *used.entry(*s).or_default() += 1; }
                }
                for s in &servers {
                    prop_assert!(used.get(&s.id).copied().unwrap_or(0) <= s.free);
                }
                // When every server has room for everything, a group's W*R replicas are on
                // distinct servers as long as there are that many servers.
                let roomy = servers.iter().all(|s| s.free >= groups * w as u64 * r as u64);
                if roomy && nservers >= w * r {
                    for g in 0..groups {
                        let mut all: Vec<ServerId> = (0..w as u64)
                            .flat_map(|c| p[&(g * w as u64 + c)].clone())
                            .collect();
                        all.sort();
                        let n = all.len();
                        all.dedup();
                        prop_assert_eq!(all.len(), n, "group {} on distinct servers", g);
                    }
                }
                // Balanced: with equal free space, use counts differ by at most one group's worth.
                if servers.iter().all(|s| s.free == servers[0].free) {
                    let counts: Vec<u64> = servers.iter().map(|s| used.get(&s.id).copied().unwrap_or(0)).collect();
                    let spread = counts.iter().max().unwrap() - counts.iter().min().unwrap();
                    prop_assert!(spread <= (w * r) as u64, "spread {} counts {:?}", spread, counts);
                }
            }
            Err(_) => {
                let with_room = servers.iter().filter(|s| s.free > 0).count();
                let total: u64 = servers.iter().map(|s| s.free).sum();
                // A refusal is legitimate only when room or distinct servers are short.
                let max_per_extent: u64 = servers.iter().map(|s| s.free.min(groups * w as u64)).sum();
                prop_assert!(
                    with_room < r as usize
                        || total < extents.len() as u64 * r as u64
                        || max_per_extent < extents.len() as u64 * r as u64,
                    "refused although {} servers with room, {} free", with_room, total
                );
            }
        }
    }
}

#[test]
fn sequential_request_on_two_columns_becomes_two_server_requests() {
    let mib = 1u64 << 20;
    let g = Geometry::new(256 * mib, 64 * mib, 2, mib, 1).unwrap();
    let t = table(&g, 2, 0);
    let mut scratch = Vec::new();
    let mut out = Vec::new();
    // 8 MiB at 60 MiB: 8 stripe units, alternating columns.
    t.server_pieces(60 * mib, 8 * mib, ReplicaSet::All, &mut scratch, &mut out)
        .unwrap();
    assert_eq!(scratch.len(), 8);
    assert_eq!(out.len(), 2, "{out:?}");
    for p in &out {
        assert_eq!(p.len, 4 * mib);
        assert_eq!(p.segments.len(), 4);
    }
    // Crossing a group boundary: extents 0 and 2 (column 0) are adjacent slots on server 0.
    t.server_pieces(126 * mib, 4 * mib, ReplicaSet::All, &mut scratch, &mut out)
        .unwrap();
    assert_eq!(out.len(), 2, "{out:?}");
}
