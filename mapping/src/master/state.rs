//! The master's state machine (DESIGN.md "Control path"): registered servers carved into extent
//! slots, virtual disks, and which (vdisk, extent index, replica) holds each slot (its allocation
//! lock).
//!
//! Pure: requests are *planned* into journal [`Record`]s without changing anything, and only
//! [`MasterState::apply`] changes the state. The service journals the records durably and then
//! applies them, and replay at start-up applies the same records, so a restart reaches the same
//! state. Because every allocation records (vdisk, extent index) -> slots, a retried ALLOCATE
//! plans nothing new and returns the same extents (RPC is at-least-once).

use crate::geometry::{Geometry, GeometryError};
use crate::placement::{place, PlacementError, ServerFree};
use crate::server::{ExtentReplica, ServerId, ServerInfo};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use thiserror::Error;

/// Longest vdisk name accepted.
pub const MAX_NAME_LEN: usize = 255;
/// Longest portal or IQN string accepted (RFC 7143 section 4.2.7.1 caps names at 223 bytes).
pub const MAX_ADDR_LEN: usize = 255;

/// Most extent slots one server is carved into (256 TiB at 64 MiB extents); a larger LUN is
/// used up to this many extents, keeping the master's free lists bounded.
pub const MAX_SLOTS_PER_SERVER: u64 = 1 << 22;

/// A vdisk number given by the master; never 0 (0 means "by name" in requests).
pub type VdiskId = u64;

/// Where replica `k` of an extent lives: a server and an extent slot on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SlotRef {
    pub server: ServerId,
    pub slot: u64,
}

/// One journal record: the only way the state changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Record {
    /// A new server (LUN), carved into `slots` extents.
    RegisterServer {
        id: ServerId,
        info: ServerInfo,
        slots: u64,
    },
    /// A new virtual disk.
    CreateVdisk {
        id: VdiskId,
        name: String,
        geometry: Geometry,
    },
    /// Extents of a vdisk taken: extent index -> one slot per replica.
    Allocate {
        vdisk: VdiskId,
        extents: Vec<(u64, Vec<SlotRef>)>,
    },
    /// A vdisk and all its extents released.
    Release { vdisk: VdiskId },
}

/// Why a request was refused (each variant names the rule).
#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum MasterError {
    #[error("server {portal} {iqn} lun {lun}: block size {block_size} must be a power of two >= 512 dividing the extent size {extent_size}")]
    BadBlockSize {
        portal: String,
        iqn: String,
        lun: u64,
        block_size: u32,
        extent_size: u64,
    },
    #[error("server {portal} {iqn} lun {lun}: capacity {capacity} is smaller than one extent ({extent_size} bytes)")]
    TooSmall {
        portal: String,
        iqn: String,
        lun: u64,
        capacity: u64,
        extent_size: u64,
    },
    #[error("server {portal} {iqn} lun {lun} was registered with capacity {was} bytes and block size {was_bs}, now announces {now} bytes and block size {now_bs}")]
    ServerChanged {
        portal: String,
        iqn: String,
        lun: u64,
        was: u64,
        was_bs: u32,
        now: u64,
        now_bs: u32,
    },
    #[error("a string field is empty or longer than {MAX_ADDR_LEN} bytes")]
    BadString,
    #[error(
        "vdisk name must be 1..={MAX_NAME_LEN} bytes of letters, digits, '.', '-', '_'; got {0:?}"
    )]
    BadName(String),
    #[error("invalid geometry: {0}")]
    Geometry(#[from] GeometryError),
    #[error(
        "this master carves servers into {master} byte extents; the request asks for {requested}"
    )]
    ExtentSizeMismatch { master: u64, requested: u64 },
    #[error("vdisk {name:?} already exists with a different geometry ({existing}); requested {requested}")]
    GeometryMismatch {
        name: String,
        existing: Geometry,
        requested: Geometry,
    },
    #[error("extent index {index} is beyond the {count} extents of vdisk {name:?}")]
    ExtentOutOfRange {
        name: String,
        index: u64,
        count: u64,
    },
    #[error("cannot place extents: {0}")]
    Placement(#[from] PlacementError),
    #[error("no vdisk {0}")]
    NoSuchVdisk(String),
}

/// A registered server and its free slots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerState {
    pub id: ServerId,
    pub info: ServerInfo,
    pub slots: u64,
    /// Free slots; the lowest is used first so a column's extents stay contiguous. Stored in
    /// snapshots as `[first, end)` runs, so a large empty server costs a few bytes.
    #[serde(with = "slots_as_runs")]
    pub free: BTreeSet<u64>,
}

mod slots_as_runs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeSet;

    pub fn serialize<S: Serializer>(set: &BTreeSet<u64>, s: S) -> Result<S::Ok, S::Error> {
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for &x in set {
            match runs.last_mut() {
                Some(last) if last.1 == x => last.1 = x + 1,
                _ => runs.push((x, x + 1)),
            }
        }
        runs.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeSet<u64>, D::Error> {
        let runs: Vec<(u64, u64)> = Vec::deserialize(d)?;
        let mut set = BTreeSet::new();
        for (a, b) in runs {
            if a >= b || b > super::MAX_SLOTS_PER_SERVER {
                return Err(serde::de::Error::custom(format!(
                    "bad free-slot run [{a}, {b})"
                )));
            }
            set.extend(a..b);
        }
        Ok(set)
    }
}

/// A virtual disk and its extents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VdiskState {
    pub id: VdiskId,
    pub name: String,
    pub geometry: Geometry,
    pub extents: BTreeMap<u64, Vec<SlotRef>>,
}

/// The whole master state. Serialisable: it is the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterState {
    pub extent_size: u64,
    pub servers: BTreeMap<ServerId, ServerState>,
    pub vdisks: BTreeMap<VdiskId, VdiskState>,
    /// Allocation locks: who holds each slot (vdisk, extent index, replica).
    #[serde(with = "owners_as_list")]
    pub owners: BTreeMap<SlotRef, (VdiskId, u64, u32)>,
    pub next_server: u32,
    pub next_vdisk: VdiskId,
}

mod owners_as_list {
    use super::{SlotRef, VdiskId};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    type Owners = BTreeMap<SlotRef, (VdiskId, u64, u32)>;

    pub fn serialize<S: Serializer>(m: &Owners, s: S) -> Result<S::Ok, S::Error> {
        let v: Vec<(&SlotRef, &(VdiskId, u64, u32))> = m.iter().collect();
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Owners, D::Error> {
        let v: Vec<(SlotRef, (VdiskId, u64, u32))> = Vec::deserialize(d)?;
        Ok(v.into_iter().collect())
    }
}

/// What an ALLOCATE returns: the vdisk id and, per requested extent, its replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub vdisk: VdiskId,
    pub geometry: Geometry,
    pub extents: Vec<(u64, Vec<ExtentReplica>)>,
}

/// Totals for STATUS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub servers: u64,
    pub slots: u64,
    pub free: u64,
    pub used: u64,
    pub vdisks: u64,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
}

impl MasterState {
    /// An empty master carving servers into `extent_size` byte extents.
    pub fn new(extent_size: u64) -> MasterState {
        MasterState {
            extent_size,
            servers: BTreeMap::new(),
            vdisks: BTreeMap::new(),
            owners: BTreeMap::new(),
            next_server: 1,
            next_vdisk: 1,
        }
    }

    /// Plans REGISTER_SERVER: the id, and the record to journal if the server is new.
    pub fn plan_register(
        &self,
        info: &ServerInfo,
    ) -> Result<(ServerId, Option<Record>), MasterError> {
        if info.portal.is_empty()
            || info.portal.len() > MAX_ADDR_LEN
            || info.iqn.is_empty()
            || info.iqn.len() > MAX_ADDR_LEN
        {
            return Err(MasterError::BadString);
        }
        if let Some(s) = self.servers.values().find(|s| s.info.key() == info.key()) {
            if s.info.capacity_bytes != info.capacity_bytes || s.info.block_size != info.block_size
            {
                // A LUN that changed shape under allocated extents is not the same server.
                if s.info.block_size != info.block_size
                    || info.capacity_bytes / self.extent_size < s.slots
                {
                    return Err(MasterError::ServerChanged {
                        portal: info.portal.clone(),
                        iqn: info.iqn.clone(),
                        lun: info.lun,
                        was: s.info.capacity_bytes,
                        was_bs: s.info.block_size,
                        now: info.capacity_bytes,
                        now_bs: info.block_size,
                    });
                }
            }
            return Ok((s.id, None));
        }
        let bs = info.block_size;
        if bs < 512 || !bs.is_power_of_two() || !self.extent_size.is_multiple_of(bs as u64) {
            return Err(MasterError::BadBlockSize {
                portal: info.portal.clone(),
                iqn: info.iqn.clone(),
                lun: info.lun,
                block_size: bs,
                extent_size: self.extent_size,
            });
        }
        let slots = info
            .extent_slots(self.extent_size)
            .min(MAX_SLOTS_PER_SERVER);
        if slots == 0 {
            return Err(MasterError::TooSmall {
                portal: info.portal.clone(),
                iqn: info.iqn.clone(),
                lun: info.lun,
                capacity: info.capacity_bytes,
                extent_size: self.extent_size,
            });
        }
        let id = ServerId(self.next_server);
        Ok((
            id,
            Some(Record::RegisterServer {
                id,
                info: info.clone(),
                slots,
            }),
        ))
    }

    /// Finds a vdisk by id (non-zero) or else by name.
    /// With both an id and a name, the vdisk must carry both (an id from an old mapping file
    /// must not reach another disk).
    pub fn find_vdisk(&self, id: VdiskId, name: &str) -> Option<&VdiskState> {
        if id != 0 {
            self.vdisks
                .get(&id)
                .filter(|v| name.is_empty() || v.name == name)
        } else {
            self.vdisks.values().find(|v| v.name == name)
        }
    }

    /// Plans ALLOCATE of `indexes` (all extents when empty) for vdisk `name` with `geometry`:
    /// the records to journal (none when everything is already allocated).
    pub fn plan_allocate(
        &self,
        name: &str,
        geometry: &Geometry,
        indexes: &[u64],
    ) -> Result<(VdiskId, Vec<Record>), MasterError> {
        if !valid_name(name) {
            return Err(MasterError::BadName(name.to_string()));
        }
        geometry.validate()?;
        if geometry.extent_size != self.extent_size {
            return Err(MasterError::ExtentSizeMismatch {
                master: self.extent_size,
                requested: geometry.extent_size,
            });
        }
        let count = geometry.extent_count();
        let wanted: Vec<u64> = if indexes.is_empty() {
            (0..count).collect()
        } else {
            indexes.to_vec()
        };
        if let Some(&bad) = wanted.iter().find(|&&i| i >= count) {
            return Err(MasterError::ExtentOutOfRange {
                name: name.to_string(),
                index: bad,
                count,
            });
        }
        let mut records = Vec::new();
        let empty = BTreeMap::new();
        let (id, existing) = match self.find_vdisk(0, name) {
            Some(v) => {
                if v.geometry != *geometry {
                    return Err(MasterError::GeometryMismatch {
                        name: name.to_string(),
                        existing: v.geometry,
                        requested: *geometry,
                    });
                }
                (v.id, &v.extents)
            }
            None => {
                let id = self.next_vdisk;
                records.push(Record::CreateVdisk {
                    id,
                    name: name.to_string(),
                    geometry: *geometry,
                });
                (id, &empty)
            }
        };
        let missing: Vec<u64> = wanted
            .iter()
            .copied()
            .filter(|i| !existing.contains_key(i))
            .collect::<BTreeSet<u64>>()
            .into_iter()
            .collect();
        if !missing.is_empty() {
            // Only servers whose blocks divide the stripe unit may hold this disk.
            let eligible: Vec<ServerFree> = self
                .servers
                .values()
                .filter(|s| geometry.check_block_size(s.info.block_size).is_ok())
                .map(|s| ServerFree {
                    id: s.id,
                    free: s.free.len() as u64,
                })
                .collect();
            let existing_servers: BTreeMap<u64, Vec<ServerId>> = existing
                .iter()
                .map(|(&i, v)| (i, v.iter().map(|s| s.server).collect()))
                .collect();
            let placed = place(
                &eligible,
                geometry.stripes,
                geometry.replicas,
                &missing,
                &existing_servers,
            )?;
            // Lowest free slots first, in extent order, so a column stays contiguous.
            let mut cursors: HashMap<ServerId, std::collections::btree_set::Iter<'_, u64>> =
                HashMap::new();
            let mut extents = Vec::with_capacity(placed.len());
            for (index, servers) in placed {
                let mut slots = Vec::with_capacity(servers.len());
                for sid in servers {
                    let it = cursors
                        .entry(sid)
                        .or_insert_with(|| self.servers[&sid].free.iter());
                    let slot = *it.next().expect("placement respects free counts");
                    slots.push(SlotRef { server: sid, slot });
                }
                extents.push((index, slots));
            }
            records.push(Record::Allocate { vdisk: id, extents });
        }
        Ok((id, records))
    }

    /// Plans RELEASE: the record, or none when the vdisk is already gone (a retried RELEASE).
    pub fn plan_release(&self, id: VdiskId, name: &str) -> Option<Record> {
        self.find_vdisk(id, name)
            .map(|v| Record::Release { vdisk: v.id })
    }

    /// Applies one record. Records come from `plan_*` or from the journal; a record that does
    /// not fit the state (which would mean a corrupted journal) is refused with a description.
    pub fn apply(&mut self, record: &Record) -> Result<(), String> {
        match record {
            Record::RegisterServer { id, info, slots } => {
                if self.servers.contains_key(id) {
                    return Err(format!("{id} registered twice"));
                }
                if *slots > MAX_SLOTS_PER_SERVER {
                    return Err(format!("{id} has {slots} slots, above the limit"));
                }
                self.servers.insert(
                    *id,
                    ServerState {
                        id: *id,
                        info: info.clone(),
                        slots: *slots,
                        free: (0..*slots).collect(),
                    },
                );
                self.next_server = self.next_server.max(id.0 + 1);
            }
            Record::CreateVdisk { id, name, geometry } => {
                if self.vdisks.contains_key(id) || self.find_vdisk(0, name).is_some() {
                    return Err(format!("vdisk {id} {name:?} created twice"));
                }
                self.vdisks.insert(
                    *id,
                    VdiskState {
                        id: *id,
                        name: name.clone(),
                        geometry: *geometry,
                        extents: BTreeMap::new(),
                    },
                );
                self.next_vdisk = self.next_vdisk.max(id + 1);
            }
            Record::Allocate { vdisk, extents } => {
                // Check everything first so a bad record changes nothing.
                let v = self
                    .vdisks
                    .get(vdisk)
                    .ok_or_else(|| format!("allocation for unknown vdisk {vdisk}"))?;
                let mut seen = BTreeSet::new();
                for (index, slots) in extents {
                    if v.extents.contains_key(index) {
                        return Err(format!("vdisk {vdisk} extent {index} allocated twice"));
                    }
                    for s in slots {
                        let free = self
                            .servers
                            .get(&s.server)
                            .map(|st| st.free.contains(&s.slot))
                            .unwrap_or(false);
                        if !free || !seen.insert(*s) {
                            return Err(format!(
                                "vdisk {vdisk} extent {index}: slot {} of {} is not free",
                                s.slot, s.server
                            ));
                        }
                    }
                }
                for (index, slots) in extents {
                    for (k, s) in slots.iter().enumerate() {
                        if let Some(st) = self.servers.get_mut(&s.server) {
                            st.free.remove(&s.slot);
                        }
                        self.owners.insert(*s, (*vdisk, *index, k as u32));
                    }
                    if let Some(v) = self.vdisks.get_mut(vdisk) {
                        v.extents.insert(*index, slots.clone());
                    }
                }
            }
            Record::Release { vdisk } => {
                let v = self
                    .vdisks
                    .remove(vdisk)
                    .ok_or_else(|| format!("release of unknown vdisk {vdisk}"))?;
                for slots in v.extents.values() {
                    for s in slots {
                        self.owners.remove(s);
                        if let Some(st) = self.servers.get_mut(&s.server) {
                            st.free.insert(s.slot);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The address of a slot as the mapping file spells it.
    pub fn replica_of(&self, s: &SlotRef) -> ExtentReplica {
        let st = &self.servers[&s.server];
        ExtentReplica {
            portal: st.info.portal.clone(),
            iqn: st.info.iqn.clone(),
            lun: st.info.lun,
            start_lba: s.slot * self.extent_size / st.info.block_size as u64,
            block_size: st.info.block_size,
        }
    }

    /// The replicas of the given extents of a vdisk (all of them when `indexes` is empty).
    pub fn allocation(&self, vdisk: VdiskId, indexes: &[u64]) -> Option<Allocation> {
        let v = self.vdisks.get(&vdisk)?;
        let pick: Vec<u64> = if indexes.is_empty() {
            v.extents.keys().copied().collect()
        } else {
            indexes.to_vec()
        };
        let extents = pick
            .into_iter()
            .filter_map(|i| {
                v.extents
                    .get(&i)
                    .map(|slots| (i, slots.iter().map(|s| self.replica_of(s)).collect()))
            })
            .collect();
        Some(Allocation {
            vdisk,
            geometry: v.geometry,
            extents,
        })
    }

    pub fn totals(&self) -> Totals {
        let slots: u64 = self.servers.values().map(|s| s.slots).sum();
        let free: u64 = self.servers.values().map(|s| s.free.len() as u64).sum();
        Totals {
            servers: self.servers.len() as u64,
            slots,
            free,
            used: slots - free,
            vdisks: self.vdisks.len() as u64,
        }
    }

    /// Checks the invariants (used by tests and after replay): every slot is either free or
    /// owned by exactly one (vdisk, extent, replica), which records it; replicas of an extent
    /// are on distinct servers; vdisk names are unique.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut owned: BTreeMap<SlotRef, (VdiskId, u64, u32)> = BTreeMap::new();
        let mut names = BTreeSet::new();
        for v in self.vdisks.values() {
            if !names.insert(v.name.clone()) {
                return Err(format!("vdisk name {:?} used twice", v.name));
            }
            for (i, slots) in &v.extents {
                if slots.len() != v.geometry.replicas as usize {
                    return Err(format!("vdisk {} extent {i}: wrong replica count", v.id));
                }
                let servers: BTreeSet<ServerId> = slots.iter().map(|s| s.server).collect();
                if servers.len() != slots.len() {
                    return Err(format!(
                        "vdisk {} extent {i}: replicas share a server",
                        v.id
                    ));
                }
                for (k, s) in slots.iter().enumerate() {
                    if owned.insert(*s, (v.id, *i, k as u32)).is_some() {
                        return Err(format!("slot {s:?} held by two extents"));
                    }
                    let st = self
                        .servers
                        .get(&s.server)
                        .ok_or_else(|| format!("slot {s:?} on unknown server"))?;
                    if st.free.contains(&s.slot) || s.slot >= st.slots {
                        return Err(format!("slot {s:?} both free and used"));
                    }
                }
            }
        }
        if owned != self.owners {
            return Err("allocation locks disagree with the vdisk table".into());
        }
        for st in self.servers.values() {
            let used = owned.keys().filter(|s| s.server == st.id).count() as u64;
            if used + st.free.len() as u64 != st.slots {
                return Err(format!("{}: free + used != slots", st.id));
            }
        }
        Ok(())
    }
}
