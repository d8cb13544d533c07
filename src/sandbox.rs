//! The sandbox one plugin runs in: opened directories, an environment allowlist and the
//! standard streams.
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

use cap_std::fs::Dir;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
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
    dir: Dir,
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
#[derive(Debug, Default)]
pub struct Sandbox {
    preopens: Vec<Preopen>,
    env: Vec<(String, String)>,
    stdio: StdioGrant,
}

#[allow(
    dead_code,
    reason = "the grant constructors are used once the policy engine lands"
)]
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

    /// Adds a directory that was opened (and checked) by the caller.
    pub(crate) fn push_preopen(
        &mut self,
        dir: Dir,
        host_path: PathBuf,
        guest_path: String,
        writable: bool,
    ) {
        self.preopens.push(Preopen {
            dir,
            host_path,
            guest_path,
            writable,
        });
    }

    /// Adds one environment variable that was allowed.
    pub(crate) fn push_env(&mut self, name: String, value: String) {
        self.env.push((name, value));
    }

    /// Sets the granted streams.
    pub(crate) fn set_stdio(&mut self, stdio: StdioGrant) {
        self.stdio = stdio;
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

/// The magic link that reopens exactly the directory `dir` holds.
fn proc_fd_path(dir: &Dir) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", dir.as_fd().as_raw_fd()))
}
