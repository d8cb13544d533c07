//! The scalar values of a policy, read from the TOML tree: counts, fuel, sizes (`64
//! MiB`, or bytes) and durations (`5s`), each checked against its bounds.
//!
//! Each reader returns the value or the message that says what is wrong with it and
//! how to write it; the parser reports the message at the value's line and column.
//! Sizes written in decimal units (`64 MB`) are accepted, with a warning naming the
//! binary unit that was probably meant.

use toml::de::DeValue;

/// "a string", "an integer", ...
pub(super) fn a_type(value: &DeValue<'_>) -> String {
    let name = value.type_str();
    let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {name}")
}

/// The message for `key`'s value when it is not `expected`.
pub(super) fn wrong_type(value: &DeValue<'_>, key: &str, expected: &str) -> String {
    let found = a_type(value);
    format!("`{key}` must be {expected}, found {found}")
}

/// A count of at least 1 that fits in 32 bits.
pub(super) fn count(value: &DeValue<'_>, key: &str) -> Result<u32, String> {
    let DeValue::Integer(i) = value else {
        return Err(wrong_type(value, key, "a positive integer"));
    };
    match u32::from_str_radix(i.as_str(), i.radix()) {
        Ok(0) => Err(format!(
            "`{key}` must be at least 1; to give a plugin no network, leave its `net.allow` empty"
        )),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "`{key}` must be an integer from 1 to {}, found `{i}`",
            u32::MAX
        )),
    }
}

/// `fuel`: a positive integer.
pub(super) fn fuel(value: &DeValue<'_>) -> Result<u64, String> {
    let DeValue::Integer(i) = value else {
        return Err(wrong_type(value, "fuel", "a positive integer"));
    };
    match u64::from_str_radix(i.as_str(), i.radix()) {
        Ok(0) => Err("`fuel` must be at least 1: a limit of 0 would let no plugin run".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`fuel` must be a positive integer, found `{i}`")),
    }
}

/// A size: a string like `64 MiB` (parsed by `bytesize`) or an integer of bytes, more
/// than 0 and at most `max`. Also a warning when the string uses a decimal unit.
pub(super) fn size(
    value: &DeValue<'_>,
    key: &str,
    max: u64,
) -> (Option<String>, Result<u64, String>) {
    let mut warning = None;
    let (bytes, shown) = match value {
        DeValue::String(s) => match s.trim().parse::<bytesize::ByteSize>() {
            Ok(b) if !s.trim().is_empty() => {
                let unit: String = s
                    .trim()
                    .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '_')
                    .trim()
                    .to_ascii_lowercase();
                if !unit.is_empty() && unit != "b" && !unit.contains('i') {
                    let binary = format!(
                        "{} {}iB",
                        s.trim()
                            .trim_end_matches(|c: char| c.is_ascii_alphabetic())
                            .trim(),
                        unit.chars().next().unwrap_or('m').to_ascii_uppercase()
                    );
                    warning = Some(format!(
                        "`{key}` = `{s}` is {} bytes: `{unit}` is a decimal unit; write `{binary}` for {} bytes",
                        b.as_u64(),
                        binary
                            .parse::<bytesize::ByteSize>()
                            .map_or(0, |b| b.as_u64())
                    ));
                }
                (b.as_u64(), s.to_string())
            }
            _ => {
                return (
                    warning,
                    Err(format!(
                        "`{key}` is not a size: `{s}`; write a number and a unit, like `64 MiB` or `512 KiB`"
                    )),
                );
            }
        },
        DeValue::Integer(i) => match u64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => (n, i.to_string()),
            Err(_) => {
                return (
                    warning,
                    Err(format!("`{key}` must not be negative, found `{i}`")),
                );
            }
        },
        _ => return (warning, Err(wrong_type(value, key, "a size like `64 MiB`"))),
    };
    if bytes == 0 {
        return (
            warning,
            Err(format!(
                "`{key}` must be more than 0 bytes, found `{shown}`"
            )),
        );
    }
    if bytes > max {
        let why = if key == "stack" {
            "the host thread's stack must be larger than the wasm stack"
        } else {
            "a wasm32 plugin cannot use more"
        };
        return (
            warning,
            Err(format!(
                "`{key}` of `{shown}` is more than the maximum of {}: {why}",
                format_size(max)
            )),
        );
    }
    (warning, Ok(bytes))
}

/// A duration string like `5s` or `1m 30s` (parsed by `humantime`), longer than 0.
pub(super) fn duration(value: &DeValue<'_>, key: &str) -> Result<std::time::Duration, String> {
    let DeValue::String(s) = value else {
        let hint = if matches!(value, DeValue::Integer(_)) {
            ": write a unit, like `5s` or `500ms`"
        } else {
            ""
        };
        let found = a_type(value);
        return Err(format!(
            "`{key}` must be a duration like `5s`, found {found}{hint}"
        ));
    };
    match humantime::parse_duration(s.trim()) {
        Ok(d) if d.is_zero() => Err(format!("`{key}` must be longer than 0, found `{s}`")),
        Ok(d) => Ok(d),
        Err(e) => Err(format!(
            "`{key}` is not a duration: `{s}` ({e}); write it like `5s`, `500ms` or `1m 30s`"
        )),
    }
}

/// `bytes` as `64 MiB`, `512 KiB` or `100 bytes`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (factor, unit) in UNITS {
        if bytes >= factor && bytes.is_multiple_of(factor) {
            return format!("{} {unit}", bytes / factor);
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_size_prefers_exact_units() {
        assert_eq!(format_size(64 << 20), "64 MiB");
        assert_eq!(format_size(8 << 30), "8 GiB");
        assert_eq!(format_size(1536), "1536 bytes");
        assert_eq!(format_size(1000), "1000 bytes");
    }
}
