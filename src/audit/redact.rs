//! Redaction: the one choke point between a run's granted variables and every string
//! the audit log writes about the run, or `warden run` prints from its records.
//!
//! A plugin that was granted a variable knows its value, and can put it in any string
//! warden records about it: a path it asks to open, a URL, a header name, a result
//! that does not decode (its error quotes the plugin's bytes), its own version. So
//! redaction is not done field by field (each new field would be a new leak): the
//! audit layer serializes every record of a run through `to_json`, which passes
//! every string value of the record, whatever field it is in, through the run's
//! [`Redactor`] after the record is composed and before it is JSON text
//! ([`super::log::AuditRun::set_redactor`]). Object keys are warden's own and are
//! left as they are (changing one could repeat a key, which `verify` rejects).
//!
//! Size: the one choke point, the forms a value takes on its way into a record
//! (percent-encoded, in another case, URL-normalized, cut) and the unit tests that pin
//! each form, kept together so that no form is read without its test.
//!
//! # What is matched
//!
//! [`Redactor::redact`] replaces, by `<redacted:NAME>`, each granted value of at
//! least [`MIN_REDACTED_LEN`] bytes and the forms it takes on its way into a record:
//!
//! - percent-encoded, in either hex case, any subset of its bytes (a URL parser
//!   encodes some characters, and a plugin may encode the others itself);
//! - in another ASCII case (a URL parser lower-cases the host);
//! - when the value is itself a URL, the forms a URL normalizer gives it (the
//!   default port added or dropped, as records and browsers write it);
//! - cut at a length cap: any prefix of at least [`MIN_CUT_PREFIX`] bytes right
//!   before the `...[cut]` mark that [`crate::escape::cut`] leaves (after any
//!   replacement character or half of a `%XX` escape the cut left behind).
//!
//! A string that is exactly one of warden's own words (an outcome, a capability, a
//! WASI call, a mode: see `is_vocabulary`) is left as it is, whatever the granted
//! values, so that the log stays readable by its tools.
//!
//! Matches are found in one pass per value form (Knuth-Morris-Pratt, linear in the
//! string), overlapping matches are merged and named after the longest value, and a
//! string in which more than [`MAX_REDACTIONS`] places were redacted is cut after the
//! next one, so redaction adds at most [`MAX_GROWTH`] bytes to a string. It never
//! panics: every index comes from the string itself.
//!
//! Not matched: other encodings (base64, punycode of a non-ASCII host name, a value
//! a URL parser changed otherwise: split by its dot-segment or backslash rules, or
//! with the spaces at the ends of a URL dropped), and a value shorter than four
//! bytes, which would redact ordinary words.
//!
//! # The terminal report
//!
//! `warden run -v` and `warden run --json` print record-bound strings (decisions,
//! runtime denials, effects, the error that ends a run) from the same structures the
//! audit layer records, and through the same run's redactor: the host keeps the
//! [`Redactor`] it gave the run's records ([`crate::host::Plugin::redactor`]), and the
//! command line turns every record-bound value into JSON with [`Redactor::to_value`],
//! the very serializer the log uses, before it prints any of it. This was chosen over
//! handing back the records `run_finished` wrote because the report shows more than
//! the log keeps (every runtime denial, not the first 32) and the load's decisions,
//! which are written long before; and over redacting the report in place because a
//! decision or an error is structured data the host still uses. The plugin's own
//! output (stdout, stderr, its result or error message) is not a record and is
//! printed as it is.
//!
//! # Security
//!
//! This is the boundary between a granted secret and the log (`AUDIT.md`, promise 5).
//! The granted values live only in the [`Redactor`]; its `Debug` shows names only.

use serde::Serialize;
use serde_json::ser::{CharEscape, CompactFormatter, Formatter};
use std::borrow::Cow;
use std::io::{self, Write};

/// Shortest value redacted, in bytes: shorter ones would redact ordinary words.
pub const MIN_REDACTED_LEN: usize = 4;

/// Shortest prefix of a value redacted before a cut mark, in bytes.
pub const MIN_CUT_PREFIX: usize = 8;

/// What [`crate::escape::cut`] appends to text it cut.
pub const CUT_MARK: &str = "...[cut]";

/// Places redacted in one string before the rest of it is cut.
pub const MAX_REDACTIONS: usize = 4;

/// Longest variable name a marker shows, in bytes (longer names are cut there).
const MAX_MARKER_NAME: usize = 64;

/// Longest marker: `<redacted:` + name + `>`.
const MAX_MARKER: usize = "<redacted:>".len() + MAX_MARKER_NAME;

/// Most bytes redaction adds to one string: [`MAX_REDACTIONS`] markers, one more for
/// the place where the string is cut, and the cut mark.
pub const MAX_GROWTH: usize = (MAX_REDACTIONS + 1) * MAX_MARKER + CUT_MARK.len();

/// Whole strings that are warden's own words in records: enum values, effect kinds,
/// limits, errno and WASI call names, streams, modes, checks, built-in rules. A string
/// that is exactly one of them is left as it is, so that a granted value such as
/// `audit`, `read` or `http` cannot turn `"mode":"audit"` or `"capability":"fs_read"`
/// into something the log's readers (`audit summary`, `policy suggest`) no longer
/// understand. A plugin can at most make a string *equal* one of these public words;
/// any other string that holds one is redacted as usual. A word missing here is only
/// redacted like any other string: less readable, never a leak.
fn is_vocabulary(text: &str) -> bool {
    const WORDS: &[&str] = &[
        // Capabilities, decision and run outcomes.
        "fs_read",
        "fs_write",
        "env",
        "stdio",
        "net",
        "granted",
        "denied",
        "would_deny",
        "success",
        "plugin_error",
        "trap",
        "limit",
        "refused",
        "abi_violation",
        "rejected",
        "unloaded",
        "performed",
        "failed",
        // Effects, their limits and checks; limits of a call.
        "http_get",
        "http_post",
        "sleep",
        "max_requests",
        "max_response",
        "request_timeout",
        "url",
        "address",
        "fuel",
        "memory",
        "table",
        "stack",
        "timeout",
        "output",
        // Streams, errnos, modes, protocols, the rule of no rule.
        "stdin",
        "stdout",
        "stderr",
        "ACCES",
        "PERM",
        "ROFS",
        "NOTCAPABLE",
        "enforce",
        "audit",
        "http",
        "https",
        "tcp",
        "none",
        // Built-in rules.
        "builtin.max_requests",
        "builtin.protected",
        "builtin.system",
        "builtin.net.url",
        "builtin.net.scheme",
        "builtin.net.undeclared",
        "builtin.net.non_global",
    ];
    WORDS.contains(&text) || crate::runtime::shadow::SHADOWED.contains(&text)
}

/// One form of one value, as a search pattern.
struct Pattern {
    /// Index of the value's marker in [`Redactor::markers`].
    secret: usize,
    /// The form, ASCII lower-cased.
    bytes: Vec<u8>,
    /// Knuth-Morris-Pratt failure table of `bytes`.
    fail: Vec<usize>,
}

impl Pattern {
    fn new(secret: usize, bytes: Vec<u8>) -> Pattern {
        let mut fail = vec![0; bytes.len()];
        let mut k = 0;
        for i in 1..bytes.len() {
            while k > 0 && bytes[i] != bytes[k] {
                k = fail[k - 1];
            }
            if bytes[i] == bytes[k] {
                k += 1;
            }
            fail[i] = k;
        }
        Pattern {
            secret,
            bytes,
            fail,
        }
    }
}

/// Replaces a run's granted values in text; built from the run's granted variables.
///
/// An empty redactor ([`Redactor::default`], or one built from no value of
/// [`MIN_REDACTED_LEN`] bytes or more) changes nothing and costs nothing.
#[derive(Default)]
pub struct Redactor {
    /// The variable names, for `Debug`.
    names: Vec<String>,
    /// `<redacted:NAME>` per variable.
    markers: Vec<String>,
    /// Forms searched in the text with `%XX` escapes decoded.
    decoded: Vec<Pattern>,
    /// Forms searched in the text as it is (only forms that hold a `%XX` escape
    /// themselves, which decoding the text would change).
    raw: Vec<Pattern>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl Redactor {
    /// A redactor for the granted variables `vars` (name, value). A name given twice
    /// keeps its first value, as the sandbox does.
    pub fn new<N, V>(vars: impl IntoIterator<Item = (N, V)>) -> Redactor
    where
        N: AsRef<str>,
        V: AsRef<str>,
    {
        let mut redactor = Redactor::default();
        for (name, value) in vars {
            let (name, value) = (name.as_ref(), value.as_ref());
            if value.len() < MIN_REDACTED_LEN || redactor.names.iter().any(|n| n == name) {
                continue;
            }
            let secret = redactor.markers.len();
            redactor.names.push(name.to_owned());
            redactor
                .markers
                .push(format!("<redacted:{}>", head(name, MAX_MARKER_NAME)));
            for form in forms(value) {
                let folded = form.to_ascii_lowercase().into_bytes();
                let decoded = decode(&folded);
                if decoded.len() >= MIN_REDACTED_LEN {
                    redactor.add(secret, decoded.clone(), false);
                }
                if decoded != folded {
                    // The form holds `%XX` itself: it is also found with its `%`
                    // encoded (decoded text), and as it is (raw text).
                    redactor.add(secret, folded.clone(), false);
                    redactor.add(secret, folded, true);
                }
            }
        }
        redactor
    }

    fn add(&mut self, secret: usize, bytes: Vec<u8>, raw: bool) {
        let list = if raw {
            &mut self.raw
        } else {
            &mut self.decoded
        };
        if !list.iter().any(|p| p.bytes == bytes) {
            list.push(Pattern::new(secret, bytes));
        }
    }

    /// Whether it redacts nothing at all.
    pub fn is_empty(&self) -> bool {
        self.markers.is_empty()
    }

    /// The names of the variables whose values it redacts.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// `text` with every granted value, and every derived form of one (see the
    /// module documentation), replaced by `<redacted:NAME>`.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        if self.is_empty()
            || text.len() < MIN_REDACTED_LEN
            || is_vocabulary(text)
            || !self.may_hold_a_value(text)
        {
            return Cow::Borrowed(text);
        }
        let mut spans = Vec::new();
        let marks: Vec<usize> = text.match_indices(CUT_MARK).map(|(i, _)| i).collect();
        let decoded = Units::decoded(text);
        let tails = decoded.tails(text, &marks);
        for pattern in &self.decoded {
            decoded.scan(pattern, &tails, &mut spans);
        }
        if !self.raw.is_empty() {
            let raw = Units::raw(text);
            let tails = raw.tails(text, &marks);
            for pattern in &self.raw {
                raw.scan(pattern, &tails, &mut spans);
            }
        }
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        Cow::Owned(self.replace(text, spans))
    }

    /// Whether `text` may hold a value in some form: false only when no search of
    /// [`Redactor::redact`] could find one, so that most strings of a record (hashes,
    /// names, warden's own words) are passed over without building their
    /// [`Units`]. A text without `%` and without a cut mark is its own decoded form,
    /// lower-cased: a value is in it exactly when one of the decoded forms occurs in
    /// it in any ASCII case (the raw forms hold a `%`, which it has not).
    fn may_hold_a_value(&self, text: &str) -> bool {
        let bytes = text.as_bytes();
        memchr::memchr(b'%', bytes).is_some()
            || memchr::memmem::find(bytes, CUT_MARK.as_bytes()).is_some()
            || self
                .decoded
                .iter()
                .any(|p| contains_ignoring_ascii_case(bytes, &p.bytes))
    }

    /// `text` with the merged `spans` replaced by their markers, cut after
    /// [`MAX_REDACTIONS`] + 1 of them.
    fn replace(&self, text: &str, mut spans: Vec<Span>) -> String {
        spans.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
        let mut groups: Vec<Span> = Vec::new();
        for span in spans {
            match groups.last_mut() {
                Some(group) if span.start < group.end => {
                    group.end = group.end.max(span.end);
                    if span.len > group.len {
                        group.len = span.len;
                        group.secret = span.secret;
                    }
                }
                _ => groups.push(span),
            }
        }
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(text.len() + MAX_MARKER);
        let mut last = 0;
        for (i, group) in groups.iter().enumerate() {
            out.extend_from_slice(bytes.get(last..group.start).unwrap_or_default());
            let marker = self.markers.get(group.secret).map_or("", String::as_str);
            out.extend_from_slice(marker.as_bytes());
            last = group.end;
            if i == MAX_REDACTIONS && i + 1 < groups.len() {
                out.extend_from_slice(CUT_MARK.as_bytes());
                last = bytes.len();
                break;
            }
        }
        out.extend_from_slice(bytes.get(last..).unwrap_or_default());
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// `value` as JSON, with every string in it redacted exactly as the audit log
    /// writes it: what `warden run` prints of a record-bound value.
    ///
    /// # Errors
    ///
    /// When `value` does not serialize as JSON.
    pub fn to_value<T: Serialize + ?Sized>(
        &self,
        value: &T,
    ) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(&to_json(value, self)?)
    }
}

/// The forms of `value` a record may hold it in, besides case and `%XX` escapes:
/// itself and, when it is a URL, its normalized spellings.
fn forms(value: &str) -> Vec<String> {
    let mut forms = vec![value.to_owned()];
    if let Ok(url) = url::Url::parse(value)
        && url.has_host()
    {
        let mut more = vec![url.as_str().to_owned()];
        more.extend(crate::net::gate::record_url(value, true));
        more.extend(crate::net::gate::record_url(value, false));
        for form in more {
            // A normalizer adds a `/` to a URL without a path: the value may end
            // before it.
            let form = if value.ends_with('/') {
                form
            } else {
                form.trim_end_matches('/').to_owned()
            };
            if form.len() >= MIN_REDACTED_LEN
                && !forms.iter().any(|f| f.eq_ignore_ascii_case(&form))
            {
                forms.push(form);
            }
        }
    }
    forms
}

/// Whether `lower` (ASCII lower-case) occurs in `text` in any ASCII case.
fn contains_ignoring_ascii_case(text: &[u8], lower: &[u8]) -> bool {
    let Some((&first, _)) = lower.split_first() else {
        return true;
    };
    let matches_at = |i: usize| {
        text.get(i..i + lower.len())
            .is_some_and(|window| window.eq_ignore_ascii_case(lower))
    };
    let upper = first.to_ascii_uppercase();
    if upper == first {
        memchr::memchr_iter(first, text).any(matches_at)
    } else {
        memchr::memchr2_iter(first, upper, text).any(matches_at)
    }
}

/// The first `max` bytes of `text`, at a character boundary.
fn head(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `bytes` with each `%XX` escape (either hex case) decoded, then ASCII lower-cased.
fn decode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match escape_at(bytes, i) {
            Some(b) => {
                out.push(b.to_ascii_lowercase());
                i += 3;
            }
            None => {
                out.push(bytes[i].to_ascii_lowercase());
                i += 1;
            }
        }
    }
    out
}

/// The byte a `%XX` escape at `i` stands for.
fn escape_at(bytes: &[u8], i: usize) -> Option<u8> {
    if bytes.get(i) != Some(&b'%') {
        return None;
    }
    let hex = |b: &u8| (*b as char).to_digit(16);
    let high = hex(bytes.get(i + 1)?)?;
    let low = hex(bytes.get(i + 2)?)?;
    u8::try_from(high * 16 + low).ok()
}

/// A place to redact: `start..end` in the text, which value, and how long the
/// matched form is (the longest names a merged place).
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    secret: usize,
    len: usize,
}

/// A text as the patterns see it: one byte per unit (lower-cased; a `%XX` escape is
/// one unit when decoding), with where each unit starts in the text.
struct Units {
    bytes: Vec<u8>,
    /// Start of each unit in the text, and the text's length last.
    starts: Vec<usize>,
}

impl Units {
    fn decoded(text: &str) -> Units {
        let raw = text.as_bytes();
        let mut units = Units {
            bytes: Vec::with_capacity(raw.len()),
            starts: Vec::with_capacity(raw.len() + 1),
        };
        let mut i = 0;
        while i < raw.len() {
            units.starts.push(i);
            match escape_at(raw, i) {
                Some(b) => {
                    units.bytes.push(b.to_ascii_lowercase());
                    i += 3;
                }
                None => {
                    units.bytes.push(raw[i].to_ascii_lowercase());
                    i += 1;
                }
            }
        }
        units.starts.push(raw.len());
        units
    }

    fn raw(text: &str) -> Units {
        Units {
            bytes: text.as_bytes().to_ascii_lowercase(),
            starts: (0..=text.len()).collect(),
        }
    }

    /// Where each cut mark in `marks` (text offsets) has the prefixes end that it
    /// cut: (the unit a prefix must end before, the mark), in order.
    fn tails(&self, text: &str, marks: &[usize]) -> Vec<(usize, usize)> {
        let mut tails: Vec<(usize, usize)> = marks
            .iter()
            .map(|&mark| {
                let end = dangling_start(text.as_bytes(), mark);
                let unit = self.starts.partition_point(|&s| s <= end).saturating_sub(1);
                (unit, mark)
            })
            .collect();
        tails.sort_unstable();
        tails
    }

    /// Adds to `spans` every match of `pattern`, and the longest prefix of it (of
    /// [`MIN_CUT_PREFIX`] bytes or more) that ends where each of `tails` says.
    fn scan(&self, pattern: &Pattern, tails: &[(usize, usize)], spans: &mut Vec<Span>) {
        let (pat, fail) = (&pattern.bytes, &pattern.fail);
        let n = pat.len();
        if n == 0 {
            return;
        }
        let mut next_tail = 0;
        let mut k = 0;
        for i in 0..=self.bytes.len() {
            while let Some(&(unit, mark)) = tails.get(next_tail) {
                if unit > i {
                    break;
                }
                if unit == i && k >= MIN_CUT_PREFIX {
                    spans.push(Span {
                        start: self.starts[i - k],
                        end: mark,
                        secret: pattern.secret,
                        len: k,
                    });
                }
                next_tail += 1;
            }
            let Some(&c) = self.bytes.get(i) else { break };
            while k > 0 && pat[k] != c {
                k = fail[k - 1];
            }
            if pat[k] == c {
                k += 1;
            }
            if k == n {
                spans.push(Span {
                    start: self.starts[i + 1 - n],
                    end: self.starts[i + 1],
                    secret: pattern.secret,
                    len: n,
                });
                k = fail[n - 1];
            }
        }
    }
}

/// Where the text before the cut mark at `mark` really ends: before any U+FFFD a
/// lossy decoding left, and any `%` or `%X` of an escape the cut split.
fn dangling_start(text: &[u8], mark: usize) -> usize {
    const REPLACEMENT: &[u8] = "\u{fffd}".as_bytes();
    let mut end = mark.min(text.len());
    loop {
        let before = &text[..end];
        if before.ends_with(REPLACEMENT) {
            end -= REPLACEMENT.len();
        } else if before.ends_with(b"%") {
            end -= 1;
        } else if before.len() >= 2
            && before[before.len() - 2] == b'%'
            && before[before.len() - 1].is_ascii_hexdigit()
        {
            end -= 2;
        } else {
            return end;
        }
    }
}

/// `value` as compact JSON, every string value passed through `redactor` (keys are
/// warden's own and kept), with the escapes of [`super::json`]. This is how every
/// record of a run is serialized: the choke point.
///
/// # Errors
///
/// When `value` does not serialize as JSON.
pub(crate) fn to_json<T: Serialize + ?Sized>(
    value: &T,
    redactor: &Redactor,
) -> Result<String, serde_json::Error> {
    if redactor.is_empty() {
        return super::json::to_string(value);
    }
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(
        &mut out,
        Redacting {
            redactor,
            in_key: false,
            collecting: false,
            text: String::new(),
        },
    );
    value.serialize(&mut ser)?;
    String::from_utf8(out).map_err(<serde_json::Error as serde::ser::Error>::custom)
}

/// A formatter that collects each string value whole, redacts it, then writes it
/// with [`super::json`]'s escapes.
struct Redacting<'r> {
    redactor: &'r Redactor,
    in_key: bool,
    /// Whether a string value is being collected into `text`.
    collecting: bool,
    /// The string value being collected (one buffer for every string of a record).
    text: String,
}

impl Formatter for Redacting<'_> {
    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.in_key = true;
        CompactFormatter.begin_object_key(writer, first)
    }

    fn end_object_key<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.in_key = false;
        CompactFormatter.end_object_key(writer)
    }

    fn begin_string<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        if self.in_key {
            return writer.write_all(b"\"");
        }
        self.text.clear();
        self.collecting = true;
        Ok(())
    }

    fn end_string<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        if !std::mem::take(&mut self.collecting) {
            return writer.write_all(b"\"");
        }
        let redacted = self.redactor.redact(&self.text);
        let mut json = serde_json::Serializer::with_formatter(writer, super::json::SafeFormatter);
        redacted.serialize(&mut json).map_err(io::Error::other)
    }

    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if self.collecting {
            self.text.push_str(fragment);
            Ok(())
        } else {
            super::json::SafeFormatter.write_string_fragment(writer, fragment)
        }
    }

    fn write_char_escape<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        if !self.collecting {
            return CompactFormatter.write_char_escape(writer, escape);
        }
        self.text.push(match escape {
            CharEscape::Quote => '"',
            CharEscape::ReverseSolidus => '\\',
            CharEscape::Solidus => '/',
            CharEscape::Backspace => '\u{8}',
            CharEscape::FormFeed => '\u{c}',
            CharEscape::LineFeed => '\n',
            CharEscape::CarriageReturn => '\r',
            CharEscape::Tab => '\t',
            CharEscape::AsciiControl(byte) => char::from(byte),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path passes a string over only when the full search finds nothing.
    #[test]
    fn strings_passed_over_are_those_the_search_would_leave() {
        let r = Redactor::new([
            ("HOME", "/home/Bench"),
            ("TOKEN", "s3cr%20t-Value"),
            ("URL", "http://Example.com:80/x"),
        ]);
        let texts = [
            "/HOME/bench/data",
            "/home/benc",
            "plain words and a sha 326178e2e4f7364386c9de0049c08745",
            "S3CR t-value",
            "s3cr%20T-VALUE",
            "s3cr%2520t-value",
            "/home/bench/da...[cut]",
            "xx/home/be...[cut]",
            "%2Fhome%2fbench",
            "HTTP://EXAMPLE.COM/x",
            "http://example.com:80/x",
            "\u{1}/home/bench\u{1}",
            "",
            "%",
        ];
        for text in texts {
            let fast = r.redact(text);
            let full = if r.may_hold_a_value(text) {
                fast.clone()
            } else {
                assert!(matches!(fast, Cow::Borrowed(_)), "{text}");
                // What the full search would have made of it: nothing.
                let mut spans = Vec::new();
                let decoded = Units::decoded(text);
                for p in &r.decoded {
                    decoded.scan(p, &[], &mut spans);
                }
                assert!(spans.is_empty(), "the fast path missed a value in {text:?}");
                fast.clone()
            };
            assert_eq!(fast, full);
        }
        assert_eq!(r.redact("/HOME/bench/data"), "<redacted:HOME>/data");
        assert!(!r.may_hold_a_value("/home/benc"));
        assert!(r.may_hold_a_value("x%y"));
        assert!(contains_ignoring_ascii_case(b"abXYZ", b"xyz"));
        assert!(!contains_ignoring_ascii_case(b"abXY", b"xyz"));
        assert!(contains_ignoring_ascii_case(b"a/1", b"/1"));
    }

    fn one(name: &str, value: &str) -> Redactor {
        Redactor::new([(name, value)])
    }

    #[test]
    fn values_are_found_raw_in_any_case_and_percent_encoded() {
        let r = one("KEY", "S3cret Value/é");
        assert_eq!(r.redact("a S3cret Value/é b"), "a <redacted:KEY> b");
        assert_eq!(r.redact("a s3CRET vALUE/é b"), "a <redacted:KEY> b");
        assert_eq!(r.redact("/S3cret%20Value%2F%C3%A9/"), "/<redacted:KEY>/");
        assert_eq!(r.redact("/%73%33cret%20value/%c3%a9?"), "/<redacted:KEY>?");
        assert_eq!(
            r.redact("%53%33%63%72%65%74%20%56%61%6C%75%65%2f%C3%a9"),
            "<redacted:KEY>"
        );
        // Near misses stay.
        assert_eq!(r.redact("S3cret Valu"), "S3cret Valu");
        assert!(matches!(r.redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_value_that_holds_an_escape_is_found_as_it_is_and_decoded() {
        let r = one("K", "ab%41cd");
        assert_eq!(r.redact("x ab%41cd y"), "x <redacted:K> y");
        assert_eq!(r.redact("x abAcd y"), "x <redacted:K> y");
        assert_eq!(r.redact("x ab%2541cd y"), "x <redacted:K> y");
        // Decoded shorter than four bytes: still found as it is.
        let r = one("K", "%41%42");
        assert_eq!(r.redact("x%41%42y"), "x<redacted:K>y");
    }

    #[test]
    fn a_url_value_is_found_as_a_normalizer_writes_it() {
        let hook = "https://Hooks.Example.test/services/T0/B1/XyZ";
        let r = one("HOOK", hook);
        assert_eq!(
            r.redact("https://hooks.example.test:443/services/T0/B1/XyZ"),
            "<redacted:HOOK>"
        );
        assert_eq!(
            r.redact("GET https://hooks.example.test/services/T0/B1/XyZ?q"),
            "GET <redacted:HOOK>?q"
        );
        let r = one("HOST", "https://api.example.test");
        assert_eq!(
            r.redact("https://api.example.test:443/v1"),
            "<redacted:HOST>/v1"
        );
    }

    #[test]
    fn a_prefix_before_a_cut_mark_is_redacted_from_eight_bytes() {
        let r = one("K", "0123456789abcdef");
        assert_eq!(r.redact("xx01234567...[cut]"), "xx<redacted:K>...[cut]");
        assert_eq!(r.redact("xx0123456...[cut]"), "xx0123456...[cut]");
        assert_eq!(r.redact("01234567 ...[cut]"), "01234567 ...[cut]");
        // What a cut leaves dangling goes with it: half an escape, a replaced byte.
        assert_eq!(r.redact("/%30%31234567%3...[cut]"), "/<redacted:K>...[cut]");
        assert_eq!(r.redact("/01234567%...[cut]"), "/<redacted:K>...[cut]");
        assert_eq!(
            r.redact("/012345678\u{fffd}...[cut]"),
            "/<redacted:K>...[cut]"
        );
        // In the middle of a string too (a cut header name quoted in a reason).
        assert_eq!(
            r.redact("the header `0123456789...[cut]` is bad"),
            "the header `<redacted:K>...[cut]` is bad"
        );
    }

    #[test]
    fn longer_values_win_and_overlaps_are_replaced_once() {
        let r = Redactor::new([("SHORT", "abcd"), ("LONG", "abcdefgh"), ("TAIL", "fghijk")]);
        assert_eq!(r.redact("-abcdefgh-"), "-<redacted:LONG>-");
        assert_eq!(r.redact("-abcdefghijk-"), "-<redacted:LONG>-");
        assert_eq!(r.redact("-abcd-"), "-<redacted:SHORT>-");
        assert_eq!(
            r.redact("-aBcD-fGhIjK"),
            "-<redacted:SHORT>-<redacted:TAIL>"
        );
    }

    #[test]
    fn warden_words_are_kept_whole_but_not_inside_other_strings() {
        let r = Redactor::new([("MODE", "audit"), ("WHAT", "read"), ("P", "path_open")]);
        assert_eq!(r.redact("audit"), "audit");
        assert_eq!(r.redact("fs_read"), "fs_read");
        assert_eq!(r.redact("path_open"), "path_open");
        assert_eq!(r.redact("/data/audit"), "/data/<redacted:MODE>");
        assert_eq!(r.redact("fs_read "), "fs_<redacted:WHAT> ");
    }

    #[test]
    fn short_values_and_repeated_names_are_left_out() {
        let r = Redactor::new([("A", "abc"), ("B", "bcde"), ("B", "zzzz")]);
        assert_eq!(r.names().collect::<Vec<_>>(), ["B"]);
        assert_eq!(r.redact("abc bcde zzzz"), "abc <redacted:B> zzzz");
        assert!(Redactor::new::<&str, &str>([]).is_empty());
    }

    #[test]
    fn growth_is_bounded_whatever_the_text() {
        let name = "N".repeat(200);
        let r = one(&name, "abcd");
        let text = "abcd".repeat(1000);
        let out = r.redact(&text);
        assert!(out.len() <= text.len() + MAX_GROWTH, "{}", out.len());
        assert!(out.ends_with(CUT_MARK), "{out}");
        assert!(!out.contains("abcd"), "{out}");
        assert_eq!(out.matches("<redacted:").count(), MAX_REDACTIONS + 1);
        // A marker names at most 64 bytes of the name.
        assert!(out.starts_with(&format!("<redacted:{}>", "N".repeat(64))));
    }

    #[test]
    fn never_panics_on_hostile_text() {
        let r = Redactor::new([("K", "é%41☃é"), ("L", "%%%%"), ("M", "........[cut]")]);
        let pieces = [
            "é", "%", "%4", "%41", "☃", "...[cut]", "\u{fffd}", "a", ".", "%C3", "%A9",
        ];
        let mut seed = 7u64;
        for _ in 0..2000 {
            let mut text = String::new();
            for _ in 0..(seed % 24) {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                text.push_str(pieces[(seed >> 33) as usize % pieces.len()]);
            }
            let _ = r.redact(&text);
        }
    }

    #[test]
    fn records_are_serialized_with_every_string_value_redacted_and_keys_kept() {
        #[derive(Serialize)]
        struct Record<'a> {
            path: &'a str,
            list: Vec<&'a str>,
            nested: std::collections::BTreeMap<&'a str, &'a str>,
            count: u64,
        }
        let secret = "se\"cr\u{1b}t\u{202e}!";
        let r = one("K", secret);
        let nested = [(secret, "/x/se\"cr\u{1b}t\u{202e}!/y")]
            .into_iter()
            .collect();
        let record = Record {
            path: secret,
            list: vec!["a", secret],
            nested,
            count: 3,
        };
        let json = to_json(&record, &r).unwrap();
        assert_eq!(
            json,
            r#"{"path":"<redacted:K>","list":["a","<redacted:K>"],"nested":{"se\"cr\u001bt\u202e!":"/x/<redacted:K>/y"},"count":3}"#
        );
        // Without values to redact, exactly the log's own JSON.
        assert_eq!(
            to_json(&record, &Redactor::default()).unwrap(),
            super::super::json::to_string(&record).unwrap()
        );
        assert_eq!(r.to_value(&record).unwrap()["path"], "<redacted:K>");
    }

    #[test]
    fn debug_shows_names_only() {
        let r = one("APP_KEY", "hunter2-secret");
        let debug = format!("{r:?}");
        assert!(
            debug.contains("APP_KEY") && !debug.contains("hunter2"),
            "{debug}"
        );
    }
}
