//! Extents, placement, virtual-address translation, the mapping file, and the master
//! (DESIGN.md "Layout arithmetic" and "Control path").

pub mod cli;
pub mod geometry;
pub mod lock;
pub mod mapfile;
pub mod master;
pub mod placement;
pub mod serve;
pub mod server;
pub mod size;
pub mod translate;

pub use geometry::{Geometry, GeometryError, Location};
pub use lock::{LockError, MappingLock};
pub use mapfile::{ExtentEntry, MapFileError, MappingFile, MAPPING_VERSION};
pub use placement::{place, PlacementError, ServerFree};
pub use serve::{open_for_serving, OpenMappingError, ServedMapping};
pub use server::{ExtentReplica, ServerId, ServerInfo};
pub use size::{format_size, parse_size, SizeError};
pub use translate::{
    merge_server_pieces, translate, ExtentTable, Piece, ReplicaSet, ReplicaSlot, Segment, Segments,
    ServerPiece, TableError, TargetAddr, TranslateError,
};
