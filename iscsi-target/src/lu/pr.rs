//! SPC-4 section 5.13 (persistent reservations), 6.15 (PERSISTENT RESERVE IN) and 6.16
//! (PERSISTENT RESERVE OUT): registrations and the reservation of one logical unit, kept in
//! memory (PTPL_C is zero: nothing survives a restart).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes, BytesMut};
use iscsi_proto::scsi::{Asc, Cdb, ScsiStatus, Sense, SenseKey};

use super::Failure;

/// An I_T nexus: the initiator port (iSCSI name + ISID) talking through a target port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Nexus {
    pub initiator_name: Arc<str>,
    pub isid: [u8; 6],
    pub target_name: Arc<str>,
    /// Relative target port identifier (the target portal group tag serves well).
    pub relative_port: u16,
}

impl Nexus {
    pub fn new(
        initiator_name: &str,
        isid: [u8; 6],
        target_name: &str,
        relative_port: u16,
    ) -> Nexus {
        Nexus {
            initiator_name: initiator_name.into(),
            isid,
            target_name: target_name.into(),
            relative_port,
        }
    }

    /// RFC 7143 section 4.2.7.2 initiator port name: `<name>,i,0x<ISID>`.
    pub fn initiator_port_name(&self) -> String {
        let mut s = format!("{},i,0x", self.initiator_name);
        for b in self.isid {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// SPC-4 section 7.6.4.6: the iSCSI TransportID (format 01b, with the ISID).
    pub fn transport_id(&self) -> Vec<u8> {
        let name = self.initiator_port_name();
        let padded = (name.len() + 1).div_ceil(4) * 4;
        let padded = padded.max(20);
        let mut v = Vec::with_capacity(4 + padded);
        v.push(0x40 | 0x05);
        v.push(0);
        v.extend_from_slice(&(padded as u16).to_be_bytes());
        v.extend_from_slice(name.as_bytes());
        v.resize(4 + padded, 0);
        v
    }
}

/// SPC-4 table 171: persistent reservation types.
pub mod pr_type {
    pub const WRITE_EXCLUSIVE: u8 = 1;
    pub const EXCLUSIVE_ACCESS: u8 = 3;
    pub const WRITE_EXCLUSIVE_REGISTRANTS_ONLY: u8 = 5;
    pub const EXCLUSIVE_ACCESS_REGISTRANTS_ONLY: u8 = 6;
    pub const WRITE_EXCLUSIVE_ALL_REGISTRANTS: u8 = 7;
    pub const EXCLUSIVE_ACCESS_ALL_REGISTRANTS: u8 = 8;
}

/// PERSISTENT RESERVE IN service actions.
pub mod pr_in {
    pub const READ_KEYS: u8 = 0;
    pub const READ_RESERVATION: u8 = 1;
    pub const REPORT_CAPABILITIES: u8 = 2;
    pub const READ_FULL_STATUS: u8 = 3;
}

/// PERSISTENT RESERVE OUT service actions.
pub mod pr_out {
    pub const REGISTER: u8 = 0;
    pub const RESERVE: u8 = 1;
    pub const RELEASE: u8 = 2;
    pub const CLEAR: u8 = 3;
    pub const PREEMPT: u8 = 4;
    pub const PREEMPT_AND_ABORT: u8 = 5;
    pub const REGISTER_AND_IGNORE_EXISTING_KEY: u8 = 6;
}

/// Most registrations one logical unit keeps; more fail with INSUFFICIENT REGISTRATION
/// RESOURCES (SPC-4 section 5.13.7).
pub const MAX_REGISTRATIONS: usize = 1024;

fn valid_type(t: u8) -> bool {
    matches!(t, 1 | 3 | 5..=8)
}

fn all_registrants(t: u8) -> bool {
    matches!(
        t,
        pr_type::WRITE_EXCLUSIVE_ALL_REGISTRANTS | pr_type::EXCLUSIVE_ACCESS_ALL_REGISTRANTS
    )
}

#[derive(Clone, Debug)]
struct Reservation {
    holder: Nexus,
    pr_type: u8,
}

#[derive(Debug, Default)]
struct State {
    generation: u32,
    registrations: Vec<(Nexus, u64)>,
    reservation: Option<Reservation>,
}

impl State {
    fn key_of(&self, n: &Nexus) -> Option<u64> {
        self.registrations
            .iter()
            .find(|(r, _)| r == n)
            .map(|&(_, k)| k)
    }

    fn is_holder(&self, n: &Nexus) -> bool {
        match &self.reservation {
            Some(r) if all_registrants(r.pr_type) => self.key_of(n).is_some(),
            Some(r) => r.holder == *n,
            None => false,
        }
    }

    /// Removes the registration of `n`, releasing the reservation when `n` held it (for the
    /// all-registrants types, when the last registrant leaves).
    fn unregister(&mut self, n: &Nexus) {
        self.registrations.retain(|(r, _)| r != n);
        if let Some(r) = &self.reservation {
            let release = if all_registrants(r.pr_type) {
                self.registrations.is_empty()
            } else {
                r.holder == *n
            };
            if release {
                self.reservation = None;
            }
        }
    }
}

/// How a command is affected by a reservation (SPC-4 table 66 and SBC-3 table 13, simplified
/// to reads and writes).
enum Access {
    Always,
    Read,
    Write,
}

fn access_of(cdb: &Cdb) -> Access {
    match cdb {
        Cdb::Read { .. }
        | Cdb::Verify { .. }
        | Cdb::PreFetch { .. }
        | Cdb::GetLbaStatus { .. }
        | Cdb::ModeSense { .. }
        | Cdb::ReadDefectData { .. } => Access::Read,
        Cdb::Write { .. }
        | Cdb::WriteAndVerify { .. }
        | Cdb::OrWrite { .. }
        | Cdb::CompareAndWrite { .. }
        | Cdb::WriteSame { .. }
        | Cdb::Unmap { .. }
        | Cdb::SyncCache { .. }
        | Cdb::ModeSelect { .. }
        | Cdb::StartStopUnit { .. } => Access::Write,
        _ => Access::Always,
    }
}

/// Registrations and reservation of one logical unit.
#[derive(Debug, Default)]
pub struct Reservations {
    /// Fast path: no reservation is held, nothing to check.
    reserved: AtomicBool,
    state: Mutex<State>,
}

fn conflict() -> Failure {
    Failure::Status(ScsiStatus::RESERVATION_CONFLICT)
}

fn param_error(byte: u16, bit: Option<u8>) -> Failure {
    Failure::Check(Sense::invalid_field_in_parameter_list(byte, bit))
}

impl Reservations {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sync_flag(&self, st: &State) {
        self.reserved
            .store(st.reservation.is_some(), Ordering::Release);
    }

    /// The current PRgeneration.
    pub fn generation(&self) -> u32 {
        self.lock().generation
    }

    /// The reservation key registered by `n`, if any.
    pub fn key_of(&self, n: &Nexus) -> Option<u64> {
        self.lock().key_of(n)
    }

    /// The reservation type held, if any.
    pub fn reservation_type(&self) -> Option<u8> {
        self.lock().reservation.as_ref().map(|r| r.pr_type)
    }

    /// RESERVATION CONFLICT when `cdb` from `n` is not allowed under the current reservation.
    pub fn check_access(&self, n: &Nexus, cdb: &Cdb) -> Result<(), ScsiStatus> {
        if !self.reserved.load(Ordering::Acquire) {
            return Ok(());
        }
        let access = access_of(cdb);
        if matches!(access, Access::Always) {
            return Ok(());
        }
        let st = self.lock();
        let Some(r) = &st.reservation else {
            return Ok(());
        };
        if st.is_holder(n) {
            return Ok(());
        }
        let registered = st.key_of(n).is_some();
        let allowed = match (r.pr_type, access) {
            (pr_type::WRITE_EXCLUSIVE, Access::Read) => true,
            (pr_type::WRITE_EXCLUSIVE_REGISTRANTS_ONLY, Access::Read) => true,
            (pr_type::WRITE_EXCLUSIVE_REGISTRANTS_ONLY, _) => registered,
            (pr_type::EXCLUSIVE_ACCESS_REGISTRANTS_ONLY, _) => registered,
            (pr_type::WRITE_EXCLUSIVE_ALL_REGISTRANTS, Access::Read) => true,
            _ => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(ScsiStatus::RESERVATION_CONFLICT)
        }
    }

    /// PERSISTENT RESERVE IN: the parameter data cut to `alloc_len`.
    pub(crate) fn reserve_in(&self, action: u8, alloc_len: u16) -> Result<Bytes, Sense> {
        let st = self.lock();
        let mut b = BytesMut::new();
        match action {
            pr_in::READ_KEYS => {
                b.put_u32(st.generation);
                b.put_u32((st.registrations.len() * 8) as u32);
                for &(_, k) in &st.registrations {
                    b.put_u64(k);
                }
            }
            pr_in::READ_RESERVATION => {
                b.put_u32(st.generation);
                match &st.reservation {
                    Some(r) => {
                        b.put_u32(16);
                        let key = if all_registrants(r.pr_type) {
                            0
                        } else {
                            st.key_of(&r.holder).unwrap_or(0)
                        };
                        b.put_u64(key);
                        b.put_u32(0);
                        b.put_u8(0);
                        b.put_u8(r.pr_type & 0x0F); // scope 0: logical unit
                        b.put_u16(0);
                    }
                    None => b.put_u32(0),
                }
            }
            pr_in::REPORT_CAPABILITIES => {
                b.put_u16(8);
                // CRH 0, SIP_C 0, ATP_C 1, PTPL_C 0.
                b.put_u8(0x04);
                // TMV 1, ALLOW COMMANDS 000b, PTPL_A 0.
                b.put_u8(0x80);
                // WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX; EX_AC_AR.
                b.put_u8(0x80 | 0x40 | 0x20 | 0x08 | 0x02);
                b.put_u8(0x01);
                b.put_u16(0);
            }
            pr_in::READ_FULL_STATUS => {
                b.put_u32(st.generation);
                let len_at = b.len();
                b.put_u32(0);
                for (n, k) in &st.registrations {
                    let holder = st.is_holder(n);
                    b.put_u64(*k);
                    b.put_u32(0);
                    // ALL_TG_PT 0, R_HOLDER.
                    b.put_u8(holder as u8);
                    b.put_u8(match (&st.reservation, holder) {
                        (Some(r), true) => r.pr_type & 0x0F,
                        _ => 0,
                    });
                    b.put_u32(0);
                    b.put_u16(n.relative_port);
                    let tid = n.transport_id();
                    b.put_u32(tid.len() as u32);
                    b.put_slice(&tid);
                }
                let total = (b.len() - 8) as u32;
                b[len_at..len_at + 4].copy_from_slice(&total.to_be_bytes());
            }
            _ => return Err(Sense::invalid_field_in_cdb(1, Some(4))),
        }
        b.truncate(b.len().min(alloc_len as usize));
        Ok(b.freeze())
    }

    /// PERSISTENT RESERVE OUT from `n` with the basic 24-byte parameter list.
    pub(crate) fn reserve_out(
        &self,
        n: &Nexus,
        action: u8,
        scope: u8,
        ty: u8,
        params: &[u8],
    ) -> Result<(), Failure> {
        if !matches!(action, 0..=6) {
            return Err(Failure::Check(Sense::invalid_field_in_cdb(1, Some(4))));
        }
        if params.len() != 24 {
            return Err(Failure::Check(Sense::new(
                SenseKey::ILLEGAL_REQUEST,
                Asc::PARAMETER_LIST_LENGTH_ERROR,
            )));
        }
        let key = u64::from_be_bytes(params[0..8].try_into().unwrap_or([0; 8]));
        let sa_key = u64::from_be_bytes(params[8..16].try_into().unwrap_or([0; 8]));
        let flags = params[20];
        if flags & 0x08 != 0 {
            return Err(param_error(20, Some(3))); // SPEC_I_PT: SIP_C is zero
        }
        if flags & 0x01 != 0 {
            return Err(param_error(20, Some(0))); // APTPL: PTPL_C is zero
        }
        let needs_type = matches!(
            action,
            pr_out::RESERVE | pr_out::RELEASE | pr_out::PREEMPT | pr_out::PREEMPT_AND_ABORT
        );
        let mut st = self.lock();
        let registered = st.key_of(n);
        let result = match action {
            pr_out::REGISTER | pr_out::REGISTER_AND_IGNORE_EXISTING_KEY => {
                let ignore = action == pr_out::REGISTER_AND_IGNORE_EXISTING_KEY;
                match registered {
                    None => {
                        if !ignore && key != 0 {
                            Err(conflict())
                        } else if sa_key != 0 && st.registrations.len() >= MAX_REGISTRATIONS {
                            Err(Failure::Check(Sense::new(
                                SenseKey::ILLEGAL_REQUEST,
                                Asc::INSUFFICIENT_REGISTRATION_RESOURCES,
                            )))
                        } else {
                            if sa_key != 0 {
                                st.registrations.push((n.clone(), sa_key));
                                st.generation = st.generation.wrapping_add(1);
                            }
                            Ok(())
                        }
                    }
                    Some(k) => {
                        if !ignore && k != key {
                            Err(conflict())
                        } else {
                            if sa_key == 0 {
                                st.unregister(n);
                            } else if let Some(r) =
                                st.registrations.iter_mut().find(|(r, _)| r == n)
                            {
                                r.1 = sa_key;
                            }
                            st.generation = st.generation.wrapping_add(1);
                            Ok(())
                        }
                    }
                }
            }
            _ if registered != Some(key) => Err(conflict()),
            _ if needs_type && scope != 0 => {
                Err(Failure::Check(Sense::invalid_field_in_cdb(2, Some(7))))
            }
            _ if needs_type && !valid_type(ty) && action != pr_out::RELEASE => {
                Err(Failure::Check(Sense::invalid_field_in_cdb(2, Some(3))))
            }
            pr_out::RESERVE => match &st.reservation {
                None => {
                    st.reservation = Some(Reservation {
                        holder: n.clone(),
                        pr_type: ty,
                    });
                    Ok(())
                }
                Some(r) if st.is_holder(n) && r.pr_type == ty => Ok(()),
                Some(_) => Err(conflict()),
            },
            pr_out::RELEASE => match &st.reservation {
                Some(r) if st.is_holder(n) => {
                    if r.pr_type != ty {
                        Err(Failure::Check(Sense::new(
                            SenseKey::ILLEGAL_REQUEST,
                            Asc::INVALID_RELEASE_OF_PERSISTENT_RESERVATION,
                        )))
                    } else {
                        st.reservation = None;
                        Ok(())
                    }
                }
                _ => Ok(()),
            },
            pr_out::CLEAR => {
                st.registrations.clear();
                st.reservation = None;
                st.generation = st.generation.wrapping_add(1);
                Ok(())
            }
            _ => Self::preempt(&mut st, n, sa_key, ty),
        };
        self.sync_flag(&st);
        result
    }

    /// SPC-4 section 5.13.11: PREEMPT (and PREEMPT AND ABORT, whose task aborts are the
    /// transport's business).
    fn preempt(st: &mut State, n: &Nexus, sa_key: u64, ty: u8) -> Result<(), Failure> {
        let before = st.registrations.len();
        match st.reservation.clone() {
            Some(r) if all_registrants(r.pr_type) && sa_key == 0 => {
                st.registrations.retain(|(r, _)| r == n);
                st.reservation = Some(Reservation {
                    holder: n.clone(),
                    pr_type: ty,
                });
            }
            Some(r) if !all_registrants(r.pr_type) && st.key_of(&r.holder) == Some(sa_key) => {
                st.registrations.retain(|(r, k)| r == n || *k != sa_key);
                st.reservation = Some(Reservation {
                    holder: n.clone(),
                    pr_type: ty,
                });
            }
            _ => {
                if sa_key == 0 {
                    return Err(param_error(8, None));
                }
                st.registrations.retain(|(r, k)| r == n || *k != sa_key);
                if st.registrations.len() == before {
                    return Err(conflict());
                }
            }
        }
        st.generation = st.generation.wrapping_add(1);
        Ok(())
    }
}
