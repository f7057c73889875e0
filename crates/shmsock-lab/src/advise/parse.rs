//! Parsing the advisor's answers: sizes (`4KiB`), rates (`30k`), durations (`500ns`, `2us`).

/// Splits `text` into a number and a lowercase unit: `"1.5MiB"` -> `(1.5, "mib")`.
fn split(text: &str) -> Result<(f64, String), String> {
    let t = text.trim();
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(t.len());
    let (digits, unit) = t.split_at(end);
    let value: f64 = digits
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{text:?} does not start with a number"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("{text:?} is not a positive number"));
    }
    Ok((value, unit.trim().to_ascii_lowercase()))
}

/// Bytes: `64`, `4K`, `4KiB`, `4KB`, `1M`, `1MiB`, `2GiB` (K, M, G are powers of 1024).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let (value, unit) = split(text)?;
    let scale: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (B, KiB, MiB, GiB)"
            ))
        }
    };
    Ok((value * scale).round() as u64)
}

/// Transfers per second: `500`, `30k`, `1.5M`, `30000/s`.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let (value, unit) = split(text)?;
    let unit = unit.trim_end_matches("/s");
    let scale = match unit {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (k, M, /s)")),
    };
    Ok(value * scale)
}

/// A duration in ns: `500ns`, `2us`, `2µs`, `1.5ms`, `1s`; a bare number is ns.
pub fn parse_duration_ns(text: &str) -> Result<u64, String> {
    let (value, unit) = split(text)?;
    let scale = match unit.as_str() {
        "" | "ns" => 1.0,
        "us" | "µs" | "μs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (ns, us, ms, s)")),
    };
    Ok((value * scale).round() as u64)
}
