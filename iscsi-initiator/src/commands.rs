//! SBC-3 / SPC-4 convenience commands on a [`Session`]: INQUIRY, READ CAPACITY (10, then 16),
//! READ / WRITE (10 or 16), SYNCHRONIZE CACHE, UNMAP, WRITE SAME (unmap), COMPARE AND WRITE,
//! REPORT LUNS, TEST UNIT READY.

use std::sync::Arc;

use bytes::Bytes;
use iscsi_proto::scsi::build;
use iscsi_proto::scsi::capacity::{ReadCapacity10Data, ReadCapacity16Data};
use iscsi_proto::scsi::inquiry::StandardInquiry;
use iscsi_proto::scsi::luns::decode_report_luns;

use crate::error::{IscsiError, Result};
use crate::session::Session;
use crate::splice::SplicePipe;

/// Where [`Session::read_to_pipe`] put the data.
#[derive(Debug)]
pub enum PipedRead {
    /// This many bytes (the whole read) wait in the pipe.
    InPipe(usize),
    /// The whole read, in a buffer (the pipe holds nothing of it).
    Bytes(Bytes),
}

impl PipedRead {
    /// The data of a read made without a pipe, which always lands in a buffer (an error
    /// otherwise).
    pub fn buffered(self) -> Result<Bytes> {
        match self {
            PipedRead::Bytes(b) => Ok(b),
            PipedRead::InPipe(_) => Err(IscsiError::Protocol(
                "a read without a pipe filled one".into(),
            )),
        }
    }
}

/// Size of a logical unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Number of logical blocks.
    pub blocks: u64,
    /// Bytes per logical block.
    pub block_len: u32,
    /// Thin provisioning enabled (from READ CAPACITY (16) when available).
    pub thin: bool,
}

impl Capacity {
    /// Size in bytes.
    pub fn bytes(&self) -> u64 {
        self.blocks * self.block_len as u64
    }
}

/// Largest REPORT LUNS answer read.
const REPORT_LUNS_ALLOC: u32 = 64 * 1024;

impl Session {
    /// Standard INQUIRY data.
    pub async fn inquiry(&self, lun: u64) -> Result<StandardInquiry> {
        let r = self
            .execute(lun, &build::inquiry(None, 255), &[], 255)
            .await?;
        StandardInquiry::decode(&r.data).map_err(|e| IscsiError::BadData(e.to_string()))
    }

    /// An INQUIRY VPD page, raw.
    pub async fn inquiry_vpd(&self, lun: u64, page: u8) -> Result<Bytes> {
        let r = self
            .execute(lun, &build::inquiry(Some(page), 4096), &[], 4096)
            .await?;
        Ok(r.data)
    }

    /// READ CAPACITY (10), then (16) when the unit is too large or (16) is supported.
    pub async fn read_capacity(&self, lun: u64) -> Result<Capacity> {
        let r10 = self.execute(lun, &build::read_capacity10(), &[], 8).await?;
        let c10 = ReadCapacity10Data::decode(&r10.data)
            .map_err(|e| IscsiError::BadData(e.to_string()))?;
        let mut cap = Capacity {
            blocks: c10.last_lba as u64 + 1,
            block_len: c10.block_len,
            thin: false,
        };
        match self
            .execute(lun, &build::read_capacity16(32), &[], 32)
            .await
        {
            Ok(r16) => {
                let c16 = ReadCapacity16Data::decode(&r16.data)
                    .map_err(|e| IscsiError::BadData(e.to_string()))?;
                cap = Capacity {
                    blocks: c16.last_lba + 1,
                    block_len: c16.block_len,
                    thin: c16.lbpme,
                };
            }
            Err(e) if c10.last_lba == u32::MAX => return Err(e),
            Err(_) => {}
        }
        if cap.block_len == 0 {
            return Err(IscsiError::BadData("block length 0".into()));
        }
        self.set_block_len(lun, cap.block_len);
        Ok(cap)
    }

    /// The block length of `lun` (asks READ CAPACITY once, then cached).
    pub async fn block_len(&self, lun: u64) -> Result<u32> {
        match self.block_len_cached(lun) {
            Some(b) => Ok(b),
            None => Ok(self.read_capacity(lun).await?.block_len),
        }
    }

    /// Reads `blocks` blocks at `lba`. The Data-In PDUs land in one buffer, returned as is.
    pub async fn read(&self, lun: u64, lba: u64, blocks: u32) -> Result<Bytes> {
        self.read_into(lun, lba, blocks, None).await?.buffered()
    }

    /// Reads `blocks` blocks at `lba` like [`Session::read`], moving the payload into `pipe`
    /// by splice(2) when it can ([`crate::splice`]): then the result is
    /// [`PipedRead::InPipe`] and the pipe holds exactly the read's bytes. Otherwise (data
    /// digests, out-of-order Data-In, the pipe out of slots, the command reissued on a new
    /// connection) the bytes come back in a buffer, as [`PipedRead::Bytes`].
    pub async fn read_to_pipe(
        &self,
        lun: u64,
        lba: u64,
        blocks: u32,
        pipe: &Arc<SplicePipe>,
    ) -> Result<PipedRead> {
        self.read_into(lun, lba, blocks, Some(pipe)).await
    }

    /// READ (10), or READ (16) when the LBA or length needs it, with the Data-In spliced into
    /// `pipe` if there is one; checks that every byte came.
    async fn read_into(
        &self,
        lun: u64,
        lba: u64,
        blocks: u32,
        pipe: Option<&Arc<SplicePipe>>,
    ) -> Result<PipedRead> {
        let bl = self.block_len(lun).await?;
        let len = blocks as u64 * bl as u64;
        let len = u32::try_from(len)
            .map_err(|_| IscsiError::InvalidRequest(format!("read of {len} bytes")))?;
        let cdb: &[u8] = &match (u32::try_from(lba), u16::try_from(blocks)) {
            (Ok(l), Ok(b)) => cdb16(&build::read10(l, b, false)),
            _ => build::read16(lba, blocks, false),
        };
        let mut sink = pipe.cloned();
        let r = self
            .execute_into(lun, &cdb[..cdb_len(cdb)], &[], len, &mut sink)
            .await?;
        let got = r.piped + r.data.len();
        if got != len as usize {
            return Err(IscsiError::Protocol(format!(
                "read returned {got} of {len} bytes"
            )));
        }
        Ok(if r.piped > 0 {
            PipedRead::InPipe(r.piped)
        } else {
            PipedRead::Bytes(r.data)
        })
    }

    /// Writes `data` (a whole number of blocks) at `lba`; `fua` forces it to stable storage.
    pub async fn write(&self, lun: u64, lba: u64, data: Bytes, fua: bool) -> Result<()> {
        self.write_segments(lun, lba, &[data], fua).await
    }

    /// Writes the concatenation of `segments` at `lba` without copying them: the PDUs carry
    /// slices of the buffers and go out with vectored writes.
    pub async fn write_segments(
        &self,
        lun: u64,
        lba: u64,
        segments: &[Bytes],
        fua: bool,
    ) -> Result<()> {
        let bl = self.block_len(lun).await? as usize;
        let len: usize = segments.iter().map(Bytes::len).sum();
        if len == 0 {
            return Ok(());
        }
        if !len.is_multiple_of(bl) {
            return Err(IscsiError::InvalidRequest(format!(
                "write of {len} bytes is not a multiple of the {bl} byte block"
            )));
        }
        let blocks = u32::try_from(len / bl)
            .map_err(|_| IscsiError::InvalidRequest(format!("write of {len} bytes")))?;
        let cdb: [u8; 16] = match (u32::try_from(lba), u16::try_from(blocks)) {
            (Ok(l), Ok(b)) => cdb16(&build::write10(l, b, fua)),
            _ => build::write16(lba, blocks, fua),
        };
        self.execute(lun, &cdb[..cdb_len(&cdb)], segments, 0)
            .await?;
        Ok(())
    }

    /// SYNCHRONIZE CACHE of the whole unit.
    pub async fn flush(&self, lun: u64) -> Result<()> {
        self.execute(lun, &build::sync_cache10(0, 0, false), &[], 0)
            .await?;
        Ok(())
    }

    /// UNMAP of `(lba, blocks)` ranges.
    pub async fn unmap(&self, lun: u64, ranges: &[(u64, u32)]) -> Result<()> {
        let list = build::unmap_parameter_list(ranges);
        let len = u16::try_from(list.len())
            .map_err(|_| IscsiError::InvalidRequest("too many UNMAP ranges".into()))?;
        self.execute(lun, &build::unmap(len), &[Bytes::from(list)], 0)
            .await?;
        Ok(())
    }

    /// WRITE SAME (16) with zeros; with `unmap` the target may deallocate the blocks.
    pub async fn write_same(&self, lun: u64, lba: u64, blocks: u32, unmap: bool) -> Result<()> {
        let bl = self.block_len(lun).await? as usize;
        let zero = Bytes::from(vec![0u8; bl]);
        self.execute(
            lun,
            &build::write_same16(lba, blocks, unmap, false),
            &[zero],
            0,
        )
        .await?;
        Ok(())
    }

    /// COMPARE AND WRITE: writes `write` at `lba` if the blocks there equal `compare`. A
    /// mismatch is `CheckCondition { sense_key: MISCOMPARE, .. }`.
    pub async fn compare_and_write(
        &self,
        lun: u64,
        lba: u64,
        compare: Bytes,
        write: Bytes,
        fua: bool,
    ) -> Result<()> {
        let bl = self.block_len(lun).await? as usize;
        if compare.len() != write.len() || compare.is_empty() || !compare.len().is_multiple_of(bl) {
            return Err(IscsiError::InvalidRequest(
                "compare and write buffers must be equal whole blocks".into(),
            ));
        }
        let blocks = u8::try_from(compare.len() / bl)
            .map_err(|_| IscsiError::InvalidRequest("COMPARE AND WRITE over 255 blocks".into()))?;
        self.execute(
            lun,
            &build::compare_and_write(lba, blocks, fua),
            &[compare, write],
            0,
        )
        .await?;
        Ok(())
    }

    /// REPORT LUNS (sent to LUN 0).
    pub async fn report_luns(&self) -> Result<Vec<u64>> {
        let r = self
            .execute(
                0,
                &build::report_luns(REPORT_LUNS_ALLOC),
                &[],
                REPORT_LUNS_ALLOC,
            )
            .await?;
        decode_report_luns(&r.data)
            .map(|(_, l)| l)
            .map_err(|e| IscsiError::BadData(e.to_string()))
    }

    /// TEST UNIT READY.
    pub async fn test_unit_ready(&self, lun: u64) -> Result<()> {
        self.execute(lun, &build::test_unit_ready(), &[], 0).await?;
        Ok(())
    }
}

fn cdb16(c: &[u8]) -> [u8; 16] {
    let mut o = [0u8; 16];
    o[..c.len()].copy_from_slice(c);
    o
}

/// The length of a CDB from its operation code group (SPC-4 section 4.2.5.1).
fn cdb_len(c: &[u8]) -> usize {
    match c[0] >> 5 {
        0 => 6,
        1 | 2 => 10,
        4 => 16,
        5 => 12,
        _ => 16,
    }
}
