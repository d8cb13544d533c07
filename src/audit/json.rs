//! JSON text for audit records.
//!
//! serde_json already escapes `"`, `\` and every C0 control character (newline, ESC,
//! ...), so no string can end a record early or smuggle a terminal escape sequence.
//! This formatter also escapes what serde_json leaves alone but a terminal or a reader
//! may still act on: DEL and the C1 controls (U+009B is a one-character CSI on many
//! terminals), the bidirectional overrides that reorder text on screen ("Trojan
//! Source"), and the Unicode line and paragraph separators.
//!
//! # Security
//!
//! Plugin-controlled strings (names, declared paths, paths a plugin passed to WASI,
//! error messages) reach the log only through [`to_string`], which a run's records
//! reach through `super::redact::to_json` (the run's granted values redacted first).

use serde::Serialize;
use std::io::{self, Write};

/// Serializes `value` as compact JSON with the extra escapes of this module.
pub(crate) fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, SafeFormatter);
    value.serialize(&mut ser)?;
    String::from_utf8(out).map_err(<serde_json::Error as serde::ser::Error>::custom)
}

/// Whether `c` is written as a `\u` escape even though JSON allows it raw: the one
/// list warden's terminal and `--json` output use too.
fn must_escape(c: char) -> bool {
    crate::escape::is_disguising(c)
}

/// serde_json's compact formatter with the extra escapes of this module.
pub(crate) struct SafeFormatter;

impl serde_json::ser::Formatter for SafeFormatter {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if fragment.bytes().all(|b| b < 0x7f) {
            return writer.write_all(fragment.as_bytes());
        }
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if must_escape(c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_quotes_and_newlines_stay_inside_one_string() {
        let hostile = "a\"b\nc\u{1b}[2Jd\u{9b}31me\u{7f}f\u{202e}g\u{2028}h\\";
        let json = to_string(hostile).unwrap();
        assert_eq!(
            json,
            r#""a\"b\nc\u001b[2Jd\u009b31me\u007ff\u202eg\u2028h\\""#
        );
        assert!(json.bytes().all(|b| (0x20..0x7f).contains(&b)));
        let back: String = serde_json::from_str(&json).unwrap();
        assert_eq!(back, hostile);
    }

    #[test]
    fn ordinary_unicode_is_kept() {
        assert_eq!(to_string("naïve ☃").unwrap(), "\"naïve ☃\"");
    }
}
