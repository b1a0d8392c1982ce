//! SAM-5 section 5.14 and SPC-4 section 5.14: unit attention conditions. The logical unit
//! remembers the I_T nexuses that have sent it commands; a reset establishes a unit attention
//! for each, reported (and cleared) by that nexus's next command other than INQUIRY, REPORT
//! LUNS and REQUEST SENSE. A nexus first seen after a reset gets none: the transport has just
//! logged it in.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use iscsi_proto::scsi::{Asc, Cdb, Sense, SenseKey};

use super::Nexus;

/// Most I_T nexuses remembered; past it, nexuses without a pending condition are forgotten.
pub const MAX_KNOWN_NEXUSES: usize = 4096;

/// FNV-1a: the keys are two short names and an ISID, hashed once per command.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

type NexusMap = HashMap<Nexus, Option<Asc>, BuildHasherDefault<Fnv>>;

#[derive(Debug, Default)]
pub(crate) struct UnitAttentions {
    /// Some nexus has a pending condition.
    pending: AtomicBool,
    known: Mutex<NexusMap>,
}

impl std::fmt::Debug for Fnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fnv")
    }
}

impl UnitAttentions {
    fn lock(&self) -> std::sync::MutexGuard<'_, NexusMap> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `n` and returns the unit attention to report instead of executing `cdb`.
    pub(crate) fn take(&self, n: &Nexus, cdb: &Cdb) -> Option<Sense> {
        let reports = !matches!(
            cdb,
            Cdb::Inquiry { .. } | Cdb::ReportLuns { .. } | Cdb::RequestSense { .. }
        );
        let mut known = self.lock();
        if let Some(state) = known.get_mut(n) {
            if reports && self.pending.load(Ordering::Relaxed) {
                return state
                    .take()
                    .map(|asc| Sense::new(SenseKey::UNIT_ATTENTION, asc));
            }
            return None;
        }
        if known.len() >= MAX_KNOWN_NEXUSES {
            known.retain(|_, s| s.is_some());
        }
        known.insert(n.clone(), None);
        None
    }

    /// REQUEST SENSE reports (and clears) a pending unit attention of `n`.
    pub(crate) fn take_for_request_sense(&self, n: &Nexus) -> Option<Sense> {
        if !self.pending.load(Ordering::Relaxed) {
            return None;
        }
        self.lock()
            .get_mut(n)
            .and_then(Option::take)
            .map(|asc| Sense::new(SenseKey::UNIT_ATTENTION, asc))
    }

    /// Establishes `asc` for every known nexus except `except`.
    pub(crate) fn establish(&self, asc: Asc, except: Option<&Nexus>) {
        let mut known = self.lock();
        for (n, s) in known.iter_mut() {
            if Some(n) != except {
                *s = Some(asc);
            }
        }
        self.pending.store(true, Ordering::Relaxed);
    }

    /// Forgets `n` (I_T nexus loss or logout).
    pub(crate) fn forget(&self, n: &Nexus) {
        self.lock().remove(n);
    }
}
