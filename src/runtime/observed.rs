//! What the WASI wrappers observe in one call: the calls refused past the plugin's
//! grants ([`RuntimeDeny`], `runtime_deny` records) and, in audit mode, what the
//! plugin really used ([`Access`], `access` records, for `policy suggest`).
//!
//! `ShadowState` is kept in each store and filled in by the wrappers of
//! [`super::shadow`]; when the call ends, the instance takes its records, naming each
//! preopen from the sandbox. These types sit below the store, the wrappers and the
//! instance, so that each of those reads on its own.
//!
//! # Security
//!
//! Every path here is guest-controlled: read with checked bounds by the wrappers, cut
//! at [`MAX_DENIED_PATH`] bytes, decoded lossily, and escaped by whoever prints it. At
//! most [`MAX_RUNTIME_DENIALS`] refusals and [`MAX_ACCESSES`] uses are kept per call;
//! the rest are counted.

use crate::sandbox::Sandbox;
use serde::Serialize;

/// Runtime denials kept per call; later ones are only counted.
pub const MAX_RUNTIME_DENIALS: usize = 1000;

/// Longest path recorded, in bytes; longer ones are cut and marked.
pub const MAX_DENIED_PATH: usize = 4096;

/// An errno that means "not allowed", as opposed to "not there" or "bad argument".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Refusal {
    /// `ACCES` (2): the host's permissions refused.
    Acces,
    /// `PERM` (63): outside the preopen, a write in a read-only preopen, or a symlink
    /// target warden refuses.
    Perm,
    /// `ROFS` (69): a read-only file system.
    Rofs,
    /// `NOTCAPABLE` (76): the descriptor lacks the right.
    Notcapable,
}

impl Refusal {
    /// The WASI errno value.
    pub const fn code(self) -> u16 {
        match self {
            Refusal::Acces => 2,
            Refusal::Perm => 63,
            Refusal::Rofs => 69,
            Refusal::Notcapable => 76,
        }
    }

    /// The refusal an errno value means, if any.
    #[inline]
    pub const fn from_errno(errno: i32) -> Option<Self> {
        match errno {
            2 => Some(Refusal::Acces),
            63 => Some(Refusal::Perm),
            69 => Some(Refusal::Rofs),
            76 => Some(Refusal::Notcapable),
            _ => None,
        }
    }

    /// The errno's WASI name, upper case.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Acces => "ACCES",
            Refusal::Perm => "PERM",
            Refusal::Rofs => "ROFS",
            Refusal::Notcapable => "NOTCAPABLE",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

/// One refused WASI call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuntimeDeny {
    /// The WASI function.
    pub call: &'static str,
    /// The path as the guest gave it (for `path_symlink`, the link).
    pub path: String,
    /// The second path: the target of `path_symlink`, the destination of
    /// `path_rename` and `path_link`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The guest path of the preopen the path was relative to, or `None` when the
    /// descriptor was not a preopen (a directory the plugin opened).
    pub preopen: Option<String>,
    /// The errno the plugin got.
    pub errno: Refusal,
    /// Set when warden refused the call itself, before wasmtime-wasi saw it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// The refusals of one call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeDenials {
    /// The first [`MAX_RUNTIME_DENIALS`] refusals, in order.
    pub recorded: Vec<RuntimeDeny>,
    /// How many more there were.
    pub dropped: u64,
}

impl RuntimeDenials {
    /// True when nothing was refused.
    pub fn is_empty(&self) -> bool {
        self.recorded.is_empty() && self.dropped == 0
    }
}

/// A refusal as recorded in the store (the preopen by index until the call ends).
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) call: &'static str,
    pub(super) path: String,
    pub(super) target: Option<String>,
    pub(super) preopen: Option<usize>,
    pub(super) errno: Refusal,
    pub(super) reason: Option<&'static str>,
}

/// Which descriptor each preopen has now. WASI gives preopens the descriptors 3, 4,
/// ... in order; this changes only when the plugin closes or renumbers one.
#[derive(Debug, Default)]
pub(super) struct PreopenFds {
    count: usize,
    moved: Option<Vec<Option<u32>>>,
}

impl PreopenFds {
    pub(super) fn new(count: usize) -> Self {
        PreopenFds { count, moved: None }
    }

    pub(super) fn index_of(&self, fd: u32) -> Option<usize> {
        match &self.moved {
            None => usize::try_from(fd.checked_sub(3)?)
                .ok()
                .filter(|i| *i < self.count),
            Some(fds) => fds.iter().position(|f| *f == Some(fd)),
        }
    }

    fn table(&mut self) -> &mut Vec<Option<u32>> {
        let count = self.count;
        self.moved
            .get_or_insert_with(|| (0..count).map(|i| u32::try_from(i + 3).ok()).collect())
    }

    pub(super) fn closed(&mut self, fd: u32) {
        if self.index_of(fd).is_some() {
            for f in self.table() {
                if *f == Some(fd) {
                    *f = None;
                }
            }
        }
    }

    pub(super) fn renumbered(&mut self, from: u32, to: u32) {
        if from == to || (self.index_of(from).is_none() && self.index_of(to).is_none()) {
            return;
        }
        for f in self.table() {
            if *f == Some(to) {
                *f = None;
            } else if *f == Some(from) {
                *f = Some(to);
            }
        }
    }
}

/// Distinct paths [`Access`] records keep per call in audit mode; later ones are
/// only counted.
pub const MAX_ACCESSES: usize = 256;

/// What a plugin really used, in audit mode (`access` records, for `policy suggest`):
/// the first time in a call it opened a path (or used a stream, or asked for an
/// effect).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Access {
    /// The WASI function (`path_open`, `path_create_directory`, ...), the stream
    /// (`stdin`, `stdout`, `stderr`), or the effect (`http_get`, ...).
    pub call: &'static str,
    /// The path as the guest gave it (relative to `preopen`), the stream, or the
    /// destination (`http://host:port`).
    pub path: String,
    /// Where that is on the host (the preopen's directory joined with `path`,
    /// lexically), for paths under a preopen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
    /// The guest path of the preopen the path was relative to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preopen: Option<String>,
    /// Whether the use writes (a path opened for writing, created, removed, renamed).
    pub write: bool,
}

/// Accesses of one call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accesses {
    /// The first [`MAX_ACCESSES`] distinct uses, in order.
    pub recorded: Vec<Access>,
    /// How many more distinct uses there were.
    pub dropped: u64,
}

/// A use recorded in the store (the preopen by index until the call ends).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct PendingAccess {
    pub(super) call: &'static str,
    pub(super) path: String,
    pub(super) preopen: Option<usize>,
    pub(super) write: bool,
}

/// What the wrappers keep in a store.
#[derive(Debug, Default)]
pub(crate) struct ShadowState {
    pub(super) preopens: PreopenFds,
    pub(super) denials: Vec<Pending>,
    pub(super) dropped: u64,
    /// `Some` in audit mode: what the plugin used.
    pub(super) accesses: Option<Vec<PendingAccess>>,
    pub(super) accesses_dropped: u64,
}

impl ShadowState {
    /// The state for a store whose WASI context has `preopens` preopened directories.
    pub(crate) fn new(preopens: usize) -> Self {
        ShadowState {
            preopens: PreopenFds::new(preopens),
            ..ShadowState::default()
        }
    }

    /// The same, recording what the plugin uses when `track` (audit mode).
    pub(crate) fn tracking(preopens: usize, track: bool) -> Self {
        ShadowState {
            accesses: track.then(Vec::new),
            ..ShadowState::new(preopens)
        }
    }

    /// Records a use of a stream or an effect (audit mode only; once per call).
    pub(crate) fn used(&mut self, call: &'static str, what: String, write: bool) {
        self.note(PendingAccess {
            call,
            path: what,
            preopen: None,
            write,
        });
    }

    pub(super) fn note(&mut self, access: PendingAccess) {
        let Some(list) = &mut self.accesses else {
            return;
        };
        if list.iter().any(|a| {
            a.path == access.path && a.preopen == access.preopen && a.write == access.write
        }) {
            return;
        }
        if list.len() >= MAX_ACCESSES {
            self.accesses_dropped = self.accesses_dropped.saturating_add(1);
            return;
        }
        list.push(access);
    }

    /// Takes what the plugin used so far (empty unless tracking), naming preopens and
    /// their host directories from `sandbox`. The paths are as the guest gave them:
    /// the audit layer redacts granted values from every record
    /// (`crate::audit::redact`).
    pub(crate) fn take_accesses(&mut self, sandbox: &Sandbox) -> Accesses {
        let preopens = sandbox.preopens();
        Accesses {
            recorded: self
                .accesses
                .as_mut()
                .map(std::mem::take)
                .unwrap_or_default()
                .into_iter()
                .map(|a| {
                    let preopen = a.preopen.and_then(|i| preopens.get(i));
                    Access {
                        call: a.call,
                        host_path: preopen.map(|p| {
                            crate::paths::lexical_join(p.host_path(), &a.path)
                                .display()
                                .to_string()
                        }),
                        preopen: preopen.map(|p| p.guest_path().to_owned()),
                        path: a.path,
                        write: a.write,
                    }
                })
                .collect(),
            dropped: std::mem::take(&mut self.accesses_dropped),
        }
    }

    /// Takes the refusals recorded so far, naming preopens from `sandbox` (the one the
    /// store's WASI context was built from). The paths are as the guest gave them:
    /// the audit layer redacts granted values from every record
    /// (`crate::audit::redact`).
    pub(crate) fn take_denials(&mut self, sandbox: &Sandbox) -> RuntimeDenials {
        let preopens = sandbox.preopens();
        RuntimeDenials {
            recorded: std::mem::take(&mut self.denials)
                .into_iter()
                .map(|p| RuntimeDeny {
                    call: p.call,
                    path: p.path,
                    target: p.target,
                    preopen: p
                        .preopen
                        .and_then(|i| preopens.get(i))
                        .map(|p| p.guest_path().to_owned()),
                    errno: p.errno,
                    reason: p.reason,
                })
                .collect(),
            dropped: std::mem::take(&mut self.dropped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_the_permission_errnos() {
        for r in [
            Refusal::Acces,
            Refusal::Perm,
            Refusal::Rofs,
            Refusal::Notcapable,
        ] {
            assert_eq!(Refusal::from_errno(i32::from(r.code())), Some(r));
        }
        for other in [0, 8, 20, 28, 44, 54, 76 + 1] {
            assert_eq!(Refusal::from_errno(other), None, "{other}");
        }
        assert_eq!(
            serde_json::to_string(&Refusal::Notcapable).unwrap(),
            "\"NOTCAPABLE\""
        );
    }

    #[test]
    fn preopen_descriptors_follow_close_and_renumber() {
        let mut fds = PreopenFds::new(2);
        assert_eq!(fds.index_of(2), None);
        assert_eq!(fds.index_of(3), Some(0));
        assert_eq!(fds.index_of(4), Some(1));
        assert_eq!(fds.index_of(5), None);
        fds.renumbered(7, 8);
        assert!(fds.moved.is_none(), "unrelated descriptors cost nothing");
        fds.renumbered(3, 9);
        assert_eq!((fds.index_of(3), fds.index_of(9)), (None, Some(0)));
        // A plain directory renumbered onto a preopen's descriptor replaces it.
        fds.renumbered(12, 4);
        assert_eq!(fds.index_of(4), None);
        fds.closed(9);
        assert_eq!(fds.index_of(9), None);
        assert_eq!(fds.moved, Some(vec![None, None]));
    }
}
