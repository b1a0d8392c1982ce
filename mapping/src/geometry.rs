//! Layout arithmetic of a striped, replicated virtual disk (DESIGN.md "Layout arithmetic").
//!
//! A virtual disk of `size` bytes is cut into extents of `E` bytes, grouped `W` at a time (one
//! extent per column). Inside a group, stripe units of `U` bytes go round-robin over the columns:
//!
//! ```text
//! g = v / (E*W)            group
//! o = v % (E*W)            offset inside the group
//! c = (o / U) % W          column
//! r = o / (U*W)            stripe row
//! extent = g*W + c
//! offset_in_extent = r*U + o % U
//! ```
//!
//! Each extent has `R` replicas on distinct servers.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Sector size every geometry quantity must be a multiple of.
pub const SECTOR: u64 = 512;
/// Upper bound on the stripe count (columns per group).
pub const MAX_STRIPES: u32 = 256;
/// Upper bound on the replica count.
pub const MAX_REPLICAS: u32 = 16;
/// Upper bound on the number of extents of one virtual disk (keeps tables and RPCs bounded).
pub const MAX_EXTENTS: u64 = 1 << 20;

/// Which geometry rule was broken.
#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum GeometryError {
    #[error("disk size must be greater than zero")]
    ZeroSize,
    #[error("disk size {0} is not a multiple of {SECTOR} bytes")]
    SizeNotSectorMultiple(u64),
    #[error("stripe unit {0} must be a non-zero multiple of {SECTOR} bytes")]
    StripeUnitNotSectorMultiple(u64),
    #[error("extent size {extent_size} is not a multiple of the stripe unit {stripe_unit}")]
    ExtentNotStripeUnitMultiple { extent_size: u64, stripe_unit: u64 },
    #[error("stripe count must be between 1 and {MAX_STRIPES}, got {0}")]
    BadStripes(u32),
    #[error("replica count must be between 1 and {MAX_REPLICAS}, got {0}")]
    BadReplicas(u32),
    #[error("the disk needs {0} extents, more than the limit of {MAX_EXTENTS}")]
    TooManyExtents(u64),
    #[error("block size {block_size} does not divide the stripe unit {stripe_unit}")]
    BlockSizeMismatch { block_size: u32, stripe_unit: u64 },
}

/// Shape of a virtual disk. Build it with [`Geometry::new`] (which validates) or validate a
/// deserialised one with [`Geometry::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Geometry {
    /// Virtual disk size in bytes.
    pub size: u64,
    /// Extent size `E` in bytes.
    pub extent_size: u64,
    /// Stripe count `W` (columns per group).
    pub stripes: u32,
    /// Stripe unit `U` in bytes.
    pub stripe_unit: u64,
    /// Replica count `R`.
    pub replicas: u32,
}

/// Where one virtual byte lives: extent, its column, and the byte offset inside the extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub extent: u64,
    pub column: u32,
    pub offset_in_extent: u64,
}

impl std::fmt::Display for Geometry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::size::format_size;
        write!(
            f,
            "size {}, extent size {}, stripes {} x {}, replicas {}",
            format_size(self.size),
            format_size(self.extent_size),
            self.stripes,
            format_size(self.stripe_unit),
            self.replicas
        )
    }
}

impl Geometry {
    /// Builds and validates a geometry.
    pub fn new(
        size: u64,
        extent_size: u64,
        stripes: u32,
        stripe_unit: u64,
        replicas: u32,
    ) -> Result<Geometry, GeometryError> {
        let g = Geometry {
            size,
            extent_size,
            stripes,
            stripe_unit,
            replicas,
        };
        g.validate()?;
        Ok(g)
    }

    /// Checks every rule: `size > 0`, sector multiples, `E % U == 0`, `W >= 1`, `R >= 1`,
    /// extent count bounded.
    pub fn validate(&self) -> Result<(), GeometryError> {
        if self.size == 0 {
            return Err(GeometryError::ZeroSize);
        }
        if !self.size.is_multiple_of(SECTOR) {
            return Err(GeometryError::SizeNotSectorMultiple(self.size));
        }
        if self.stripe_unit == 0 || !self.stripe_unit.is_multiple_of(SECTOR) {
            return Err(GeometryError::StripeUnitNotSectorMultiple(self.stripe_unit));
        }
        if self.extent_size == 0 || !self.extent_size.is_multiple_of(self.stripe_unit) {
            return Err(GeometryError::ExtentNotStripeUnitMultiple {
                extent_size: self.extent_size,
                stripe_unit: self.stripe_unit,
            });
        }
        if self.stripes == 0 || self.stripes > MAX_STRIPES {
            return Err(GeometryError::BadStripes(self.stripes));
        }
        if self.replicas == 0 || self.replicas > MAX_REPLICAS {
            return Err(GeometryError::BadReplicas(self.replicas));
        }
        let groups = self.size.div_ceil(self.group_bytes_saturating());
        let extents = groups.saturating_mul(self.stripes as u64);
        if extents > MAX_EXTENTS {
            return Err(GeometryError::TooManyExtents(extents));
        }
        Ok(())
    }

    /// Checks that a server block size divides the stripe unit (so stripe units start on block
    /// boundaries of every server).
    pub fn check_block_size(&self, block_size: u32) -> Result<(), GeometryError> {
        if block_size == 0 || !self.stripe_unit.is_multiple_of(block_size as u64) {
            return Err(GeometryError::BlockSizeMismatch {
                block_size,
                stripe_unit: self.stripe_unit,
            });
        }
        Ok(())
    }

    fn group_bytes_saturating(&self) -> u64 {
        self.extent_size.saturating_mul(self.stripes as u64)
    }

    /// Bytes in one group of `W` extents (`E*W`).
    pub fn group_bytes(&self) -> u64 {
        self.extent_size * self.stripes as u64
    }

    /// Number of groups: the last one may be only partly used by the disk, but all its `W`
    /// extents exist.
    pub fn groups(&self) -> u64 {
        self.size.div_ceil(self.group_bytes())
    }

    /// Number of extents (`groups * W`).
    pub fn extent_count(&self) -> u64 {
        self.groups() * self.stripes as u64
    }

    /// The layout formula for one virtual byte offset.
    #[inline]
    pub fn locate(&self, v: u64) -> Location {
        let e = self.extent_size;
        let w = self.stripes as u64;
        let u = self.stripe_unit;
        let g = v / (e * w);
        let o = v % (e * w);
        let c = (o / u) % w;
        let r = o / (u * w);
        Location {
            extent: g * w + c,
            column: c as u32,
            offset_in_extent: r * u + o % u,
        }
    }

    /// Inverse of [`Geometry::locate`]: the virtual offset of a byte of an extent.
    pub fn virtual_offset(&self, extent: u64, offset_in_extent: u64) -> u64 {
        let w = self.stripes as u64;
        let u = self.stripe_unit;
        let g = extent / w;
        let c = extent % w;
        let r = offset_in_extent / u;
        g * self.group_bytes() + r * u * w + c * u + offset_in_extent % u
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rules() {
        let mib = 1u64 << 20;
        assert!(Geometry::new(64 * mib, 64 * mib, 1, mib, 1).is_ok());
        assert_eq!(
            Geometry::new(0, 64 * mib, 1, mib, 1),
            Err(GeometryError::ZeroSize)
        );
        assert_eq!(
            Geometry::new(1000, 64 * mib, 1, mib, 1),
            Err(GeometryError::SizeNotSectorMultiple(1000))
        );
        assert_eq!(
            Geometry::new(mib, 64 * mib, 1, 1000, 1),
            Err(GeometryError::StripeUnitNotSectorMultiple(1000))
        );
        assert_eq!(
            Geometry::new(mib, 3 * mib, 1, 2 * mib, 1),
            Err(GeometryError::ExtentNotStripeUnitMultiple {
                extent_size: 3 * mib,
                stripe_unit: 2 * mib
            })
        );
        assert_eq!(
            Geometry::new(mib, 64 * mib, 0, mib, 1),
            Err(GeometryError::BadStripes(0))
        );
        assert_eq!(
            Geometry::new(mib, 64 * mib, 1, mib, 0),
            Err(GeometryError::BadReplicas(0))
        );
        assert!(matches!(
            Geometry::new(1 << 50, 1 << 20, 1, 1 << 20, 1),
            Err(GeometryError::TooManyExtents(_))
        ));
        let g = Geometry::new(mib, 64 * mib, 1, 4096, 1).unwrap();
        assert!(g.check_block_size(4096).is_ok());
        assert!(g.check_block_size(8192).is_err());
    }

    #[test]
    fn formula_examples() {
        // E = 4 units, W = 2, U = 1: units go 0:e0 1:e1 2:e0 3:e1 ... then group 1.
        let g = Geometry::new(8192 * 2, 4096, 2, 1024, 1).unwrap();
        assert_eq!(g.extent_count(), 4);
        let l = g.locate(0);
        assert_eq!((l.extent, l.column, l.offset_in_extent), (0, 0, 0));
        let l = g.locate(1024 + 5);
        assert_eq!((l.extent, l.column, l.offset_in_extent), (1, 1, 5));
        let l = g.locate(2048 + 7);
        assert_eq!((l.extent, l.column, l.offset_in_extent), (0, 0, 1024 + 7));
        let l = g.locate(8192 + 1024);
        assert_eq!((l.extent, l.column, l.offset_in_extent), (3, 1, 0));
        for v in 0..g.size {
            let l = g.locate(v);
            assert_eq!(g.virtual_offset(l.extent, l.offset_in_extent), v);
        }
    }
}
