//! NBD protocol sections "Newstyle negotiation" (fixed newstyle) and "Option types": the
//! server's greeting and the option haggling that ends in the transmission phase.
//!
//! Supported options: EXPORT_NAME, ABORT, LIST, INFO, GO, STRUCTURED_REPLY,
//! LIST_META_CONTEXT and SET_META_CONTEXT (validated, answered with no contexts); any other
//! option gets NBD_REP_ERR_UNSUP. One export is served; it answers to the empty name and to
//! its configured name.

use bytes::{Buf, BufMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::wire::{
    encode_option_reply, ClientFlags, HandshakeFlags, InfoType, OptionCode, ReplyCode,
    TransmissionFlags, EXPORT_NAME_PADDING, IHAVEOPT, MAX_OPTION_LEN, MAX_STRING_LEN, NBD_MAGIC,
};

/// Most options one client may send before the server gives up on it.
pub const MAX_OPTIONS: u32 = 1024;
/// Longest option payload the server reads and discards to answer NBD_REP_ERR_TOO_BIG;
/// anything larger closes the connection.
pub const MAX_DISCARDED_OPTION_LEN: u32 = 1 << 20;
/// Most meta-context queries accepted in one LIST/SET_META_CONTEXT option.
pub const MAX_META_QUERIES: u32 = 128;

/// What the server tells clients about its single export.
#[derive(Clone, Debug)]
pub struct ExportInfo {
    /// Configured export name (the empty name always works too).
    pub name: String,
    pub description: Option<String>,
    pub size: u64,
    /// Transmission flags without SEND_DF (added when structured replies are agreed).
    pub flags: TransmissionFlags,
    pub min_block: u32,
    pub preferred_block: u32,
    pub max_block: u32,
}

impl ExportInfo {
    fn matches(&self, name: &[u8]) -> bool {
        name.is_empty() || name == self.name.as_bytes()
    }
}

/// Result of a successful negotiation: the connection enters the transmission phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    pub structured_replies: bool,
    /// The transmission flags sent to the client.
    pub flags: TransmissionFlags,
}

/// Why negotiation stopped without reaching the transmission phase.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("socket error during negotiation: {0}")]
    Io(#[from] std::io::Error),
    #[error("client flags {0:#x} carry bits the server does not know")]
    UnknownClientFlags(u32),
    #[error("option magic {0:#018x} is not IHAVEOPT")]
    BadOptionMagic(u64),
    #[error("option {option:?} payload of {len} bytes exceeds the {limit}-byte limit")]
    OptionTooLong {
        option: OptionCode,
        len: u32,
        limit: u32,
    },
    #[error("client sent more than {MAX_OPTIONS} options")]
    TooManyOptions,
    #[error("NBD_OPT_EXPORT_NAME asked for unknown export {0:?}")]
    UnknownExport(String),
}

/// Runs the server side of the handshake on `s`. `Ok(None)`: the client ended negotiation
/// (NBD_OPT_ABORT or a clean close between options).
pub async fn negotiate<S>(
    s: &mut S,
    export: &ExportInfo,
) -> Result<Option<Negotiated>, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut greeting = Vec::with_capacity(18);
    greeting.put_u64(NBD_MAGIC);
    greeting.put_u64(IHAVEOPT);
    greeting.put_u16(HandshakeFlags::FIXED_NEWSTYLE.0 | HandshakeFlags::NO_ZEROES.0);
    s.write_all(&greeting).await?;
    s.flush().await?;

    let client = ClientFlags(s.read_u32().await?);
    let known = ClientFlags::FIXED_NEWSTYLE.0 | ClientFlags::NO_ZEROES.0;
    if client.0 & !known != 0 {
        return Err(HandshakeError::UnknownClientFlags(client.0));
    }
    let no_zeroes = client.0 & ClientFlags::NO_ZEROES.0 != 0;
    let mut structured = false;

    for _ in 0..MAX_OPTIONS {
        let mut head = [0u8; 16];
        match s.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let mut h = &head[..];
        let magic = h.get_u64();
        let option = OptionCode(h.get_u32());
        let len = h.get_u32();
        if magic != IHAVEOPT {
            return Err(HandshakeError::BadOptionMagic(magic));
        }
        if len > MAX_OPTION_LEN {
            if option == OptionCode::EXPORT_NAME || len > MAX_DISCARDED_OPTION_LEN {
                return Err(HandshakeError::OptionTooLong {
                    option,
                    len,
                    limit: MAX_OPTION_LEN,
                });
            }
            discard(s, len).await?;
            reply(
                s,
                option,
                ReplyCode::ERR_TOO_BIG,
                b"option payload too long",
            )
            .await?;
            continue;
        }
        let mut data = vec![0u8; len as usize];
        s.read_exact(&mut data).await?;
        tracing::debug!(option = ?option.name().unwrap_or("unknown"), len, "NBD option");

        match option {
            OptionCode::EXPORT_NAME => {
                if !export.matches(&data) {
                    return Err(HandshakeError::UnknownExport(
                        String::from_utf8_lossy(&data).into_owned(),
                    ));
                }
                let flags = transmission_flags(export, structured);
                let mut out = Vec::with_capacity(10 + EXPORT_NAME_PADDING);
                out.put_u64(export.size);
                out.put_u16(flags.0);
                if !no_zeroes {
                    out.put_bytes(0, EXPORT_NAME_PADDING);
                }
                s.write_all(&out).await?;
                s.flush().await?;
                return Ok(Some(Negotiated {
                    structured_replies: structured,
                    flags,
                }));
            }
            OptionCode::ABORT => {
                // The client may already have closed; an error here changes nothing.
                let _ = reply(s, option, ReplyCode::ACK, b"").await;
                return Ok(None);
            }
            OptionCode::LIST => {
                if !data.is_empty() {
                    reply(
                        s,
                        option,
                        ReplyCode::ERR_INVALID,
                        b"NBD_OPT_LIST carries no data",
                    )
                    .await?;
                    continue;
                }
                let mut entry = Vec::new();
                entry.put_u32(export.name.len() as u32);
                entry.put_slice(export.name.as_bytes());
                if let Some(d) = &export.description {
                    entry.put_slice(d.as_bytes());
                }
                reply(s, option, ReplyCode::SERVER, &entry).await?;
                reply(s, option, ReplyCode::ACK, b"").await?;
            }
            OptionCode::INFO | OptionCode::GO => {
                let (name, requests) = match parse_info_request(&data) {
                    Ok(v) => v,
                    Err(why) => {
                        reply(s, option, ReplyCode::ERR_INVALID, why.as_bytes()).await?;
                        continue;
                    }
                };
                if !export.matches(name) {
                    reply(s, option, ReplyCode::ERR_UNKNOWN, b"no such export").await?;
                    continue;
                }
                let flags = transmission_flags(export, structured);
                let mut info = Vec::new();
                info.put_u16(InfoType::EXPORT.0);
                info.put_u64(export.size);
                info.put_u16(flags.0);
                reply(s, option, ReplyCode::INFO, &info).await?;
                for r in requests {
                    info.clear();
                    match r {
                        InfoType::NAME => {
                            info.put_u16(r.0);
                            info.put_slice(export.name.as_bytes());
                        }
                        InfoType::DESCRIPTION => match &export.description {
                            Some(d) => {
                                info.put_u16(r.0);
                                info.put_slice(d.as_bytes());
                            }
                            None => continue,
                        },
                        // Block sizes are always sent below; others are ignored as the
                        // spec requires for unknown requests.
                        _ => continue,
                    }
                    reply(s, option, ReplyCode::INFO, &info).await?;
                }
                info.clear();
                info.put_u16(InfoType::BLOCK_SIZE.0);
                info.put_u32(export.min_block);
                info.put_u32(export.preferred_block);
                info.put_u32(export.max_block);
                reply(s, option, ReplyCode::INFO, &info).await?;
                reply(s, option, ReplyCode::ACK, b"").await?;
                if option == OptionCode::GO {
                    return Ok(Some(Negotiated {
                        structured_replies: structured,
                        flags,
                    }));
                }
            }
            OptionCode::STRUCTURED_REPLY => {
                if !data.is_empty() {
                    reply(s, option, ReplyCode::ERR_INVALID, b"option carries no data").await?;
                } else {
                    structured = true;
                    reply(s, option, ReplyCode::ACK, b"").await?;
                }
            }
            OptionCode::LIST_META_CONTEXT | OptionCode::SET_META_CONTEXT => {
                match parse_meta_context_request(&data) {
                    Err(why) => reply(s, option, ReplyCode::ERR_INVALID, why.as_bytes()).await?,
                    Ok(name) if !export.matches(name) => {
                        reply(s, option, ReplyCode::ERR_UNKNOWN, b"no such export").await?
                    }
                    Ok(_) if option == OptionCode::SET_META_CONTEXT && !structured => {
                        reply(
                            s,
                            option,
                            ReplyCode::ERR_INVALID,
                            b"structured replies not negotiated",
                        )
                        .await?
                    }
                    // No metadata contexts are offered: an empty list.
                    Ok(_) => reply(s, option, ReplyCode::ACK, b"").await?,
                }
            }
            _ => {
                reply(s, option, ReplyCode::ERR_UNSUP, b"option not supported").await?;
            }
        }
    }
    Err(HandshakeError::TooManyOptions)
}

fn transmission_flags(export: &ExportInfo, structured: bool) -> TransmissionFlags {
    if structured {
        export.flags | TransmissionFlags::SEND_DF
    } else {
        export.flags
    }
}

async fn reply<S: AsyncWrite + Unpin>(
    s: &mut S,
    option: OptionCode,
    code: ReplyCode,
    data: &[u8],
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(20 + data.len());
    encode_option_reply(&mut out, option, code, data.len() as u32);
    out.put_slice(data);
    s.write_all(&out).await?;
    s.flush().await
}

async fn discard<S: AsyncRead + Unpin>(s: &mut S, len: u32) -> std::io::Result<()> {
    let mut left = len as u64;
    let mut buf = [0u8; 4096];
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        s.read_exact(&mut buf[..n]).await?;
        left -= n as u64;
    }
    Ok(())
}

/// Parses the payload of NBD_OPT_INFO / NBD_OPT_GO: u32 name length, name, u16 count,
/// count x u16 information request.
pub fn parse_info_request(data: &[u8]) -> Result<(&[u8], Vec<InfoType>), &'static str> {
    let mut b = data;
    if b.remaining() < 4 {
        return Err("truncated export name length");
    }
    let name_len = b.get_u32();
    if name_len > MAX_STRING_LEN || name_len as usize > b.remaining() {
        return Err("export name length exceeds the option");
    }
    let name = &b[..name_len as usize];
    b.advance(name_len as usize);
    if b.remaining() < 2 {
        return Err("truncated information request count");
    }
    let count = b.get_u16() as usize;
    if b.remaining() != count * 2 {
        return Err("information request count does not match the option length");
    }
    let requests = (0..count).map(|_| InfoType(b.get_u16())).collect();
    Ok((name, requests))
}

/// Parses the payload of NBD_OPT_LIST/SET_META_CONTEXT (u32 name length, name, u32 query
/// count, count x (u32 length, query)); returns the export name.
pub fn parse_meta_context_request(data: &[u8]) -> Result<&[u8], &'static str> {
    let mut b = data;
    if b.remaining() < 4 {
        return Err("truncated export name length");
    }
    let name_len = b.get_u32();
    if name_len > MAX_STRING_LEN || name_len as usize > b.remaining() {
        return Err("export name length exceeds the option");
    }
    let name = &b[..name_len as usize];
    b.advance(name_len as usize);
    if b.remaining() < 4 {
        return Err("truncated query count");
    }
    let count = b.get_u32();
    if count > MAX_META_QUERIES {
        return Err("too many meta context queries");
    }
    for _ in 0..count {
        if b.remaining() < 4 {
            return Err("truncated query length");
        }
        let q = b.get_u32();
        if q > MAX_STRING_LEN || q as usize > b.remaining() {
            return Err("query length exceeds the option");
        }
        b.advance(q as usize);
    }
    if b.has_remaining() {
        return Err("trailing bytes after the queries");
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_request_parses() {
        let mut d = Vec::new();
        d.put_u32(3);
        d.put_slice(b"abc");
        d.put_u16(2);
        d.put_u16(1);
        d.put_u16(3);
        let (n, r) = parse_info_request(&d).unwrap();
        assert_eq!(n, b"abc");
        assert_eq!(r, vec![InfoType::NAME, InfoType::BLOCK_SIZE]);
        d.push(0);
        assert!(parse_info_request(&d).is_err());
        assert!(parse_info_request(&[0, 0, 0, 9, 1]).is_err());
        assert!(parse_info_request(&[0, 0]).is_err());
    }

    #[test]
    fn meta_context_request_parses() {
        let mut d = Vec::new();
        d.put_u32(0);
        d.put_u32(1);
        d.put_u32(15);
        d.put_slice(b"base:allocation");
        assert_eq!(parse_meta_context_request(&d), Ok(&b""[..]));
        d.truncate(d.len() - 1);
        assert!(parse_meta_context_request(&d).is_err());
        let mut many = Vec::new();
        many.put_u32(0);
        many.put_u32(MAX_META_QUERIES + 1);
        assert!(parse_meta_context_request(&many).is_err());
    }
}
