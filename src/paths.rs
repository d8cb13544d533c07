//! Path text, as warden resolves it for decisions (`POLICY.md` rule 3) and maps it for
//! the guest (`ABI.md`).
//!
//! A path as written (in a policy or a manifest) resolves in three steps: `~` becomes
//! the home directory and a relative path is joined to the working directory
//! ([`expand_path`]); `.` and `..` are removed lexically (`normalize`); then the
//! result is canonicalized, symlinks resolved, when it exists (`effective`). A path
//! that does not exist is canonicalized up to its longest existing ancestor, so that a
//! deny entry for a missing path still compares with the real location of its parent.
//!
//! These helpers sit below every module that resolves a path (the policy's warnings,
//! the decisions, the sandbox, the runtime's records), so none of those has to reach
//! up into another for them. Only `effective`, `nearest_sibling` and
//! `proc_fd_path`'s reader touch the filesystem; the rest is text.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Component, Path, PathBuf};

/// Why a path as written cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// `~user`: warden resolves only the running user's home.
    #[error(
        "`{raw}` names another user's home, which warden does not resolve; write the full path"
    )]
    OtherUser {
        /// The path as written.
        raw: String,
    },
    /// `~` with no home directory known.
    #[error("`{raw}` starts with `~`, but HOME is not set, so it cannot be resolved")]
    NoHome {
        /// The path as written.
        raw: String,
    },
}

/// A policy path (`~`, relative to `workdir`) expanded and normalized, as decisions
/// resolve it.
///
/// # Errors
///
/// [`ExpandError`] when `raw` uses `~` and there is no home directory, or uses `~user`.
pub fn expand_path(raw: &str, workdir: &Path, home: Option<&Path>) -> Result<PathBuf, ExpandError> {
    expand(raw, workdir, home).map(|p| normalize(&p))
}

/// `raw` with `~` expanded and made absolute against `workdir`, not yet normalized.
///
/// # Errors
///
/// [`ExpandError`] when `raw` uses `~` and there is no home directory, or uses `~user`.
pub(crate) fn expand(
    raw: &str,
    workdir: &Path,
    home: Option<&Path>,
) -> Result<PathBuf, ExpandError> {
    if let Some(rest) = raw.strip_prefix('~') {
        if !(rest.is_empty() || rest.starts_with('/')) {
            return Err(ExpandError::OtherUser {
                raw: raw.to_owned(),
            });
        }
        let Some(home) = home else {
            return Err(ExpandError::NoHome {
                raw: raw.to_owned(),
            });
        };
        return Ok(home.join(rest.trim_start_matches('/')));
    }
    Ok(workdir.join(raw))
}

/// The name in `path`'s parent folder closest to `path`'s own (a misspelt `reprots`
/// finds `reports`), when one is close.
pub fn nearest_sibling(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let parent = path.parent()?;
    std::fs::read_dir(parent)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .map(|candidate| (strsim::levenshtein(name, &candidate), candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, candidate)| candidate)
}

/// `rel` (a guest path relative to a preopen) joined onto the preopen's host
/// directory `base`, `.` and `..` resolved lexically (for records; nothing is opened).
pub(crate) fn lexical_join(base: &Path, rel: &str) -> PathBuf {
    normalize(&base.join(rel.trim_start_matches('/')))
}

/// The magic link of an open descriptor (`/proc/self/fd/N`): reading it says where the
/// kernel has the descriptor, and opening it reopens that very file.
pub(crate) fn proc_fd_path(fd: &impl AsFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
}

/// `path` with `.` and `..` removed lexically (`..` at the root stays at the root).
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push(Component::RootDir);
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// The canonical form of `path` (absolute and normalized), or of its longest existing
/// ancestor with the rest appended when it does not exist.
///
/// # Errors
///
/// The error of canonicalizing an existing path (a symlink loop, a permission error)
/// or of its ancestors.
pub(crate) fn effective(path: &Path) -> io::Result<PathBuf> {
    match std::fs::canonicalize(path) {
        Ok(c) => Ok(c),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
                return Err(e);
            };
            Ok(effective(parent)?.join(name))
        }
        Err(e) => Err(e),
    }
}

/// Whether one path is equal to or inside the other (component-wise).
pub(crate) fn overlaps(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Where the plugin sees a declared directory (`ABI.md`): `./data` -> `/data`,
/// `~/cfg` -> `/cfg`, `/tmp/x` -> `/tmp/x`. A relative path that climbs above its base
/// (`../x`) is shown at its absolute host location (`lexical`).
pub(crate) fn guest_path(raw: &str, lexical: &Path) -> String {
    let relative = match raw.strip_prefix('~') {
        Some(rest) => rest.trim_start_matches('/'),
        None if raw.starts_with('/') => return lexical.display().to_string(),
        None => raw,
    };
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(relative).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::ParentDir if parts.pop().is_none() => {
                return lexical.display().to_string();
            }
            _ => {}
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_paths_follow_the_abi_convention() {
        let l = Path::new("/host/lexical");
        assert_eq!(guest_path("./data", l), "/data");
        assert_eq!(guest_path("data/", l), "/data");
        assert_eq!(guest_path("~/cfg", l), "/cfg");
        assert_eq!(guest_path("~", l), "/");
        assert_eq!(guest_path("./a/./b/../c", l), "/a/c");
        assert_eq!(guest_path("/tmp/x", Path::new("/tmp/x")), "/tmp/x");
        assert_eq!(guest_path("../up", l), "/host/lexical");
    }

    #[test]
    fn expansion_and_normalization() {
        let w = Path::new("/w");
        let h = Some(Path::new("/home/u"));
        assert_eq!(expand("~/.ssh", w, h).unwrap(), Path::new("/home/u/.ssh"));
        assert_eq!(expand("~", w, h).unwrap(), Path::new("/home/u"));
        assert_eq!(
            expand("~root/x", w, h),
            Err(ExpandError::OtherUser {
                raw: "~root/x".into()
            })
        );
        assert_eq!(
            expand("~/x", w, None),
            Err(ExpandError::NoHome { raw: "~/x".into() })
        );
        assert_eq!(expand("./d", w, h).unwrap(), Path::new("/w/./d"));
        assert_eq!(normalize(Path::new("/w/./d/../e")), Path::new("/w/e"));
        assert_eq!(normalize(Path::new("/../../etc")), Path::new("/etc"));
    }

    #[test]
    fn overlap_is_component_wise() {
        assert!(overlaps(Path::new("/a/b"), Path::new("/a")));
        assert!(overlaps(Path::new("/a"), Path::new("/a/b")));
        assert!(overlaps(Path::new("/a"), Path::new("/a")));
        assert!(!overlaps(Path::new("/ab"), Path::new("/a")));
    }

    #[test]
    fn missing_paths_resolve_through_their_existing_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let canon = std::fs::canonicalize(&real).unwrap();
        assert_eq!(
            effective(&dir.path().join("link/missing/deeper")).unwrap(),
            canon.join("missing/deeper")
        );
        std::os::unix::fs::symlink("loop", dir.path().join("loop")).unwrap();
        assert!(effective(&dir.path().join("loop")).is_err());
    }
}
