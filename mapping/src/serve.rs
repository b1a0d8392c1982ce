//! What a tapdisk does before serving a disk (DESIGN.md "Control path"): take the exclusive lock
//! on the mapping file, then load and validate it, then resolve it for translation. Locking first
//! means nobody can rewrite or delete the file (`pvd vdisk create/recover/delete` take the same
//! lock) between loading and serving.

use crate::lock::{LockError, MappingLock};
use crate::mapfile::{MapFileError, MappingFile};
use crate::translate::ExtentTable;
use std::path::Path;
use thiserror::Error;

/// Why a mapping file cannot be served.
#[derive(Debug, Error)]
pub enum OpenMappingError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    File(#[from] MapFileError),
}

/// A mapping file held for serving: the lock (released on drop), the file, and its table.
#[derive(Debug)]
pub struct ServedMapping {
    pub lock: MappingLock,
    pub file: MappingFile,
    pub table: ExtentTable,
}

/// Locks, loads and resolves the mapping file at `path`.
pub fn open_for_serving(path: &Path) -> Result<ServedMapping, OpenMappingError> {
    let lock = MappingLock::acquire(path)?;
    let file = MappingFile::load(path)?;
    let table = file.table()?;
    Ok(ServedMapping { lock, file, table })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Geometry;
    use crate::server::ExtentReplica;

    #[test]
    fn locks_then_loads_and_refuses_a_second_server() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.map");
        let g = Geometry::new(2 << 20, 1 << 20, 2, 1 << 20, 1).unwrap();
        let extents = (0..2u16)
            .map(|i| {
                vec![ExtentReplica {
                    portal: format!("127.0.0.1:{}", 3260 + i),
                    iqn: "iqn.x".into(),
                    lun: 0,
                    start_lba: 0,
                    block_size: 512,
                }]
            })
            .collect();
        MappingFile::new("d", 1, None, g, extents).save(&p).unwrap();
        let served = open_for_serving(&p).unwrap();
        assert_eq!(served.table.targets().len(), 2);
        assert!(matches!(
            open_for_serving(&p),
            Err(OpenMappingError::Lock(LockError::Held { .. }))
        ));
        drop(served);
        assert!(open_for_serving(&p).is_ok());
        assert!(matches!(
            open_for_serving(&dir.path().join("missing.map")),
            Err(OpenMappingError::File(MapFileError::Io { .. }))
        ));
    }
}
