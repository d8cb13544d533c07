//! A directory of plugins, called by command name: what an application that hosts
//! plugins (as sen-rs CLI apps host theirs) needs.
//!
//! [`Registry::open`] loads every `*.wasm` file of a directory through a [`Warden`]
//! (each load decided and audited), and indexes the plugins by the command name their
//! manifest declares. [`Registry::call`] runs one by name; [`Registry::commands`] lists
//! them with their `about`, and those the policy refused or that failed to load with
//! the reason.
//!
//! [`Registry::refresh`] looks at the directory again, on request: a file whose bytes
//! changed (by SHA-256) is a new load, decided and audited under the policy in force,
//! never a silent swap under an old pin; new files are loaded and removed ones dropped.
//! [`Registry::reload_policy`] reads the policy again and loads every plugin anew under
//! it.
//!
//! # Security
//!
//! A plugin declares its own command name, so a hostile plugin can claim another's.
//! Only a plugin that is ready claims a name: a file the policy refuses (a pin that
//! does not match) or that fails to load never takes a name from a ready one,
//! whatever the order of the files. Two ready plugins declaring one name are a clash:
//! neither runs, and both are listed as failed, naming both files. Pin plugins with
//! `sha256` in the policy to be sure which bytes answer to a name.

use super::{HostError, Loaded, Plugin, Warden};
use crate::runtime::RunReport;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// Whether a listed command can run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandStatus {
    /// Loaded and decided: [`Registry::call`] runs it.
    Ready,
    /// The policy refuses it, for this reason.
    Refused(String),
    /// It could not be loaded, for this reason.
    Failed(String),
}

/// One plugin of the directory.
#[derive(Debug, Clone)]
pub struct CommandInfo {
    /// The command name its manifest declares (for a file that failed to load, its
    /// file name).
    pub name: String,
    /// Its one-line description.
    pub about: String,
    /// The file.
    pub path: PathBuf,
    /// Whether it can run.
    pub status: CommandStatus,
}

/// Why [`Registry::call`] did not run a plugin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// No plugin declares this command.
    #[error("unknown command `{command}`; known commands: {}", .known.join(", "))]
    Unknown {
        /// The name asked for.
        command: String,
        /// The commands that can run.
        known: Vec<String>,
    },
    /// The plugin is there but cannot run.
    #[error("command `{command}` cannot run: {reason}")]
    Unavailable {
        /// The name asked for.
        command: String,
        /// Why (refused by the policy, failed to load).
        reason: String,
    },
    /// The host failed (audit log, stale policy).
    #[error(transparent)]
    Host(#[from] HostError),
}

impl RegistryError {
    /// The exit code ([`crate::exit`]) of this failure: [`crate::exit::USAGE`] for an
    /// unknown command, [`crate::exit::REFUSED`] for a refused one, the host's otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            RegistryError::Unknown { .. } => crate::exit::USAGE,
            RegistryError::Unavailable { .. } => crate::exit::REFUSED,
            RegistryError::Host(e) => e.exit_code(),
        }
    }
}

/// What one file of the directory is now.
#[derive(Debug, Clone)]
struct Entry {
    info: CommandInfo,
    sha256: [u8; 32],
    plugin: Option<Plugin>,
}

/// What [`Registry::refresh`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refreshed {
    /// Files loaded for the first time.
    pub added: Vec<PathBuf>,
    /// Files whose bytes changed, loaded again.
    pub reloaded: Vec<PathBuf>,
    /// Files that are gone.
    pub removed: Vec<PathBuf>,
}

/// The plugins of one directory, by command name.
#[derive(Debug)]
pub struct Registry {
    warden: Warden,
    dir: PathBuf,
    /// By file path.
    entries: RwLock<BTreeMap<PathBuf, Entry>>,
}

impl Registry {
    /// Loads every `*.wasm` file of `dir` through `warden`.
    ///
    /// # Errors
    ///
    /// [`HostError::Read`] when the directory cannot be listed, [`HostError::Audit`]
    /// when a record cannot be written. A plugin that fails to load is listed as
    /// failed, not an error.
    pub fn open(warden: Warden, dir: impl Into<PathBuf>) -> Result<Registry, HostError> {
        let registry = Registry {
            warden,
            dir: dir.into(),
            entries: RwLock::new(BTreeMap::new()),
        };
        registry.refresh()?;
        Ok(registry)
    }

    /// The host the plugins are loaded by.
    pub fn warden(&self) -> &Warden {
        &self.warden
    }

    /// Every plugin of the directory, in file-name order.
    pub fn commands(&self) -> Vec<CommandInfo> {
        self.read().values().map(|e| e.info.clone()).collect()
    }

    /// Runs the plugin whose command is `command` with `args`.
    ///
    /// # Errors
    ///
    /// [`RegistryError::Unknown`] (listing the commands that can run),
    /// [`RegistryError::Unavailable`], or the host's error.
    pub fn call(&self, command: &str, args: &[String]) -> Result<RunReport, RegistryError> {
        let plugin = {
            let entries = self.read();
            // The plugin that can run answers to its name; those that cannot only
            // explain why nothing does.
            let named: Vec<&Entry> = entries
                .values()
                .filter(|e| e.info.name == command)
                .collect();
            if let Some(plugin) = named.iter().find_map(|e| e.plugin.as_ref()) {
                plugin.clone()
            } else if named.is_empty() {
                return Err(RegistryError::Unknown {
                    command: command.to_owned(),
                    known: entries
                        .values()
                        .filter(|e| e.plugin.is_some())
                        .map(|e| e.info.name.clone())
                        .collect(),
                });
            } else {
                let why = |e: &Entry| match &e.info.status {
                    CommandStatus::Refused(reason) | CommandStatus::Failed(reason) => {
                        reason.clone()
                    }
                    CommandStatus::Ready => "not loaded".to_owned(),
                };
                let reason = match named.as_slice() {
                    [one] => why(one),
                    many => many
                        .iter()
                        .map(|e| format!("`{}`: {}", e.info.path.display(), why(e)))
                        .collect::<Vec<_>>()
                        .join("; "),
                };
                return Err(RegistryError::Unavailable {
                    command: command.to_owned(),
                    reason,
                });
            }
        };
        Ok(plugin.run(args)?)
    }

    /// Looks at the directory again: loads new files and files whose bytes changed
    /// (each load decided and audited under the policy in force), drops removed ones.
    ///
    /// # Errors
    ///
    /// As [`Registry::open`].
    pub fn refresh(&self) -> Result<Refreshed, HostError> {
        self.scan(false)
    }

    /// Reads the policy again ([`Warden::reload_policy`]) and loads every plugin anew
    /// under it: plugins loaded under the old policy would refuse to run.
    ///
    /// # Errors
    ///
    /// The policy's error (the old policy and plugins stay), or as
    /// [`Registry::open`].
    pub fn reload_policy(&self) -> Result<Refreshed, HostError> {
        self.warden.reload_policy()?;
        self.scan(true)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<PathBuf, Entry>> {
        match self.entries.read() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn scan(&self, reload_all: bool) -> Result<Refreshed, HostError> {
        let files = wasm_files(&self.dir)?;
        let old = self.read().clone();
        let mut next: BTreeMap<PathBuf, Entry> = BTreeMap::new();
        let mut done = Refreshed::default();
        for path in files {
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) => {
                    let name = file_name(&path);
                    next.insert(
                        path.clone(),
                        failed(&path, name, [0; 32], format!("cannot read: {e}")),
                    );
                    continue;
                }
            };
            let sha256: [u8; 32] = Sha256::digest(&bytes).into();
            match old.get(&path) {
                Some(entry) if entry.sha256 == sha256 && !reload_all => {
                    next.insert(path, entry.clone());
                    continue;
                }
                Some(_) => done.reloaded.push(path.clone()),
                None => done.added.push(path.clone()),
            }
            let entry = self.load(&path, &bytes, sha256)?;
            next.insert(path, entry);
        }
        done.removed = old
            .keys()
            .filter(|p| !next.contains_key(*p))
            .cloned()
            .collect();
        claim_names(&mut next);
        match self.entries.write() {
            Ok(mut e) => *e = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        Ok(done)
    }

    /// Loads one file's bytes (read once, so the digest is of what was loaded).
    fn load(&self, path: &Path, bytes: &[u8], sha256: [u8; 32]) -> Result<Entry, HostError> {
        let source = super::PluginSource::ReadFile {
            path: path.into(),
            bytes: bytes.into(),
        };
        match self.warden.load(source) {
            Ok(Loaded::Ready(plugin)) => Ok(Entry {
                info: CommandInfo {
                    name: plugin.manifest().command.name.clone(),
                    about: plugin.manifest().command.about.clone(),
                    path: path.to_path_buf(),
                    status: CommandStatus::Ready,
                },
                sha256,
                plugin: Some(plugin),
            }),
            Ok(Loaded::Refused(refused)) => Ok(Entry {
                info: CommandInfo {
                    name: refused.manifest().command.name.clone(),
                    about: refused.manifest().command.about.clone(),
                    path: path.to_path_buf(),
                    status: CommandStatus::Refused(refused.reason().to_owned()),
                },
                sha256,
                plugin: None,
            }),
            Err(HostError::Audit(e)) => Err(HostError::Audit(e)),
            Err(e) => Ok(failed(path, file_name(path), sha256, e.to_string())),
        }
    }
}

fn failed(path: &Path, name: String, sha256: [u8; 32], reason: String) -> Entry {
    Entry {
        info: CommandInfo {
            name,
            about: String::new(),
            path: path.to_path_buf(),
            status: CommandStatus::Failed(reason),
        },
        sha256,
        plugin: None,
    }
}

/// Who answers to each command name. Only a plugin that can run claims a name: one
/// the policy refused, or that failed to load, never takes a name from one that is
/// ready, whatever the order of their files. Two ready plugins that declare the same
/// name are a clash: neither runs, and each is listed as failed, naming both files.
fn claim_names(entries: &mut BTreeMap<PathBuf, Entry>) {
    let mut claims: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for (path, entry) in entries.iter() {
        if entry.plugin.is_some() && entry.info.status == CommandStatus::Ready {
            claims
                .entry(entry.info.name.clone())
                .or_default()
                .push(path.clone());
        }
    }
    for (name, paths) in claims {
        if paths.len() < 2 {
            continue;
        }
        let files: Vec<String> = paths.iter().map(|p| format!("`{}`", p.display())).collect();
        let reason = format!(
            "command `{name}` is declared by {} ready plugins: {}; neither runs until only one declares it (remove the others, and pin the one you mean with `sha256`)",
            paths.len(),
            files.join(" and ")
        );
        for path in &paths {
            if let Some(entry) = entries.get_mut(path) {
                entry.info.status = CommandStatus::Failed(reason.clone());
                entry.plugin = None;
            }
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The `*.wasm` regular files of `dir`, sorted.
fn wasm_files(dir: &Path) -> Result<Vec<PathBuf>, HostError> {
    let read_error = |source| HostError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "wasm")
            && entry.file_type().map_err(read_error)?.is_file()
        {
            files.push(std::path::absolute(&path).unwrap_or(path));
        }
    }
    files.sort();
    Ok(files)
}
