//! RFC 5531 section 8.2 and appendix A: authentication flavors, `opaque_auth`, AUTH_NONE and
//! AUTH_SYS credentials.

use crate::xdr::{self, XdrDecode, XdrEncode, XdrError, XdrReader};
use bytes::{BufMut, Bytes};

/// Largest body of an `opaque_auth` (RFC 5531 section 8.2: `opaque body<400>`).
pub const MAX_AUTH_BYTES: u32 = 400;
/// Longest AUTH_SYS machine name (RFC 5531 appendix A: `string machinename<255>`).
pub const MAX_MACHINE_NAME_LEN: u32 = 255;
/// Most supplementary groups in AUTH_SYS (RFC 5531 appendix A: `unsigned int gids<16>`).
pub const MAX_AUTH_SYS_GIDS: u32 = 16;

/// `enum auth_flavor` (RFC 5531 section 8.2), open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthFlavor(pub u32);

impl AuthFlavor {
    pub const AUTH_NONE: AuthFlavor = AuthFlavor(0);
    pub const AUTH_SYS: AuthFlavor = AuthFlavor(1);
    pub const AUTH_SHORT: AuthFlavor = AuthFlavor(2);
    pub const AUTH_DH: AuthFlavor = AuthFlavor(3);
    pub const RPCSEC_GSS: AuthFlavor = AuthFlavor(6);
}

/// `struct opaque_auth` (RFC 5531 section 8.2): a credential or verifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OpaqueAuth {
    pub flavor: AuthFlavor,
    pub body: Bytes,
}

impl OpaqueAuth {
    /// The AUTH_NONE credential/verifier (empty body).
    pub const fn none() -> OpaqueAuth {
        OpaqueAuth {
            flavor: AuthFlavor::AUTH_NONE,
            body: Bytes::new(),
        }
    }

    /// An AUTH_SYS credential carrying `params`.
    pub fn sys(params: &AuthSysParams) -> OpaqueAuth {
        OpaqueAuth {
            flavor: AuthFlavor::AUTH_SYS,
            body: xdr::to_bytes(params),
        }
    }

    /// The AUTH_SYS parameters, if this is a well-formed AUTH_SYS credential.
    pub fn as_auth_sys(&self) -> Option<AuthSysParams> {
        if self.flavor != AuthFlavor::AUTH_SYS {
            return None;
        }
        xdr::from_bytes(&self.body).ok()
    }
}

impl Default for OpaqueAuth {
    fn default() -> Self {
        OpaqueAuth::none()
    }
}

impl XdrEncode for OpaqueAuth {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u32(self.flavor.0);
        xdr::put_var_opaque(buf, &self.body);
    }
    fn encoded_len(&self) -> usize {
        4 + xdr::var_opaque_len(self.body.len())
    }
}

impl XdrDecode for OpaqueAuth {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        let flavor = AuthFlavor(r.get_u32()?);
        let body = Bytes::copy_from_slice(r.get_var_opaque(MAX_AUTH_BYTES)?);
        Ok(OpaqueAuth { flavor, body })
    }
}

crate::xdr_struct! {
    /// `struct authsys_parms` (RFC 5531 appendix A): the AUTH_SYS credential body.
    #[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
    pub struct AuthSysParams {
        /// Arbitrary id the caller keeps stable for its lifetime.
        pub stamp: u32,
        pub machinename: String [max = MAX_MACHINE_NAME_LEN],
        pub uid: u32,
        pub gid: u32,
        pub gids: Vec<u32> [max = MAX_AUTH_SYS_GIDS],
    }
}

impl AuthSysParams {
    /// Credentials of this process: host name, effective uid/gid, and `stamp`.
    pub fn current(stamp: u32) -> AuthSysParams {
        let machinename = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "localhost".to_string());
        let machinename: String = machinename
            .chars()
            .take(MAX_MACHINE_NAME_LEN as usize)
            .collect();
        let (uid, gid) = current_ids();
        AuthSysParams {
            stamp,
            machinename,
            uid,
            gid,
            gids: vec![],
        }
    }
}

fn current_ids() -> (u32, u32) {
    // /proc/self/status holds "Uid:\treal\teffective..." and "Gid:" lines.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(2))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("Uid:"), field("Gid:"))
}
