//! SPC-4 / SBC-3: the logical unit, a block device server independent of the iSCSI transport.
//!
//! The transport parses the iSCSI PDUs, collects the complete data-out buffer of a command and
//! calls [`LogicalUnit::execute`] with the CDB bytes; the answer ([`ScsiOutcome`]) carries the
//! status, fixed- or descriptor-format sense data and the data-in bytes (already cut to the
//! CDB's allocation length; the transport cuts further to the Expected Data Transfer Length and
//! reports residuals). Medium access runs as positioned reads/writes on tokio's blocking pool,
//! or, for READ and WRITE, through [`LogicalUnit::start`]: finished at once when no call
//! blocks, otherwise handed back as a [`BlockingCommand`] for the transport to run on an I/O
//! thread that then answers the initiator itself.
//!
//! * [`backing`]: file / block device access (pread/pwrite, fdatasync, hole punching, SEEK_DATA).
//! * [`emulation`]: the `--emulate-disk latency_us=L,mbps=B` spindle model.
//! * [`pr`]: persistent reservations (SPC-4 section 5.13).
//! * [`mode`]: mode pages (SPC-4 section 7.5, SBC-3 section 6.4).
//! * [`vpd`]: INQUIRY data and VPD pages.
//! * [`opcodes`]: REPORT SUPPORTED OPERATION CODES.
//! * `ua`: unit attention conditions (after LOGICAL UNIT RESET).

mod backing;
pub mod emulation;
mod mode;
mod opcodes;
pub mod pr;
mod ua;
mod vpd;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use iscsi_proto::scsi::capacity::{
    encode_lba_status, LbaStatusDescriptor, ProvisioningStatus, ReadCapacity10Data,
    ReadCapacity16Data,
};
use iscsi_proto::scsi::luns::encode_report_luns;
use iscsi_proto::scsi::{
    Asc, BlockRange, Cdb, PageControl, ScsiStatus, Sense, SenseFormat, SenseKey,
};
use thiserror::Error;
use tokio::sync::{OwnedRwLockReadGuard, RwLock};

use backing::Backing;
use emulation::wait_until;
pub use emulation::{DiskEmulation, EmulationParseError, Spindle};
pub use pr::Nexus;

/// Largest data transfer of one READ/WRITE command, in bytes (reported in VPD B0h as MAXIMUM
/// TRANSFER LENGTH); also bounds the data-in buffer allocated per command.
pub const MAX_TRANSFER_BYTES: u64 = 32 << 20;
/// Largest WRITE SAME, in bytes (MAXIMUM WRITE SAME LENGTH).
pub const MAX_WRITE_SAME_BYTES: u64 = 1 << 30;
/// Most logical blocks one UNMAP may deallocate (MAXIMUM UNMAP LBA COUNT).
pub const MAX_UNMAP_LBA_COUNT: u32 = 1 << 20;
/// Most UNMAP block descriptors in one parameter list.
pub const MAX_UNMAP_DESCRIPTORS: u32 = 256;
/// Most blocks in one COMPARE AND WRITE.
pub const MAX_COMPARE_AND_WRITE_BLOCKS: u8 = 255;
/// Granularity hosts should align UNMAP to (file system block).
pub const UNMAP_GRANULARITY_BYTES: u32 = 4096;

/// Largest read [`IoEngine::Adaptive`] serves from the page cache on the calling task; larger
/// copies go to the blocking pool so they do not hold up a runtime worker.
pub const INLINE_READ_MAX_BYTES: u64 = 64 << 10;

/// Largest buffered write [`IoEngine::Adaptive`] does on the calling task.
pub const INLINE_WRITE_MAX_BYTES: usize = 64 << 10;
/// An inline write slower than this makes writes use the blocking pool for a while.
pub const INLINE_WRITE_SLOW: std::time::Duration = std::time::Duration::from_millis(2);
/// How long writes stay on the blocking pool after a slow inline write.
pub const INLINE_WRITE_BACKOFF: std::time::Duration = std::time::Duration::from_secs(1);

/// Configuration of one logical unit.
#[derive(Clone, Debug)]
pub struct LuConfig {
    /// Regular file or block device; its size (rounded down to blocks) is the capacity.
    pub path: PathBuf,
    /// The LUN this unit answers at (for the transport; not used by the device server).
    pub lun: u64,
    /// Logical block length: 512 or 4096.
    pub block_size: u32,
    pub read_only: bool,
    pub emulate: Option<DiskEmulation>,
    /// Unit serial number (VPD 80h); `None` derives one from the path and LUN.
    pub serial: Option<String>,
    /// T10 vendor identification (8 ASCII characters at most).
    pub vendor: String,
    /// Product identification (16 ASCII characters at most).
    pub product: String,
    /// Thin provisioning: UNMAP / WRITE SAME with UNMAP punch holes, LBPME is reported.
    pub thin_provisioning: bool,
    /// Report a non-rotating medium (VPD B1h) - true unless emulating a disk.
    pub non_rotating: bool,
    /// Where positioned reads and writes run.
    pub engine: IoEngine,
}

/// Where the logical unit runs its blocking backing-store calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IoEngine {
    /// Reads of at most [`INLINE_READ_MAX_BYTES`] first try the page cache without blocking
    /// (preadv2 RWF_NOWAIT) on the calling task; so do buffered writes of at most
    /// [`INLINE_WRITE_MAX_BYTES`] to regular files, until one takes longer than
    /// [`INLINE_WRITE_SLOW`] (dirty-page throttling), which sends writes to the pool for
    /// [`INLINE_WRITE_BACKOFF`]. Everything else goes to tokio's blocking pool.
    #[default]
    Adaptive,
    /// tokio's blocking thread pool (`spawn_blocking`) for every call.
    BlockingPool,
    /// On the calling async task: cheapest when the data is in the page cache, but a slow
    /// device stalls the runtime worker. Disk emulation always uses the blocking pool.
    Inline,
}

impl LuConfig {
    /// A read-write, thin-provisioned, 512-byte-block unit over `path` at `lun`.
    pub fn new(path: impl Into<PathBuf>, lun: u64) -> LuConfig {
        LuConfig {
            path: path.into(),
            lun,
            block_size: 512,
            read_only: false,
            emulate: None,
            serial: None,
            vendor: "PVD".to_string(),
            product: "VIRTUAL DISK".to_string(),
            thin_provisioning: true,
            non_rotating: true,
            engine: IoEngine::default(),
        }
    }
}

/// Why a logical unit could not be opened.
#[derive(Debug, Error)]
pub enum LuError {
    #[error("block size {0} is not 512 or 4096")]
    BlockSize(u32),
    #[error("opening backing store {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("backing store {path} is smaller than one {block_size}-byte block")]
    Empty { path: PathBuf, block_size: u32 },
}

/// The answer to one SCSI command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScsiOutcome {
    pub status: ScsiStatus,
    /// Sense data (fixed or descriptor format, as the control mode page D_SENSE says), without
    /// the iSCSI SenseLength prefix. Present with CHECK CONDITION.
    pub sense: Option<Bytes>,
    /// Data-in, at most the CDB's allocation / transfer length. The transport compares its
    /// length with the Expected Data Transfer Length to compute residuals.
    pub data_in: Bytes,
}

impl ScsiOutcome {
    /// GOOD with `data_in`.
    pub fn good(data_in: Bytes) -> ScsiOutcome {
        ScsiOutcome {
            status: ScsiStatus::GOOD,
            sense: None,
            data_in,
        }
    }

    /// CHECK CONDITION carrying `sense` in `format`.
    pub fn check_condition(sense: &Sense, format: SenseFormat) -> ScsiOutcome {
        let mut b = BytesMut::with_capacity(sense.encoded_len(format));
        sense.encode(format, &mut b);
        ScsiOutcome {
            status: ScsiStatus::CHECK_CONDITION,
            sense: Some(b.freeze()),
            data_in: Bytes::new(),
        }
    }

    /// A status without sense or data (RESERVATION CONFLICT, BUSY, TASK SET FULL...).
    pub fn status(status: ScsiStatus) -> ScsiOutcome {
        ScsiOutcome {
            status,
            sense: None,
            data_in: Bytes::new(),
        }
    }

    /// The decoded sense data, if any.
    pub fn decoded_sense(&self) -> Option<Sense> {
        self.sense.as_deref().and_then(|s| Sense::decode(s).ok())
    }
}

/// Which way a command moves data, and how much the CDB says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataDirection {
    None,
    /// Data-in of at most this many bytes.
    In(u64),
    /// Data-out of exactly this many bytes.
    Out(u64),
}

/// Why a command failed inside the device server.
#[derive(Debug)]
pub(crate) enum Failure {
    Check(Sense),
    Status(ScsiStatus),
}

impl From<Sense> for Failure {
    fn from(s: Sense) -> Failure {
        Failure::Check(s)
    }
}

pub(crate) type CmdResult = Result<Bytes, Failure>;

/// A backing-store access: finished, or a call that blocks and belongs on an I/O thread.
enum Access {
    Done(CmdResult),
    Blocking(Box<dyn FnOnce() -> CmdResult + Send>),
}

/// How [`LogicalUnit::start`] left a command.
#[derive(Debug)]
pub enum Start {
    /// Finished on the calling thread.
    Done(ScsiOutcome),
    /// Started; what is left blocks (medium access, disk emulation): run it on an I/O thread.
    Blocking(BlockingCommand),
    /// Not started, nothing done: run it with [`LogicalUnit::execute`].
    Execute,
}

/// The blocking rest of a command [`LogicalUnit::start`] began.
pub struct BlockingCommand {
    lu: Arc<LogicalUnit>,
    call: Box<dyn FnOnce() -> CmdResult + Send>,
}

impl BlockingCommand {
    /// Makes the call (blocking the thread) and returns the command's outcome.
    pub fn run(self) -> ScsiOutcome {
        let r = (self.call)();
        self.lu.outcome(r)
    }
}

impl std::fmt::Debug for BlockingCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingCommand")
            .field("lun", &self.lu.cfg.lun)
            .finish_non_exhaustive()
    }
}

fn illegal(asc: Asc) -> Failure {
    Failure::Check(Sense::new(SenseKey::ILLEGAL_REQUEST, asc))
}

fn invalid_cdb(byte: u16, bit: Option<u8>) -> Failure {
    Failure::Check(Sense::invalid_field_in_cdb(byte, bit))
}

/// Cuts encoded parameter data to the allocation length.
pub(crate) fn truncate(mut data: BytesMut, alloc_len: u64) -> Bytes {
    data.truncate(alloc_len.min(data.len() as u64) as usize);
    data.freeze()
}

/// One logical unit: `Send + Sync`, shared behind an `Arc` by every session that sees it.
#[derive(Debug)]
pub struct LogicalUnit {
    cfg: LuConfig,
    backing: Arc<Backing>,
    num_blocks: u64,
    serial: String,
    spindle: Option<Arc<Spindle>>,
    /// Writers take it shared; COMPARE AND WRITE takes it exclusive (atomicity, SBC-3 5.2).
    write_order: Arc<RwLock<()>>,
    /// Control mode page D_SENSE: descriptor-format sense.
    d_sense: AtomicBool,
    /// Caching mode page WCE: when clear every write is written through (FUA).
    wce: AtomicBool,
    reservations: pr::Reservations,
    unit_attentions: ua::UnitAttentions,
    /// Time base of `inline_writes_paused_until`.
    epoch: std::time::Instant,
    /// Nanoseconds after `epoch` until which adaptive writes stay off the calling task.
    inline_writes_paused_until: AtomicU64,
}

impl LogicalUnit {
    /// Opens the backing store of `cfg`.
    pub fn open(cfg: LuConfig) -> Result<LogicalUnit, LuError> {
        if cfg.block_size != 512 && cfg.block_size != 4096 {
            return Err(LuError::BlockSize(cfg.block_size));
        }
        let backing = Backing::open(&cfg.path, cfg.read_only).map_err(|source| LuError::Open {
            path: cfg.path.clone(),
            source,
        })?;
        let num_blocks = backing.size / cfg.block_size as u64;
        if num_blocks == 0 {
            return Err(LuError::Empty {
                path: cfg.path.clone(),
                block_size: cfg.block_size,
            });
        }
        let serial = cfg
            .serial
            .clone()
            .unwrap_or_else(|| vpd::derive_serial(&cfg.path, cfg.lun));
        Ok(LogicalUnit {
            spindle: cfg.emulate.map(|m| Arc::new(Spindle::new(m))),
            backing: Arc::new(backing),
            num_blocks,
            serial,
            write_order: Arc::new(RwLock::new(())),
            d_sense: AtomicBool::new(false),
            wce: AtomicBool::new(true),
            reservations: pr::Reservations::default(),
            epoch: std::time::Instant::now(),
            inline_writes_paused_until: AtomicU64::new(0),
            unit_attentions: ua::UnitAttentions::default(),
            cfg,
        })
    }

    pub fn config(&self) -> &LuConfig {
        &self.cfg
    }
    pub fn block_size(&self) -> u32 {
        self.cfg.block_size
    }
    /// Capacity in logical blocks.
    pub fn num_blocks(&self) -> u64 {
        self.num_blocks
    }
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// Direction and length of the data `cdb` moves (so the transport knows how much data-out
    /// to solicit with R2T). Unparseable CDBs move nothing.
    pub fn data_direction(&self, cdb: &[u8]) -> DataDirection {
        match Cdb::parse(cdb) {
            Ok(c) => {
                let out = c.data_out_len(self.cfg.block_size);
                if out > 0 {
                    return DataDirection::Out(out);
                }
                match c.data_in_len(self.cfg.block_size) {
                    0 => DataDirection::None,
                    n => DataDirection::In(n),
                }
            }
            Err(_) => DataDirection::None,
        }
    }

    /// Bytes of data-out the command in `cdb` expects (0 for none).
    pub fn expected_data_out_len(&self, cdb: &[u8]) -> u64 {
        match self.data_direction(cdb) {
            DataDirection::Out(n) => n,
            _ => 0,
        }
    }

    fn sense_format(&self) -> SenseFormat {
        if self.d_sense.load(Ordering::Relaxed) {
            SenseFormat::Descriptor
        } else {
            SenseFormat::Fixed
        }
    }

    /// Executes one command from `nexus`. `data_out` is the complete data-out buffer the
    /// transport collected (empty for commands without data-out); when it is shorter than the
    /// CDB asks for, nothing is written and the command fails with ILLEGAL REQUEST / INVALID
    /// FIELD IN COMMAND INFORMATION UNIT.
    pub async fn execute(&self, nexus: &Nexus, cdb: &[u8], data_out: Bytes) -> ScsiOutcome {
        let result = match Cdb::parse(cdb) {
            Ok(parsed) => self.dispatch(nexus, parsed, data_out).await,
            Err(e) => Err(Failure::Check(e.sense())),
        };
        self.outcome(result)
    }

    /// Starts one command from `nexus` without waiting: READ and WRITE finish here when they
    /// need no blocking call (page-cache hits, small buffered writes, see [`IoEngine`]), or
    /// come back as the blocking call left to make. Every other command, and a WRITE while
    /// COMPARE AND WRITE holds the medium, is left untouched ([`Start::Execute`]).
    pub fn start(self: &Arc<Self>, nexus: &Nexus, cdb: &[u8], data_out: &Bytes) -> Start {
        let Ok(parsed) = Cdb::parse(cdb) else {
            return Start::Execute;
        };
        let admit = |len: u8, range: &BlockRange| {
            self.admit(nexus, &parsed, data_out.len())
                .and_then(|()| self.check_rw(len, range, MAX_TRANSFER_BYTES))
        };
        let access = match &parsed {
            Cdb::Read { len, range } => match admit(*len, range) {
                Ok(()) => self.read_access(range.lba, range.blocks),
                Err(f) => Access::Done(Err(f)),
            },
            Cdb::Write { len, range } => {
                let Ok(guard) = self.write_order.clone().try_read_owned() else {
                    return Start::Execute;
                };
                match admit(*len, range) {
                    Ok(()) => {
                        let n = (range.blocks as u64 * self.cfg.block_size as u64) as usize;
                        self.write_access(range.lba, data_out.slice(..n), range.fua, guard)
                    }
                    Err(f) => Access::Done(Err(f)),
                }
            }
            _ => return Start::Execute,
        };
        match access {
            Access::Done(r) => Start::Done(self.outcome(r)),
            Access::Blocking(call) => Start::Blocking(BlockingCommand {
                lu: self.clone(),
                call,
            }),
        }
    }

    fn outcome(&self, result: CmdResult) -> ScsiOutcome {
        match result {
            Ok(data) => ScsiOutcome::good(data),
            Err(Failure::Check(sense)) => ScsiOutcome::check_condition(&sense, self.sense_format()),
            Err(Failure::Status(s)) => ScsiOutcome::status(s),
        }
    }

    /// Writes every cached write to stable storage (for shutdown).
    pub async fn flush(&self) -> std::io::Result<()> {
        let b = self.backing.clone();
        tokio::task::spawn_blocking(move || b.sync())
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }

    /// LOGICAL UNIT RESET task management function (SAM-5 section 7.7): tasks are aborted by
    /// the transport; persistent reservations survive (SPC-4 section 5.13.1); mode pages go
    /// back to their defaults; every I_T nexus that has used this unit gets a unit attention
    /// (BUS DEVICE RESET FUNCTION OCCURRED) on its next command.
    pub fn lun_reset(&self) {
        self.d_sense.store(false, Ordering::Relaxed);
        self.wce.store(true, Ordering::Relaxed);
        self.unit_attentions
            .establish(Asc::BUS_DEVICE_RESET_FUNCTION_OCCURRED, None);
    }

    /// The I_T nexus is gone (logout or connection loss without reinstatement): forget its
    /// unit attention state. Persistent reservations are kept, as SPC-4 requires.
    pub fn nexus_lost(&self, nexus: &Nexus) {
        self.unit_attentions.forget(nexus);
    }

    /// Persistent reservation state (for inspection and tests).
    pub fn reservations(&self) -> &pr::Reservations {
        &self.reservations
    }

    /// The checks every command passes before it runs: a pending unit attention (reported
    /// and cleared), reservations, write protection, and a data-out buffer as long as the CDB
    /// says.
    fn admit(&self, nexus: &Nexus, cdb: &Cdb, data_out_len: usize) -> Result<(), Failure> {
        if let Some(ua) = self.unit_attentions.take(nexus, cdb) {
            return Err(Failure::Check(ua));
        }
        self.reservations
            .check_access(nexus, cdb)
            .map_err(Failure::Status)?;
        if self.cfg.read_only && cdb.writes_medium() {
            return Err(Failure::Check(Sense::new(
                SenseKey::DATA_PROTECT,
                Asc::WRITE_PROTECTED,
            )));
        }
        let need = cdb.data_out_len(self.cfg.block_size);
        if (data_out_len as u64) < need {
            tracing::debug!(
                lun = self.cfg.lun,
                need,
                got = data_out_len,
                "data-out shorter than the CDB describes"
            );
            return Err(illegal(Asc::INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT));
        }
        Ok(())
    }

    async fn dispatch(&self, nexus: &Nexus, cdb: Cdb, data_out: Bytes) -> CmdResult {
        self.admit(nexus, &cdb, data_out.len())?;
        let bs = self.cfg.block_size as u64;
        match cdb {
            Cdb::TestUnitReady | Cdb::PreventAllow { .. } => Ok(Bytes::new()),
            Cdb::StartStopUnit { .. } => Ok(Bytes::new()),
            Cdb::RequestSense { desc, alloc_len } => {
                let s = self
                    .unit_attentions
                    .take_for_request_sense(nexus)
                    .unwrap_or(Sense::new(SenseKey::NO_SENSE, Asc::NO_ADDITIONAL_SENSE));
                let fmt = if desc {
                    SenseFormat::Descriptor
                } else {
                    SenseFormat::Fixed
                };
                let mut b = BytesMut::new();
                s.encode(fmt, &mut b);
                Ok(truncate(b, alloc_len as u64))
            }
            Cdb::Inquiry {
                evpd,
                page,
                alloc_len,
            } => self.inquiry(nexus, evpd, page, alloc_len),
            Cdb::ModeSense {
                ten,
                dbd,
                llbaa,
                pc,
                page,
                subpage,
                alloc_len,
            } => self.mode_sense(ten, dbd, llbaa, pc, page, subpage, alloc_len),
            Cdb::ModeSelect {
                ten,
                pf,
                sp,
                param_len,
            } => self.mode_select(ten, pf, sp, &data_out[..param_len as usize]),
            Cdb::ReadCapacity10 { .. } => {
                let mut b = BytesMut::with_capacity(8);
                ReadCapacity10Data::for_capacity(self.num_blocks, self.cfg.block_size)
                    .encode(&mut b);
                Ok(b.freeze())
            }
            Cdb::ReadCapacity16 { alloc_len, .. } => {
                let mut b = BytesMut::with_capacity(32);
                ReadCapacity16Data {
                    last_lba: self.num_blocks - 1,
                    block_len: self.cfg.block_size,
                    lbpme: self.cfg.thin_provisioning,
                    lbprz: self.cfg.thin_provisioning,
                    lbppbe: vpd::lbppbe(self.cfg.block_size),
                    ..Default::default()
                }
                .encode(&mut b);
                Ok(truncate(b, alloc_len as u64))
            }
            Cdb::GetLbaStatus { lba, alloc_len } => self.get_lba_status(lba, alloc_len).await,
            Cdb::Read { len, range } => {
                self.check_rw(len, &range, MAX_TRANSFER_BYTES)?;
                self.read(range.lba, range.blocks).await
            }
            Cdb::Write { len, range } => {
                self.check_rw(len, &range, MAX_TRANSFER_BYTES)?;
                let n = (range.blocks as u64 * bs) as usize;
                self.write(range.lba, data_out.slice(..n), range.fua).await
            }
            Cdb::WriteAndVerify { len, range, .. } => {
                self.check_rw(len, &range, MAX_TRANSFER_BYTES)?;
                let n = (range.blocks as u64 * bs) as usize;
                self.write(range.lba, data_out.slice(..n), false).await
            }
            Cdb::Verify { len, range, bytchk } => {
                self.check_rw(len, &range, MAX_TRANSFER_BYTES)?;
                self.verify(range, bytchk, data_out).await
            }
            Cdb::OrWrite { range } => {
                self.check_rw(16, &range, MAX_TRANSFER_BYTES)?;
                self.or_write(range, data_out).await
            }
            Cdb::CompareAndWrite { range } => {
                self.check_rw(16, &range, MAX_TRANSFER_BYTES)?;
                self.compare_and_write(range, data_out).await
            }
            Cdb::SyncCache { lba, blocks, .. } => {
                self.check_range(lba, blocks as u64)?;
                self.sync().await
            }
            Cdb::PreFetch { lba, blocks, .. } => {
                self.check_range(lba, blocks as u64)?;
                Ok(Bytes::new())
            }
            Cdb::WriteSame {
                len,
                range,
                anchor,
                unmap,
                ndob,
            } => {
                self.write_same(len, range, anchor, unmap, ndob, data_out)
                    .await
            }
            Cdb::Unmap {
                anchor, param_len, ..
            } => self.unmap(anchor, &data_out[..param_len as usize]).await,
            Cdb::ReportLuns { alloc_len, .. } => {
                // The transport normally answers REPORT LUNS; alone, a unit reports itself.
                let mut b = BytesMut::new();
                encode_report_luns(&[self.cfg.lun], &mut b);
                Ok(truncate(b, alloc_len as u64))
            }
            Cdb::PersistentReserveIn { action, alloc_len } => self
                .reservations
                .reserve_in(action, alloc_len)
                .map_err(Failure::from),
            Cdb::PersistentReserveOut {
                action,
                scope,
                pr_type,
                param_len,
            } => self
                .reservations
                .reserve_out(
                    nexus,
                    action,
                    scope,
                    pr_type,
                    &data_out[..param_len as usize],
                )
                .map(|()| Bytes::new()),
            Cdb::ReportSupportedOpcodes {
                rctd,
                options,
                opcode,
                service_action,
                alloc_len,
            } => opcodes::report(rctd, options, opcode, service_action, alloc_len),
            Cdb::ReadDefectData {
                twelve,
                plist,
                glist,
                format,
                alloc_len,
            } => {
                let mut b = BytesMut::new();
                if twelve {
                    b.extend_from_slice(&[0, (plist as u8) << 4 | (glist as u8) << 3 | format]);
                    b.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
                } else {
                    b.extend_from_slice(&[0, (plist as u8) << 4 | (glist as u8) << 3 | format]);
                    b.extend_from_slice(&[0, 0]);
                }
                Ok(truncate(b, alloc_len as u64))
            }
            Cdb::Unknown { service_action, .. } => Err(match service_action {
                Some(_) => invalid_cdb(1, Some(4)),
                None => illegal(Asc::INVALID_COMMAND_OPERATION_CODE),
            }),
        }
    }

    /// LBA range check (SBC-3 section 4.5): the last block must be inside the capacity.
    fn check_range(&self, lba: u64, blocks: u64) -> Result<(), Failure> {
        match lba.checked_add(blocks) {
            Some(end) if end <= self.num_blocks && lba <= self.num_blocks => Ok(()),
            _ => Err(illegal(Asc::LBA_OUT_OF_RANGE)),
        }
    }

    fn check_rw(&self, len: u8, range: &BlockRange, max_bytes: u64) -> Result<(), Failure> {
        if range.protect != 0 {
            // No protection information: RDPROTECT/WRPROTECT/VRPROTECT must be zero.
            return Err(invalid_cdb(1, Some(7)));
        }
        self.check_range(range.lba, range.blocks as u64)?;
        if range.blocks as u64 * self.cfg.block_size as u64 > max_bytes {
            let byte = match len {
                6 => 4,
                10 => 7,
                12 => 6,
                _ => 10,
            };
            return Err(invalid_cdb(byte, None));
        }
        Ok(())
    }

    fn book(&self, bytes: u64) -> Option<std::time::Instant> {
        self.spindle.as_ref().map(|s| s.book(bytes))
    }

    /// A backing-store call as the engine runs it: at once on the calling task
    /// ([`IoEngine::Inline`] without emulation), otherwise left for an I/O thread.
    fn access(&self, f: impl FnOnce(&Backing) -> CmdResult + Send + 'static) -> Access {
        if self.cfg.engine == IoEngine::Inline && self.spindle.is_none() {
            return Access::Done(f(&self.backing));
        }
        let b = self.backing.clone();
        Access::Blocking(Box::new(move || f(&b)))
    }

    /// Finishes `access`, on tokio's blocking pool when it blocks.
    async fn finish(&self, access: Access) -> CmdResult {
        match access {
            Access::Done(r) => r,
            Access::Blocking(call) => {
                // The access counts for the command until the call returns, even if the
                // command's task is aborted while it waits here.
                let access = crate::io_track::current_access();
                let run = move || {
                    let r = call();
                    drop(access);
                    r
                };
                match tokio::task::spawn_blocking(run).await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(lun = self.cfg.lun, error = %e, "blocking I/O task failed");
                        Err(Failure::Check(Sense::new(
                            SenseKey::HARDWARE_ERROR,
                            Asc::INTERNAL_TARGET_FAILURE,
                        )))
                    }
                }
            }
        }
    }

    async fn blocking(&self, f: impl FnOnce(&Backing) -> CmdResult + Send + 'static) -> CmdResult {
        self.finish(self.access(f)).await
    }

    async fn read(&self, lba: u64, blocks: u32) -> CmdResult {
        self.finish(self.read_access(lba, blocks)).await
    }

    /// READ of `blocks` at `lba`: [`IoEngine::Adaptive`] serves small reads the page cache
    /// holds at once.
    fn read_access(&self, lba: u64, blocks: u32) -> Access {
        let bs = self.cfg.block_size as u64;
        let len = blocks as u64 * bs;
        if len == 0 {
            return Access::Done(Ok(Bytes::new()));
        }
        let len = len as usize;
        // Allocated by the thread that also frees it once written, where possible.
        let mut buf = None;
        if self.cfg.engine == IoEngine::Adaptive
            && self.spindle.is_none()
            && len as u64 <= INLINE_READ_MAX_BYTES
        {
            let b = buf.insert(BytesMut::with_capacity(len));
            self.backing.read_cached(b, len, lba * bs);
            if b.len() == len {
                return Access::Done(Ok(b.split().freeze()));
            }
        }
        let deadline = self.book(len as u64);
        let lun = self.cfg.lun;
        self.access(move |b| {
            let mut buf = buf.unwrap_or_else(|| BytesMut::with_capacity(len));
            let cached = buf.len();
            let r = b.read_at(&mut buf, len - cached, lba * bs + cached as u64);
            wait_until(deadline);
            r.map_err(|e| read_error(lun, lba, e))?;
            Ok(buf.freeze())
        })
    }

    async fn write(&self, lba: u64, data: Bytes, fua: bool) -> CmdResult {
        let shared = self.write_order.clone().read_owned().await;
        self.finish(self.write_access(lba, data, fua, shared)).await
    }

    /// WRITE of `data` at `lba`, holding `shared` (the medium's write order) until the data
    /// is written: [`IoEngine::Adaptive`] does small buffered writes at once.
    fn write_access(
        &self,
        lba: u64,
        data: Bytes,
        fua: bool,
        shared: OwnedRwLockReadGuard<()>,
    ) -> Access {
        if data.is_empty() {
            return Access::Done(Ok(Bytes::new()));
        }
        let fua = fua || !self.wce.load(Ordering::Relaxed);
        let deadline = self.book(data.len() as u64);
        let off = lba * self.cfg.block_size as u64;
        let lun = self.cfg.lun;
        if self.inline_write_allowed(data.len(), fua) {
            let start = std::time::Instant::now();
            let r = self.backing.write_at(&data, off, false);
            if start.elapsed() > INLINE_WRITE_SLOW {
                let until = (start + INLINE_WRITE_BACKOFF).duration_since(self.epoch);
                self.inline_writes_paused_until
                    .store(until.as_nanos() as u64, Ordering::Relaxed);
            }
            return Access::Done(
                r.map(|()| Bytes::new())
                    .map_err(|e| write_error(lun, lba, e)),
            );
        }
        self.access(move |b| {
            let r = b.write_at(&data, off, fua);
            wait_until(deadline);
            drop(shared);
            r.map_err(|e| write_error(lun, lba, e))?;
            Ok(Bytes::new())
        })
    }

    /// Whether [`IoEngine::Adaptive`] may do this write on the calling task.
    fn inline_write_allowed(&self, len: usize, fua: bool) -> bool {
        self.cfg.engine == IoEngine::Adaptive
            && !fua
            && len <= INLINE_WRITE_MAX_BYTES
            && self.spindle.is_none()
            && !self.backing.is_block_device
            && (self.epoch.elapsed().as_nanos() as u64)
                >= self.inline_writes_paused_until.load(Ordering::Relaxed)
    }

    async fn sync(&self) -> CmdResult {
        let deadline = self.book(0);
        let lun = self.cfg.lun;
        self.blocking(move |b| {
            let r = b.sync();
            wait_until(deadline);
            r.map_err(|e| write_error(lun, 0, e))?;
            Ok(Bytes::new())
        })
        .await
    }

    async fn verify(&self, range: BlockRange, bytchk: u8, data_out: Bytes) -> CmdResult {
        if bytchk == 0 || range.blocks == 0 {
            // Medium verification: every block of a file or block device is readable.
            return Ok(Bytes::new());
        }
        let bs = self.cfg.block_size as usize;
        let medium = self.read(range.lba, range.blocks).await?;
        let mismatch = if bytchk == 1 {
            first_difference(&medium, &data_out[..medium.len()])
        } else {
            let pattern = &data_out[..bs];
            medium
                .chunks(bs)
                .enumerate()
                .find_map(|(i, blk)| first_difference(blk, pattern).map(|o| i * bs + o))
        };
        match mismatch {
            Some(off) => Err(Failure::Check(Sense::miscompare(off as u64))),
            None => Ok(Bytes::new()),
        }
    }

    async fn compare_and_write(&self, range: BlockRange, data_out: Bytes) -> CmdResult {
        let n = range.blocks as usize * self.cfg.block_size as usize;
        if data_out.len() != 2 * n {
            // More data-out than the NUMBER OF LOGICAL BLOCKS describes (e.g. 256 blocks
            // wrapped to 0 in the one-byte field).
            return Err(invalid_cdb(13, None));
        }
        if range.blocks == 0 {
            return Ok(Bytes::new());
        }
        let _exclusive = self.write_order.write().await;
        let medium = self.read(range.lba, range.blocks).await?;
        if let Some(off) = first_difference(&medium, &data_out[..n]) {
            return Err(Failure::Check(Sense::miscompare(off as u64)));
        }
        let fua = range.fua || !self.wce.load(Ordering::Relaxed);
        let off = range.lba * self.cfg.block_size as u64;
        let lun = self.cfg.lun;
        let data = data_out.slice(n..2 * n);
        let lba = range.lba;
        let deadline = self.book(n as u64);
        self.blocking(move |b| {
            let r = b.write_at(&data, off, fua);
            wait_until(deadline);
            r.map_err(|e| write_error(lun, lba, e))?;
            Ok(Bytes::new())
        })
        .await
    }

    async fn or_write(&self, range: BlockRange, data_out: Bytes) -> CmdResult {
        if range.blocks == 0 {
            return Ok(Bytes::new());
        }
        let n = range.blocks as usize * self.cfg.block_size as usize;
        let _exclusive = self.write_order.write().await;
        let medium = self.read(range.lba, range.blocks).await?;
        let mut merged = BytesMut::from(&medium[..]);
        for (m, d) in merged.iter_mut().zip(&data_out[..n]) {
            *m |= *d;
        }
        let fua = range.fua || !self.wce.load(Ordering::Relaxed);
        let off = range.lba * self.cfg.block_size as u64;
        let (lun, lba) = (self.cfg.lun, range.lba);
        let deadline = self.book(n as u64);
        self.blocking(move |b| {
            let r = b.write_at(&merged, off, fua);
            wait_until(deadline);
            r.map_err(|e| write_error(lun, lba, e))?;
            Ok(Bytes::new())
        })
        .await
    }

    async fn write_same(
        &self,
        len: u8,
        range: BlockRange,
        anchor: bool,
        unmap: bool,
        ndob: bool,
        data_out: Bytes,
    ) -> CmdResult {
        if range.protect != 0 {
            return Err(invalid_cdb(1, Some(7)));
        }
        if anchor {
            // ANC_SUP is zero in VPD B2h.
            return Err(invalid_cdb(1, Some(4)));
        }
        if unmap && !self.cfg.thin_provisioning {
            return Err(invalid_cdb(1, Some(3)));
        }
        self.check_range(range.lba, range.blocks as u64)?;
        if range.blocks == 0 {
            // WSNZ is one in VPD B0h: a zero NUMBER OF LOGICAL BLOCKS is refused.
            return Err(invalid_cdb(if len == 10 { 7 } else { 10 }, None));
        }
        let bs = self.cfg.block_size as u64;
        let total = range.blocks as u64 * bs;
        // Exactly one block of data-out (none with NDOB): more is an invalid request too.
        if data_out.len() as u64 != if ndob { 0 } else { bs } {
            return Err(illegal(Asc::INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT));
        }
        if total > MAX_WRITE_SAME_BYTES {
            return Err(invalid_cdb(if len == 10 { 7 } else { 10 }, None));
        }
        let block = if ndob {
            Bytes::from(vec![0u8; bs as usize])
        } else {
            data_out.slice(..bs as usize)
        };
        let zeros = block.iter().all(|&b| b == 0);
        let off = range.lba * bs;
        let (lun, lba) = (self.cfg.lun, range.lba);
        let fua = !self.wce.load(Ordering::Relaxed);
        let _shared = self.write_order.read().await;
        let deadline = self.book(if unmap && zeros { 0 } else { total });
        self.blocking(move |b| {
            let r = if unmap && zeros {
                b.deallocate(off, total)
            } else {
                write_repeated(b, &block, off, total, fua)
            };
            wait_until(deadline);
            r.map_err(|e| write_error(lun, lba, e))?;
            Ok(Bytes::new())
        })
        .await
    }

    async fn unmap(&self, anchor: bool, params: &[u8]) -> CmdResult {
        if !self.cfg.thin_provisioning {
            return Err(illegal(Asc::INVALID_COMMAND_OPERATION_CODE));
        }
        if anchor {
            return Err(invalid_cdb(1, Some(0)));
        }
        if params.is_empty() {
            return Ok(Bytes::new());
        }
        // SBC-3 section 5.28.2: 8-byte header, then 16-byte block descriptors.
        if params.len() < 8 {
            return Err(illegal(Asc::PARAMETER_LIST_LENGTH_ERROR));
        }
        let data_len = u16::from_be_bytes([params[0], params[1]]) as usize;
        let desc_len = u16::from_be_bytes([params[2], params[3]]) as usize;
        if data_len + 2 > params.len()
            || desc_len + 8 > params.len()
            || !desc_len.is_multiple_of(16)
        {
            return Err(illegal(Asc::PARAMETER_LIST_LENGTH_ERROR));
        }
        let count = desc_len / 16;
        if count as u32 > MAX_UNMAP_DESCRIPTORS {
            return Err(Failure::Check(Sense::invalid_field_in_parameter_list(
                2, None,
            )));
        }
        let bs = self.cfg.block_size as u64;
        let mut ranges = Vec::with_capacity(count);
        let mut total_blocks = 0u64;
        for (i, d) in params[8..8 + desc_len].chunks_exact(16).enumerate() {
            let mut l = [0u8; 8];
            l.copy_from_slice(&d[0..8]);
            let lba = u64::from_be_bytes(l);
            let blocks = u32::from_be_bytes([d[8], d[9], d[10], d[11]]) as u64;
            self.check_range(lba, blocks)?;
            total_blocks += blocks;
            if total_blocks > MAX_UNMAP_LBA_COUNT as u64 {
                return Err(Failure::Check(Sense::invalid_field_in_parameter_list(
                    (8 + i * 16 + 8) as u16,
                    None,
                )));
            }
            if blocks > 0 {
                ranges.push((lba * bs, blocks * bs));
            }
        }
        let _shared = self.write_order.read().await;
        let deadline = self.book(0);
        let lun = self.cfg.lun;
        self.blocking(move |b| {
            for &(off, len) in &ranges {
                b.deallocate(off, len)
                    .map_err(|e| write_error(lun, off / bs, e))?;
            }
            wait_until(deadline);
            Ok(Bytes::new())
        })
        .await
    }

    async fn get_lba_status(&self, lba: u64, alloc_len: u32) -> CmdResult {
        if lba >= self.num_blocks {
            return Err(illegal(Asc::LBA_OUT_OF_RANGE));
        }
        let bs = self.cfg.block_size as u64;
        let num_blocks = self.num_blocks;
        let thin = self.cfg.thin_provisioning;
        self.blocking(move |b| {
            let (mapped, end) = if thin {
                b.extent_at(lba * bs)
            } else {
                (true, u64::MAX)
            };
            // A block is deallocated only when wholly inside a hole: round hole ends down and
            // data ends up.
            let end_lba = if mapped {
                end.div_ceil(bs)
            } else {
                (end / bs).max(lba + 1)
            }
            .min(num_blocks);
            let blocks = (end_lba - lba).min(u32::MAX as u64) as u32;
            let desc = LbaStatusDescriptor {
                lba,
                blocks,
                status: if mapped {
                    ProvisioningStatus::MAPPED
                } else {
                    ProvisioningStatus::DEALLOCATED
                },
            };
            let mut out = BytesMut::with_capacity(24);
            encode_lba_status(&[desc], &mut out);
            Ok(truncate(out, alloc_len as u64))
        })
        .await
    }

    fn inquiry(&self, nexus: &Nexus, evpd: bool, page: u8, alloc_len: u16) -> CmdResult {
        let data = if evpd {
            vpd::vpd_page(self, nexus, page)?
        } else {
            vpd::standard_inquiry(self)
        };
        Ok(truncate(data, alloc_len as u64))
    }

    #[allow(clippy::too_many_arguments)]
    fn mode_sense(
        &self,
        ten: bool,
        dbd: bool,
        llbaa: bool,
        pc: PageControl,
        page: u8,
        subpage: u8,
        alloc_len: u16,
    ) -> CmdResult {
        let state = mode::ModeState {
            wce: self.wce.load(Ordering::Relaxed),
            d_sense: self.d_sense.load(Ordering::Relaxed),
            read_only: self.cfg.read_only,
            num_blocks: self.num_blocks,
            block_size: self.cfg.block_size,
        };
        let data = mode::mode_sense(&state, ten, dbd, llbaa, pc, page, subpage)?;
        Ok(truncate(data, alloc_len as u64))
    }

    fn mode_select(&self, ten: bool, pf: bool, sp: bool, params: &[u8]) -> CmdResult {
        let changes = mode::mode_select(ten, pf, sp, params, self.cfg.block_size)?;
        if let Some(wce) = changes.wce {
            self.wce.store(wce, Ordering::Relaxed);
        }
        if let Some(d) = changes.d_sense {
            self.d_sense.store(d, Ordering::Relaxed);
        }
        Ok(Bytes::new())
    }
}

fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y)
}

fn write_repeated(
    b: &Backing,
    block: &[u8],
    off: u64,
    total: u64,
    fua: bool,
) -> std::io::Result<()> {
    let per_chunk = ((1 << 20) / block.len()).max(1);
    let chunk: Vec<u8> = block.repeat(per_chunk);
    let mut done = 0u64;
    while done < total {
        let n = (total - done).min(chunk.len() as u64) as usize;
        b.write_at(&chunk[..n], off + done, false)?;
        done += n as u64;
    }
    if fua {
        b.sync()?;
    }
    Ok(())
}

fn read_error(lun: u64, lba: u64, e: std::io::Error) -> Failure {
    tracing::error!(lun, lba, op = "read", error = %e, "backing store read failed");
    Failure::Check(Sense::new(
        SenseKey::MEDIUM_ERROR,
        Asc::UNRECOVERED_READ_ERROR,
    ))
}

fn write_error(lun: u64, lba: u64, e: std::io::Error) -> Failure {
    tracing::error!(lun, lba, op = "write", error = %e, "backing store write failed");
    Failure::Check(Sense::new(SenseKey::MEDIUM_ERROR, Asc::WRITE_ERROR))
}

#[cfg(test)]
mod tests {
    use iscsi_proto::scsi::build;

    use super::*;

    const BLOCKS: u64 = 256;

    fn unit(
        engine: IoEngine,
        emulate: Option<DiskEmulation>,
    ) -> (tempfile::NamedTempFile, Arc<LogicalUnit>) {
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(BLOCKS * 512).unwrap();
        let mut cfg = LuConfig::new(f.path(), 0);
        cfg.engine = engine;
        cfg.emulate = emulate;
        (f, Arc::new(LogicalUnit::open(cfg).unwrap()))
    }

    fn nexus() -> Nexus {
        Nexus::new(
            "iqn.2024-01.test:init",
            [0x80, 0, 0, 0, 0, 1],
            "iqn.2024-01.test:tgt",
            1,
        )
    }

    fn pattern(len: usize, seed: u8) -> Bytes {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
            .collect::<Vec<u8>>()
            .into()
    }

    /// The outcome of `cdb` through [`LogicalUnit::start`], running any blocking rest here.
    fn started(lu: &Arc<LogicalUnit>, cdb: &[u8], data: &Bytes) -> ScsiOutcome {
        match lu.start(&nexus(), cdb, data) {
            Start::Done(o) => o,
            Start::Blocking(b) => b.run(),
            Start::Execute => panic!("not started"),
        }
    }

    #[test]
    fn adaptive_read_and_write_finish_on_the_calling_thread() {
        let (_f, lu) = unit(IoEngine::Adaptive, None);
        let data = pattern(8 * 512, 3);
        let o = match lu.start(&nexus(), &build::write10(16, 8, false), &data) {
            Start::Done(o) => o,
            other => panic!("small buffered write not done at once: {other:?}"),
        };
        assert_eq!(o.status, ScsiStatus::GOOD);
        // Just written, so in the page cache.
        match lu.start(&nexus(), &build::read16(16, 8, false), &Bytes::new()) {
            Start::Done(o) => assert_eq!(o.data_in, data),
            other => panic!("cached read not done at once: {other:?}"),
        }
    }

    #[test]
    fn pool_and_emulation_leave_the_medium_access_for_an_io_thread() {
        let model = DiskEmulation {
            latency_us: 3000,
            mbps: 1000.0,
        };
        for (engine, emulate) in [
            (IoEngine::BlockingPool, None),
            (IoEngine::Adaptive, Some(model)),
        ] {
            let (_f, lu) = unit(engine, emulate);
            let data = pattern(4 * 512, 9);
            let w = match lu.start(&nexus(), &build::write16(40, 4, true), &data) {
                Start::Blocking(b) => b,
                other => panic!("{engine:?}: write not left blocking: {other:?}"),
            };
            let begun = std::time::Instant::now();
            assert_eq!(w.run().status, ScsiStatus::GOOD);
            if emulate.is_some() {
                assert!(begun.elapsed() >= std::time::Duration::from_micros(3000));
            }
            let r = match lu.start(&nexus(), &build::read10(40, 4, false), &Bytes::new()) {
                Start::Blocking(b) => b.run(),
                other => panic!("{engine:?}: read not left blocking: {other:?}"),
            };
            assert_eq!(r.data_in, data);
        }
    }

    #[test]
    fn errors_are_answered_at_once_with_sense() {
        let (_f, lu) = unit(IoEngine::BlockingPool, None);
        let o = started(&lu, &build::read16(BLOCKS, 1, false), &Bytes::new());
        assert_eq!(o.status, ScsiStatus::CHECK_CONDITION);
        assert_eq!(o.decoded_sense().unwrap().asc, Asc::LBA_OUT_OF_RANGE);
        // Data-out shorter than the CDB describes.
        let o = started(&lu, &build::write10(0, 2, false), &pattern(512, 1));
        assert_eq!(
            o.decoded_sense().unwrap().asc,
            Asc::INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT
        );
    }

    #[tokio::test]
    async fn other_commands_are_left_untouched() {
        let (_f, lu) = unit(IoEngine::Adaptive, None);
        let o = lu
            .execute(&nexus(), &build::test_unit_ready(), Bytes::new())
            .await;
        assert_eq!(o.status, ScsiStatus::GOOD);
        lu.lun_reset();
        // TEST UNIT READY is not started, so its unit attention is still pending after.
        assert!(matches!(
            lu.start(&nexus(), &build::test_unit_ready(), &Bytes::new()),
            Start::Execute
        ));
        let o = lu
            .execute(&nexus(), &build::test_unit_ready(), Bytes::new())
            .await;
        assert_eq!(
            o.decoded_sense().unwrap().asc,
            Asc::BUS_DEVICE_RESET_FUNCTION_OCCURRED
        );
        // A WRITE waits (on the general path) while COMPARE AND WRITE holds the medium.
        let exclusive = lu.write_order.clone().write_owned().await;
        assert!(matches!(
            lu.start(&nexus(), &build::write10(0, 1, false), &pattern(512, 2)),
            Start::Execute
        ));
        drop(exclusive);
        assert!(matches!(
            lu.start(&nexus(), &build::write10(0, 1, false), &pattern(512, 2)),
            Start::Done(_)
        ));
    }
}
