//! Translation of a virtual-disk request into per-server requests (DESIGN.md "Layout arithmetic":
//! a request that crosses stripe units splits; pieces bound for the same server and contiguous on
//! it merge again).
//!
//! Two stages:
//! 1. [`translate`]: virtual `(offset, len)` to [`Piece`]s, one per stripe unit touched (adjacent
//!    units of the same extent that are also adjacent in the request, as with `W = 1`, are joined).
//! 2. [`ExtentTable::server_pieces`]: pieces to [`ServerPiece`]s on LUNs, for all replicas
//!    (writes) or one (reads), sorted by target and offset, merged when contiguous on the LUN. A
//!    merged piece lists the ranges of the caller's buffer it carries as [`Segment`]s, so the
//!    caller can send them without copying (e.g. as `Bytes::slice`s).

use crate::geometry::Geometry;
use crate::server::ExtentReplica;
use smallvec::SmallVec;
use std::collections::HashMap;
use thiserror::Error;

/// Why a request could not be translated.
#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum TranslateError {
    #[error("request [{offset}, +{len}) ends beyond the disk size {size}")]
    OutOfRange { offset: u64, len: u64, size: u64 },
    #[error("replica {replica} does not exist (the disk has {replicas} replicas)")]
    NoSuchReplica { replica: u32, replicas: u32 },
}

/// Why an extent table could not be built.
#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum TableError {
    #[error("the geometry needs {expected} extents but {found} are given")]
    ExtentCount { expected: u64, found: u64 },
    #[error("extent {extent} has {found} replicas, the geometry says {expected}")]
    ReplicaCount {
        extent: u64,
        expected: u32,
        found: usize,
    },
    #[error("extent {extent} replica {replica}: block size {block_size} does not divide the stripe unit or extent size")]
    BlockSize {
        extent: u64,
        replica: usize,
        block_size: u32,
    },
    #[error("extent {extent}: two replicas on the same LUN {portal} {iqn} lun {lun}")]
    ReplicasShareLun {
        extent: u64,
        portal: String,
        iqn: String,
        lun: u64,
    },
    #[error("extents {a} and {b} overlap on LUN {portal} {iqn} lun {lun}")]
    Overlap {
        a: u64,
        b: u64,
        portal: String,
        iqn: String,
        lun: u64,
    },
    #[error("LUN {portal} {iqn} lun {lun} appears with two block sizes")]
    BlockSizeConflict {
        portal: String,
        iqn: String,
        lun: u64,
    },
}

/// A part of a request inside one stripe unit run of one extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// Extent index in the virtual disk.
    pub extent: u64,
    /// Column of the extent in its group (`extent % W`).
    pub column: u32,
    /// Byte offset inside the extent.
    pub offset_in_extent: u64,
    /// Length in bytes.
    pub len: u64,
    /// Where the piece's bytes are in the caller's buffer.
    pub offset_in_request: u64,
}

/// Splits virtual `[offset, offset+len)` into pieces (appended to `out`, which is cleared first).
pub fn translate(
    geometry: &Geometry,
    offset: u64,
    len: u64,
    out: &mut Vec<Piece>,
) -> Result<(), TranslateError> {
    out.clear();
    let end = offset
        .checked_add(len)
        .filter(|&e| e <= geometry.size)
        .ok_or(TranslateError::OutOfRange {
            offset,
            len,
            size: geometry.size,
        })?;
    let u = geometry.stripe_unit;
    let mut v = offset;
    while v < end {
        let unit_end = (v / u + 1) * u;
        let n = unit_end.min(end) - v;
        let loc = geometry.locate(v);
        let piece = Piece {
            extent: loc.extent,
            column: loc.column,
            offset_in_extent: loc.offset_in_extent,
            len: n,
            offset_in_request: v - offset,
        };
        match out.last_mut() {
            Some(last)
                if last.extent == piece.extent
                    && last.offset_in_extent + last.len == piece.offset_in_extent =>
            {
                // W = 1 (or the request stays in one column): still contiguous.
                last.len += n;
            }
            _ => out.push(piece),
        }
        v += n;
    }
    Ok(())
}

/// A range of the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub buf_offset: u64,
    pub len: u64,
}

/// Buffer segments of one server piece; up to 4 inline.
pub type Segments = SmallVec<[Segment; 4]>;

/// One request to one LUN: `len` bytes at byte `lun_offset` (LBA `lba` when block aligned),
/// carried by the caller's buffer ranges `segments` in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerPiece {
    /// Index into [`ExtentTable::targets`].
    pub target: u32,
    /// Byte offset on the LUN.
    pub lun_offset: u64,
    /// First LBA (`lun_offset / block_size`, rounded down).
    pub lba: u64,
    /// Length in bytes (sum of the segments).
    pub len: u64,
    /// The caller's buffer ranges, in LUN order.
    pub segments: Segments,
}

/// A distinct LUN the disk uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TargetAddr {
    pub portal: String,
    pub iqn: String,
    pub lun: u64,
    pub block_size: u32,
}

/// Where replica `k` of an extent is: target index and first byte on that LUN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaSlot {
    pub target: u32,
    pub start_byte: u64,
}

/// Which replicas a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaSet {
    /// Every replica (writes).
    All,
    /// Replica `k` of every extent (reads; retry with another `k` on failure).
    Only(u32),
    /// Replica `(extent + k) % R` of each extent: reads spread over all replicas while a
    /// sequential run still stays on one server per column (retry with `k + 1` on failure).
    Rotate(u32),
}

/// The whole mapping of a disk, resolved for fast translation: distinct LUNs are interned into
/// target indexes; replica `k` of extent `x` is at `slots[x*R + k]`.
#[derive(Debug, Clone)]
pub struct ExtentTable {
    geometry: Geometry,
    targets: Vec<TargetAddr>,
    slots: Vec<ReplicaSlot>,
}

impl ExtentTable {
    /// Builds the table from the geometry and every extent's replicas (indexed by extent).
    /// Checks counts, block sizes, that replicas of an extent sit on distinct LUNs, and that no
    /// two extents overlap on a LUN.
    pub fn new(geometry: Geometry, extents: &[Vec<ExtentReplica>]) -> Result<Self, TableError> {
        let expected = geometry.extent_count();
        if extents.len() as u64 != expected {
            return Err(TableError::ExtentCount {
                expected,
                found: extents.len() as u64,
            });
        }
        let mut targets: Vec<TargetAddr> = Vec::new();
        let mut index: HashMap<(String, String, u64), u32> = HashMap::new();
        let mut slots = Vec::with_capacity(extents.len() * geometry.replicas as usize);
        let mut used: HashMap<u32, Vec<(u64, u64)>> = HashMap::new();
        for (x, replicas) in extents.iter().enumerate() {
            let x = x as u64;
            if replicas.len() != geometry.replicas as usize {
                return Err(TableError::ReplicaCount {
                    extent: x,
                    expected: geometry.replicas,
                    found: replicas.len(),
                });
            }
            let first = slots.len();
            for (k, rep) in replicas.iter().enumerate() {
                let bs = rep.block_size as u64;
                if bs == 0
                    || !geometry.stripe_unit.is_multiple_of(bs)
                    || !geometry.extent_size.is_multiple_of(bs)
                {
                    return Err(TableError::BlockSize {
                        extent: x,
                        replica: k,
                        block_size: rep.block_size,
                    });
                }
                let key = (rep.portal.clone(), rep.iqn.clone(), rep.lun);
                let t = *index.entry(key).or_insert_with(|| {
                    targets.push(TargetAddr {
                        portal: rep.portal.clone(),
                        iqn: rep.iqn.clone(),
                        lun: rep.lun,
                        block_size: rep.block_size,
                    });
                    targets.len() as u32 - 1
                });
                if targets[t as usize].block_size != rep.block_size {
                    return Err(TableError::BlockSizeConflict {
                        portal: rep.portal.clone(),
                        iqn: rep.iqn.clone(),
                        lun: rep.lun,
                    });
                }
                if slots[first..].iter().any(|s: &ReplicaSlot| s.target == t) {
                    return Err(TableError::ReplicasShareLun {
                        extent: x,
                        portal: rep.portal.clone(),
                        iqn: rep.iqn.clone(),
                        lun: rep.lun,
                    });
                }
                let start = rep.start_byte();
                used.entry(t).or_default().push((start, x));
                slots.push(ReplicaSlot {
                    target: t,
                    start_byte: start,
                });
            }
        }
        for (t, mut starts) in used {
            starts.sort_unstable();
            for w in starts.windows(2) {
                if w[0].0 + geometry.extent_size > w[1].0 {
                    let ta = &targets[t as usize];
                    return Err(TableError::Overlap {
                        a: w[0].1,
                        b: w[1].1,
                        portal: ta.portal.clone(),
                        iqn: ta.iqn.clone(),
                        lun: ta.lun,
                    });
                }
            }
        }
        Ok(ExtentTable {
            geometry,
            targets,
            slots,
        })
    }

    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// The distinct LUNs of the disk; [`ServerPiece::target`] indexes this.
    pub fn targets(&self) -> &[TargetAddr] {
        &self.targets
    }

    /// Replica `k` of extent `x`.
    pub fn replica(&self, extent: u64, k: u32) -> ReplicaSlot {
        self.slots[(extent * self.geometry.replicas as u64 + k as u64) as usize]
    }

    /// Translates virtual `[offset, offset+len)` into merged per-LUN pieces (appended to `out`
    /// after clearing it, sorted by target then LUN offset). `scratch` is reused between calls.
    pub fn server_pieces(
        &self,
        offset: u64,
        len: u64,
        replicas: ReplicaSet,
        scratch: &mut Vec<Piece>,
        out: &mut Vec<ServerPiece>,
    ) -> Result<(), TranslateError> {
        let r = self.geometry.replicas;
        let (ks, rotate) = match replicas {
            ReplicaSet::All => (0..r, false),
            ReplicaSet::Only(k) if k < r => (k..k + 1, false),
            ReplicaSet::Rotate(k) => (k % r..k % r + 1, true),
            ReplicaSet::Only(k) => {
                return Err(TranslateError::NoSuchReplica {
                    replica: k,
                    replicas: r,
                })
            }
        };
        translate(&self.geometry, offset, len, scratch)?;
        out.clear();
        for p in scratch.iter() {
            for k in ks.clone() {
                let k = if rotate {
                    ((p.extent + k as u64) % r as u64) as u32
                } else {
                    k
                };
                let slot = self.replica(p.extent, k);
                let lun_offset = slot.start_byte + p.offset_in_extent;
                let bs = self.targets[slot.target as usize].block_size as u64;
                let mut segments = Segments::new();
                segments.push(Segment {
                    buf_offset: p.offset_in_request,
                    len: p.len,
                });
                out.push(ServerPiece {
                    target: slot.target,
                    lun_offset,
                    lba: lun_offset / bs,
                    len: p.len,
                    segments,
                });
            }
        }
        merge_server_pieces(out);
        Ok(())
    }
}

/// Sorts by (target, LUN offset) and merges pieces contiguous on the same LUN; buffer segments
/// contiguous in the caller's buffer are joined too.
pub fn merge_server_pieces(pieces: &mut Vec<ServerPiece>) {
    if pieces.len() < 2 {
        return;
    }
    pieces.sort_unstable_by_key(|p| (p.target, p.lun_offset));
    let mut w = 0;
    for i in 1..pieces.len() {
        let (head, tail) = pieces.split_at_mut(i);
        let cur = &mut tail[0];
        let last = &mut head[w];
        if last.target == cur.target && last.lun_offset + last.len == cur.lun_offset {
            last.len += cur.len;
            for s in cur.segments.drain(..) {
                match last.segments.last_mut() {
                    Some(ls) if ls.buf_offset + ls.len == s.buf_offset => ls.len += s.len,
                    _ => last.segments.push(s),
                }
            }
        } else {
            w += 1;
            pieces.swap(w, i);
        }
    }
    pieces.truncate(w + 1);
}
