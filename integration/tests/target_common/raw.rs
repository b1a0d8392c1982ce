//! A raw-socket iSCSI initiator for tests that need to misbehave or look at single PDUs.

use bytes::{Bytes, BytesMut};
use iscsi_proto::digest::DigestConfig;
use iscsi_proto::framing::PduDecoder;
use iscsi_proto::limits::Limits;
use iscsi_proto::pdu::{LoginRequest, Lun, NopOut, Pdu, ScsiCommand, Stage, TaskAttr};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::{INITIATOR, IQN};

pub struct Raw {
    pub digests: DigestConfig,
    pub s: TcpStream,
    pub buf: BytesMut,
    pub dec: PduDecoder,
    pub cmd_sn: u32,
    pub itt: u32,
    /// Why the last receive came back empty (for failure messages).
    pub ended: Option<String>,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        Raw {
            digests: DigestConfig::NONE,
            s,
            buf: BytesMut::new(),
            dec: PduDecoder::new(
                Limits::with_max_recv_data_segment_length(1 << 20),
                DigestConfig::NONE,
            ),
            cmd_sn: 1,
            itt: 1,
            ended: None,
        }
    }

    pub fn send(&mut self, p: &Pdu) {
        self.s.write_all(&p.to_bytes(self.digests)).unwrap();
    }

    pub fn send_raw(&mut self, b: &[u8]) {
        let _ = self.s.write_all(b);
    }

    /// The next PDU, or None when the target closed the connection (or `wait` passed).
    pub fn recv_within(&mut self, wait: Duration) -> Option<Pdu> {
        self.s.set_read_timeout(Some(wait)).unwrap();
        loop {
            if let Some(p) = self
                .dec
                .decode(&mut self.buf)
                .expect("target sent a bad PDU")
            {
                return Some(p);
            }
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) => {
                    self.ended = Some("closed by the target".into());
                    return None;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                // A signal (a child of another test exiting) is not the target's answer.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.ended = Some(format!("read failed: {e}"));
                    return None;
                }
            }
        }
    }

    pub fn recv(&mut self) -> Option<Pdu> {
        self.recv_within(Duration::from_secs(10))
    }

    /// Whether the target closes the connection within 10 s (PDUs it sends first are skipped).
    pub fn closed(&mut self) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if self.recv().is_none() {
                return true;
            }
        }
        false
    }

    pub fn login(addr: SocketAddr) -> Raw {
        Raw::login_with(addr, None, false)
    }

    /// Logs in with `isid` (a fresh one when None), optionally with CRC32C digests.
    pub fn login_with(addr: SocketAddr, isid: Option<[u8; 6]>, digests: bool) -> Raw {
        let mut r = Raw::connect(addr);
        let d = if digests { "CRC32C" } else { "None" };
        let text = format!(
            "InitiatorName={INITIATOR}\0TargetName={IQN}\0SessionType=Normal\0HeaderDigest={d}\0\
             DataDigest={d}\0MaxRecvDataSegmentLength=262144\0ImmediateData=Yes\0InitialR2T=Yes\0\
             MaxBurstLength=262144\0FirstBurstLength=65536\0"
        );
        let mut data = Bytes::from(text.into_bytes());
        // A distinct ISID per session: the same ISID would reinstate (replace) a session.
        static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(1);
        let n = NEXT
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_be_bytes();
        let isid = isid.unwrap_or([0x80, 0, 0, 0, n[0], n[1]]);
        for _ in 0..4 {
            r.send(&Pdu::LoginRequest(LoginRequest {
                transit: true,
                csg: Stage(1),
                nsg: Stage(3),
                isid,
                itt: 0,
                cmd_sn: r.cmd_sn,
                data: std::mem::take(&mut data),
                ..Default::default()
            }));
            match r.recv() {
                Some(Pdu::LoginResponse(resp)) => {
                    assert_eq!(resp.status.0, 0, "login refused: {resp:?}");
                    if resp.transit && resp.nsg == Stage(3) {
                        if digests {
                            r.digests = DigestConfig::BOTH;
                            r.dec.set_digests(DigestConfig::BOTH);
                        }
                        return r;
                    }
                }
                other => panic!("no login response: {other:?} ({:?})", r.ended),
            }
        }
        panic!("login did not complete");
    }

    pub fn scsi(&mut self, cdb: &[u8], edtl: u32, read: bool, write: bool, data: Bytes) -> u32 {
        let itt = self.itt;
        self.itt += 1;
        let mut c = ScsiCommand {
            final_bit: true,
            read,
            write,
            attr: TaskAttr::SIMPLE,
            lun: Lun::default(),
            itt,
            expected_data_transfer_length: edtl,
            cmd_sn: self.cmd_sn,
            data,
            ..Default::default()
        };
        c.set_cdb(cdb);
        self.cmd_sn += 1;
        self.send(&Pdu::ScsiCommand(c));
        itt
    }

    /// READ(10) of `blocks` 512-byte blocks at `lba`: the Data-In payloads in order, after
    /// GOOD status (on the last Data-In or in a SCSI Response).
    pub fn read10(&mut self, lba: u32, blocks: u16) -> Vec<u8> {
        let (at, n) = (lba.to_be_bytes(), blocks.to_be_bytes());
        let cdb = [0x28, 0, at[0], at[1], at[2], at[3], 0, n[0], n[1], 0];
        let itt = self.scsi(&cdb, u32::from(blocks) * 512, true, false, Bytes::new());
        let mut got = Vec::new();
        loop {
            match self.recv() {
                Some(Pdu::DataIn(d)) if d.itt == itt => {
                    got.extend_from_slice(&d.data);
                    if let Some(status) = d.status {
                        assert_eq!(status.0, 0, "READ at {lba}");
                        return got;
                    }
                }
                Some(Pdu::ScsiResponse(r)) if r.itt == itt => {
                    assert_eq!(r.status.0, 0, "READ at {lba}");
                    return got;
                }
                other => panic!("unexpected {other:?} while reading at {lba}"),
            }
        }
    }

    /// INQUIRY answered with 36+ bytes of data and GOOD status.
    pub fn inquiry_works(&mut self) -> bool {
        let itt = self.scsi(&[0x12, 0, 0, 0, 96, 0], 96, true, false, Bytes::new());
        loop {
            match self.recv() {
                Some(Pdu::DataIn(d)) if d.itt == itt => {
                    if let Some(status) = d.status {
                        return status.0 == 0 && d.buffer_offset + d.data.len() as u32 >= 36;
                    }
                }
                Some(Pdu::ScsiResponse(r)) if r.itt == itt => return r.status.0 == 0,
                Some(_) => continue,
                None => return false,
            }
        }
    }

    pub fn nop_works(&mut self) -> bool {
        let itt = self.itt;
        self.itt += 1;
        self.send(&Pdu::NopOut(NopOut {
            immediate: true,
            itt,
            ttt: 0xffff_ffff,
            cmd_sn: self.cmd_sn,
            data: Bytes::from_static(b"ping"),
            ..Default::default()
        }));
        loop {
            match self.recv() {
                Some(Pdu::NopIn(n)) if n.itt == itt => return &n.data[..] == b"ping",
                Some(_) => continue,
                None => return false,
            }
        }
    }
}
