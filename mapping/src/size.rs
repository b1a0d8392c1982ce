//! Human-readable byte sizes on the command line: `4096`, `64M`, `64MiB`, `1G`, `512K`.
//!
//! Both the SI-looking suffixes (K, M, G, T) and the IEC ones (KiB, MiB, GiB, TiB) mean powers of
//! 1024, as disk tools (qemu-img, dd, fio) do; `KB`/`MB`/`GB` are accepted with the same meaning.

use thiserror::Error;

/// Why a size string was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SizeError {
    #[error("size is empty")]
    Empty,
    #[error("size {0:?} does not start with a decimal number")]
    NoNumber(String),
    #[error("size {0:?} has an unknown suffix (use bytes or K, M, G, T, KiB, MiB, GiB, TiB)")]
    BadSuffix(String),
    #[error("size {0:?} does not fit in 64 bits")]
    Overflow(String),
}

/// Parses `N[suffix]` into bytes.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(SizeError::Empty);
    }
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    if digits_end == 0 {
        return Err(SizeError::NoNumber(text.to_string()));
    }
    let n: u64 = t[..digits_end]
        .parse()
        .map_err(|_| SizeError::Overflow(text.to_string()))?;
    let suffix = t[digits_end..].trim();
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(SizeError::BadSuffix(text.to_string())),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| SizeError::Overflow(text.to_string()))
}

/// Formats a byte count with the largest IEC suffix that divides it exactly.
pub fn format_size(bytes: u64) -> String {
    for (shift, name) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes != 0 && bytes.is_multiple_of(1u64 << shift) {
            return format!("{}{}", bytes >> shift, name);
        }
    }
    format!("{bytes}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("256KiB"), Ok(256 << 10));
        assert_eq!(parse_size(" 2 GiB "), Ok(2 << 30));
        assert_eq!(parse_size("3T"), Ok(3 << 40));
    }

    #[test]
    fn refusals() {
        assert_eq!(parse_size(""), Err(SizeError::Empty));
        assert!(matches!(parse_size("M"), Err(SizeError::NoNumber(_))));
        assert!(matches!(parse_size("12Q"), Err(SizeError::BadSuffix(_))));
        assert!(matches!(
            parse_size("99999999999999999999"),
            Err(SizeError::Overflow(_))
        ));
        assert!(matches!(
            parse_size("17179869184G"),
            Err(SizeError::Overflow(_))
        ));
    }

    #[test]
    fn format_round_trips() {
        for s in [512u64, 4096, 1 << 20, 64 << 20, 3 << 30, 1000] {
            assert_eq!(parse_size(&format_size(s)), Ok(s));
        }
    }
}
