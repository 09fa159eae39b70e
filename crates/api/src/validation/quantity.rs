//! Kubernetes resource quantities (`10Gi`, `500M`, `1.5e3`), read far enough to check and
//! compare them.

/// The value of a quantity, or `None` when the text is not one.
pub fn parse(text: &str) -> Option<f64> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '+' | '-')))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let digits = number.trim_start_matches(['+', '-']);
    if digits.is_empty() || number.len() - digits.len() > 1 || digits.contains(['+', '-']) || digits == "." {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        exponent => {
            let power: i32 = exponent.strip_prefix(['e', 'E'])?.parse().ok()?;
            10f64.powi(power)
        }
    };
    Some(value * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_kubernetes_reads() {
        assert_eq!(parse("1Gi"), Some(1_073_741_824.0));
        assert_eq!(parse("500M"), Some(5e8));
        assert_eq!(parse("1.5e3"), Some(1500.0));
        assert_eq!(parse("100m"), Some(0.1));
        assert_eq!(parse("-1"), Some(-1.0));
        assert!(parse("1Gi") > parse("1G"));
        for bad in ["", "Gi", "1 Gi", "1GB", "ten", "1e", "--1", "."] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
