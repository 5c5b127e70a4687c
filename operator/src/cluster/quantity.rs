//! Whether a string is a Kubernetes quantity (`10Gi`, `500M`, `1.5e3`), so a
//! bad `storage.size` is named by the operator instead of surfacing as a
//! StatefulSet the API server refuses.

/// The suffixes Kubernetes accepts: binary SI, decimal SI (and none).
const SUFFIXES: [&str; 13] = [
    "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "m", "k", "M", "G", "T", "P", "E",
];

/// Kubernetes' quantity grammar: `<sign?><number><suffix>`, where a number
/// is `1`, `1.5`, `1.` or `.5` and the suffix is a binary or decimal SI
/// suffix, an exponent (`e3`, `E-2`) or nothing.
pub fn is_quantity(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let number_end = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_end);
    is_number(number) && is_suffix(suffix)
}

/// The value a quantity stands for (`1.5Gi` → 1610612736), for comparing a
/// quantity zookube sent with the canonical form the API server stores.
pub fn quantity_value(text: &str) -> Option<f64> {
    if !is_quantity(text) {
        return None;
    }
    let (sign, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, text.strip_prefix('+').unwrap_or(text)),
    };
    let number_end = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_end);
    let number: f64 = if number.ends_with('.') {
        number.trim_end_matches('.').parse().ok()?
    } else if number.starts_with('.') {
        format!("0{number}").parse().ok()?
    } else {
        number.parse().ok()?
    };
    let scale = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent => 10f64.powi(exponent[1..].parse().ok()?),
    };
    Some(sign * number * scale)
}

/// Whether two quantities stand for the same value (`1.5Gi` and `1536Mi`).
pub fn same_quantity(a: &str, b: &str) -> bool {
    match (quantity_value(a), quantity_value(b)) {
        (Some(x), Some(y)) => x == y || (x - y).abs() <= x.abs().max(y.abs()) * 1e-12,
        _ => false,
    }
}

fn is_number(number: &str) -> bool {
    let mut parts = number.splitn(2, '.');
    let whole = parts.next().unwrap_or_default();
    let fraction = parts.next();
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    match fraction {
        None => !whole.is_empty() && digits(whole),
        Some(fraction) => {
            digits(whole) && digits(fraction) && !(whole.is_empty() && fraction.is_empty())
        }
    }
}

fn is_suffix(suffix: &str) -> bool {
    if suffix.is_empty() || SUFFIXES.contains(&suffix) {
        return true;
    }
    match suffix.strip_prefix(['e', 'E']) {
        Some(exponent) => {
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_quantity;

    #[test]
    fn accepts_what_kubernetes_accepts() {
        for q in [
            "10Gi", "500Mi", "1", "1.5", "1.", ".5", "100m", "1k", "2E", "1e3", "1E-2", "+1Ti",
        ] {
            assert!(is_quantity(q), "{q} is a quantity");
        }
    }

    #[test]
    fn canonical_forms_have_the_same_value() {
        use super::same_quantity;
        for (sent, stored) in [
            ("1.5Gi", "1536Mi"),
            ("0.5", "500m"),
            ("1000Mi", "1000Mi"),
            ("1e3", "1k"),
            ("2048Ki", "2Mi"),
        ] {
            assert!(same_quantity(sent, stored), "{sent} = {stored}");
        }
        assert!(!same_quantity("1Gi", "1G"));
        assert!(!same_quantity("1Gi", "big"));
    }

    #[test]
    fn refuses_what_kubernetes_refuses() {
        for q in [
            "", "Gi", "10GB", "10 Gi", "ten", "1.2.3", ".", "1e", "1Kii", "--1",
        ] {
            assert!(!is_quantity(q), "{q:?} is not a quantity");
        }
    }
}
