//! Randomized robustness: random and mutated texts thrown at the text parser, the SendTargets
//! parser and both login state machines, with a counting allocator checking that no input makes
//! them allocate more than a fixed bound. Seeded, so failures reproduce.

use iscsi_proto::text::chap::{ChapAlgorithm, ChapCredentials};
use iscsi_proto::text::kv::MAX_TEXT_LEN;
use iscsi_proto::text::sendtargets::{parse_send_targets_response, target_text_response};
use iscsi_proto::text::{
    encode_text, parse_text, parse_text_repeatable, ExportedTarget, InitiatorChapConfig,
    InitiatorConfig, InitiatorLogin, KeyValue, LoginRequestHeader, LoginResponseHeader,
    LoginStatus, SessionType, Stage, TargetChapConfig, TargetConfig, TargetLogin, TargetOutcome,
    TargetPortal,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: forwarding the caller's layout to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: ptr was allocated by `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Most extra memory one step on hostile input may hold at its peak.
const ALLOCATION_BOUND: usize = 4 * MAX_TEXT_LEN + 256 * 1024;

const KEYS: &[&str] = &[
    "InitiatorName",
    "TargetName",
    "SessionType",
    "AuthMethod",
    "CHAP_A",
    "CHAP_I",
    "CHAP_C",
    "CHAP_N",
    "CHAP_R",
    "HeaderDigest",
    "DataDigest",
    "MaxRecvDataSegmentLength",
    "MaxBurstLength",
    "FirstBurstLength",
    "InitialR2T",
    "ImmediateData",
    "ErrorRecoveryLevel",
    "OFMarkInt",
    "SendTargets",
    "TargetAddress",
    "TargetPortalGroupTag",
    "X-com.example.k",
    "Bogus",
];

const VALUES: &[&str] = &[
    "",
    "None",
    "CRC32C,None",
    "CHAP,None",
    "Yes",
    "No",
    "Reject",
    "Irrelevant",
    "NotUnderstood",
    "0",
    "512",
    "262144",
    "16777216",
    "0x10",
    "5,6,7",
    "0x00112233445566778899aabbccddeeff",
    "0bAAECAwQFBgcICQoLDA0ODw==",
    "iqn.2026-01.org.pvd:t",
    "Discovery",
    "Normal",
    "All",
    "[::1]:3260,1",
];

fn random_text(rng: &mut StdRng) -> Vec<u8> {
    match rng.gen_range(0..4) {
        0 => (0..rng.gen_range(0..600)).map(|_| rng.gen()).collect(),
        1 => (0..rng.gen_range(0..600))
            .map(|_| b"A=b\0x.9_-+@,:[]"[rng.gen_range(0..15)])
            .collect(),
        _ => {
            let pairs: Vec<KeyValue> = (0..rng.gen_range(0..12))
                .map(|_| {
                    KeyValue::new(
                        KEYS[rng.gen_range(0..KEYS.len())],
                        VALUES[rng.gen_range(0..VALUES.len())],
                    )
                })
                .collect();
            let mut t = encode_text(&pairs);
            mutate(rng, &mut t);
            t
        }
    }
}

fn mutate(rng: &mut StdRng, t: &mut Vec<u8>) {
    for _ in 0..rng.gen_range(0..4) {
        if t.is_empty() {
            return;
        }
        let at = rng.gen_range(0..t.len());
        match rng.gen_range(0..5) {
            0 => t[at] = rng.gen(),
            1 => t.insert(at, rng.gen()),
            2 => {
                let end = (at + rng.gen_range(1..20)).min(t.len());
                t.drain(at..end);
            }
            3 => t.truncate(at),
            _ => {
                let end = (at + rng.gen_range(1..40)).min(t.len());
                let piece = t[at..end].to_vec();
                t.extend_from_slice(&piece);
            }
        }
    }
}

fn stage(rng: &mut StdRng) -> Stage {
    Stage(rng.gen_range(0..4))
}

fn target_config() -> Arc<TargetConfig> {
    let mut cfg = TargetConfig::new(vec![ExportedTarget::new(
        "iqn.2026-01.org.pvd:t",
        vec![TargetPortal::new("::1", 3260, 1)],
    )]);
    cfg.chap = Some(TargetChapConfig {
        users: vec![ChapCredentials::new("u", b"secret-secret".to_vec())],
        mutual: Some(ChapCredentials::new("t", b"other-secret".to_vec())),
        algorithms: ChapAlgorithm::ALL.to_vec(),
    });
    Arc::new(cfg)
}

fn measured<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let r = f();
    (r, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

#[test]
fn random_and_mutated_text_never_panics_and_stays_bounded() {
    let mut rng = StdRng::seed_from_u64(0x7043_2026);
    let plain = include_str!("vectors/login_plain.txt");
    let captured: Vec<Vec<u8>> = plain
        .lines()
        .filter_map(|l| l.strip_prefix("> ").or_else(|| l.strip_prefix("< ")))
        .map(|h| hex::decode(h).unwrap()[48..].to_vec())
        .collect();
    let configs = [target_config(), Arc::new(TargetConfig::new(vec![]))];
    let mut worst = 0;
    for round in 0..3000 {
        let mut text = if round % 3 == 0 {
            captured[rng.gen_range(0..captured.len())].clone()
        } else {
            random_text(&mut rng)
        };
        mutate(&mut rng, &mut text);
        let ((), peak) = measured(|| {
            let _ = parse_text(&text);
            let _ = parse_text_repeatable(&text);
            let _ = parse_send_targets_response(&text);
            if let Ok(out) = target_text_response(
                &configs[0].targets,
                &text,
                "iqn.x",
                SessionType::Discovery,
                None,
            ) {
                assert!(out.len() <= MAX_TEXT_LEN);
            }
        });
        worst = worst.max(peak);
        // Target: a few requests with random header bits.
        let cfg = configs[round % 2].clone();
        let ((), peak) = measured(|| {
            let mut t = TargetLogin::new(cfg, 1);
            for step in 0..rng.gen_range(1..5) {
                let data = if step == 0 {
                    text.clone()
                } else {
                    random_text(&mut rng)
                };
                let h = LoginRequestHeader {
                    transit: rng.gen(),
                    cont: rng.gen_bool(0.2),
                    csg: stage(&mut rng),
                    nsg: stage(&mut rng),
                    version_max: rng.gen_range(0..2),
                    version_min: rng.gen_range(0..2),
                    isid: [1, 2, 3, 4, 5, 6],
                    tsih: if rng.gen_bool(0.9) { 0 } else { rng.gen() },
                };
                let s = t.step(&h, &data);
                assert!(s.response.text.len() <= 16 * 1024);
                if let TargetOutcome::Failed(e) = &s.outcome {
                    assert_eq!(s.response.header.status, e.status());
                    assert!(!iscsi_proto::text::login::is_success(
                        s.response.header.status
                    ));
                    break;
                }
            }
        });
        worst = worst.max(peak);
        // Initiator: random responses after the first request.
        let ((), peak) = measured(|| {
            let mut cfg = InitiatorConfig::normal("iqn.i", "iqn.2026-01.org.pvd:t", [0; 6]);
            if round % 2 == 0 {
                cfg.chap = Some(InitiatorChapConfig {
                    credentials: ChapCredentials::new("u", b"secret-secret".to_vec()),
                    mutual: None,
                    algorithms: vec![ChapAlgorithm::MD5, ChapAlgorithm::SHA256],
                });
            }
            let mut i = InitiatorLogin::new(cfg);
            let first = i.start();
            let mut csg = first.header.csg;
            for step in 0..rng.gen_range(1..5) {
                let data = if step == 0 {
                    text.clone()
                } else {
                    random_text(&mut rng)
                };
                let h = LoginResponseHeader {
                    transit: rng.gen(),
                    cont: rng.gen_bool(0.2),
                    csg: if rng.gen_bool(0.8) {
                        csg
                    } else {
                        stage(&mut rng)
                    },
                    nsg: stage(&mut rng),
                    version_max: 0,
                    version_active: if rng.gen_bool(0.95) { 0 } else { 1 },
                    isid: [0; 6],
                    tsih: rng.gen(),
                    status: if rng.gen_bool(0.9) {
                        LoginStatus::SUCCESS
                    } else {
                        LoginStatus(rng.gen())
                    },
                };
                match i.step(&h, &data) {
                    Ok(iscsi_proto::text::InitiatorStep::Send(r)) => {
                        assert!(r.text.len() <= 16 * 1024);
                        csg = r.header.csg;
                    }
                    _ => break,
                }
            }
        });
        worst = worst.max(peak);
    }
    assert!(
        worst <= ALLOCATION_BOUND,
        "peak allocation {worst} bytes above the bound {ALLOCATION_BOUND}"
    );
    eprintln!("worst peak allocation per step: {worst} bytes");
}
