//! Escaping of guest-controlled text before it reaches a terminal, a JSON reader or a
//! TOML file.
//!
//! A plugin controls its name, version, about text, declared paths and env patterns,
//! its messages and its output. Printed raw, a terminal escape sequence in any of them
//! could rewrite what the operator sees (hide an error, fake a prompt, clear the
//! screen), and a bidirectional override could reorder a line on screen ("Trojan
//! Source"). Every such string goes through this module on its way out:
//!
//! - [`escape_text`] keeps printable text, newlines and tabs, and turns every other
//!   control character (C0, DEL, C1) and every [`is_disguising`] character into a
//!   visible `\u{..}` escape;
//! - [`escape_line`] does the same for one-line fields, newlines and tabs included;
//! - [`json_text`] prints JSON whose strings carry the [`is_disguising`] characters as
//!   `\uXXXX` escapes (serde_json escapes only C0, `"` and `\`);
//! - [`toml_string`] writes a TOML value: a basic string whose C0, DEL, C1 and
//!   [`is_disguising`] characters are `\uXXXX` escapes (TOML comments take
//!   [`escape_line`]).
//!
//! [`is_disguising`] is the one list of characters JSON allows raw but a terminal or a
//! reader may act on; the audit log's JSON (`src/audit/json.rs`) uses it too.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` is DEL, a C1 control (U+0080–U+009F: U+009B is a one-character CSI on
/// many terminals), a bidirectional control (U+061C, U+200E, U+200F, U+202A–U+202E,
/// U+2066–U+2069) or the Unicode line or paragraph separator (U+2028, U+2029).
///
/// JSON allows all of them raw inside strings; warden never prints them raw.
pub fn is_disguising(c: char) -> bool {
    matches!(
        c,
        '\u{7f}'..='\u{9f}'
            | '\u{61c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

/// Whether `c` is escaped before a terminal sees it (apart from `\n` and `\t`, which
/// [`escape_text`] keeps).
fn is_unsafe(c: char) -> bool {
    c.is_control() || is_disguising(c)
}

/// `text` with every control character except `\n` and `\t`, and every
/// [`is_disguising`] character, made visible as `\u{..}`.
pub fn escape_text(text: &str) -> Cow<'_, str> {
    let keep = |c: char| c == '\n' || c == '\t';
    if !text.chars().any(|c| is_unsafe(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) && !keep(c) {
            let _ = write!(out, "{}", c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `text` on one line: as [`escape_text`], with newlines and tabs escaped too (`\n`,
/// `\t`), for names and one-line fields.
pub fn escape_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\t' | '\r' => {
                let _ = write!(out, "{}", c.escape_default());
            }
            c if is_unsafe(c) => {
                let _ = write!(out, "{}", c.escape_unicode());
            }
            c => out.push(c),
        }
    }
    out
}

/// `value` as JSON text (indented when `pretty`), with every [`is_disguising`]
/// character written as a `\uXXXX` escape. This is how every `--json` output is
/// printed.
///
/// serde_json already escapes `"`, `\` and C0 controls. The characters escaped here
/// are all above U+007E, so in serialized JSON they can only stand inside a string
/// (never as structure or whitespace): replacing each with its `\u` escape keeps the
/// text valid JSON with the same value.
pub fn json_text(value: &serde_json::Value, pretty: bool) -> String {
    let text = if pretty {
        format!("{value:#}")
    } else {
        value.to_string()
    };
    if !text.chars().any(is_disguising) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_disguising(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `text` as a TOML basic string (`"..."`) that parses back to exactly `text`: `"` and
/// `\` are escaped, and so is every C0 control, DEL, C1 control and [`is_disguising`]
/// character, as `\uXXXX`. Nothing in `text` can end the string, start a key or a
/// table, or reach the file (and the terminal that shows it) raw.
///
/// Always a basic string, never a literal one (`'...'` has no escapes).
pub fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `text` cut to at most `max` bytes at a character boundary, marked `...[cut]` when
/// cut (for plugin-controlled text a record or a message keeps).
pub fn cut(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}...[cut]", &text[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_become_visible() {
        assert_eq!(escape_text("ok\n\tfine"), "ok\n\tfine");
        assert_eq!(escape_text("\u{1b}[2Jgone"), "\\u{1b}[2Jgone");
        assert_eq!(escape_text("a\rb\u{9b}c"), "a\\u{d}b\\u{9b}c");
        assert_eq!(escape_line("x\ny\"z"), "x\\ny\"z");
        assert_eq!(escape_line("a\rb\u{7}c\u{1b}"), "a\\rb\\u{7}c\\u{1b}");
    }

    #[test]
    fn c1_and_bidi_controls_and_separators_become_visible() {
        for c in [
            '\u{7f}', '\u{80}', '\u{85}', '\u{9b}', '\u{9f}', '\u{61c}', '\u{200e}', '\u{200f}',
            '\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}', '\u{2028}', '\u{2029}',
        ] {
            let text = format!("a{c}b");
            let want = format!("a\\u{{{:x}}}b", u32::from(c));
            assert_eq!(escape_text(&text), want, "{:x}", u32::from(c));
            assert_eq!(escape_line(&text), want, "{:x}", u32::from(c));
        }
        // Ordinary non-ASCII text is kept, and so are the neighbours of the ranges.
        for text in ["naïve ☃ 日本", "\u{a0}\u{200d}\u{2030}\u{2065}\u{206a}"] {
            assert_eq!(escape_text(text), text);
            assert_eq!(escape_line(text), text);
        }
    }

    #[test]
    fn escaping_twice_changes_nothing_more() {
        let hostile = "\u{1b}]0;pwned\u{7}\r\u{202e}txt.exe\u{9b}2J\n";
        let once = escape_text(hostile).into_owned();
        assert_eq!(escape_text(&once), once);
        let line = escape_line(hostile);
        assert_eq!(escape_line(&line), line);
        assert!(!line.chars().any(|c| c.is_control() || is_disguising(c)));
    }

    #[test]
    fn toml_strings_escape_controls_and_bidi_and_parse_back_unchanged() {
        let hostile = "a\"b\\c\nd\u{1b}[2J\u{7f}\u{85}\u{9b}31m\u{202e}\u{2066}\u{2028}'''é☃\r\t";
        let text = toml_string(hostile);
        assert!(text.starts_with('"') && text.ends_with('"'), "{text}");
        assert!(
            !text.chars().any(|c| c.is_control() || is_disguising(c)),
            "{text:?}"
        );
        for escape in [
            "\\u001b", "\\u007f", "\\u0085", "\\u009b", "\\u202e", "\\u000a",
        ] {
            assert!(text.contains(escape), "{escape} in {text}");
        }
        let doc: toml::Table = format!("k = {text}").parse().unwrap();
        assert_eq!(doc["k"].as_str(), Some(hostile));
        assert_eq!(toml_string("plain"), "\"plain\"");
    }

    #[test]
    fn json_text_escapes_c1_bidi_and_separators_and_keeps_the_value() {
        let hostile = "a\u{9b}2J\u{202e}b\u{2028}c\u{61c}\u{2066}\u{1b}\"\\ é";
        let value = serde_json::json!({ "output": hostile, "k\u{202e}": [hostile] });
        for pretty in [false, true] {
            let text = json_text(&value, pretty);
            assert!(
                !text
                    .chars()
                    .any(|c| c.is_control() && c != '\n' && c != ' '),
                "{text:?}"
            );
            assert!(!text.chars().any(is_disguising), "{text:?}");
            assert!(
                text.contains("\\u009b") && text.contains("\\u202e"),
                "{text}"
            );
            assert!(text.contains('é'));
            let back: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back, value);
        }
        assert_eq!(json_text(&serde_json::json!("plain"), false), "\"plain\"");
    }
}
