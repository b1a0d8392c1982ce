//! RFC 7143 section 11: property tests of the PDU codec: decode(encode(x)) == x for every PDU
//! type with and without digests, `encoded_len` equal to the bytes written, the zero-copy
//! header/data/trailer path equal to `encode`, streaming at every split offset, and random or
//! mutated bytes thrown at the decoder (no panic, no buffering beyond the limits).

use bytes::{Bytes, BytesMut};
use iscsi_proto::digest::DigestConfig;
use iscsi_proto::framing::PduDecoder;
use iscsi_proto::limits::{pad4, Limits, BHS_LEN};
use iscsi_proto::pdu::*;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

const ALL_DIGESTS: [DigestConfig; 4] = [
    DigestConfig {
        header: false,
        data: false,
    },
    DigestConfig {
        header: true,
        data: false,
    },
    DigestConfig {
        header: false,
        data: true,
    },
    DigestConfig {
        header: true,
        data: true,
    },
];

fn data(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn lun() -> impl Strategy<Value = Lun> {
    any::<[u8; 8]>().prop_map(Lun)
}

fn nop_out() -> impl Strategy<Value = Pdu> {
    (any::<bool>(), lun(), any::<[u32; 4]>(), data(80)).prop_map(|(immediate, lun, n, data)| {
        Pdu::NopOut(NopOut {
            immediate,
            lun,
            itt: n[0],
            ttt: n[1],
            cmd_sn: n[2],
            exp_stat_sn: n[3],
            data,
        })
    })
}

fn nop_in() -> impl Strategy<Value = Pdu> {
    (lun(), any::<[u32; 5]>(), data(80)).prop_map(|(lun, n, data)| {
        Pdu::NopIn(NopIn {
            lun,
            itt: n[0],
            ttt: n[1],
            stat_sn: n[2],
            exp_cmd_sn: n[3],
            max_cmd_sn: n[4],
            data,
        })
    })
}

fn other_ahs() -> impl Strategy<Value = Ahs> {
    (3u8..=255, any::<u8>(), data(24)).prop_map(|(t, specific, data)| Ahs {
        ahs_type: AhsType(t),
        specific,
        data,
    })
}

fn scsi_command() -> impl Strategy<Value = Pdu> {
    (
        (any::<[bool; 4]>(), 0u8..8, lun(), any::<[u32; 4]>()),
        (
            any::<[u8; 16]>(),
            option::of(data(48)),
            option::of(any::<u32>()),
            vec(other_ahs(), 0..3),
            data(80),
        ),
    )
        .prop_map(|((f, attr, lun, n), (cdb, ext, bidi, other_ahs, data))| {
            Pdu::ScsiCommand(ScsiCommand {
                immediate: f[0],
                final_bit: f[1],
                read: f[2],
                write: f[3],
                attr: TaskAttr(attr),
                lun,
                itt: n[0],
                expected_data_transfer_length: n[1],
                cmd_sn: n[2],
                exp_stat_sn: n[3],
                cdb,
                extended_cdb: ext,
                bidi_read_length: bidi,
                other_ahs,
                data,
            })
        })
}

fn scsi_response() -> impl Strategy<Value = Pdu> {
    (
        any::<[bool; 4]>(),
        any::<[u8; 2]>(),
        any::<[u32; 8]>(),
        data(80),
    )
        .prop_map(|(f, c, n, data)| {
            Pdu::ScsiResponse(ScsiResponse {
                bidi_overflow: f[0],
                bidi_underflow: f[1],
                overflow: f[2],
                underflow: f[3],
                response: ScsiResponseCode(c[0]),
                status: ScsiStatus(c[1]),
                itt: n[0],
                snack_tag: n[1],
                stat_sn: n[2],
                exp_cmd_sn: n[3],
                max_cmd_sn: n[4],
                exp_data_sn: n[5],
                bidi_residual_count: n[6],
                residual_count: n[7],
                data,
            })
        })
}

fn task_mgmt_request() -> impl Strategy<Value = Pdu> {
    (any::<bool>(), 0u8..128, lun(), any::<[u32; 6]>()).prop_map(|(immediate, f, lun, n)| {
        Pdu::TaskMgmtRequest(TaskMgmtRequest {
            immediate,
            function: TmfFunction(f),
            lun,
            itt: n[0],
            referenced_task_tag: n[1],
            cmd_sn: n[2],
            exp_stat_sn: n[3],
            ref_cmd_sn: n[4],
            exp_data_sn: n[5],
        })
    })
}

fn task_mgmt_response() -> impl Strategy<Value = Pdu> {
    (any::<u8>(), any::<[u32; 4]>()).prop_map(|(r, n)| {
        Pdu::TaskMgmtResponse(TaskMgmtResponse {
            response: TmfResponse(r),
            itt: n[0],
            stat_sn: n[1],
            exp_cmd_sn: n[2],
            max_cmd_sn: n[3],
        })
    })
}

fn login_request() -> impl Strategy<Value = Pdu> {
    (
        (any::<[bool; 2]>(), 0u8..4, 0u8..4, any::<[u8; 2]>()),
        (
            any::<[u8; 6]>(),
            any::<[u16; 2]>(),
            any::<[u32; 3]>(),
            data(120),
        ),
    )
        .prop_map(|((f, csg, nsg, v), (isid, s, n, data))| {
            Pdu::LoginRequest(LoginRequest {
                transit: f[0],
                cont: f[1],
                csg: Stage(csg),
                nsg: Stage(nsg),
                version_max: v[0],
                version_min: v[1],
                isid,
                tsih: s[0],
                itt: n[0],
                cid: s[1],
                cmd_sn: n[1],
                exp_stat_sn: n[2],
                data,
            })
        })
}

fn login_response() -> impl Strategy<Value = Pdu> {
    (
        (any::<[bool; 2]>(), 0u8..4, 0u8..4, any::<[u8; 2]>()),
        (
            any::<[u8; 6]>(),
            any::<[u16; 2]>(),
            any::<[u32; 4]>(),
            data(120),
        ),
    )
        .prop_map(|((f, csg, nsg, v), (isid, s, n, data))| {
            Pdu::LoginResponse(LoginResponse {
                transit: f[0],
                cont: f[1],
                csg: Stage(csg),
                nsg: Stage(nsg),
                version_max: v[0],
                version_active: v[1],
                isid,
                tsih: s[0],
                itt: n[0],
                stat_sn: n[1],
                exp_cmd_sn: n[2],
                max_cmd_sn: n[3],
                status: LoginStatus(s[1]),
                data,
            })
        })
}

fn text_request() -> impl Strategy<Value = Pdu> {
    (any::<[bool; 3]>(), lun(), any::<[u32; 4]>(), data(80)).prop_map(|(f, lun, n, data)| {
        Pdu::TextRequest(TextRequest {
            immediate: f[0],
            final_bit: f[1],
            cont: f[2],
            lun,
            itt: n[0],
            ttt: n[1],
            cmd_sn: n[2],
            exp_stat_sn: n[3],
            data,
        })
    })
}

fn text_response() -> impl Strategy<Value = Pdu> {
    (any::<[bool; 2]>(), lun(), any::<[u32; 5]>(), data(80)).prop_map(|(f, lun, n, data)| {
        Pdu::TextResponse(TextResponse {
            final_bit: f[0],
            cont: f[1],
            lun,
            itt: n[0],
            ttt: n[1],
            stat_sn: n[2],
            exp_cmd_sn: n[3],
            max_cmd_sn: n[4],
            data,
        })
    })
}

fn data_out() -> impl Strategy<Value = Pdu> {
    (any::<bool>(), lun(), any::<[u32; 5]>(), data(200)).prop_map(|(final_bit, lun, n, data)| {
        Pdu::DataOut(DataOut {
            final_bit,
            lun,
            itt: n[0],
            ttt: n[1],
            exp_stat_sn: n[2],
            data_sn: n[3],
            buffer_offset: n[4],
            data,
        })
    })
}

fn data_in() -> impl Strategy<Value = Pdu> {
    (
        any::<[bool; 4]>(),
        option::of(any::<u8>()),
        lun(),
        any::<[u32; 8]>(),
        data(200),
    )
        .prop_map(|(f, status, lun, n, data)| {
            Pdu::DataIn(DataIn {
                final_bit: f[0],
                acknowledge: f[1],
                overflow: f[2],
                underflow: f[3],
                status: status.map(ScsiStatus),
                lun,
                itt: n[0],
                ttt: n[1],
                stat_sn: n[2],
                exp_cmd_sn: n[3],
                max_cmd_sn: n[4],
                data_sn: n[5],
                buffer_offset: n[6],
                residual_count: n[7],
                data,
            })
        })
}

fn logout_request() -> impl Strategy<Value = Pdu> {
    (any::<bool>(), 0u8..128, any::<u16>(), any::<[u32; 3]>()).prop_map(
        |(immediate, reason, cid, n)| {
            Pdu::LogoutRequest(LogoutRequest {
                immediate,
                reason: LogoutReason(reason),
                itt: n[0],
                cid,
                cmd_sn: n[1],
                exp_stat_sn: n[2],
            })
        },
    )
}

fn logout_response() -> impl Strategy<Value = Pdu> {
    (any::<u8>(), any::<[u32; 4]>(), any::<[u16; 2]>()).prop_map(|(r, n, t)| {
        Pdu::LogoutResponse(LogoutResponse {
            response: LogoutResponseCode(r),
            itt: n[0],
            stat_sn: n[1],
            exp_cmd_sn: n[2],
            max_cmd_sn: n[3],
            time2wait: t[0],
            time2retain: t[1],
        })
    })
}

fn r2t() -> impl Strategy<Value = Pdu> {
    (lun(), any::<[u32; 8]>()).prop_map(|(lun, n)| {
        Pdu::R2t(R2t {
            lun,
            itt: n[0],
            ttt: n[1],
            stat_sn: n[2],
            exp_cmd_sn: n[3],
            max_cmd_sn: n[4],
            r2t_sn: n[5],
            buffer_offset: n[6],
            desired_data_transfer_length: n[7],
        })
    })
}

fn reject() -> impl Strategy<Value = Pdu> {
    (any::<u8>(), any::<[u32; 4]>(), data(64)).prop_map(|(r, n, data)| {
        Pdu::Reject(Reject {
            reason: RejectReason(r),
            stat_sn: n[0],
            exp_cmd_sn: n[1],
            max_cmd_sn: n[2],
            data_sn: n[3],
            data,
        })
    })
}

fn async_message() -> impl Strategy<Value = Pdu> {
    (
        lun(),
        any::<[u32; 3]>(),
        any::<[u8; 2]>(),
        any::<[u16; 3]>(),
        data(64),
    )
        .prop_map(|(lun, n, e, p, data)| {
            Pdu::AsyncMessage(AsyncMessage {
                lun,
                stat_sn: n[0],
                exp_cmd_sn: n[1],
                max_cmd_sn: n[2],
                event: AsyncEvent(e[0]),
                vcode: e[1],
                parameter1: p[0],
                parameter2: p[1],
                parameter3: p[2],
                data,
            })
        })
}

fn snack() -> impl Strategy<Value = Pdu> {
    (0u8..16, lun(), any::<[u32; 5]>()).prop_map(|(t, lun, n)| {
        Pdu::Snack(Snack {
            snack_type: SnackType(t),
            lun,
            itt: n[0],
            ttt: n[1],
            exp_stat_sn: n[2],
            beg_run: n[3],
            run_length: n[4],
        })
    })
}

fn unknown() -> impl Strategy<Value = Pdu> {
    (
        (0u8..64).prop_filter("unknown opcode", |o| Opcode(*o).name().is_none()),
        any::<[u8; 32]>(),
        any::<[u8; 16]>(),
        0usize..5,
        any::<[u8; 16]>(),
        data(40),
    )
        .prop_map(|(op, a, b, ahs_words, ahs, data)| {
            let mut raw = [0u8; 48];
            raw[..32].copy_from_slice(&a);
            raw[32..].copy_from_slice(&b);
            let mut bhs = Bhs(raw);
            bhs.set_opcode(Opcode(op));
            bhs.set_total_ahs_length(ahs_words as u8);
            bhs.set_data_segment_length(data.len() as u32);
            Pdu::Unknown {
                bhs,
                ahs: Bytes::copy_from_slice(&ahs[..ahs_words * 4]),
                data,
            }
        })
}

fn any_pdu() -> impl Strategy<Value = Pdu> {
    prop_oneof![
        nop_out(),
        nop_in(),
        scsi_command(),
        scsi_response(),
        task_mgmt_request(),
        task_mgmt_response(),
        login_request(),
        login_response(),
        text_request(),
        text_response(),
        data_out(),
        data_in(),
        logout_request(),
        logout_response(),
        r2t(),
        reject(),
        async_message(),
        snack(),
        unknown(),
    ]
}

fn digests() -> impl Strategy<Value = DigestConfig> {
    (0usize..4).prop_map(|i| ALL_DIGESTS[i])
}

/// A decoder that accepts everything the strategies generate.
fn decoder(d: DigestConfig) -> PduDecoder {
    PduDecoder::new(Limits::with_max_recv_data_segment_length(65536), d)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_inverts_encode(pdu in any_pdu()) {
        for d in ALL_DIGESTS {
            let mut out = BytesMut::new();
            pdu.encode(d, &mut out);
            prop_assert_eq!(out.len(), pdu.encoded_len(d));
            prop_assert_eq!(out.len() % 4, 0);
            let back = Pdu::decode(out.freeze(), d).unwrap();
            prop_assert_eq!(&back, &pdu);
            prop_assert_eq!(back.opcode(), pdu.opcode());
            prop_assert_eq!(back.itt(), pdu.itt());
        }
    }

    #[test]
    fn vectored_parts_equal_encode(pdu in any_pdu(), d in digests()) {
        let mut whole = BytesMut::new();
        pdu.encode(d, &mut whole);
        let mut parts = BytesMut::new();
        pdu.encode_header(d, &mut parts);
        prop_assert_eq!(parts.len(), pdu.header_len(d));
        if let Some(data) = pdu.data() {
            parts.extend_from_slice(data);
            let (t, n) = trailer(data, d);
            parts.extend_from_slice(&t[..n]);
        }
        prop_assert_eq!(&parts[..], &whole[..]);
        prop_assert_eq!(&pdu.to_bytes(d)[..], &whole[..]);
    }

    #[test]
    fn decoder_handles_every_split(pdu in any_pdu(), d in digests()) {
        let wire = pdu.to_bytes(d);
        let mut dec = decoder(d);
        for cut in 0..=wire.len() {
            let mut buf = BytesMut::from(&wire[..cut]);
            let expect_needed = if cut < BHS_LEN { BHS_LEN - cut } else { wire.len() - cut };
            prop_assert_eq!(dec.needed(&buf).unwrap(), expect_needed);
            if cut < wire.len() {
                prop_assert_eq!(dec.decode(&mut buf).unwrap(), None);
                prop_assert_eq!(buf.len(), cut);
                buf.extend_from_slice(&wire[cut..]);
            }
            let got = dec.decode(&mut buf).unwrap();
            prop_assert_eq!(got.as_ref(), Some(&pdu));
            prop_assert!(buf.is_empty());
        }
    }

    #[test]
    fn decoder_splits_a_stream_fed_in_chunks(
        pdus in vec(any_pdu(), 1..6),
        d in digests(),
        chunk in 1usize..97,
    ) {
        let mut wire = BytesMut::new();
        for p in &pdus {
            p.encode(d, &mut wire);
        }
        let mut dec = decoder(d);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in wire.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(p) = dec.decode(&mut buf).unwrap() {
                got.push(p);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(got, pdus);
    }

    #[test]
    fn random_bytes_never_panic_nor_overbuffer(
        bytes in vec(any::<u8>(), 0..400),
        d in digests(),
        mrdsl in 512u32..70000,
        ahs_limit in 0usize..1100,
    ) {
        let limits = Limits { max_recv_data_segment_length: mrdsl, max_ahs_bytes: ahs_limit };
        check_decoder_on(&bytes, limits, d)?;
    }

    #[test]
    fn mutated_pdus_never_panic_nor_overbuffer(
        pdus in vec(any_pdu(), 1..4),
        d in digests(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut wire = BytesMut::new();
        for p in &pdus {
            p.encode(d, &mut wire);
        }
        for (at, x) in flips {
            let i = at.index(wire.len());
            wire[i] ^= x;
        }
        let end = cut.index(wire.len() + 1);
        check_decoder_on(&wire[..end], Limits::with_max_recv_data_segment_length(4096), d)?;
    }
}

/// Feeds `bytes` to a decoder; whatever happens, no panic, and the decoder never asks for more
/// than one PDU within `limits` can take.
fn check_decoder_on(bytes: &[u8], limits: Limits, d: DigestConfig) -> Result<(), TestCaseError> {
    let max_frame = BHS_LEN
        + limits.ahs_limit()
        + d.header_len()
        + pad4(limits.data_segment_limit())
        + d.data_len();
    let mut dec = PduDecoder::new(limits, d);
    let mut buf = BytesMut::from(bytes);
    while let Ok(n) = dec.needed(&buf) {
        prop_assert!(buf.len() + n <= max_frame.max(BHS_LEN));
        match dec.decode(&mut buf) {
            Ok(Some(p)) => {
                // Whatever decoded encodes again, and decodes to itself.
                let again = Pdu::decode(p.to_bytes(d), d);
                prop_assert_eq!(again, Ok(p));
            }
            Ok(None) => {
                prop_assert!(buf.capacity() <= max_frame.max(bytes.len()).max(64));
                break;
            }
            Err(PduError::DataDigestMismatch { .. }) => continue,
            Err(_) => break,
        }
    }
    Ok(())
}

#[test]
fn big_data_in_round_trips_with_digests() {
    let data: Bytes = (0..131072u32)
        .map(|i| (i * 7) as u8)
        .collect::<Vec<u8>>()
        .into();
    let pdu = Pdu::DataIn(DataIn {
        final_bit: true,
        status: Some(ScsiStatus::GOOD),
        itt: 9,
        data: data.clone(),
        ..Default::default()
    });
    let wire = pdu.to_bytes(DigestConfig::BOTH);
    assert_eq!(wire.len(), 48 + 4 + 131072 + 4);
    let mut dec = PduDecoder::new(
        Limits::with_max_recv_data_segment_length(262144),
        DigestConfig::BOTH,
    );
    let mut buf = BytesMut::from(&wire[..]);
    let start = buf.as_ptr() as usize;
    let got = dec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(got, pdu);
    // Zero copy: the decoded data points into the received frame.
    let Pdu::DataIn(di) = got else { unreachable!() };
    assert_eq!(di.data, data);
    let at = di.data.as_ptr() as usize;
    assert_eq!(
        at,
        start + 52,
        "data segment must be a slice of the receive buffer"
    );
}
