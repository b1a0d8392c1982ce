//! Extents, placement, virtual-address translation, the mapping file, and the master.
