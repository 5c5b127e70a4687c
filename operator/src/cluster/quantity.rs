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
    fn refuses_what_kubernetes_refuses() {
        for q in [
            "", "Gi", "10GB", "10 Gi", "ten", "1.2.3", ".", "1e", "1Kii", "--1",
        ] {
            assert!(!is_quantity(q), "{q:?} is not a quantity");
        }
    }
}
