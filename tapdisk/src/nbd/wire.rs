//! NBD protocol (doc/proto.md of the NBD project): wire constants and fixed-size messages.
//!
//! Every code that arrives from the peer is an open newtype: unknown values parse, and the
//! policy in `handshake` / `transmission` refuses them. Encoders write exactly
//! `*_LEN` bytes; decoders take an exact-length slice and check the magic.

use bytes::{Buf, BufMut};

/// "NBDMAGIC": first 8 bytes the server sends (section "Newstyle negotiation").
pub const NBD_MAGIC: u64 = 0x4e42_444d_4147_4943;
/// "IHAVEOPT": second 8 bytes the server sends, and prefix of every client option.
pub const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
/// Magic of every option reply (section "Option reply").
pub const OPTION_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
/// Magic of a transmission request (section "Request message").
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
/// Magic of a simple reply (section "Simple reply message").
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
/// Magic of a structured reply chunk (section "Structured reply chunk message").
pub const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;

/// Length of a request header on the wire.
pub const REQUEST_LEN: usize = 28;
/// Length of a simple reply header on the wire.
pub const SIMPLE_REPLY_LEN: usize = 16;
/// Length of a structured reply chunk header on the wire.
pub const STRUCTURED_REPLY_LEN: usize = 20;
/// Length of an option header after IHAVEOPT (option code + data length).
pub const OPTION_HEADER_LEN: usize = 16;
/// Zero padding after the NBD_OPT_EXPORT_NAME reply unless NO_ZEROES was agreed.
pub const EXPORT_NAME_PADDING: usize = 124;

/// Largest option payload the server accepts (the spec caps strings at 4096 bytes; an
/// INFO/GO request carries one name plus a short list of info codes).
pub const MAX_OPTION_LEN: u32 = 8 * 1024;
/// Longest string (export name, meta context query) the spec allows.
pub const MAX_STRING_LEN: u32 = 4096;

macro_rules! open_code {
    ($(#[$doc:meta])* $name:ident($ty:ty) { $($(#[$cdoc:meta])* $c:ident = $v:expr,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $ty);
        impl $name {
            $($(#[$cdoc])* pub const $c: $name = $name($v);)*
            /// The constant's name, if this value is one the server knows.
            pub fn name(self) -> Option<&'static str> {
                match self { $(Self::$c => Some(stringify!($c)),)* _ => None }
            }
        }
    };
}

open_code! {
    /// Handshake flags sent by the server (16 bits).
    HandshakeFlags(u16) {
        FIXED_NEWSTYLE = 1 << 0,
        NO_ZEROES = 1 << 1,
    }
}

open_code! {
    /// Client flags sent after the server's greeting (32 bits).
    ClientFlags(u32) {
        FIXED_NEWSTYLE = 1 << 0,
        NO_ZEROES = 1 << 1,
    }
}

open_code! {
    /// Option codes (section "Option types").
    OptionCode(u32) {
        EXPORT_NAME = 1,
        ABORT = 2,
        LIST = 3,
        PEEK_EXPORT = 4,
        STARTTLS = 5,
        INFO = 6,
        GO = 7,
        STRUCTURED_REPLY = 8,
        LIST_META_CONTEXT = 9,
        SET_META_CONTEXT = 10,
        EXTENDED_HEADERS = 11,
    }
}

const REP_ERR: u32 = 1 << 31;

open_code! {
    /// Option reply types (section "Option reply types"); bit 31 marks an error.
    ReplyCode(u32) {
        ACK = 1,
        SERVER = 2,
        INFO = 3,
        META_CONTEXT = 4,
        ERR_UNSUP = REP_ERR | 1,
        ERR_POLICY = REP_ERR | 2,
        ERR_INVALID = REP_ERR | 3,
        ERR_PLATFORM = REP_ERR | 4,
        ERR_TLS_REQD = REP_ERR | 5,
        ERR_UNKNOWN = REP_ERR | 6,
        ERR_SHUTDOWN = REP_ERR | 7,
        ERR_BLOCK_SIZE_REQD = REP_ERR | 8,
        ERR_TOO_BIG = REP_ERR | 9,
    }
}

impl ReplyCode {
    /// Whether this reply type is an error.
    pub fn is_error(self) -> bool {
        self.0 & REP_ERR != 0
    }
}

open_code! {
    /// Information types of NBD_REP_INFO and the request list of NBD_OPT_INFO/GO.
    InfoType(u16) {
        EXPORT = 0,
        NAME = 1,
        DESCRIPTION = 2,
        BLOCK_SIZE = 3,
    }
}

open_code! {
    /// Transmission flags (section "Transmission flags").
    TransmissionFlags(u16) {
        HAS_FLAGS = 1 << 0,
        READ_ONLY = 1 << 1,
        SEND_FLUSH = 1 << 2,
        SEND_FUA = 1 << 3,
        ROTATIONAL = 1 << 4,
        SEND_TRIM = 1 << 5,
        SEND_WRITE_ZEROES = 1 << 6,
        SEND_DF = 1 << 7,
        CAN_MULTI_CONN = 1 << 8,
        SEND_RESIZE = 1 << 9,
        SEND_CACHE = 1 << 10,
        SEND_FAST_ZERO = 1 << 11,
    }
}

impl TransmissionFlags {
    /// Whether every bit of `other` is set.
    pub fn contains(self, other: TransmissionFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for TransmissionFlags {
    type Output = TransmissionFlags;
    fn bitor(self, rhs: Self) -> Self {
        TransmissionFlags(self.0 | rhs.0)
    }
}

open_code! {
    /// Request types (section "Request types").
    CommandType(u16) {
        READ = 0,
        WRITE = 1,
        DISC = 2,
        FLUSH = 3,
        TRIM = 4,
        CACHE = 5,
        WRITE_ZEROES = 6,
        BLOCK_STATUS = 7,
        RESIZE = 8,
    }
}

open_code! {
    /// Command flags (section "Command flags").
    CommandFlags(u16) {
        FUA = 1 << 0,
        NO_HOLE = 1 << 1,
        DF = 1 << 2,
        REQ_ONE = 1 << 3,
        FAST_ZERO = 1 << 4,
        PAYLOAD_LEN = 1 << 5,
    }
}

impl CommandFlags {
    /// Whether every bit of `other` is set.
    pub fn contains(self, other: CommandFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

open_code! {
    /// Error values of replies (section "Error values"); Linux numbering.
    Errno(u32) {
        OK = 0,
        EPERM = 1,
        EIO = 5,
        ENOMEM = 12,
        EINVAL = 22,
        ENOSPC = 28,
        EOVERFLOW = 75,
        ENOTSUP = 95,
        ESHUTDOWN = 108,
    }
}

open_code! {
    /// Structured reply chunk types (section "Structured reply types").
    ChunkType(u16) {
        NONE = 0,
        OFFSET_DATA = 1,
        OFFSET_HOLE = 2,
        BLOCK_STATUS = 5,
        ERROR = (1 << 15) | 1,
        ERROR_OFFSET = (1 << 15) | 2,
    }
}

/// Flag of a structured reply chunk: this is the last chunk of the reply.
pub const CHUNK_FLAG_DONE: u16 = 1 << 0;

/// A transmission request header (section "Request message"), 28 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestHeader {
    pub flags: CommandFlags,
    pub command: CommandType,
    /// Opaque cookie ("handle") echoed in the reply.
    pub cookie: u64,
    pub offset: u64,
    pub length: u32,
}

/// A request header whose magic is not [`REQUEST_MAGIC`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("request magic {0:#010x} is not NBD_REQUEST_MAGIC")]
pub struct BadRequestMagic(pub u32);

impl RequestHeader {
    /// Parses the 28-byte header.
    pub fn parse(bytes: &[u8; REQUEST_LEN]) -> Result<RequestHeader, BadRequestMagic> {
        let mut b = &bytes[..];
        let magic = b.get_u32();
        if magic != REQUEST_MAGIC {
            return Err(BadRequestMagic(magic));
        }
        Ok(RequestHeader {
            flags: CommandFlags(b.get_u16()),
            command: CommandType(b.get_u16()),
            cookie: b.get_u64(),
            offset: b.get_u64(),
            length: b.get_u32(),
        })
    }

    /// Writes the 28-byte header (used by clients and tests).
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u32(REQUEST_MAGIC);
        out.put_u16(self.flags.0);
        out.put_u16(self.command.0);
        out.put_u64(self.cookie);
        out.put_u64(self.offset);
        out.put_u32(self.length);
    }
}

/// Writes a simple reply header; READ data (if any) follows it.
pub fn encode_simple_reply(out: &mut impl BufMut, error: Errno, cookie: u64) {
    out.put_u32(SIMPLE_REPLY_MAGIC);
    out.put_u32(error.0);
    out.put_u64(cookie);
}

/// Writes a structured reply chunk header whose payload is `length` bytes.
pub fn encode_chunk_header(
    out: &mut impl BufMut,
    flags: u16,
    kind: ChunkType,
    cookie: u64,
    length: u32,
) {
    out.put_u32(STRUCTURED_REPLY_MAGIC);
    out.put_u16(flags);
    out.put_u16(kind.0);
    out.put_u64(cookie);
    out.put_u32(length);
}

/// Writes an option reply header; `length` bytes of reply data follow it.
pub fn encode_option_reply(
    out: &mut impl BufMut,
    option: OptionCode,
    reply: ReplyCode,
    length: u32,
) {
    out.put_u64(OPTION_REPLY_MAGIC);
    out.put_u32(option.0);
    out.put_u32(reply.0);
    out.put_u32(length);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip() {
        let h = RequestHeader {
            flags: CommandFlags::FUA,
            command: CommandType::WRITE,
            cookie: 0x0102_0304_0506_0708,
            offset: 4096,
            length: 512,
        };
        let mut v = Vec::new();
        h.encode(&mut v);
        assert_eq!(v.len(), REQUEST_LEN);
        let arr: [u8; REQUEST_LEN] = v.try_into().unwrap();
        assert_eq!(RequestHeader::parse(&arr), Ok(h));
    }

    #[test]
    fn request_bad_magic() {
        let mut arr = [0u8; REQUEST_LEN];
        arr[0] = 0x12;
        assert_eq!(
            RequestHeader::parse(&arr),
            Err(BadRequestMagic(0x1200_0000))
        );
    }

    #[test]
    fn reply_codes() {
        assert!(ReplyCode::ERR_UNSUP.is_error());
        assert!(!ReplyCode::ACK.is_error());
        assert_eq!(ReplyCode::ERR_UNKNOWN.0, 0x8000_0006);
        assert_eq!(ChunkType::ERROR.0, 0x8001);
        assert_eq!(OptionCode(77).name(), None);
        assert_eq!(OptionCode::GO.name(), Some("GO"));
    }

    #[test]
    fn simple_reply_bytes() {
        let mut v = Vec::new();
        encode_simple_reply(&mut v, Errno::EINVAL, 7);
        assert_eq!(
            v,
            [0x67, 0x44, 0x66, 0x98, 0, 0, 0, 22, 0, 0, 0, 0, 0, 0, 0, 7]
        );
    }
}
