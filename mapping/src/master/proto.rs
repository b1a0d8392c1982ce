//! The master's ONC RPC program, as declared in `mapping/master.x` (RFC 4506 XDR language):
//! program `0x2050564D` version 1. Every type here mirrors one in the `.x` file, field for field.

use crate::geometry::Geometry;
use crate::server::{ExtentReplica, ServerInfo};
use pvd_rpc::bytes::BufMut;
use pvd_rpc::xdr::{XdrDecode, XdrEncode, XdrError, XdrReader};
use pvd_rpc::{xdr_enum, xdr_struct};

/// `PVD_MASTER_PROG`: in the user-defined range 0x20000000-0x3fffffff (RFC 5531 section 8.3).
pub const PVD_MASTER_PROG: u32 = 0x2050_564D;
/// `PVD_MASTER_V1`.
pub const PVD_MASTER_V1: u32 = 1;

pub const PVD_MAX_NAME: u32 = 255;
pub const PVD_MAX_ADDR: u32 = 255;
pub const PVD_MAX_MESSAGE: u32 = 1024;
pub const PVD_MAX_REPLICAS: u32 = 16;
pub const PVD_MAX_EXTENTS: u32 = 1 << 20;
pub const PVD_MAX_SERVERS: u32 = 65536;
pub const PVD_MAX_VDISKS: u32 = 65536;

/// Procedure numbers.
pub mod procs {
    pub const NULL: u32 = 0;
    pub const REGISTER_SERVER: u32 = 1;
    pub const ALLOCATE: u32 = 2;
    pub const RELEASE: u32 = 3;
    pub const LOOKUP: u32 = 4;
    pub const LIST_SERVERS: u32 = 5;
    pub const LIST_VDISKS: u32 = 6;
    pub const STATUS: u32 = 7;
}

xdr_enum! {
    /// `pvd_status`.
    pub enum Status {
        OK = 0,
        ERR_INVALID = 1,
        ERR_NO_ROOM = 2,
        ERR_NOT_ENOUGH_SERVERS = 3,
        ERR_GEOMETRY_MISMATCH = 4,
        ERR_NOT_FOUND = 5,
        ERR_SERVER_CHANGED = 6,
        ERR_IO = 7,
    }
}

xdr_struct! {
    /// `pvd_server_info`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct XServerInfo {
        pub portal: String [max = PVD_MAX_ADDR],
        pub iqn: String [max = PVD_MAX_ADDR],
        pub lun: u64,
        pub capacity: u64,
        pub block_size: u32,
    }
}

xdr_struct! {
    /// `pvd_geometry`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct XGeometry {
        pub size: u64,
        pub extent_size: u64,
        pub stripes: u32,
        pub stripe_unit: u64,
        pub replicas: u32,
    }
}

xdr_struct! {
    /// `pvd_replica`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct XReplica {
        pub server_id: u32,
        pub portal: String [max = PVD_MAX_ADDR],
        pub iqn: String [max = PVD_MAX_ADDR],
        pub lun: u64,
        pub start_lba: u64,
        pub block_size: u32,
    }
}

xdr_struct! {
    /// `pvd_extent`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct XExtent {
        pub index: u64,
        pub replicas: Vec<XReplica> [max = PVD_MAX_REPLICAS],
    }
}

xdr_struct! {
    /// `pvd_vdisk_map`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct XVdiskMap {
        pub vdisk_id: u64,
        pub name: String [max = PVD_MAX_NAME],
        pub geometry: XGeometry,
        pub extents: Vec<XExtent> [max = PVD_MAX_EXTENTS],
    }
}

xdr_struct! {
    /// `pvd_allocate_args`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct XAllocateArgs {
        pub name: String [max = PVD_MAX_NAME],
        pub geometry: XGeometry,
        pub extents: Vec<u64> [max = PVD_MAX_EXTENTS],
    }
}

xdr_struct! {
    /// `pvd_vdisk_ref`: by id, or by name when `vdisk_id` is 0.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct XVdiskRef {
        pub vdisk_id: u64,
        pub name: String [max = PVD_MAX_NAME],
    }
}

xdr_struct! {
    /// `pvd_server`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct XServer {
        pub id: u32,
        pub info: XServerInfo,
        pub extents_total: u64,
        pub extents_free: u64,
    }
}

xdr_struct! {
    /// `pvd_vdisk_summary`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct XVdiskSummary {
        pub vdisk_id: u64,
        pub name: String [max = PVD_MAX_NAME],
        pub geometry: XGeometry,
        pub extents_allocated: u64,
    }
}

xdr_struct! {
    /// `pvd_status_info`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct XStatusInfo {
        pub extent_size: u64,
        pub servers: u64,
        pub extents_total: u64,
        pub extents_free: u64,
        pub extents_used: u64,
        pub vdisks: u64,
    }
}

/// Every result union of `master.x`: `switch (pvd_status status) { case PVD_OK: T; default:
/// string message<PVD_MAX_MESSAGE>; }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<T> {
    Ok(T),
    Err(Status, String),
}

impl<T: XdrEncode> XdrEncode for Reply<T> {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        match self {
            Reply::Ok(v) => {
                Status::OK.encode(buf);
                v.encode(buf);
            }
            Reply::Err(s, m) => {
                s.encode(buf);
                m.encode(buf);
            }
        }
    }
    fn encoded_len(&self) -> usize {
        4 + match self {
            Reply::Ok(v) => v.encoded_len(),
            Reply::Err(_, m) => m.encoded_len(),
        }
    }
}

impl<T: XdrDecode> XdrDecode for Reply<T> {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        let s = Status::decode(r)?;
        if s == Status::OK {
            Ok(Reply::Ok(T::decode(r)?))
        } else {
            Ok(Reply::Err(s, r.get_string(PVD_MAX_MESSAGE)?))
        }
    }
}

/// A list with an XDR maximum (for `T list<max>` as a union arm).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundedList<T, const MAX: u32>(pub Vec<T>);

impl<T: XdrEncode, const MAX: u32> XdrEncode for BoundedList<T, MAX> {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.0.encode(buf)
    }
    fn encoded_len(&self) -> usize {
        self.0.encoded_len()
    }
}

impl<T: XdrDecode, const MAX: u32> XdrDecode for BoundedList<T, MAX> {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        Ok(BoundedList(
            <Vec<T> as pvd_rpc::xdr::XdrDecodeBounded>::decode_bounded(r, MAX)?,
        ))
    }
}

pub type RegisterRes = Reply<u32>;
pub type MapRes = Reply<XVdiskMap>;
pub type ReleaseRes = Reply<bool>;
pub type ListServersRes = Reply<BoundedList<XServer, PVD_MAX_SERVERS>>;
pub type ListVdisksRes = Reply<BoundedList<XVdiskSummary, PVD_MAX_VDISKS>>;
pub type StatusRes = Reply<XStatusInfo>;

impl From<&ServerInfo> for XServerInfo {
    fn from(s: &ServerInfo) -> Self {
        XServerInfo {
            portal: s.portal.clone(),
            iqn: s.iqn.clone(),
            lun: s.lun,
            capacity: s.capacity_bytes,
            block_size: s.block_size,
        }
    }
}

impl From<XServerInfo> for ServerInfo {
    fn from(s: XServerInfo) -> Self {
        ServerInfo {
            portal: s.portal,
            iqn: s.iqn,
            lun: s.lun,
            capacity_bytes: s.capacity,
            block_size: s.block_size,
        }
    }
}

impl From<&Geometry> for XGeometry {
    fn from(g: &Geometry) -> Self {
        XGeometry {
            size: g.size,
            extent_size: g.extent_size,
            stripes: g.stripes,
            stripe_unit: g.stripe_unit,
            replicas: g.replicas,
        }
    }
}

impl From<XGeometry> for Geometry {
    fn from(g: XGeometry) -> Self {
        Geometry {
            size: g.size,
            extent_size: g.extent_size,
            stripes: g.stripes,
            stripe_unit: g.stripe_unit,
            replicas: g.replicas,
        }
    }
}

impl From<XReplica> for ExtentReplica {
    fn from(r: XReplica) -> Self {
        ExtentReplica {
            portal: r.portal,
            iqn: r.iqn,
            lun: r.lun,
            start_lba: r.start_lba,
            block_size: r.block_size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pvd_rpc::xdr::{from_bytes, to_bytes};

    #[test]
    fn reply_round_trips_and_matches_the_x_layout() {
        let ok: RegisterRes = Reply::Ok(7);
        assert_eq!(&to_bytes(&ok)[..], &[0, 0, 0, 0, 0, 0, 0, 7]);
        let err: RegisterRes = Reply::Err(Status::ERR_NO_ROOM, "full".into());
        let wire = to_bytes(&err);
        assert_eq!(&wire[..], &[0, 0, 0, 2, 0, 0, 0, 4, b'f', b'u', b'l', b'l']);
        assert_eq!(from_bytes::<RegisterRes>(&wire).unwrap(), err);
        let m = XVdiskMap {
            vdisk_id: 3,
            name: "vm".into(),
            geometry: XGeometry {
                size: 1 << 30,
                extent_size: 64 << 20,
                stripes: 2,
                stripe_unit: 1 << 20,
                replicas: 1,
            },
            extents: vec![XExtent {
                index: 0,
                replicas: vec![XReplica {
                    server_id: 1,
                    portal: "127.0.0.1:3260".into(),
                    iqn: "iqn.x".into(),
                    lun: 0,
                    start_lba: 131072,
                    block_size: 512,
                }],
            }],
        };
        let r: MapRes = Reply::Ok(m);
        let wire = to_bytes(&r);
        assert_eq!(wire.len(), r.encoded_len());
        assert_eq!(from_bytes::<MapRes>(&wire).unwrap(), r);
    }

    #[test]
    fn constants_match_master_x() {
        let x = include_str!("../../master.x");
        assert!(x.contains(&format!("}} = {:#X};", PVD_MASTER_PROG).replace("0X", "0x")));
        assert!(x.contains(&format!("}} = {PVD_MASTER_V1};")));
        for (name, n) in [
            ("PVD_NULL(void)", procs::NULL),
            (
                "PVD_REGISTER_SERVER(pvd_server_info)",
                procs::REGISTER_SERVER,
            ),
            ("PVD_ALLOCATE(pvd_allocate_args)", procs::ALLOCATE),
            ("PVD_RELEASE(pvd_vdisk_ref)", procs::RELEASE),
            ("PVD_LOOKUP(pvd_vdisk_ref)", procs::LOOKUP),
            ("PVD_LIST_SERVERS(void)", procs::LIST_SERVERS),
            ("PVD_LIST_VDISKS(void)", procs::LIST_VDISKS),
            ("PVD_STATUS(void)", procs::STATUS),
        ] {
            assert!(x.contains(&format!("{name} = {n};")), "{name} = {n}");
        }
        for (name, v) in [
            ("PVD_MAX_NAME", PVD_MAX_NAME),
            ("PVD_MAX_ADDR", PVD_MAX_ADDR),
            ("PVD_MAX_MESSAGE", PVD_MAX_MESSAGE),
            ("PVD_MAX_REPLICAS", PVD_MAX_REPLICAS),
            ("PVD_MAX_EXTENTS", PVD_MAX_EXTENTS),
            ("PVD_MAX_SERVERS", PVD_MAX_SERVERS),
            ("PVD_MAX_VDISKS", PVD_MAX_VDISKS),
        ] {
            assert!(x.contains(&format!("const {name} = {v};")), "{name}");
        }
        for s in [
            Status::OK,
            Status::ERR_INVALID,
            Status::ERR_NO_ROOM,
            Status::ERR_NOT_ENOUGH_SERVERS,
            Status::ERR_GEOMETRY_MISMATCH,
            Status::ERR_NOT_FOUND,
            Status::ERR_SERVER_CHANGED,
            Status::ERR_IO,
        ] {
            let name = format!("PVD_{} = {}", s.name().unwrap(), s.0);
            assert!(x.contains(&name), "{name}");
        }
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic any decoder of the program (the master decodes
        /// arguments from anyone who connects).
        #[test]
        fn decoders_do_not_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = from_bytes::<XServerInfo>(&bytes);
            let _ = from_bytes::<XAllocateArgs>(&bytes);
            let _ = from_bytes::<XVdiskRef>(&bytes);
            let _ = from_bytes::<MapRes>(&bytes);
            let _ = from_bytes::<ListServersRes>(&bytes);
            let _ = from_bytes::<ListVdisksRes>(&bytes);
            let _ = from_bytes::<StatusRes>(&bytes);
            let _ = from_bytes::<RegisterRes>(&bytes);
            let _ = from_bytes::<ReleaseRes>(&bytes);
        }
    }

    #[test]
    fn over_long_lists_are_refused_before_allocation() {
        let mut wire = vec![0, 0, 0, 0];
        wire.extend_from_slice(&(PVD_MAX_SERVERS + 1).to_be_bytes());
        assert!(matches!(
            from_bytes::<ListServersRes>(&wire),
            Err(XdrError::LengthOverMax { .. })
        ));
    }
}
