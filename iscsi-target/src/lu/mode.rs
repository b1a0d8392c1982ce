//! SPC-4 section 7.5 (mode parameters: headers, block descriptors, control 0Ah and
//! informational exceptions 1Ch pages) and SBC-3 section 6.4 (caching page 08h), for MODE
//! SENSE (6)/(10) and MODE SELECT (6)/(10).

use bytes::{BufMut, BytesMut};
use iscsi_proto::scsi::{Asc, PageControl, Sense, SenseKey};

use super::Failure;

pub(crate) const PAGE_CACHING: u8 = 0x08;
pub(crate) const PAGE_CONTROL: u8 = 0x0A;
pub(crate) const PAGE_INFORMATIONAL_EXCEPTIONS: u8 = 0x1C;
pub(crate) const PAGE_ALL: u8 = 0x3F;

pub(crate) struct ModeState {
    pub wce: bool,
    pub d_sense: bool,
    pub read_only: bool,
    pub num_blocks: u64,
    pub block_size: u32,
}

fn caching(st: &ModeState, pc: PageControl, out: &mut BytesMut) {
    let mut p = [0u8; 20];
    p[0] = PAGE_CACHING;
    p[1] = 18;
    p[2] = match pc {
        PageControl::CHANGEABLE => 0x04,
        PageControl::DEFAULT => 0x04,
        _ => (st.wce as u8) << 2,
    };
    out.put_slice(&p);
}

fn control(st: &ModeState, pc: PageControl, out: &mut BytesMut) {
    let mut p = [0u8; 12];
    p[0] = PAGE_CONTROL;
    p[1] = 10;
    match pc {
        PageControl::CHANGEABLE => p[2] = 0x04,
        _ => {
            // TST 000b, D_SENSE, GLTSD 1.
            let d = pc == PageControl::CURRENT && st.d_sense;
            p[2] = ((d as u8) << 2) | 0x02;
            // QUEUE ALGORITHM MODIFIER 1 (unrestricted reordering), QERR 00b.
            p[3] = 0x10;
            // TAS 1: aborted tasks of other nexuses get TASK ABORTED.
            p[5] = 0x40;
            // BUSY TIMEOUT PERIOD: unlimited.
            p[8] = 0xFF;
            p[9] = 0xFF;
        }
    }
    out.put_slice(&p);
}

fn informational_exceptions(pc: PageControl, out: &mut BytesMut) {
    let mut p = [0u8; 12];
    p[0] = PAGE_INFORMATIONAL_EXCEPTIONS;
    p[1] = 10;
    if pc != PageControl::CHANGEABLE {
        // DEXCPT: informational exception reporting disabled.
        p[2] = 0x08;
    }
    out.put_slice(&p);
}

pub(crate) fn mode_sense(
    st: &ModeState,
    ten: bool,
    dbd: bool,
    llbaa: bool,
    pc: PageControl,
    page: u8,
    subpage: u8,
) -> Result<BytesMut, Failure> {
    if pc == PageControl::SAVED {
        return Err(Failure::Check(Sense::new(
            SenseKey::ILLEGAL_REQUEST,
            Asc::SAVING_PARAMETERS_NOT_SUPPORTED,
        )));
    }
    let mut pages = BytesMut::with_capacity(64);
    match (page, subpage) {
        (PAGE_CACHING, 0) => caching(st, pc, &mut pages),
        (PAGE_CONTROL, 0) => control(st, pc, &mut pages),
        (PAGE_INFORMATIONAL_EXCEPTIONS, 0) => informational_exceptions(pc, &mut pages),
        (PAGE_ALL, 0) | (PAGE_ALL, 0xFF) => {
            caching(st, pc, &mut pages);
            control(st, pc, &mut pages);
            informational_exceptions(pc, &mut pages);
        }
        (_, 0) | (PAGE_CACHING | PAGE_CONTROL | PAGE_INFORMATIONAL_EXCEPTIONS, _) => {
            return Err(Failure::Check(Sense::invalid_field_in_cdb(2, Some(5))))
        }
        _ => return Err(Failure::Check(Sense::invalid_field_in_cdb(3, None))),
    }
    let mut desc = BytesMut::with_capacity(16);
    if !dbd {
        if ten && llbaa {
            desc.put_u64(st.num_blocks);
            desc.put_u32(0);
            desc.put_u32(st.block_size);
        } else {
            desc.put_u32(u32::try_from(st.num_blocks).unwrap_or(u32::MAX));
            desc.put_u8(0);
            desc.put_uint(st.block_size as u64, 3);
        }
    }
    // Device-specific parameter: WP, DPOFUA.
    let dsp = ((st.read_only as u8) << 7) | 0x10;
    let mut out = BytesMut::with_capacity(8 + desc.len() + pages.len());
    if ten {
        out.put_u16((6 + desc.len() + pages.len()) as u16);
        out.put_u8(0);
        out.put_u8(dsp);
        out.put_u8((ten && llbaa && !dbd) as u8);
        out.put_u8(0);
        out.put_u16(desc.len() as u16);
    } else {
        out.put_u8((3 + desc.len() + pages.len()).min(255) as u8);
        out.put_u8(0);
        out.put_u8(dsp);
        out.put_u8(desc.len() as u8);
    }
    out.put_slice(&desc);
    out.put_slice(&pages);
    Ok(out)
}

/// Changes a MODE SELECT asks for.
#[derive(Debug, Default)]
pub(crate) struct ModeChanges {
    pub wce: Option<bool>,
    pub d_sense: Option<bool>,
}

/// Parses a MODE SELECT parameter list; only WCE (caching) and D_SENSE (control) may change.
pub(crate) fn mode_select(
    ten: bool,
    pf: bool,
    sp: bool,
    params: &[u8],
    block_size: u32,
) -> Result<ModeChanges, Failure> {
    if sp {
        return Err(Failure::Check(Sense::invalid_field_in_cdb(1, Some(0))));
    }
    let mut ch = ModeChanges::default();
    if params.is_empty() {
        return Ok(ch);
    }
    if !pf {
        return Err(Failure::Check(Sense::invalid_field_in_cdb(1, Some(4))));
    }
    let hdr = if ten { 8 } else { 4 };
    let list_err = || {
        Failure::Check(Sense::new(
            SenseKey::ILLEGAL_REQUEST,
            Asc::PARAMETER_LIST_LENGTH_ERROR,
        ))
    };
    if params.len() < hdr {
        return Err(list_err());
    }
    let desc_len = if ten {
        u16::from_be_bytes([params[6], params[7]]) as usize
    } else {
        params[3] as usize
    };
    let pages_at = hdr + desc_len;
    if params.len() < pages_at {
        return Err(list_err());
    }
    if desc_len >= 8 {
        // The block length may only be restated, not changed.
        let d = &params[hdr..hdr + desc_len];
        let bl = if desc_len >= 16 {
            u32::from_be_bytes([d[12], d[13], d[14], d[15]])
        } else {
            u32::from_be_bytes([0, d[5], d[6], d[7]])
        };
        if bl != 0 && bl != block_size {
            return Err(Failure::Check(Sense::invalid_field_in_parameter_list(
                (hdr + if desc_len >= 16 { 12 } else { 5 }) as u16,
                None,
            )));
        }
    }
    let mut at = pages_at;
    while at < params.len() {
        if params.len() < at + 2 {
            return Err(list_err());
        }
        let code = params[at] & 0x3F;
        if params[at] & 0x40 != 0 {
            return Err(Failure::Check(Sense::invalid_field_in_parameter_list(
                at as u16,
                Some(6),
            )));
        }
        let len = params[at + 1] as usize;
        let Some(p) = params.get(at..at + 2 + len) else {
            return Err(list_err());
        };
        match (code, len) {
            (PAGE_CACHING, 18) => ch.wce = Some(p[2] & 0x04 != 0),
            (PAGE_CONTROL, 10) => ch.d_sense = Some(p[2] & 0x04 != 0),
            (PAGE_INFORMATIONAL_EXCEPTIONS, 10) => {}
            _ => {
                return Err(Failure::Check(Sense::invalid_field_in_parameter_list(
                    at as u16, None,
                )))
            }
        }
        at += 2 + len;
    }
    Ok(ch)
}
