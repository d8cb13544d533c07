//! The sandbox one plugin runs in: opened directories, an environment allowlist and the
//! standard streams.
//!
//! [`Sandbox::from_decisions`] is the only way to put a directory or a variable into a
//! sandbox, and it reads only [`crate::grant::Grant`]s, which only the intersection
//! ([`crate::grant::decide`]) can make.
//!
//! A [`Sandbox`] holds each granted directory **open** (a cap-std [`Dir`]). Every call
//! hands the plugin that same open directory (through `/proc/self/fd/N`, which reopens
//! the very inode that was checked), never the path again, so renaming the directory
//! or swapping it for a symlink after the decision gains nothing.
//!
//! # Security
//!
//! This is the only module that turns grants into WASI preopens. Nothing is inherited
//! from the host: no directory, variable or stream that is not in the sandbox reaches
//! the plugin. A stream not granted is closed (reads see EOF, writes go nowhere).

use crate::grant::{Decisions, GrantKind};
use cap_std::fs::Dir;
use std::os::fd::{AsFd, AsRawFd};
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

/// Why a sandbox could not be built from decisions.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A granted directory could not be opened.
    #[error("cannot open granted directory `{}` (granted by `{rule}`): {source}", .host_path.display())]
    Open {
        /// The canonical path that was decided.
        host_path: PathBuf,
        /// The rule that granted it.
        rule: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The directory at the granted path is not the one that was decided.
    #[error(
        "granted directory `{}` (granted by `{rule}`) was replaced after the decision (device {decided_dev}, inode {decided_ino} was decided; device {found_dev}, inode {found_ino} is there now); refusing to run", .host_path.display()
    )]
    Replaced {
        /// The canonical path that was decided.
        host_path: PathBuf,
        /// The rule that granted it.
        rule: String,
        /// Device of the decided directory.
        decided_dev: u64,
        /// Inode of the decided directory.
        decided_ino: u64,
        /// Device of what was opened.
        found_dev: u64,
        /// Inode of what was opened.
        found_ino: u64,
    },
}

impl SandboxError {
    /// The exit code (`CLI.md`): 77 (refused) when a directory was replaced, 66 when
    /// it cannot be opened.
    pub fn exit_code(&self) -> u8 {
        match self {
            SandboxError::Open { .. } => 66,
            SandboxError::Replaced { .. } => 77,
        }
    }
}

/// Everything a plugin may touch during a call.
#[derive(Debug, Default)]
pub struct Sandbox {
    preopens: Vec<Preopen>,
    env: Vec<(String, String)>,
    stdio: StdioGrant,
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
    /// Each granted directory is opened once with cap-std at the canonical path that
    /// was decided; the open handle's device and inode must be those recorded at
    /// decision time, so a directory renamed or swapped for a symlink in between is
    /// refused. The plugin then gets that open directory, never the path again.
    /// Directories granted twice (read and write, or at two guest paths) share one
    /// handle; one guest path granted read-only and read-write is read-write.
    ///
    /// # Errors
    ///
    /// [`SandboxError`] naming the directory and the rule that granted it.
    pub fn from_decisions(decisions: &Decisions) -> Result<Sandbox, SandboxError> {
        let mut sandbox = Sandbox::default();
        let mut opened: Vec<((u64, u64), Arc<Dir>)> = Vec::new();
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
                    let identity = (g.dev, g.ino);
                    let dir = match opened.iter().find(|(id, _)| *id == identity) {
                        Some((_, dir)) => Arc::clone(dir),
                        None => {
                            let dir = Arc::new(open_checked(&g.host_path, &g.rule, identity)?);
                            opened.push((identity, Arc::clone(&dir)));
                            dir
                        }
                    };
                    sandbox.preopens.push(Preopen {
                        dir,
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
            }
        }
        Ok(sandbox)
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
            let handle = proc_fd_path(&p.dir);
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

/// Opens the directory at `host_path` and checks it is the one decided (`identity` is
/// its device and inode at decision time).
fn open_checked(host_path: &Path, rule: &str, identity: (u64, u64)) -> Result<Dir, SandboxError> {
    let open_error = |source| SandboxError::Open {
        host_path: host_path.to_path_buf(),
        rule: rule.to_owned(),
        source,
    };
    let dir = Dir::open_ambient_dir(host_path, cap_std::ambient_authority()).map_err(open_error)?;
    let stat = rustix::fs::fstat(&dir).map_err(|e| open_error(e.into()))?;
    let found = (stat.st_dev, stat.st_ino);
    if found != identity {
        return Err(SandboxError::Replaced {
            host_path: host_path.to_path_buf(),
            rule: rule.to_owned(),
            decided_dev: identity.0,
            decided_ino: identity.1,
            found_dev: found.0,
            found_ino: found.1,
        });
    }
    Ok(dir)
}

/// The magic link that reopens exactly the directory `dir` holds.
fn proc_fd_path(dir: &Dir) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", dir.as_fd().as_raw_fd()))
}
