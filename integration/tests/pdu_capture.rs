//! RFC 7143 section 11 against a real peer: the PDU codec alone (no initiator library) logs in
//! to tgtd over TCP, with and without CRC32C header and data digests, answers R2Ts with
//! Data-Out PDUs written header / payload / trailer without copying the payload, reads the data
//! back through Data-In, and logs out.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use iscsi_proto::digest::DigestConfig;
use iscsi_proto::framing::PduDecoder;
use iscsi_proto::limits::{Limits, DEFAULT_MAX_RECV_DATA_SEGMENT_LENGTH};
use iscsi_proto::pdu::*;
use pvd_integration::sparse_file;
use pvd_integration::tgtd::Tgtd;

const IQN: &str = "iqn.2026-11.org.pvd:pdu-capture";
const OUR_MRDSL: u32 = 262144;

struct Conn {
    stream: TcpStream,
    dec: PduDecoder,
    buf: BytesMut,
    digests: DigestConfig,
    cmd_sn: u32,
    exp_stat_sn: u32,
    next_itt: u32,
}

impl Conn {
    fn send(&mut self, pdu: &Pdu) {
        let mut head = BytesMut::new();
        pdu.encode_header(self.digests, &mut head);
        self.stream.write_all(&head).unwrap();
        if let Some(data) = pdu.data() {
            self.stream.write_all(data).unwrap();
            let (t, n) = trailer(data, self.digests);
            self.stream.write_all(&t[..n]).unwrap();
        }
    }

    fn recv(&mut self) -> Pdu {
        loop {
            if let Some(pdu) = self.dec.decode(&mut self.buf).expect("valid PDU from tgtd") {
                if let Some(sn) = stat_sn(&pdu) {
                    self.exp_stat_sn = sn.wrapping_add(1);
                }
                return pdu;
            }
            let want = self.dec.needed(&self.buf).unwrap().max(1);
            let mut chunk = vec![0u8; want.min(65536)];
            let n = self.stream.read(&mut chunk).expect("read from tgtd");
            assert!(n > 0, "tgtd closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn itt(&mut self) -> u32 {
        self.next_itt += 1;
        self.next_itt
    }

    fn command(&mut self, cdb: &[u8], read: bool, write: bool, len: u32) -> u32 {
        let itt = self.itt();
        let mut cmd = ScsiCommand {
            final_bit: true,
            read,
            write,
            attr: TaskAttr::SIMPLE,
            lun: Lun::from_number(1).unwrap(),
            itt,
            expected_data_transfer_length: len,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
            ..Default::default()
        };
        cmd.set_cdb(cdb);
        self.cmd_sn = self.cmd_sn.wrapping_add(1);
        self.send(&cmd.into());
        itt
    }
}

fn stat_sn(pdu: &Pdu) -> Option<u32> {
    match pdu {
        Pdu::ScsiResponse(p) => Some(p.stat_sn),
        Pdu::LoginResponse(p) => Some(p.stat_sn),
        Pdu::LogoutResponse(p) => Some(p.stat_sn),
        Pdu::DataIn(p) if p.status.is_some() => Some(p.stat_sn),
        _ => None,
    }
}

fn keys(data: &[u8]) -> Vec<(String, String)> {
    data.split(|&b| b == 0)
        .filter(|k| !k.is_empty())
        .filter_map(|k| {
            let s = String::from_utf8_lossy(k);
            let (a, b) = s.split_once('=')?;
            Some((a.to_string(), b.to_string()))
        })
        .collect()
}

fn rw10(op: u8, lba: u32, blocks: u16) -> [u8; 10] {
    let l = lba.to_be_bytes();
    let b = blocks.to_be_bytes();
    [op, 0, l[0], l[1], l[2], l[3], 0, b[0], b[1], 0]
}

fn session(digests: DigestConfig) {
    let dir = tempfile::tempdir().unwrap();
    let backing = dir.path().join("lun1.img");
    sparse_file(&backing, 64 << 20);
    let tgtd = Tgtd::start(IQN, &backing);
    let crc = |on: bool| if on { "CRC32C" } else { "None" };
    tgtd.set_param("HeaderDigest", "CRC32C,None");
    tgtd.set_param("DataDigest", "CRC32C,None");

    let stream = TcpStream::connect(tgtd.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.set_nodelay(true).unwrap();
    let mut c = Conn {
        stream,
        dec: PduDecoder::new(Limits::default(), DigestConfig::NONE),
        buf: BytesMut::new(),
        digests: DigestConfig::NONE,
        cmd_sn: 1,
        exp_stat_sn: 0,
        next_itt: 0x100,
    };

    // Login straight into the operational stage (no authentication configured).
    let text = format!(
        "InitiatorName=iqn.2026-11.org.pvd:codec-test\0TargetName={IQN}\0SessionType=Normal\0\
         HeaderDigest={}\0DataDigest={}\0MaxRecvDataSegmentLength={OUR_MRDSL}\0\
         InitialR2T=Yes\0ImmediateData=Yes\0",
        crc(digests.header),
        crc(digests.data)
    );
    let itt = c.itt();
    c.send(
        &LoginRequest {
            transit: true,
            csg: Stage::LOGIN_OPERATIONAL_NEGOTIATION,
            nsg: Stage::FULL_FEATURE_PHASE,
            isid: [0x80, 0, 0x12, 0x34, 0x56, 0x78],
            itt,
            cmd_sn: c.cmd_sn,
            data: Bytes::from(text),
            ..Default::default()
        }
        .into(),
    );
    let Pdu::LoginResponse(resp) = c.recv() else {
        panic!("expected a login response")
    };
    assert_eq!(resp.status, LoginStatus::SUCCESS);
    assert_eq!(resp.itt, itt);
    assert!(resp.transit);
    assert_eq!(resp.nsg, Stage::FULL_FEATURE_PHASE);
    assert_ne!(resp.tsih, 0);
    let answered = keys(&resp.data);
    let get = |k: &str| {
        answered
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("HeaderDigest").as_deref(), Some(crc(digests.header)));
    assert_eq!(get("DataDigest").as_deref(), Some(crc(digests.data)));
    let peer_mrdsl = get("MaxRecvDataSegmentLength")
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MAX_RECV_DATA_SEGMENT_LENGTH) as usize;
    c.cmd_sn = resp.exp_cmd_sn;

    // Full feature phase: digests and our declared limit apply from the next PDU on.
    c.digests = digests;
    c.dec.set_digests(digests);
    c.dec
        .set_limits(Limits::with_max_recv_data_segment_length(OUR_MRDSL));

    // Clear the power-on unit attention.
    let tur = c.command(&[0; 6], false, false, 0);
    let Pdu::ScsiResponse(r) = c.recv() else {
        panic!("expected a SCSI response")
    };
    assert_eq!(r.itt, tur);
    if r.status == ScsiStatus::CHECK_CONDITION {
        assert_eq!(r.sense().unwrap()[2] & 0x0f, 6, "unit attention");
    } else {
        assert_eq!(r.status, ScsiStatus::GOOD);
    }

    // WRITE(10) of 128 KiB, answered R2T by R2T with Data-Out PDUs no longer than the target's
    // MaxRecvDataSegmentLength.
    let len = 128 * 1024;
    let payload: Bytes = (0..len)
        .map(|i| (i * 31 % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let write = c.command(&rw10(0x2a, 8, (len / 512) as u16), false, true, len as u32);
    let mut r2ts = 0;
    let status = loop {
        match c.recv() {
            Pdu::R2t(r2t) => {
                assert_eq!(r2t.itt, write);
                assert_eq!(r2t.r2t_sn, r2ts);
                r2ts += 1;
                let start = r2t.buffer_offset as usize;
                let end = start + r2t.desired_data_transfer_length as usize;
                assert!(end <= len);
                let mut off = start;
                let mut data_sn = 0;
                while off < end {
                    let n = (end - off).min(peer_mrdsl);
                    let d = DataOut {
                        final_bit: off + n == end,
                        lun: Lun::from_number(1).unwrap(),
                        itt: write,
                        ttt: r2t.ttt,
                        exp_stat_sn: c.exp_stat_sn,
                        data_sn,
                        buffer_offset: off as u32,
                        data: payload.slice(off..off + n),
                    };
                    c.send(&d.into());
                    data_sn += 1;
                    off += n;
                }
            }
            Pdu::ScsiResponse(r) => break r,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(
        r2ts >= 1,
        "InitialR2T=Yes: the target must ask for the data"
    );
    assert_eq!(status.itt, write);
    assert_eq!(status.status, ScsiStatus::GOOD, "{status:?}");

    // READ(10) it back through Data-In.
    let read = c.command(&rw10(0x28, 8, (len / 512) as u16), true, false, len as u32);
    let mut got = vec![0u8; len];
    let mut received = 0;
    let mut next_data_sn = 0;
    loop {
        match c.recv() {
            Pdu::DataIn(d) => {
                assert_eq!(d.itt, read);
                assert_eq!(d.data_sn, next_data_sn);
                next_data_sn += 1;
                let off = d.buffer_offset as usize;
                got[off..off + d.data.len()].copy_from_slice(&d.data);
                received += d.data.len();
                if let Some(s) = d.status {
                    assert_eq!(s, ScsiStatus::GOOD);
                    break;
                }
            }
            Pdu::ScsiResponse(r) => {
                assert_eq!(r.itt, read);
                assert_eq!(r.status, ScsiStatus::GOOD);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(received, len);
    assert!(
        got == payload[..],
        "read back differs from what was written"
    );

    // Logout.
    let itt = c.itt();
    c.send(
        &LogoutRequest {
            immediate: true,
            reason: LogoutReason::CLOSE_SESSION,
            itt,
            cmd_sn: c.cmd_sn,
            exp_stat_sn: c.exp_stat_sn,
            ..Default::default()
        }
        .into(),
    );
    let Pdu::LogoutResponse(l) = c.recv() else {
        panic!("expected a logout response")
    };
    assert_eq!(l.itt, itt);
    assert_eq!(l.response, LogoutResponseCode::SUCCESS);
}

#[test]
fn codec_talks_to_tgtd_without_digests() {
    session(DigestConfig::NONE);
}

#[test]
fn codec_talks_to_tgtd_with_crc32c_digests() {
    session(DigestConfig::BOTH);
}
