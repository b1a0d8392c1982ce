//! SPC-4 section 6.35: REPORT SUPPORTED OPERATION CODES, with the CDB usage map of every
//! command this logical unit executes.

use bytes::{BufMut, BytesMut};
use iscsi_proto::scsi::Sense;

use super::{truncate, CmdResult, Failure};

/// (operation code, service action, CDB usage data: its length is the CDB length).
const COMMANDS: &[(u8, Option<u8>, &[u8])] = &[
    (0x00, None, &[0x00, 0, 0, 0, 0, 0]),
    (0x03, None, &[0x03, 0x01, 0, 0, 0xFF, 0]),
    (0x08, None, &[0x08, 0x1F, 0xFF, 0xFF, 0xFF, 0]),
    (0x0A, None, &[0x0A, 0x1F, 0xFF, 0xFF, 0xFF, 0]),
    (0x12, None, &[0x12, 0x01, 0xFF, 0xFF, 0xFF, 0]),
    (0x15, None, &[0x15, 0x11, 0, 0, 0xFF, 0]),
    (0x1A, None, &[0x1A, 0x08, 0xFF, 0xFF, 0xFF, 0]),
    (0x1B, None, &[0x1B, 0x01, 0, 0x0F, 0xF7, 0]),
    (0x1E, None, &[0x1E, 0, 0, 0, 0x03, 0]),
    (
        0x25,
        None,
        &[0x25, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0x01, 0],
    ),
    (
        0x28,
        None,
        &[0x28, 0x18, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0xFF, 0xFF, 0],
    ),
    (
        0x2A,
        None,
        &[0x2A, 0x18, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0xFF, 0xFF, 0],
    ),
    (
        0x2E,
        None,
        &[0x2E, 0x16, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0xFF, 0xFF, 0],
    ),
    (
        0x2F,
        None,
        &[0x2F, 0x16, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0xFF, 0xFF, 0],
    ),
    (
        0x34,
        None,
        &[0x34, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0xFF, 0xFF, 0],
    ),
    (
        0x35,
        None,
        &[0x35, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0xFF, 0xFF, 0],
    ),
    (0x37, None, &[0x37, 0, 0x1F, 0, 0, 0, 0, 0xFF, 0xFF, 0]),
    (
        0x41,
        None,
        &[0x41, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0xFF, 0xFF, 0],
    ),
    (0x42, None, &[0x42, 0, 0, 0, 0, 0, 0x1F, 0xFF, 0xFF, 0]),
    (0x55, None, &[0x55, 0x11, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0]),
    (
        0x5A,
        None,
        &[0x5A, 0x18, 0xFF, 0xFF, 0, 0, 0, 0xFF, 0xFF, 0],
    ),
    (0x5E, Some(0), &PR_IN),
    (0x5E, Some(1), &PR_IN),
    (0x5E, Some(2), &PR_IN),
    (0x5E, Some(3), &PR_IN),
    (0x5F, Some(0), &PR_OUT),
    (0x5F, Some(1), &PR_OUT),
    (0x5F, Some(2), &PR_OUT),
    (0x5F, Some(3), &PR_OUT),
    (0x5F, Some(4), &PR_OUT),
    (0x5F, Some(5), &PR_OUT),
    (0x5F, Some(6), &PR_OUT),
    (0x88, None, &RW16_READ),
    (
        0x89,
        None,
        &[
            0x89, 0x18, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0xFF, 0x1F, 0,
        ],
    ),
    (0x8A, None, &RW16_WRITE),
    (0x8B, None, &RW16_ORWRITE),
    (
        0x8E,
        None,
        &[
            0x8E, 0x16, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            0x1F, 0,
        ],
    ),
    (
        0x8F,
        None,
        &[
            0x8F, 0x16, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            0x1F, 0,
        ],
    ),
    (
        0x90,
        None,
        &[
            0x90, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            0x1F, 0,
        ],
    ),
    (
        0x91,
        None,
        &[
            0x91, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            0x1F, 0,
        ],
    ),
    (
        0x93,
        None,
        &[
            0x93, 0x09, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            0x1F, 0,
        ],
    ),
    (
        0x9E,
        Some(0x10),
        &[
            0x9E, 0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            0x01, 0,
        ],
    ),
    (
        0x9E,
        Some(0x12),
        &[
            0x9E, 0x12, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0,
            0,
        ],
    ),
    (
        0xA0,
        None,
        &[0xA0, 0, 0xFF, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0],
    ),
    (
        0xA3,
        Some(0x0C),
        &[
            0xA3, 0x0C, 0x87, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0,
        ],
    ),
    (
        0xA8,
        None,
        &[
            0xA8, 0x18, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0,
        ],
    ),
    (
        0xAA,
        None,
        &[
            0xAA, 0x18, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0,
        ],
    ),
    (
        0xAE,
        None,
        &[
            0xAE, 0x16, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0,
        ],
    ),
    (
        0xAF,
        None,
        &[
            0xAF, 0x16, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0,
        ],
    ),
    (
        0xB7,
        None,
        &[0xB7, 0x1F, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0],
    ),
];

const PR_IN: [u8; 10] = [0x5E, 0x1F, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0];
const PR_OUT: [u8; 10] = [0x5F, 0x1F, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0];
const RW16_READ: [u8; 16] = rw16(0x88);
const RW16_WRITE: [u8; 16] = rw16(0x8A);
const RW16_ORWRITE: [u8; 16] = rw16(0x8B);

const fn rw16(op: u8) -> [u8; 16] {
    let mut u = [0xFF; 16];
    u[0] = op;
    u[1] = 0x18;
    u[14] = 0x1F;
    u[15] = 0;
    u
}

/// Nominal and recommended command timeouts reported with RCTD, in seconds.
const TIMEOUT_SECS: u32 = 30;

fn put_timeouts(out: &mut BytesMut) {
    out.put_u16(0x0A);
    out.put_u8(0);
    out.put_u8(0);
    out.put_u32(TIMEOUT_SECS);
    out.put_u32(TIMEOUT_SECS);
}

fn has_service_actions(op: u8) -> bool {
    COMMANDS.iter().any(|&(o, sa, _)| o == op && sa.is_some())
}

pub(crate) fn report(rctd: bool, options: u8, op: u8, sa: u16, alloc_len: u32) -> CmdResult {
    let mut out = BytesMut::with_capacity(1024);
    match options {
        0 => {
            out.put_u32(0);
            for &(o, s, usage) in COMMANDS {
                out.put_u8(o);
                out.put_u8(0);
                out.put_u16(s.unwrap_or(0) as u16);
                out.put_u8(0);
                out.put_u8(((rctd as u8) << 1) | s.is_some() as u8);
                out.put_u16(usage.len() as u16);
                if rctd {
                    put_timeouts(&mut out);
                }
            }
            let len = (out.len() - 4) as u32;
            out[0..4].copy_from_slice(&len.to_be_bytes());
        }
        1..=3 => {
            let with_sa = match options {
                1 => false,
                2 => true,
                _ => has_service_actions(op),
            };
            if options == 1 && has_service_actions(op) {
                return Err(Failure::Check(Sense::invalid_field_in_cdb(2, Some(2))));
            }
            if options == 2 && !has_service_actions(op) {
                return Err(Failure::Check(Sense::invalid_field_in_cdb(2, Some(2))));
            }
            let found = COMMANDS.iter().find(|&&(o, s, _)| {
                o == op
                    && if with_sa {
                        s.map(u16::from) == Some(sa)
                    } else {
                        s.is_none()
                    }
            });
            out.put_u8(0);
            match found {
                Some(&(_, _, usage)) => {
                    out.put_u8(((rctd as u8) << 7) | 0x03);
                    out.put_u16(usage.len() as u16);
                    out.put_slice(usage);
                    if rctd {
                        put_timeouts(&mut out);
                    }
                }
                None => {
                    out.put_u8(0x01);
                    out.put_u16(0);
                }
            }
        }
        _ => return Err(Failure::Check(Sense::invalid_field_in_cdb(2, Some(2)))),
    }
    Ok(truncate(out, alloc_len as u64))
}
