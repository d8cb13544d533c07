//! Escaping of guest-controlled text before it reaches a terminal.
//!
//! A plugin controls its name, its messages and its output. Printed raw, a terminal
//! escape sequence in any of them could rewrite what the operator sees (hide an error,
//! fake a prompt). [`escape_text`] keeps printable text, newlines and tabs, and turns
//! every other control character into a visible `\u{..}` escape.

use std::borrow::Cow;

/// `text` with every control character except `\n` and `\t` made visible.
pub fn escape_text(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `text` on one line: newlines and tabs escaped too (for names and one-line fields).
pub fn escape_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn needs_escape(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
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
    }
}
