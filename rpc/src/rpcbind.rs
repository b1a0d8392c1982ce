//! RFC 1833: the port mapper (PMAP, program 100000 version 2) and RPCBIND (versions 3 and 4)
//! clients, universal addresses, and [`register_with_rpcbind`].

use crate::client::{RpcClient, RpcClientConfig};
use crate::error::RpcError;
use crate::xdr::{XdrDecode, XdrEncode, XdrError, XdrReader};
use bytes::BufMut;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// rpcbind's program number (RFC 1833 sections 2 and 3).
pub const RPCBIND_PROG: u32 = 100_000;
/// The port mapper protocol version (RFC 1833 section 3).
pub const PMAP_VERS: u32 = 2;
/// RPCBIND protocol version 3 (RFC 1833 section 2).
pub const RPCBIND_VERS3: u32 = 3;
/// RPCBIND protocol version 4 (RFC 1833 section 2).
pub const RPCBIND_VERS4: u32 = 4;
/// rpcbind's well-known port.
pub const RPCBIND_PORT: u16 = 111;
/// `IPPROTO_TCP` in a PMAP mapping.
pub const IPPROTO_TCP: u32 = 6;
/// `IPPROTO_UDP` in a PMAP mapping.
pub const IPPROTO_UDP: u32 = 17;
/// Longest netid, address or owner string accepted from rpcbind.
pub const MAX_RPCB_STRING_LEN: u32 = 1024;
/// Most entries accepted in a DUMP reply (a linked list of optional data on the wire).
pub const MAX_DUMP_ENTRIES: u32 = 65_536;

/// Procedure numbers of PMAP version 2 (RFC 1833 section 3.2).
pub mod pmap_proc {
    pub const NULL: u32 = 0;
    pub const SET: u32 = 1;
    pub const UNSET: u32 = 2;
    pub const GETPORT: u32 = 3;
    pub const DUMP: u32 = 4;
    pub const CALLIT: u32 = 5;
}

/// Procedure numbers of RPCBIND versions 3 and 4 (RFC 1833 section 2.2).
pub mod rpcb_proc {
    pub const NULL: u32 = 0;
    pub const SET: u32 = 1;
    pub const UNSET: u32 = 2;
    pub const GETADDR: u32 = 3;
    pub const DUMP: u32 = 4;
    pub const GETTIME: u32 = 6;
}

crate::xdr_struct! {
    /// `struct mapping` (RFC 1833 section 3.1).
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    pub struct Mapping {
        pub prog: u32,
        pub vers: u32,
        /// [`IPPROTO_TCP`] or [`IPPROTO_UDP`].
        pub prot: u32,
        pub port: u32,
    }
}

crate::xdr_struct! {
    /// `struct rpcb` (RFC 1833 section 2.1).
    #[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
    pub struct Rpcb {
        pub prog: u32,
        pub vers: u32,
        /// Network id, e.g. "tcp", "udp", "tcp6".
        pub netid: String [max = MAX_RPCB_STRING_LEN],
        /// Universal address, e.g. "0.0.0.0.78.32" (see [`uaddr_from_socket_addr`]).
        pub addr: String [max = MAX_RPCB_STRING_LEN],
        /// Owner of the registration (rpcbind fills in the caller's identity).
        pub owner: String [max = MAX_RPCB_STRING_LEN],
    }
}

/// A list of optional data (`*pmaplist`, `*rpcblist`): TRUE + entry, ..., FALSE. Decoded
/// iteratively with a bound on the number of entries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XdrList<T>(pub Vec<T>);

impl<T: XdrEncode> XdrEncode for XdrList<T> {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        for e in &self.0 {
            buf.put_u32(1);
            e.encode(buf);
        }
        buf.put_u32(0);
    }
    fn encoded_len(&self) -> usize {
        4 + self.0.iter().map(|e| 4 + e.encoded_len()).sum::<usize>()
    }
}

impl<T: XdrDecode> XdrDecode for XdrList<T> {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        let mut out = Vec::new();
        while r.get_bool()? {
            if out.len() as u32 >= MAX_DUMP_ENTRIES {
                return Err(XdrError::ListTooLong {
                    max: MAX_DUMP_ENTRIES,
                });
            }
            out.push(T::decode(r)?);
        }
        Ok(XdrList(out))
    }
}

/// The universal address of `addr` (RFC 1833 section 2.2 / RFC 5665 section 5.2.3):
/// "h1.h2.h3.h4.p1.p2" for IPv4, "x:x:...:x.p1.p2" for IPv6.
pub fn uaddr_from_socket_addr(addr: &SocketAddr) -> String {
    let port = addr.port();
    format!("{}.{}.{}", addr.ip(), port >> 8, port & 0xff)
}

/// Parses a universal address.
pub fn socket_addr_from_uaddr(uaddr: &str) -> Result<SocketAddr, RpcError> {
    let bad = || RpcError::BadUniversalAddress(uaddr.to_string());
    let mut parts = uaddr.rsplitn(3, '.');
    let lo: u8 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let hi: u8 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let host: IpAddr = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    Ok(SocketAddr::new(host, u16::from(hi) << 8 | u16::from(lo)))
}

fn rpcbind_config() -> RpcClientConfig {
    RpcClientConfig {
        timeout: Duration::from_secs(5),
        retries: 2,
        ..RpcClientConfig::default()
    }
}

/// Client of the port mapper protocol (PMAP version 2).
#[derive(Debug, Clone)]
pub struct PmapClient {
    rpc: RpcClient,
}

impl PmapClient {
    /// Connects to rpcbind at `addr` (usually `127.0.0.1:111`).
    pub async fn connect(addr: SocketAddr) -> Result<Self, RpcError> {
        let rpc = RpcClient::connect_with(addr, RPCBIND_PROG, PMAP_VERS, rpcbind_config()).await?;
        Ok(PmapClient { rpc })
    }

    /// PMAPPROC_SET: true if the mapping was added.
    pub async fn set(&self, m: &Mapping) -> Result<bool, RpcError> {
        self.rpc.call(pmap_proc::SET, m).await
    }

    /// PMAPPROC_UNSET (the protocol and port of `m` are ignored by the server).
    pub async fn unset(&self, m: &Mapping) -> Result<bool, RpcError> {
        self.rpc.call(pmap_proc::UNSET, m).await
    }

    /// PMAPPROC_GETPORT: the port of (`prog`, `vers`, `prot`), 0 when not registered.
    pub async fn getport(&self, prog: u32, vers: u32, prot: u32) -> Result<u16, RpcError> {
        let m = Mapping {
            prog,
            vers,
            prot,
            port: 0,
        };
        let port: u32 = self.rpc.call(pmap_proc::GETPORT, &m).await?;
        u16::try_from(port).map_err(|_| RpcError::Rpcbind(format!("GETPORT returned {port}")))
    }

    /// PMAPPROC_DUMP: every mapping.
    pub async fn dump(&self) -> Result<Vec<Mapping>, RpcError> {
        let list: XdrList<Mapping> = self.rpc.call(pmap_proc::DUMP, &()).await?;
        Ok(list.0)
    }
}

/// Client of RPCBIND version 3 or 4.
#[derive(Debug, Clone)]
pub struct RpcbClient {
    rpc: RpcClient,
}

impl RpcbClient {
    /// Connects to rpcbind at `addr` speaking version `vers` (3 or 4).
    pub async fn connect(addr: SocketAddr, vers: u32) -> Result<Self, RpcError> {
        let rpc = RpcClient::connect_with(addr, RPCBIND_PROG, vers, rpcbind_config()).await?;
        Ok(RpcbClient { rpc })
    }

    /// RPCBPROC_SET: true if the registration was added.
    pub async fn set(&self, r: &Rpcb) -> Result<bool, RpcError> {
        self.rpc.call(rpcb_proc::SET, r).await
    }

    /// RPCBPROC_UNSET: an empty netid removes every transport of (`prog`, `vers`).
    pub async fn unset(&self, r: &Rpcb) -> Result<bool, RpcError> {
        self.rpc.call(rpcb_proc::UNSET, r).await
    }

    /// RPCBPROC_GETADDR: the universal address of (`prog`, `vers`) on `netid`, or `None`.
    pub async fn getaddr(
        &self,
        prog: u32,
        vers: u32,
        netid: &str,
    ) -> Result<Option<String>, RpcError> {
        let q = Rpcb {
            prog,
            vers,
            netid: netid.to_string(),
            addr: String::new(),
            owner: String::new(),
        };
        let uaddr: String = self.rpc.call(rpcb_proc::GETADDR, &q).await?;
        Ok(if uaddr.is_empty() { None } else { Some(uaddr) })
    }

    /// RPCBPROC_DUMP: every registration.
    pub async fn dump(&self) -> Result<Vec<Rpcb>, RpcError> {
        let list: XdrList<Rpcb> = self.rpc.call(rpcb_proc::DUMP, &()).await?;
        Ok(list.0)
    }
}

fn local_rpcbind() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], RPCBIND_PORT))
}

/// Registers TCP `port` for (`prog`, `vers`) with the local rpcbind: RPCBIND v4 SET with netid
/// "tcp" and then PMAP v2 SET, so `rpcinfo` and `rpcinfo -p` both list it. A registration
/// already present for the same port counts as success; a stale one for another port is
/// replaced.
pub async fn register_with_rpcbind(prog: u32, vers: u32, port: u16) -> Result<(), RpcError> {
    let uaddr = uaddr_from_socket_addr(&SocketAddr::from(([0, 0, 0, 0], port)));
    let rpcb = RpcbClient::connect(local_rpcbind(), RPCBIND_VERS4).await?;
    let reg = Rpcb {
        prog,
        vers,
        netid: "tcp".into(),
        addr: uaddr,
        owner: "pvd".into(),
    };
    if !rpcb.set(&reg).await? {
        // Something else holds the slot; take it over unless it is already ours.
        let current = rpcb.getaddr(prog, vers, "tcp").await?;
        let ours = current
            .as_deref()
            .and_then(|u| socket_addr_from_uaddr(u).ok())
            .is_some_and(|a| a.port() == port);
        if !ours {
            let mut all = reg.clone();
            all.netid = "tcp".into();
            rpcb.unset(&all).await?;
            if !rpcb.set(&reg).await? {
                return Err(RpcError::Rpcbind(format!(
                    "RPCBIND SET of program {prog} version {vers} refused"
                )));
            }
        }
    }
    let pmap = PmapClient::connect(local_rpcbind()).await?;
    let m = Mapping {
        prog,
        vers,
        prot: IPPROTO_TCP,
        port: u32::from(port),
    };
    if !pmap.set(&m).await? && pmap.getport(prog, vers, IPPROTO_TCP).await? != port {
        return Err(RpcError::Rpcbind(format!(
            "PMAP SET of program {prog} version {vers} port {port} refused"
        )));
    }
    Ok(())
}

/// Removes every registration of (`prog`, `vers`) from the local rpcbind (RPCBIND v4 UNSET
/// for all netids, then PMAP v2 UNSET).
pub async fn unregister_with_rpcbind(prog: u32, vers: u32) -> Result<(), RpcError> {
    let rpcb = RpcbClient::connect(local_rpcbind(), RPCBIND_VERS4).await?;
    rpcb.unset(&Rpcb {
        prog,
        vers,
        netid: String::new(),
        addr: String::new(),
        owner: "pvd".into(),
    })
    .await?;
    let pmap = PmapClient::connect(local_rpcbind()).await?;
    pmap.unset(&Mapping {
        prog,
        vers,
        prot: IPPROTO_TCP,
        port: 0,
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn universal_addresses() {
        let a: SocketAddr = "10.1.2.3:20049".parse().unwrap();
        assert_eq!(uaddr_from_socket_addr(&a), "10.1.2.3.78.81");
        assert_eq!(socket_addr_from_uaddr("10.1.2.3.78.81").unwrap(), a);
        let b: SocketAddr = "[::1]:111".parse().unwrap();
        assert_eq!(uaddr_from_socket_addr(&b), "::1.0.111");
        assert_eq!(socket_addr_from_uaddr("::1.0.111").unwrap(), b);
        assert!(socket_addr_from_uaddr("1.2.3.4.300.1").is_err());
        assert!(socket_addr_from_uaddr("nonsense").is_err());
    }
}
