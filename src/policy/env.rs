//! Environment variable patterns: exact names or globs where only `*` is special.
//!
//! Patterns are compiled with `globset`. Every character but `*` is escaped, runs of
//! `*` collapse to one (so globset's `**` path rules never apply), and backslash is an
//! ordinary character. A `*` matches any run of characters, `/` included.
//!
//! `EnvPattern::covers` decides whether every name one pattern can match is matched by
//! another: for `*`-only globs, `P` covers `D` exactly when `P` matches `D` with each
//! `*` replaced by a character `P` cannot contain literally (`\u{1}`), since that
//! character can only be consumed by one of `P`'s own stars.
//!
//! # Security
//!
//! Names and patterns with control characters are never matched: a regex `.` does not
//! match a newline, so a name like `A\nSECRET` could otherwise slip past `*SECRET*`.

use globset::{GlobBuilder, GlobMatcher};

/// Stands for "any run of characters" when one pattern is matched against another.
const STAR_PROXY: char = '\u{1}';

/// Why `pattern` cannot be an env pattern, or `None` when it can.
pub(crate) fn pattern_problem(pattern: &str) -> Option<&'static str> {
    if pattern.is_empty() {
        Some("is empty; write a variable name such as `HOME` or a glob such as `APP_*`")
    } else if pattern.contains('=') {
        Some("contains `=`, which no variable name can")
    } else if pattern.chars().any(char::is_control) {
        Some("contains a control character, which warden never matches")
    } else {
        None
    }
}

/// Whether a host variable name may ever be passed to a plugin.
pub(crate) fn is_passable_name(name: &str) -> bool {
    pattern_problem(name).is_none() && !name.contains('*')
}

/// A compiled env pattern.
#[derive(Debug, Clone)]
pub(crate) struct EnvPattern {
    raw: String,
    matcher: GlobMatcher,
}

impl EnvPattern {
    /// Compiles `raw`, which [`pattern_problem`] must accept.
    pub(crate) fn new(raw: &str) -> Result<Self, String> {
        if let Some(problem) = pattern_problem(raw) {
            return Err(problem.to_owned());
        }
        let mut glob = String::with_capacity(raw.len() + 8);
        let mut previous_star = false;
        for (i, part) in raw.split('*').enumerate() {
            if i > 0 && !previous_star {
                glob.push('*');
            }
            previous_star = part.is_empty() && i > 0;
            glob.push_str(&globset::escape(part));
        }
        let matcher = GlobBuilder::new(&glob)
            .literal_separator(false)
            .backslash_escape(false)
            .build()
            .map_err(|e| e.to_string())?
            .compile_matcher();
        Ok(EnvPattern {
            raw: raw.to_owned(),
            matcher,
        })
    }

    /// Whether `name` is matched (never, for names with control characters).
    pub(crate) fn matches(&self, name: &str) -> bool {
        is_passable_name(name) && self.matcher.is_match(name)
    }

    /// Whether every name `other` can match is matched by `self`.
    pub(crate) fn covers(&self, other: &EnvPattern) -> bool {
        let proxy: String = other
            .raw
            .chars()
            .map(|c| if c == '*' { STAR_PROXY } else { c })
            .collect();
        self.matcher.is_match(proxy.as_str())
    }

    /// Whether some name is matched by both patterns. A pattern without `*` is one
    /// name, which the other matches or not. Two globs share a name exactly when their
    /// literal starts (before the first `*`) agree, one a prefix of the other, and so do
    /// their literal ends (after the last `*`): that start, both middles and that end
    /// in a row is such a name.
    pub(crate) fn overlaps(&self, other: &EnvPattern) -> bool {
        let (a, b) = (self.raw.as_str(), other.raw.as_str());
        if !a.contains('*') {
            return other.matches(a);
        }
        if !b.contains('*') {
            return self.matches(b);
        }
        let start = |p: &'_ str| p.split('*').next().unwrap_or_default().to_owned();
        let end = |p: &'_ str| p.rsplit('*').next().unwrap_or_default().to_owned();
        let (sa, sb, ea, eb) = (start(a), start(b), end(a), end(b));
        (sa.starts_with(&sb) || sb.starts_with(&sa)) && (ea.ends_with(&eb) || eb.ends_with(&ea))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> EnvPattern {
        EnvPattern::new(s).unwrap()
    }

    #[test]
    fn only_star_is_special() {
        assert!(p("APP_*").matches("APP_NAME"));
        assert!(p("APP_*").matches("APP_"));
        assert!(!p("APP_*").matches("XAPP_NAME"));
        assert!(p("*SECRET*").matches("MY_SECRET_KEY"));
        assert!(p("A?B").matches("A?B") && !p("A?B").matches("AXB"));
        assert!(p("A[B]").matches("A[B]") && !p("A[B]").matches("AB"));
        assert!(p("A{B,C}").matches("A{B,C}") && !p("A{B,C}").matches("AB"));
        assert!(p(r"A\*").matches(r"A\xyz"));
        assert!(p("A**/B").matches("A/x/y/B") && p("A**/B").matches("A/B"));
        assert!(p("HOME").matches("HOME") && !p("HOME").matches("HOMER"));
    }

    #[test]
    fn names_with_control_characters_never_match() {
        assert!(!p("*").matches("A\nSECRET"));
        assert!(!p("*SECRET*").matches("A\nSECRET"));
        assert!(EnvPattern::new("A\nB").is_err());
        assert!(EnvPattern::new("A=B").is_err());
        assert!(EnvPattern::new("").is_err());
    }

    #[test]
    fn covers_is_language_inclusion() {
        assert!(p("APP_*").covers(&p("APP_*")));
        assert!(p("APP_*").covers(&p("APP_X*")));
        assert!(p("APP_*").covers(&p("APP_NAME")));
        assert!(p("*").covers(&p("APP_*")));
        assert!(!p("APP_*").covers(&p("*")));
        assert!(!p("APP_*").covers(&p("AP*")));
        assert!(p("A*B*").covers(&p("AB*")));
        assert!(!p("A*B").covers(&p("A*")));
        assert!(p("*_TOKEN").covers(&p("GITHUB_TOKEN")));
        assert!(!p("*_TOKEN").covers(&p("*TOKEN")));
    }

    #[test]
    fn overlaps_when_some_name_matches_both() {
        for (a, b) in [
            ("APP_*", "*_KEY"),
            ("*", "HOME"),
            ("APP_*", "APP_X*"),
            ("A*B*C", "*C"),
            ("HOME", "HOME"),
        ] {
            assert!(p(a).overlaps(&p(b)) && p(b).overlaps(&p(a)), "{a} {b}");
        }
        for (a, b) in [
            ("APP_*", "HOME"),
            ("APP_*", "AWS_*"),
            ("*_TOKEN", "*_KEY"),
            ("HOME", "HOMER"),
        ] {
            assert!(!p(a).overlaps(&p(b)) && !p(b).overlaps(&p(a)), "{a} {b}");
        }
    }
}
