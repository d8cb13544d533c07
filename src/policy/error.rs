//! Policy errors as data: file, line, column and a message a person can act on.
//!
//! Messages follow cedar's style guide: lowercase, no final period, user input in
//! backticks, no Rust type names. Every problem in a file is reported, not just the
//! first, in the order of their positions.

use std::fmt;
use std::path::PathBuf;

/// One problem in a policy file, at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// The file as the user named it (`<built-in>` for the built-in policy).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong and, where it helps, how to fix it.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Every problem found in one policy file (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyErrors {
    errors: Vec<PolicyError>,
}

impl PolicyErrors {
    /// Wraps `errors`, sorted by position. Callers pass at least one error.
    pub(crate) fn new(mut errors: Vec<PolicyError>) -> Self {
        errors.sort_by_key(|e| (e.line, e.column));
        errors.dedup();
        PolicyErrors { errors }
    }

    /// A single error at the start of `file` (for problems with the file itself).
    pub(crate) fn file_level(file: &str, message: String) -> Self {
        PolicyErrors::new(vec![PolicyError {
            file: file.to_owned(),
            line: 1,
            column: 1,
            message,
        }])
    }

    /// The errors, in order of position.
    pub fn errors(&self) -> &[PolicyError] {
        &self.errors
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Maps byte offsets of one text to 1-based line and column numbers.
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    /// Byte offset at which each line starts.
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, starts }
    }

    /// `(line, column)` of byte `offset`, both 1-based; the column counts characters.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count())
            + 1;
        (line, column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let idx = LineIndex::new("ab\nçd = 1\n\nx");
        assert_eq!(idx.position(0), (1, 1));
        assert_eq!(idx.position(1), (1, 2));
        assert_eq!(idx.position(3), (2, 1));
        // `ç` is two bytes: `d` is byte 5 but column 2.
        assert_eq!(idx.position(5), (2, 2));
        assert_eq!(idx.position(11), (3, 1));
        assert_eq!(idx.position(12), (4, 1));
        assert_eq!(idx.position(999), (4, 2));
    }

    #[test]
    fn errors_print_as_file_line_column_message_in_order() {
        let e = |line, column, message: &str| PolicyError {
            file: "p.toml".into(),
            line,
            column,
            message: message.into(),
        };
        let errors = PolicyErrors::new(vec![e(3, 1, "b"), e(1, 5, "a")]);
        assert_eq!(errors.to_string(), "p.toml:1:5: a\np.toml:3:1: b");
    }
}

/// Why a policy file fails its ownership checks ([`super::check_ownership`], sshd's
/// `StrictModes`): another user could change what plugins may do. Each message names
/// the file or folder and says how to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OwnershipError {
    /// The file is owned by someone other than root or the user running warden.
    #[error(
        "the policy file is owned by uid {uid}, not by root or you (uid {me}), so another user could change what plugins may do; \
         `chown` it or pass `--allow-insecure-policy`"
    )]
    FileOwner {
        /// The file's owner.
        uid: u32,
        /// The user running warden.
        me: u32,
    },
    /// Group or others may write the file.
    #[error(
        "the policy file is writable by {} (mode {:04o}), so another user could change what plugins may do; run `chmod go-w {}` or pass `--allow-insecure-policy`",
        writable_by(*.mode),
        .mode & 0o7777,
        .path.display()
    )]
    FileWritable {
        /// Where the file really is.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// A folder above the file cannot be examined.
    #[error(
        "cannot check the folder `{}` above the policy file: {source}",
        .folder.display()
    )]
    Folder {
        /// The folder.
        folder: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A folder above the file is owned by someone other than root or the user running
    /// warden.
    #[error(
        "the folder `{}` above the policy file is owned by uid {uid}, not by root or you (uid {me}), so another user could change what plugins may do; \
         move the policy or pass `--allow-insecure-policy`",
        .folder.display()
    )]
    FolderOwner {
        /// The folder.
        folder: PathBuf,
        /// Its owner.
        uid: u32,
        /// The user running warden.
        me: u32,
    },
    /// Group or others may write a folder above the file, and it is not sticky.
    #[error(
        "the folder `{}` above the policy file is writable by {} (mode {:04o}), so another user could change what plugins may do; \
         run `chmod go-w {}`, move the policy, or pass `--allow-insecure-policy`",
        .folder.display(),
        writable_by(*.mode),
        .mode & 0o7777,
        .folder.display()
    )]
    FolderWritable {
        /// The folder.
        folder: PathBuf,
        /// Its mode.
        mode: u32,
    },
}

/// Who besides the owner may write, from a mode with 0o022 bits set.
fn writable_by(mode: u32) -> &'static str {
    match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => "group and others",
        (true, false) => "its group",
        _ => "others",
    }
}
