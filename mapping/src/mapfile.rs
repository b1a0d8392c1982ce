//! The per-disk mapping file (DESIGN.md "Control path"): JSON, `"version": 1`, holding the
//! geometry and every extent's replicas as (portal, IQN, LUN, start LBA). A tapdisk reads it once
//! and needs the master no more.
//!
//! Written atomically: a temporary file in the same directory, fsync, rename over the old one,
//! fsync of the directory. Loading validates everything before anyone uses it.

use crate::geometry::{Geometry, GeometryError};
use crate::server::ExtentReplica;
use crate::translate::{ExtentTable, TableError};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The format version this code writes and reads.
pub const MAPPING_VERSION: u32 = 1;
/// Mapping files larger than this are refused before parsing.
pub const MAX_MAPPING_FILE_BYTES: u64 = 256 << 20;

/// Why a mapping file could not be read or written.
#[derive(Debug, Error)]
pub enum MapFileError {
    #[error("mapping file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("mapping file {path} is {size} bytes, larger than the limit {MAX_MAPPING_FILE_BYTES}")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("mapping file {path} is not valid JSON for a mapping: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("mapping file {path} has version {found}; this pvd reads version {MAPPING_VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("mapping file {path}: invalid geometry: {source}")]
    Geometry {
        path: PathBuf,
        #[source]
        source: GeometryError,
    },
    #[error(
        "mapping file {path}: extent {index} is missing (the geometry needs {expected} extents)"
    )]
    MissingExtent {
        path: PathBuf,
        index: u64,
        expected: u64,
    },
    #[error("mapping file {path}: extent {index} appears twice or is beyond the {expected} extents of the disk")]
    UnexpectedExtent {
        path: PathBuf,
        index: u64,
        expected: u64,
    },
    #[error("mapping file {path}: {source}")]
    Table {
        path: PathBuf,
        #[source]
        source: TableError,
    },
}

/// One extent and its replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtentEntry {
    pub index: u64,
    pub replicas: Vec<ExtentReplica>,
}

/// The contents of a mapping file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingFile {
    pub version: u32,
    /// Virtual disk name.
    pub name: String,
    /// Virtual disk id given by the master.
    pub vdisk_id: u64,
    /// Master that allocated the extents (`host:port`), for `pvd vdisk delete` and growth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    pub size: u64,
    pub extent_size: u64,
    pub stripes: u32,
    pub stripe_unit: u64,
    pub replicas: u32,
    /// Every extent, in index order.
    pub extents: Vec<ExtentEntry>,
}

impl MappingFile {
    /// A mapping for `geometry` with extents given in index order.
    pub fn new(
        name: &str,
        vdisk_id: u64,
        master: Option<String>,
        geometry: Geometry,
        extents: Vec<Vec<ExtentReplica>>,
    ) -> MappingFile {
        MappingFile {
            version: MAPPING_VERSION,
            name: name.to_string(),
            vdisk_id,
            master,
            size: geometry.size,
            extent_size: geometry.extent_size,
            stripes: geometry.stripes,
            stripe_unit: geometry.stripe_unit,
            replicas: geometry.replicas,
            extents: extents
                .into_iter()
                .enumerate()
                .map(|(i, replicas)| ExtentEntry {
                    index: i as u64,
                    replicas,
                })
                .collect(),
        }
    }

    /// The geometry fields (not validated; see [`MappingFile::validate`]).
    pub fn geometry(&self) -> Geometry {
        Geometry {
            size: self.size,
            extent_size: self.extent_size,
            stripes: self.stripes,
            stripe_unit: self.stripe_unit,
            replicas: self.replicas,
        }
    }

    /// Reads and validates a mapping file; extents come back sorted by index.
    pub fn load(path: &Path) -> Result<MappingFile, MapFileError> {
        let io = |source| MapFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = fs::metadata(path).map_err(io)?;
        if meta.len() > MAX_MAPPING_FILE_BYTES {
            return Err(MapFileError::TooLarge {
                path: path.to_path_buf(),
                size: meta.len(),
            });
        }
        let bytes = fs::read(path).map_err(io)?;
        Self::from_json(path, &bytes)
    }

    /// Parses and validates mapping JSON (`path` only names it in errors).
    pub fn from_json(path: &Path, bytes: &[u8]) -> Result<MappingFile, MapFileError> {
        // Check the version before the full shape so a newer format gets the clear error.
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        let v: VersionOnly =
            serde_json::from_slice(bytes).map_err(|source| MapFileError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        if v.version != MAPPING_VERSION {
            return Err(MapFileError::Version {
                path: path.to_path_buf(),
                found: v.version,
            });
        }
        let mut m: MappingFile =
            serde_json::from_slice(bytes).map_err(|source| MapFileError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        m.extents.sort_by_key(|e| e.index);
        m.validate(path)?;
        Ok(m)
    }

    /// Checks version, geometry, that every extent `0..n` appears once, and the replica table
    /// rules of [`ExtentTable::new`].
    pub fn validate(&self, path: &Path) -> Result<(), MapFileError> {
        self.table_at(path).map(|_| ())
    }

    /// The resolved table for translation (validates like [`MappingFile::validate`]).
    pub fn table(&self) -> Result<ExtentTable, MapFileError> {
        self.table_at(Path::new("<memory>"))
    }

    fn table_at(&self, path: &Path) -> Result<ExtentTable, MapFileError> {
        if self.version != MAPPING_VERSION {
            return Err(MapFileError::Version {
                path: path.to_path_buf(),
                found: self.version,
            });
        }
        let geometry = self.geometry();
        geometry
            .validate()
            .map_err(|source| MapFileError::Geometry {
                path: path.to_path_buf(),
                source,
            })?;
        let expected = geometry.extent_count();
        let mut by_index: Vec<Option<&ExtentEntry>> = vec![None; expected as usize];
        for e in &self.extents {
            match by_index.get_mut(e.index as usize) {
                Some(slot @ None) if e.index < expected => *slot = Some(e),
                _ => {
                    return Err(MapFileError::UnexpectedExtent {
                        path: path.to_path_buf(),
                        index: e.index,
                        expected,
                    })
                }
            }
        }
        let mut extents = Vec::with_capacity(expected as usize);
        for (i, e) in by_index.into_iter().enumerate() {
            match e {
                Some(e) => extents.push(e.replicas.clone()),
                None => {
                    return Err(MapFileError::MissingExtent {
                        path: path.to_path_buf(),
                        index: i as u64,
                        expected,
                    })
                }
            }
        }
        ExtentTable::new(geometry, &extents).map_err(|source| MapFileError::Table {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Writes the file atomically (temp file, fsync, rename, fsync of the directory).
    pub fn save(&self, path: &Path) -> Result<(), MapFileError> {
        let json = serde_json::to_vec_pretty(self).map_err(|source| MapFileError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        write_atomically(path, &json).map_err(|source| MapFileError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new contents:
/// temp file in the same directory, fsync, rename, fsync of the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(port: u16, lba: u64) -> ExtentReplica {
        ExtentReplica {
            portal: format!("127.0.0.1:{port}"),
            iqn: "iqn.2026-01.org.pvd:t".into(),
            lun: 0,
            start_lba: lba,
            block_size: 512,
        }
    }

    fn sample() -> MappingFile {
        let g = Geometry::new(4 << 20, 1 << 20, 2, 64 << 10, 2).unwrap();
        let extents = (0..g.extent_count())
            .map(|x| vec![rep(3260, x * 2048), rep(3261, x * 2048)])
            .collect();
        MappingFile::new("vm1", 7, Some("127.0.0.1:20049".into()), g, extents)
    }

    #[test]
    fn save_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vm1.map");
        let m = sample();
        m.save(&p).unwrap();
        assert_eq!(MappingFile::load(&p).unwrap(), m);
        let text = fs::read_to_string(&p).unwrap();
        assert!(text.contains("\"version\": 1"));
        // No temp files left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn refusals_name_the_rule() {
        let p = Path::new("x.map");
        let mut m = sample();
        m.extents.remove(1);
        let j = serde_json::to_vec(&m).unwrap();
        assert!(matches!(
            MappingFile::from_json(p, &j),
            Err(MapFileError::MissingExtent { index: 1, .. })
        ));

        let mut m = sample();
        m.extents[2].replicas.pop();
        let j = serde_json::to_vec(&m).unwrap();
        let e = MappingFile::from_json(p, &j).unwrap_err();
        assert!(matches!(
            e,
            MapFileError::Table {
                source: TableError::ReplicaCount { extent: 2, .. },
                ..
            }
        ));

        let mut m = sample();
        m.version = 2;
        let j = serde_json::to_vec(&m).unwrap();
        assert!(matches!(
            MappingFile::from_json(p, &j),
            Err(MapFileError::Version { found: 2, .. })
        ));

        let mut m = sample();
        m.stripe_unit = 1000;
        let j = serde_json::to_vec(&m).unwrap();
        assert!(matches!(
            MappingFile::from_json(p, &j),
            Err(MapFileError::Geometry { .. })
        ));

        let mut m = sample();
        m.extents[3].replicas[0].start_lba = 0;
        let j = serde_json::to_vec(&m).unwrap();
        assert!(matches!(
            MappingFile::from_json(p, &j),
            Err(MapFileError::Table {
                source: TableError::Overlap { .. },
                ..
            })
        ));

        let mut m = sample();
        let dup = m.extents[0].clone();
        m.extents.push(dup);
        let j = serde_json::to_vec(&m).unwrap();
        assert!(matches!(
            MappingFile::from_json(p, &j),
            Err(MapFileError::UnexpectedExtent { index: 0, .. })
        ));

        assert!(matches!(
            MappingFile::from_json(p, b"{\"version\":1}"),
            Err(MapFileError::Json { .. })
        ));
    }
}
