//! The reference answers the grant checks compare warden's decisions with, written
//! the plain way from `POLICY.md` (rule 3 for paths, the `*` wildcard for names)
//! rather than through warden's own code: shared by the `grant_intersection` fuzz
//! target and the proptest in `tests/all/properties.rs`, so both check against one
//! oracle.

use crate::grant::Host;
use std::path::{Component, PathBuf};

/// `raw` made absolute and normalized as `POLICY.md` rule 3 says; `None` when it
/// cannot be (`~` without a home, `~user`).
pub fn lexical(raw: &str, host: &Host) -> Option<PathBuf> {
    let joined = match raw.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            host.home.as_ref()?.join(rest.trim_start_matches('/'))
        }
        Some(_) => return None,
        None => host.workdir.join(raw),
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    Some(out)
}

/// [`lexical`], then resolved on the file system; `None` when it does not exist.
pub fn canonical(raw: &str, host: &Host) -> Option<PathBuf> {
    std::fs::canonicalize(lexical(raw, host)?).ok()
}

/// `*` matches any run of characters; nothing else is special.
pub fn wildcard(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let mut m = vec![vec![false; n.len() + 1]; p.len() + 1];
    m[0][0] = true;
    for i in 1..=p.len() {
        m[i][0] = m[i - 1][0] && p[i - 1] == '*';
        for j in 1..=n.len() {
            m[i][j] = if p[i - 1] == '*' {
                m[i - 1][j] || m[i][j - 1]
            } else {
                m[i - 1][j - 1] && p[i - 1] == n[j - 1]
            };
        }
    }
    m[p.len()][n.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_oracle_agrees_with_hand_answers() {
        assert!(wildcard("APP_*", "APP_") && wildcard("*N*", "APP_NAME"));
        assert!(!wildcard("A*B", "AXBC") && wildcard("A*B", "AB"));
        let host = Host {
            workdir: "/w/d".into(),
            home: Some("/h".into()),
            env: Vec::new(),
            audit_log: None,
        };
        let resolved = |raw| lexical(raw, &host);
        assert_eq!(resolved("./a/../b").as_deref(), Some(Path::new("/w/d/b")));
        assert_eq!(resolved("..").as_deref(), Some(Path::new("/w")));
        assert_eq!(resolved("~/x").as_deref(), Some(Path::new("/h/x")));
        assert_eq!(resolved("~user/x"), None);
    }
}
