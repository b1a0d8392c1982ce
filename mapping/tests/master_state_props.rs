//! Property tests of the master's state machine and journal: random sequences of register,
//! allocate and release with restarts (replay from snapshot + journal) in between.

use proptest::prelude::*;
use pvd_mapping::master::{MasterState, Store, StoreError};
use pvd_mapping::{Geometry, ServerInfo};
use std::collections::BTreeSet;
use std::io::{Seek, SeekFrom, Write};

const E: u64 = 1 << 20;

#[derive(Debug, Clone)]
enum Op {
    Register {
        server: u8,
        extents: u8,
    },
    Allocate {
        disk: u8,
        groups: u8,
        w: u8,
        r: u8,
        partial: bool,
    },
    Release {
        disk: u8,
    },
    Restart,
    Compact,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..6, 1u8..12).prop_map(|(server, extents)| Op::Register { server, extents }),
        5 => (0u8..5, 1u8..4, 1u8..4, 1u8..3, any::<bool>())
            .prop_map(|(disk, groups, w, r, partial)| Op::Allocate { disk, groups, w, r, partial }),
        2 => (0u8..5).prop_map(|disk| Op::Release { disk }),
        1 => Just(Op::Restart),
        1 => Just(Op::Compact),
    ]
}

fn info(server: u8, extents: u8) -> ServerInfo {
    ServerInfo {
        portal: format!("127.0.0.1:{}", 3260 + server as u16),
        iqn: format!("iqn.2026-01.org.pvd:s{server}"),
        lun: 0,
        capacity_bytes: extents as u64 * E + 4096,
        block_size: if server.is_multiple_of(2) { 512 } else { 4096 },
    }
}

fn geometry(groups: u8, w: u8, r: u8) -> Geometry {
    Geometry::new(
        groups as u64 * w as u64 * E,
        E,
        w as u32,
        64 << 10,
        r as u32,
    )
    .unwrap()
}

/// Runs one request against the store the way the service does: plan, commit, answer.
fn allocate(
    store: &mut Store,
    name: &str,
    g: &Geometry,
    idx: &[u64],
) -> Result<Vec<(u64, Vec<pvd_mapping::ExtentReplica>)>, String> {
    let (id, records) = store
        .state()
        .plan_allocate(name, g, idx)
        .map_err(|e| e.to_string())?;
    store.commit(records).map_err(|e| e.to_string())?;
    Ok(store.state().allocation(id, idx).unwrap().extents)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_survive_restarts(ops in proptest::collection::vec(op(), 1..40), every in 1u64..6) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), Some(E), E).unwrap();
        store.set_compact_every(every);
        // The same records applied to a state that never restarts.
        let mut model = MasterState::new(E);
        let mut geoms: [Option<Geometry>; 5] = [None; 5];
        for op in ops {
            match op {
                Op::Register { server, extents } => {
                    let i = info(server, extents);
                    let before = store.state().clone();
                    match store.state().plan_register(&i) {
                        Ok((id, rec)) => {
                            if let Some(r) = rec.clone() { model.apply(&r).unwrap(); }
                            store.commit(rec.into_iter().collect()).unwrap();
                            // Idempotent: registering again gives the same id, no record.
                            let (id2, rec2) = store.state().plan_register(&i).unwrap();
                            prop_assert_eq!(id, id2);
                            prop_assert!(rec2.is_none());
                        }
                        Err(_) => prop_assert_eq!(&before, store.state()),
                    }
                }
                Op::Allocate { disk, groups, w, r, partial } => {
                    let name = format!("d{disk}");
                    let g = geoms[disk as usize].unwrap_or_else(|| geometry(groups, w, r));
                    let idx: Vec<u64> = if partial { (0..g.extent_count()).step_by(2).collect() } else { vec![] };
                    let before = store.state().clone();
                    match store.state().plan_allocate(&name, &g, &idx) {
                        Ok((_, records)) => {
                            for rec in &records { model.apply(rec).unwrap(); }
                            store.commit(records).unwrap();
                            geoms[disk as usize] = Some(g);
                            // At-least-once: the retried call plans nothing and answers the same.
                            let first = store.state().allocation(store.state().find_vdisk(0, &name).unwrap().id, &idx).unwrap();
                            let again = allocate(&mut store, &name, &g, &idx).unwrap();
                            prop_assert_eq!(first.extents, again);
                            // A different geometry under the same name is refused.
                            let other = Geometry { size: g.size + g.group_bytes(), ..g };
                            prop_assert!(store.state().plan_allocate(&name, &other, &[]).is_err());
                        }
                        Err(_) => prop_assert_eq!(&before, store.state()),
                    }
                }
                Op::Release { disk } => {
                    let name = format!("d{disk}");
                    if let Some(rec) = store.state().plan_release(0, &name) {
                        model.apply(&rec).unwrap();
                        store.commit(vec![rec]).unwrap();
                    }
                    prop_assert!(store.state().plan_release(0, &name).is_none());
                    geoms[disk as usize] = None;
                }
                Op::Restart => {
                    drop(store);
                    store = Store::open(dir.path(), None, 999).unwrap();
                    store.set_compact_every(every);
                    prop_assert_eq!(store.replay.torn_bytes_dropped, 0);
                }
                Op::Compact => store.compact().unwrap(),
            }
            store.state().check_invariants().map_err(TestCaseError::fail)?;
            prop_assert_eq!(store.state(), &model);
        }
        drop(store);
        let reopened = Store::open(dir.path(), Some(E), E).unwrap();
        prop_assert_eq!(reopened.state(), &model);
    }
}

fn seeded_store(dir: &std::path::Path) -> MasterState {
    let mut store = Store::open(dir, Some(E), E).unwrap();
    store.set_compact_every(1_000_000);
    for s in 0..3 {
        let (_, rec) = store.state().plan_register(&info(s, 8)).unwrap();
        store.commit(rec.into_iter().collect()).unwrap();
    }
    for d in 0..3 {
        allocate(&mut store, &format!("d{d}"), &geometry(2, 2, 1), &[]).unwrap();
    }
    store.state().clone()
}

#[test]
fn torn_last_record_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let full = seeded_store(dir.path());
    let jp = Store::journal_path(dir.path());
    let len = std::fs::metadata(&jp).unwrap().len();
    // Every cut inside the last record loses exactly that record.
    let bytes = std::fs::read(&jp).unwrap();
    for cut in [len - 1, len - 7, len - 40] {
        std::fs::write(&jp, &bytes[..cut as usize]).unwrap();
        let s = Store::open(dir.path(), None, E).unwrap();
        assert!(s.replay.torn_bytes_dropped > 0);
        assert!(
            s.state().find_vdisk(0, "d2").is_some(),
            "create record kept"
        );
        assert!(s.state().find_vdisk(0, "d2").unwrap().extents.is_empty());
        assert!(s.state().find_vdisk(0, "d1").unwrap().extents.len() == 4);
        s.state().check_invariants().unwrap();
    }
    // A zero-filled tail (file extended, data never written) is torn too.
    let mut with_zeros = bytes.clone();
    with_zeros.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&jp, &with_zeros).unwrap();
    let s = Store::open(dir.path(), None, E).unwrap();
    assert_eq!(s.state(), &full);
    assert_eq!(s.replay.torn_bytes_dropped, 4096);
    // A flipped byte in the last record's payload: checksum mismatch at the end = torn.
    let mut flipped = bytes.clone();
    let n = flipped.len();
    flipped[n - 3] ^= 0x55;
    std::fs::write(&jp, &flipped).unwrap();
    drop(s);
    let s = Store::open(dir.path(), None, E).unwrap();
    assert!(s.state().find_vdisk(0, "d2").unwrap().extents.is_empty());
}

#[test]
fn corrupted_middle_record_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    seeded_store(dir.path());
    let jp = Store::journal_path(dir.path());
    let mut f = std::fs::OpenOptions::new().write(true).open(&jp).unwrap();
    f.seek(SeekFrom::Start(20)).unwrap();
    f.write_all(b"XX").unwrap();
    drop(f);
    match Store::open(dir.path(), None, E) {
        Err(StoreError::Corrupt { offset, why, .. }) => {
            assert_eq!(offset, 0);
            assert!(why.contains("checksum"), "{why}");
        }
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("a corrupted middle record must refuse the start"),
    }
}

#[test]
fn second_master_on_same_dir_refused_and_extent_size_checked() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), Some(E), E).unwrap();
    assert!(matches!(
        Store::open(dir.path(), None, E),
        Err(StoreError::Busy(_))
    ));
    drop(s);
    assert!(matches!(
        Store::open(dir.path(), Some(2 * E), E),
        Err(StoreError::ExtentSizeMismatch { .. })
    ));
}

#[test]
fn no_room_and_not_enough_servers_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), Some(E), E).unwrap();
    let (_, rec) = store.state().plan_register(&info(0, 2)).unwrap();
    store.commit(rec.into_iter().collect()).unwrap();
    let e = allocate(&mut store, "a", &geometry(1, 1, 2), &[]).unwrap_err();
    assert!(e.contains("2 replicas need 2 distinct servers"), "{e}");
    let e = allocate(&mut store, "b", &geometry(3, 1, 1), &[]).unwrap_err();
    assert!(
        e.contains("not enough room: 3 free extents needed, 2 free"),
        "{e}"
    );
    // Nothing half-done: no vdisk was created by the refused calls.
    assert!(store.state().vdisks.is_empty());
    let ids: BTreeSet<u64> = store.state().vdisks.keys().copied().collect();
    assert!(ids.is_empty());
}
