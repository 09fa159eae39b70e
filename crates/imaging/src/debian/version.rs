//! Debian version ordering (Debian Policy §5.6.12), as dpkg implements it.

use std::cmp::Ordering;

/// Compares two Debian versions `[epoch:]upstream[-revision]`.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| compare_part(ua, ub))
        .then_with(|| compare_part(ra, rb))
}

/// Whether `version` satisfies `op constraint`.
pub fn satisfies(version: &str, op: super::relation::Op, constraint: &str) -> bool {
    use super::relation::Op;
    let ord = compare(version, constraint);
    match op {
        Op::Lt => ord == Ordering::Less,
        Op::Le => ord != Ordering::Greater,
        Op::Eq => ord == Ordering::Equal,
        Op::Ge => ord != Ordering::Less,
        Op::Gt => ord == Ordering::Greater,
    }
}

fn split(version: &str) -> (u64, &str, &str) {
    let (epoch, rest) = match version.split_once(':') {
        Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
            (e.parse().unwrap_or(u64::MAX), rest)
        }
        _ => (0, version),
    };
    match rest.rsplit_once('-') {
        Some((upstream, revision)) => (epoch, upstream, revision),
        None => (epoch, rest, ""),
    }
}

/// Sort weight of one character in a non-digit run: `~` before the end of the string,
/// the end before letters, letters before everything else.
fn weight(c: Option<u8>) -> i32 {
    match c {
        Some(b'~') => -1,
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

fn compare_part(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    while !a.is_empty() || !b.is_empty() {
        // Non-digit prefix, character by character.
        loop {
            let (ca, cb) = (a.first().copied(), b.first().copied());
            let a_digit = ca.is_none_or(|c| c.is_ascii_digit());
            let b_digit = cb.is_none_or(|c| c.is_ascii_digit());
            if a_digit && b_digit {
                break;
            }
            let (wa, wb) = (weight(ca), weight(cb));
            if wa != wb {
                return wa.cmp(&wb);
            }
            a = a.get(1..).unwrap_or_default();
            b = b.get(1..).unwrap_or_default();
        }
        // Digit run, numerically (leading zeros ignored, any length).
        let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
        let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let (na, ra) = a.split_at(da);
        let (nb, rb) = b.split_at(db);
        let trim = |n: &[u8]| -> Vec<u8> { n.iter().copied().skip_while(|c| *c == b'0').collect() };
        let (na, nb) = (trim(na), trim(nb));
        let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(&nb));
        if ord != Ordering::Equal {
            return ord;
        }
        a = ra;
        b = rb;
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::{Equal, Greater, Less};

    #[test]
    fn orders_like_dpkg() {
        let cases = [
            ("1.0", "1.0", Equal),
            ("1.0", "1.1", Less),
            ("1.10", "1.9", Greater),
            ("1:1.0", "2.0", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1.0~~", "1.0~", Less),
            ("1.0", "1.0a", Less),
            ("1.0a", "1.0+", Less),
            ("1.0-1", "1.0-2", Less),
            ("1.0-10", "1.0-9", Greater),
            ("18~rc1-1.pgdg13+1", "18.0-1.pgdg13+1", Less),
            ("19~~devel-1", "19~beta1-1", Less),
            ("15.20-0+deb12u1", "15.18-0+deb12u1", Greater),
            ("2.41-12+deb13u5", "2.41-12", Greater),
            ("1:1.2.13.dfsg-1", "1.2.13.dfsg-3", Greater),
            ("0001", "1", Equal),
            ("1.0-1-2", "1.0-1-10", Less),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn constraints() {
        use crate::debian::relation::Op;
        assert!(satisfies("2.36-9", Op::Ge, "2.34"));
        assert!(!satisfies("2.36-9", Op::Lt, "2.36"));
        assert!(satisfies("275~", Op::Lt, "275"));
        assert!(satisfies("18.6-3", Op::Eq, "18.6-3"));
        assert!(satisfies("1:1.1.4", Op::Gt, "1.1.4"));
    }
}
