//! What the kernel enforces around a plugin's guest code: the `confinement` of
//! `run_start`, `policy explain` and `run -v`.
//!
//! Under `isolation = "process"` a plugin runs in a worker process that confines
//! itself before any guest code runs ([`crate::worker`]): Landlock for the filesystem
//! (only the granted directories) and TCP (none), seccomp-bpf for the system calls a
//! plugin never needs. How much of that the running kernel can enforce varies; a
//! [`Confinement`] says, per area, what was enforced and why anything was not, so a
//! reviewer reads it from the log and `confine = "required"` can refuse to run
//! without it.
//!
//! These are plain data, below the worker and the audit log, so both can name them.

use crate::policy::Isolation;
use serde::{Deserialize, Serialize};

/// How far one area (filesystem, network, system calls) is confined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Enforced by the kernel as the policy asks.
    Enforced,
    /// Enforced in part: the kernel lacks some of what the policy asks (the reason says
    /// what).
    Partial,
    /// The kernel cannot enforce it at all.
    Unsupported,
    /// Not asked for: the plugin runs in warden's own process.
    Off,
}

impl Status {
    /// The value as recorded.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Enforced => "enforced",
            Status::Partial => "partial",
            Status::Unsupported => "unsupported",
            Status::Off => "off",
        }
    }
}

/// One area's status, with the reason when it is not [`Status::Enforced`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enforcement {
    /// What was enforced.
    pub status: Status,
    /// Why not everything was, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Enforcement {
    /// Fully enforced.
    pub fn enforced() -> Self {
        Enforcement {
            status: Status::Enforced,
            reason: None,
        }
    }

    /// `status`, because of `reason`.
    pub fn because(status: Status, reason: impl Into<String>) -> Self {
        Enforcement {
            status,
            reason: Some(reason.into()),
        }
    }
}

impl std::fmt::Display for Enforcement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.status.as_str())?;
        if let Some(reason) = &self.reason {
            write!(f, " ({reason})")?;
        }
        Ok(())
    }
}

/// A confinement that falls short of `confine = "required"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the kernel cannot confine the worker as `confine = \"required\"` demands ({missing}); run it on a kernel with Landlock and seccomp, or relax `confine`"
)]
pub struct NotConfined {
    /// Each area not enforced, and why.
    pub missing: String,
}

/// What confined one plugin's guest code (`run_start.confinement`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confinement {
    /// Where the guest code ran.
    pub isolation: Isolation,
    /// The Landlock ABI version the worker used (0: none).
    pub landlock_abi: u8,
    /// The filesystem: only the granted directories, as granted.
    pub fs: Enforcement,
    /// The network: no socket, no TCP bind or connect (network effects go through
    /// warden).
    pub net: Enforcement,
    /// The system calls a plugin never needs (exec, ptrace, mount, ...).
    pub syscalls: Enforcement,
}

impl Confinement {
    /// The confinement of a plugin that runs in warden's own process: none beyond wasm.
    pub fn in_process() -> Self {
        let off = || {
            Enforcement::because(
                Status::Off,
                "isolation = \"in-process\": the plugin runs in warden's own process",
            )
        };
        Confinement {
            isolation: Isolation::InProcess,
            landlock_abi: 0,
            fs: off(),
            net: off(),
            syscalls: off(),
        }
    }

    /// `Err` with what is missing when this falls short of `confine = "required"`:
    /// the filesystem rules and the system call filter, both fully enforced.
    ///
    /// # Errors
    ///
    /// [`NotConfined`], naming each area that is not enforced, and why.
    pub fn check_required(&self) -> Result<(), NotConfined> {
        let mut missing = Vec::new();
        for (area, e) in [("filesystem", &self.fs), ("system calls", &self.syscalls)] {
            if e.status != Status::Enforced {
                missing.push(format!("{area}: {e}"));
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(NotConfined {
                missing: missing.join("; "),
            })
        }
    }

    /// One line for a terminal: `process, Landlock ABI 7: fs enforced, net enforced,
    /// syscalls enforced`.
    pub fn summary(&self) -> String {
        let abi = if self.landlock_abi == 0 {
            "no Landlock".to_owned()
        } else {
            format!("Landlock ABI {}", self.landlock_abi)
        };
        format!(
            "{}, {abi}: fs {}, net {}, syscalls {}",
            self.isolation.as_str(),
            self.fs,
            self.net,
            self.syscalls
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_process_is_off_everywhere_and_falls_short_of_required() {
        let c = Confinement::in_process();
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["isolation"], "in-process");
        assert_eq!(json["fs"]["status"], "off");
        let why = c.check_required().unwrap_err().to_string();
        assert!(why.contains("filesystem: off"), "{why}");
        assert!(why.contains("system calls: off"), "{why}");
    }

    #[test]
    fn required_needs_fs_and_syscalls_but_not_net() {
        let mut c = Confinement {
            isolation: Isolation::Process,
            landlock_abi: 3,
            fs: Enforcement::enforced(),
            net: Enforcement::because(Status::Unsupported, "Landlock ABI 3 has no TCP rules"),
            syscalls: Enforcement::enforced(),
        };
        assert_eq!(c.check_required(), Ok(()));
        c.fs = Enforcement::because(Status::Partial, "no truncate rule before ABI 3");
        assert!(c.check_required().is_err());
    }
}
