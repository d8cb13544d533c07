//! What can go wrong in the host pipeline, with the exit code ([`crate::exit`]) of each.

use crate::audit::AuditError;
use crate::exit;
use crate::policy::LoadError;
use crate::runtime::RuntimeError;
use std::path::PathBuf;

/// Why the host could not load, run, explain or inspect a plugin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The audit log cannot be opened: nothing runs (fail closed).
    #[error("{0}; nothing was run")]
    AuditUnavailable(AuditError),
    /// An audit record cannot be written: the pipeline stops there (fail closed).
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The policy cannot be read or is invalid: nothing runs under it.
    #[error(transparent)]
    Policy(#[from] LoadError),
    /// The plugin file cannot be read.
    #[error("cannot read plugin `{}`: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The plugin is not a valid plugin, or the engine could not be set up for it.
    #[error("{}: {source}", .plugin)]
    Plugin {
        /// The file, or what the caller called the bytes.
        plugin: String,
        /// What is wrong with it.
        source: RuntimeError,
    },
    /// The working directory cannot be determined.
    #[error("cannot determine the working directory: {source}")]
    Workdir {
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The plugin was loaded under a policy that has since been replaced: its
    /// decisions may no longer hold, so it does not run.
    #[error(
        "plugin `{plugin}` was loaded under a policy that has since been replaced \
         (policy sha256 {loaded_under}, now {current}); load it again to decide its grants under the current policy"
    )]
    StalePolicy {
        /// The plugin's declared name.
        plugin: String,
        /// The policy it was loaded under.
        loaded_under: String,
        /// The policy in force.
        current: String,
    },
}

impl HostError {
    /// The exit code ([`crate::exit`]) of this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            HostError::Audit(e) | HostError::AuditUnavailable(e) => e.exit_code(),
            HostError::Policy(LoadError::Read { .. }) => exit::NO_INPUT,
            HostError::Policy(LoadError::Invalid(_)) => exit::POLICY_INVALID,
            HostError::Read { .. } | HostError::Workdir { .. } => exit::NO_INPUT,
            HostError::Plugin { source, .. } => source.exit_code(),
            HostError::StalePolicy { .. } => exit::REFUSED,
        }
    }
}
