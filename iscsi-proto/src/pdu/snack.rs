//! RFC 7143 section 11.16: SNACK Request.

use super::{Bhs, Lun, Opcode, SnackType};

/// SNACK Request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snack {
    /// Type (4 bits).
    pub snack_type: SnackType,
    pub lun: Lun,
    pub itt: u32,
    pub ttt: u32,
    pub exp_stat_sn: u32,
    pub beg_run: u32,
    pub run_length: u32,
}

impl Snack {
    pub fn from_bhs(b: &Bhs) -> Snack {
        Snack {
            snack_type: SnackType(b.flags() & 0x0f),
            lun: b.lun(),
            itt: b.itt(),
            ttt: b.u32_at(20),
            exp_stat_sn: b.u32_at(28),
            beg_run: b.u32_at(40),
            run_length: b.u32_at(44),
        }
    }

    pub fn to_bhs(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::SNACK);
        b.set_flags(0x80 | (self.snack_type.0 & 0x0f));
        b.set_lun(self.lun);
        b.set_itt(self.itt);
        b.set_u32_at(20, self.ttt);
        b.set_u32_at(28, self.exp_stat_sn);
        b.set_u32_at(40, self.beg_run);
        b.set_u32_at(44, self.run_length);
        b
    }
}
