//! Arbitrary CDBs and data-out never make the logical unit panic, and every failure carries
//! decodable sense data.

use bytes::Bytes;
use iscsi_proto::scsi::ScsiStatus;
use iscsi_target::lu::{LogicalUnit, LuConfig, Nexus};
use proptest::prelude::*;

const OPCODES: &[u8] = &[
    0x00, 0x03, 0x08, 0x0A, 0x12, 0x15, 0x1A, 0x1B, 0x1E, 0x25, 0x28, 0x2A, 0x2E, 0x2F, 0x34, 0x35,
    0x37, 0x41, 0x42, 0x55, 0x5A, 0x5E, 0x5F, 0x88, 0x89, 0x8A, 0x8B, 0x8E, 0x8F, 0x90, 0x91, 0x93,
    0x9E, 0xA0, 0xA3, 0xA8, 0xAA, 0xAE, 0xAF, 0xB7, 0xFF,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn execute_never_panics(
        op in proptest::sample::select(OPCODES),
        rest in proptest::collection::vec(any::<u8>(), 15),
        small in any::<bool>(),
        data in proptest::collection::vec(any::<u8>(), 0..1200),
    ) {
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(64 << 10).unwrap();
        let lu = LogicalUnit::open(LuConfig::new(f.path(), 0)).unwrap();
        let mut cdb = vec![op];
        cdb.extend_from_slice(&rest);
        if small {
            // Keep LBAs and lengths small so commands reach the backing store.
            for b in &mut cdb[2..9] {
                *b &= 0x00;
            }
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let n = Nexus::new("iqn.i", [0; 6], "iqn.t", 1);
        let o = rt.block_on(lu.execute(&n, &cdb, Bytes::from(data)));
        if o.status == ScsiStatus::CHECK_CONDITION {
            prop_assert!(o.decoded_sense().is_some());
        }
        prop_assert!(o.data_in.len() as u64 <= 16 << 20);
    }
}
