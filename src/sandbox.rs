//! The sandbox one plugin runs in: opened directories, an environment allowlist, the
//! standard streams, and the network declarations its effects may use.
//!
//! [`Sandbox::from_decisions`] is the only way to put a directory or a variable into a
//! sandbox, and it reads only [`crate::grant::Grant`]s, which only the intersection
//! ([`crate::grant::decide`]) can make.
//!
//! A [`Sandbox`] holds each granted directory **open** (a cap-std [`Dir`]): the very
//! descriptor the decision opened, without following any symlink, and checked. Every
//! call hands the plugin that same open directory (through `/proc/self/fd/N`, which
//! reopens the very inode that was checked), never the path again, so renaming the
//! directory or swapping a folder for a symlink, during the decision or after it,
//! gains nothing.
//!
//! # Security
//!
//! This is the only module that turns grants into WASI preopens. Nothing is inherited
//! from the host: no directory, variable or stream that is not in the sandbox reaches
//! the plugin. A stream not granted is closed (reads see EOF, writes go nowhere).

use crate::grant::{Decisions, GrantKind};
use cap_std::fs::Dir;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// Which standard streams a plugin gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StdioGrant {
    /// The host's stdin is passed through.
    pub stdin: bool,
    /// stdout is captured (up to `max_output`) and printed by warden.
    pub stdout: bool,
    /// stderr is captured (up to `max_output`) and printed by warden.
    pub stderr: bool,
}

/// A directory the plugin may use, held open since the decision.
#[derive(Debug)]
pub struct Preopen {
    dir: Arc<Dir>,
    host_path: PathBuf,
    guest_path: String,
    writable: bool,
}

impl Preopen {
    /// The canonical host path the directory had when it was opened.
    pub fn host_path(&self) -> &Path {
        &self.host_path
    }

    /// Where the plugin sees it.
    pub fn guest_path(&self) -> &str {
        &self.guest_path
    }

    /// Whether the plugin may write in it.
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// The open directory.
    pub fn dir(&self) -> &Dir {
        &self.dir
    }
}

/// Everything a plugin may touch during a call.
///
/// Its `Debug` names the granted variables, never their values.
#[derive(Default)]
pub struct Sandbox {
    preopens: Vec<Preopen>,
    env: Vec<(String, String)>,
    stdio: StdioGrant,
    net: crate::net::NetAccess,
    track_access: bool,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("preopens", &self.preopens)
            .field("env", &self.env_names().collect::<Vec<_>>())
            .field("stdio", &self.stdio)
            .field("net", &self.net)
            .field("track_access", &self.track_access)
            .finish()
    }
}

impl Sandbox {
    /// A sandbox that grants nothing at all.
    pub fn empty() -> Self {
        Sandbox::default()
    }

    /// A sandbox that grants only the given streams (the built-in policy grants stdout
    /// and stderr).
    pub fn stdio_only(stdio: StdioGrant) -> Self {
        Sandbox {
            stdio,
            ..Sandbox::default()
        }
    }

    /// Builds the sandbox from the grants in `decisions`, and from nothing else.
    ///
    /// Each granted directory is the descriptor [`crate::grant::decide`] opened (without
    /// following any symlink) and checked: the sandbox never looks a path up again, so
    /// renaming a directory or swapping a folder for a symlink, during the decision or
    /// after it, cannot change what the plugin gets. One guest path granted read-only
    /// and read-write is read-write.
    pub fn from_decisions(decisions: &Decisions) -> Sandbox {
        let mut sandbox = Sandbox {
            net: crate::net::NetAccess {
                granted: Vec::new(),
                ..decisions.net().clone()
            },
            track_access: decisions.mode() == crate::policy::Mode::Audit,
            ..Sandbox::default()
        };
        for grant in decisions.grants() {
            match grant.kind() {
                GrantKind::Dir(g) => {
                    if let Some(p) = sandbox
                        .preopens
                        .iter_mut()
                        .find(|p| p.guest_path == g.guest_path && p.host_path == g.host_path)
                    {
                        p.writable |= g.writable;
                        continue;
                    }
                    sandbox.preopens.push(Preopen {
                        dir: Arc::clone(&g.dir),
                        host_path: g.host_path.clone(),
                        guest_path: g.guest_path.clone(),
                        writable: g.writable,
                    });
                }
                GrantKind::Env(vars) => {
                    for (name, value) in vars {
                        if !sandbox.env.iter().any(|(k, _)| k == name) {
                            sandbox.env.push((name.clone(), value.clone()));
                        }
                    }
                }
                GrantKind::Stream(stream) => match stream {
                    crate::policy::Stream::Stdin => sandbox.stdio.stdin = true,
                    crate::policy::Stream::Stdout => sandbox.stdio.stdout = true,
                    crate::policy::Stream::Stderr => sandbox.stdio.stderr = true,
                },
                GrantKind::Net(parts) => sandbox.net.granted.extend(parts.iter().cloned()),
            }
        }
        sandbox
    }

    /// The sandbox of a worker (`crate::worker`): the directories the parent opened,
    /// checked and passed (their descriptors, in the parent's order), and the rest as
    /// the parent's sandbox has it. Network effects go through the parent.
    pub(crate) fn for_worker(
        dirs: Vec<(Dir, String, PathBuf, bool)>,
        env: Vec<(String, String)>,
        stdio: StdioGrant,
        track_access: bool,
    ) -> Sandbox {
        Sandbox {
            preopens: dirs
                .into_iter()
                .map(|(dir, guest_path, host_path, writable)| Preopen {
                    dir: Arc::new(dir),
                    host_path,
                    guest_path,
                    writable,
                })
                .collect(),
            env,
            stdio,
            net: crate::net::NetAccess::default(),
            track_access,
        }
    }

    /// The granted variables, names and values (what a worker is sent).
    pub(crate) fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The granted directories.
    pub fn preopens(&self) -> &[Preopen] {
        &self.preopens
    }

    /// The names of the granted environment variables (values stay private).
    pub fn env_names(&self) -> impl Iterator<Item = &str> {
        self.env.iter().map(|(k, _)| k.as_str())
    }

    /// The granted streams.
    pub fn stdio(&self) -> StdioGrant {
        self.stdio
    }

    /// Whether calls record what the plugin uses (`access` records): in audit mode.
    pub fn tracks_access(&self) -> bool {
        self.track_access
    }

    /// The network access: granted declarations and the checks every request meets.
    pub fn net(&self) -> &crate::net::NetAccess {
        &self.net
    }

    /// Adds the directories and environment to a fresh WASI context builder.
    ///
    /// # Errors
    ///
    /// A message naming the directory when a held directory can no longer be reopened.
    pub(crate) fn configure(&self, builder: &mut WasiCtxBuilder) -> Result<(), String> {
        for p in &self.preopens {
            let perms = if p.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            let handle = crate::paths::proc_fd_path(&*p.dir);
            builder
                .preopened_dir(&handle, &p.guest_path, perms)
                .map_err(|e| {
                    format!(
                        "cannot reopen granted directory `{}` (held as {}): {e}",
                        p.host_path.display(),
                        handle.display()
                    )
                })?;
        }
        builder.envs(&self.env);
        Ok(())
    }
}
