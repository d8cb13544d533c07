//! The administrator's policy: TOML in, a validated [`Policy`] out (`POLICY.md`).
//!
//! [`Policy::load`] reads a file (refusing one that group or others may write),
//! [`Policy::parse`] validates text, and [`Policy::builtin`] is rule 10's default. A
//! policy that breaks any rule is rejected whole, with every problem reported as
//! `FILE:LINE:COLUMN: message` ([`PolicyErrors`]); nothing runs under it.
//!
//! A validated policy is data only: paths stay as written (`~`, relative) because they
//! resolve against the run's home and working directory, which [`crate::grant`] knows.
//! Every list entry keeps the key path that names it (`plugins.file-reader.fs.read[0]`)
//! so that a decision can say which rule decided it.
//!
//! # Security
//!
//! The policy file is the operator's authority over plugins. A file another user can
//! write could grant that user's plugins anything, so it is refused like sshd's
//! `StrictModes` refuses a writable `authorized_keys`, unless the run opts out.

mod coverage;
pub(crate) mod env;
pub mod error;
mod lint;
mod model;
pub(crate) mod parse;
pub mod pin;
pub mod suggest;
mod values;

pub use error::{OwnershipError, PolicyError, PolicyErrors};
pub use model::{
    BUILTIN_NAME, BUILTIN_TEXT, Confine, Entry, Isolation, LimitOverrides, MAX_MEMORY, MAX_STACK,
    Mode, OnDenied, POLICY_VERSION, PluginTable, Rules, Stream, toml_key,
};
pub use values::format_size;

use crate::limits::{Limits, MIB};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// Largest policy file warden reads.
pub const MAX_POLICY_BYTES: u64 = 4 * MIB;

/// A validated policy. Only [`Policy::parse`], [`Policy::load`] and [`Policy::builtin`]
/// make one, so every value in it has passed the checks of `POLICY.md` rule 9.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    path: String,
    file: Option<PathBuf>,
    sha256: [u8; 32],
    mode: Mode,
    require_digest: bool,
    on_denied: OnDenied,
    log_args: bool,
    defaults: Rules,
    plugins: BTreeMap<String, PluginTable>,
    warnings: Vec<PolicyError>,
    locations: BTreeMap<String, (usize, usize)>,
}

/// Why a policy file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be opened or read.
    #[error("cannot read policy `{path}`: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but is not a valid policy (or is writable by others).
    #[error("{0}")]
    Invalid(PolicyErrors),
}

impl Policy {
    /// Validates `text`, naming it `file` in errors.
    ///
    /// # Errors
    ///
    /// [`PolicyErrors`] with every problem found, in order of position.
    pub fn parse(file: &str, text: &str) -> Result<Policy, PolicyErrors> {
        let mut parsed = parse::parse(file, text)?;
        parsed.warnings.extend(lint::warnings(&parsed, file));
        Ok(Policy {
            path: file.to_owned(),
            file: None,
            sha256: Sha256::digest(text.as_bytes()).into(),
            mode: parsed.mode,
            require_digest: parsed.require_digest,
            on_denied: parsed.on_denied,
            log_args: parsed.log_args,
            defaults: parsed.defaults,
            plugins: parsed.plugins,
            warnings: parsed.warnings,
            locations: parsed.locations,
        })
    }

    /// What `policy check` warns about (rule 9), legal but probably wrong: decimal
    /// units, very broad grants, allow lists with no deny list, and `fs` allow entries
    /// that do not exist on this host (relative to `workdir`, `~` as `home`). Each
    /// names its line and column and says how to fix it.
    pub fn warnings(&self, workdir: &Path, home: Option<&Path>) -> Vec<PolicyError> {
        let mut out = self.warnings.clone();
        let tables = std::iter::once(&self.defaults).chain(self.plugins.values().map(|t| &t.rules));
        for rules in tables {
            for entry in &rules.net_tls_roots {
                let Ok(path) = crate::paths::expand_path(&entry.value, workdir, home) else {
                    continue;
                };
                if path.is_file() {
                    continue;
                }
                if let Some(&(line, column)) = self.locations.get(&entry.key) {
                    out.push(PolicyError {
                        file: self.path.clone(),
                        line,
                        column,
                        message: format!(
                            "`{}` = `{}` is not a file here (`{}`): every HTTPS request of a plugin under it will fail until it is; fix the path, or check with `--workdir`",
                            entry.key,
                            entry.value,
                            path.display()
                        ),
                    });
                }
            }
            for entry in rules.fs_read.iter().chain(&rules.fs_write) {
                let Ok(path) = crate::paths::expand_path(&entry.value, workdir, home) else {
                    continue;
                };
                if path.is_dir() {
                    continue;
                }
                let Some(&(line, column)) = self.locations.get(&entry.key) else {
                    continue;
                };
                let what = if path.exists() {
                    "is not a directory"
                } else {
                    "does not exist"
                };
                let near = crate::paths::nearest_sibling(&path)
                    .map(|name| {
                        let written = entry.value.trim_end_matches('/');
                        match written.rsplit_once('/') {
                            Some((parent, _)) => format!(" (did you mean `{parent}/{name}`?)"),
                            None => format!(" (did you mean `{name}`?)"),
                        }
                    })
                    .unwrap_or_default();
                out.push(PolicyError {
                    file: self.path.clone(),
                    line,
                    column,
                    message: format!(
                        "`{}` = `{}` {what} here (`{}`){near}: a plugin declaring it is denied; fix the path, or check with `--workdir` where the plugin will run",
                        entry.key,
                        entry.value,
                        path.display()
                    ),
                });
            }
        }
        out.sort_by_key(|w| (w.line, w.column));
        out
    }

    /// Reads and validates the policy file at `path`.
    ///
    /// Unless `allow_insecure` is set, the file is checked as sshd's `StrictModes`
    /// checks its files ([`check_ownership`]): the file and every folder above it must
    /// be owned by root or the user running warden and not writable by group or others
    /// (a sticky folder such as `/tmp` aside). The checks run on the opened file and on
    /// the folders above where it really is, so they are about the bytes that are read.
    ///
    /// # Errors
    ///
    /// [`LoadError::Read`] when the file cannot be read; [`LoadError::Invalid`] when it
    /// fails the ownership checks, is larger than [`MAX_POLICY_BYTES`], not UTF-8, or
    /// not a valid policy.
    pub fn load(path: &Path, allow_insecure: bool) -> Result<Policy, LoadError> {
        let name = path.display().to_string();
        let read_error = |source| LoadError::Read {
            path: name.clone(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let meta = file.metadata().map_err(read_error)?;
        if !meta.is_file() {
            return Err(LoadError::Invalid(PolicyErrors::file_level(
                &name,
                "is not a regular file".into(),
            )));
        }
        // Where the opened file really is (symlinks resolved by the kernel).
        let real = std::fs::read_link(crate::paths::proc_fd_path(&file)).map_err(read_error)?;
        if !allow_insecure {
            check_ownership(&meta, &real).map_err(|problem| {
                LoadError::Invalid(PolicyErrors::file_level(&name, problem.to_string()))
            })?;
        }
        let mut bytes = Vec::new();
        file.take(MAX_POLICY_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        if bytes.len() as u64 > MAX_POLICY_BYTES {
            return Err(LoadError::Invalid(PolicyErrors::file_level(
                &name,
                format!("the policy file is larger than {MAX_POLICY_BYTES} bytes"),
            )));
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            LoadError::Invalid(PolicyErrors::file_level(
                &name,
                format!(
                    "the policy file is not UTF-8 (invalid byte at offset {})",
                    e.utf8_error().valid_up_to()
                ),
            ))
        })?;
        let mut policy = Policy::parse(&name, &text).map_err(LoadError::Invalid)?;
        policy.file = Some(real);
        Ok(policy)
    }

    /// The built-in policy (rule 10): stdout and stderr, default limits, nothing else.
    pub fn builtin() -> Policy {
        match Policy::parse(BUILTIN_NAME, BUILTIN_TEXT) {
            Ok(policy) => policy,
            // BUILTIN_TEXT is a constant that a unit test parses; this arm is the same
            // policy built by hand, so a mistake there still fails closed.
            Err(_) => Policy {
                path: BUILTIN_NAME.to_owned(),
                file: None,
                sha256: Sha256::digest(BUILTIN_TEXT.as_bytes()).into(),
                warnings: Vec::new(),
                locations: BTreeMap::new(),
                mode: Mode::Enforce,
                require_digest: false,
                on_denied: OnDenied::Run,
                log_args: false,
                defaults: Rules {
                    table: "defaults".into(),
                    stdio: Some(vec![
                        Entry {
                            key: "defaults.stdio[0]".into(),
                            value: Stream::Stdout,
                        },
                        Entry {
                            key: "defaults.stdio[1]".into(),
                            value: Stream::Stderr,
                        },
                    ]),
                    ..Rules::default()
                },
                plugins: BTreeMap::new(),
            },
        }
    }

    /// The file the policy came from, as named by the user (`<built-in>` for rule 10).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Where the file [`Policy::load`] read really is (absolute, symlinks resolved);
    /// `None` for a policy parsed from text or built in. No plugin may be granted it
    /// (`builtin.protected`).
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// SHA-256 of the policy text.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// SHA-256 of the policy text, in hex.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }

    /// `mode`.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// `[defaults] require_digest`.
    pub fn require_digest(&self) -> bool {
        self.require_digest
    }

    /// `[defaults] on_denied`.
    pub fn on_denied(&self) -> OnDenied {
        self.on_denied
    }

    /// `[audit] log_args`: whether `run_start` records the plugin's arguments.
    pub fn log_args(&self) -> bool {
        self.log_args
    }

    /// Whether any plugin may run in a worker process under this policy:
    /// `isolation = "process"` (the default) in `[defaults]` or in a plugin table.
    pub fn may_isolate(&self) -> bool {
        let process = |rules: &Rules| {
            rules
                .isolation
                .as_ref()
                .is_some_and(|e| e.value == Isolation::Process)
        };
        self.defaults()
            .isolation
            .as_ref()
            .is_none_or(|e| e.value == Isolation::Process)
            || self.plugins().any(|p| process(&p.rules))
    }

    /// The `[defaults]` rules.
    pub fn defaults(&self) -> &Rules {
        &self.defaults
    }

    /// The `[plugins.NAME]` table for `name`, if there is one (pin not checked).
    pub fn plugin(&self, name: &str) -> Option<&PluginTable> {
        self.plugins.get(name)
    }

    /// Every plugin table, by name.
    pub fn plugins(&self) -> impl Iterator<Item = &PluginTable> {
        self.plugins.values()
    }

    /// The limits of `[defaults]`: what the manifest read runs under.
    pub fn default_limits(&self) -> Limits {
        self.defaults.limits.apply(&Limits::default())
    }
}

/// The `StrictModes` checks of a policy file (`POLICY.md` rule 9): `meta` is the opened
/// file's, `real` where it really is. The file and every folder above it must be owned
/// by root or the user running warden, and not writable by group or others; a folder
/// writable by others is accepted only with the sticky bit (`/tmp`), where nobody else
/// can rename or remove what sits in it.
///
/// # Errors
///
/// An [`OwnershipError`] for the first item that fails, saying how to fix it.
pub fn check_ownership(meta: &std::fs::Metadata, real: &Path) -> Result<(), OwnershipError> {
    use std::os::unix::fs::MetadataExt as _;
    let me = rustix::process::geteuid().as_raw();
    let owned = |uid: u32| uid == 0 || uid == me;
    let mode = meta.permissions().mode();
    if !owned(meta.uid()) {
        return Err(OwnershipError::FileOwner {
            uid: meta.uid(),
            me,
        });
    }
    if mode & 0o022 != 0 {
        return Err(OwnershipError::FileWritable {
            path: real.to_owned(),
            mode,
        });
    }
    for folder in real.ancestors().skip(1) {
        let meta = std::fs::symlink_metadata(folder).map_err(|source| OwnershipError::Folder {
            folder: folder.to_owned(),
            source,
        })?;
        let mode = meta.permissions().mode();
        if !owned(meta.uid()) {
            return Err(OwnershipError::FolderOwner {
                folder: folder.to_owned(),
                uid: meta.uid(),
                me,
            });
        }
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return Err(OwnershipError::FolderWritable {
                folder: folder.to_owned(),
                mode,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_policy_parses_and_grants_only_stdout_and_stderr() {
        let parsed = Policy::parse(BUILTIN_NAME, BUILTIN_TEXT).unwrap();
        assert_eq!(parsed, Policy::builtin());
        let stdio: Vec<Stream> = parsed
            .defaults()
            .stdio
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| e.value)
            .collect();
        assert_eq!(stdio, [Stream::Stdout, Stream::Stderr]);
        assert_eq!(parsed.default_limits(), Limits::default());
        assert!(parsed.defaults().fs_read.is_empty() && parsed.defaults().env_allow.is_empty());
        assert_eq!(parsed.mode(), Mode::Enforce);
    }

    #[test]
    fn plugin_keys_are_quoted_only_when_needed() {
        assert_eq!(toml_key("file-reader"), "file-reader");
        assert_eq!(toml_key("my.tool"), "\"my.tool\"");
    }

    fn errors(text: &str) -> Vec<String> {
        match Policy::parse("p.toml", text) {
            Ok(_) => Vec::new(),
            Err(e) => e.errors().iter().map(ToString::to_string).collect(),
        }
    }

    fn warnings(text: &str) -> Vec<String> {
        let policy = Policy::parse("p.toml", text).unwrap_or_else(|e| panic!("{e}"));
        policy
            .warnings(Path::new("/"), None)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn isolation_and_confine_default_to_process_and_best_effort() {
        assert_eq!(Isolation::default(), Isolation::Process);
        assert_eq!(Confine::default(), Confine::BestEffort);
        let names = [
            (Isolation::Process.as_str(), "process"),
            (Isolation::InProcess.as_str(), "in-process"),
            (Confine::BestEffort.as_str(), "best-effort"),
            (Confine::Required.as_str(), "required"),
        ];
        for (name, expected) in names {
            assert_eq!(name, expected);
        }
        assert_eq!(
            serde_json::to_value([Isolation::Process, Isolation::InProcess]).unwrap(),
            serde_json::json!(["process", "in-process"])
        );
        assert_eq!(
            serde_json::to_value([Confine::BestEffort, Confine::Required]).unwrap(),
            serde_json::json!(["best-effort", "required"])
        );
        // Neither the built-in policy nor a policy without the keys writes them: the
        // defaults above apply (`grant::decide` names the rule `default`).
        for policy in [
            Policy::builtin(),
            Policy::parse("p.toml", "version = 1\n").unwrap(),
        ] {
            assert_eq!(policy.defaults().isolation, None);
            assert_eq!(policy.defaults().confine, None);
        }
    }

    #[test]
    fn isolation_and_confine_are_read_in_defaults_and_plugin_tables() {
        let policy = Policy::parse(
            "p.toml",
            "version = 1\n[defaults]\nisolation = \"in-process\"\nconfine = \"best-effort\"\n[plugins.a]\nisolation = \"process\"\nconfine = \"required\"\n[plugins.\"my.tool\"]\nconfine = \"required\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        fn entry<T>(key: &str, value: T) -> Option<Entry<T>> {
            Some(Entry {
                key: key.into(),
                value,
            })
        }
        assert_eq!(
            policy.defaults().isolation,
            entry("defaults.isolation", Isolation::InProcess)
        );
        assert_eq!(
            policy.defaults().confine,
            entry("defaults.confine", Confine::BestEffort)
        );
        let a = &policy.plugin("a").unwrap().rules;
        assert_eq!(
            a.isolation,
            entry("plugins.a.isolation", Isolation::Process)
        );
        assert_eq!(a.confine, entry("plugins.a.confine", Confine::Required));
        let tool = &policy.plugin("my.tool").unwrap().rules;
        assert_eq!(tool.isolation, None);
        assert_eq!(
            tool.confine,
            entry("plugins.\"my.tool\".confine", Confine::Required)
        );
    }

    #[test]
    fn unknown_isolation_and_confine_values_are_errors_at_the_value() {
        assert_eq!(
            errors(
                "version = 1\n[defaults]\nisolation = \"inprocess\"\n[plugins.a]\nconfine = \"strict\"\nisolation = true\n"
            ),
            [
                "p.toml:3:13: `isolation` must be one of `process`, `in-process`, found `inprocess`: did you mean `in-process`?",
                "p.toml:5:11: `confine` must be one of `best-effort`, `required`, found `strict`",
                "p.toml:6:13: `isolation` must be a string, found a boolean",
            ]
        );
        assert_eq!(
            errors("version = 1\n[defaults]\nisolaton = \"process\"\n"),
            ["p.toml:3:1: unknown key `isolaton` in `[defaults]`: did you mean `isolation`?"]
        );
    }

    #[test]
    fn confine_required_in_process_is_warned_about_not_rejected() {
        let message = |confine: &str, isolation: &str| {
            format!(
                "`{confine}` = `required`: confine has no effect in-process (`{isolation}` = `in-process`), so nothing is confined and nothing is refused; set `isolation = \"process\"` to run the plugin in a confined worker, or remove `confine`"
            )
        };
        // The same table.
        assert_eq!(
            warnings(
                "version = 1\n[defaults]\nisolation = \"in-process\"\nconfine = \"required\"\n"
            ),
            [format!(
                "p.toml:4:11: {}",
                message("defaults.confine", "defaults.isolation")
            )]
        );
        assert_eq!(
            warnings(
                "version = 1\n[plugins.a]\nconfine = \"required\"\nisolation = \"in-process\"\n"
            ),
            [format!(
                "p.toml:3:11: {}",
                message("plugins.a.confine", "plugins.a.isolation")
            )]
        );
        // A plugin table requiring confinement while it inherits `in-process`.
        assert_eq!(
            warnings(
                "version = 1\n[defaults]\nisolation = \"in-process\"\n[plugins.a]\nconfine = \"required\"\n"
            ),
            [format!(
                "p.toml:5:11: {}",
                message("plugins.a.confine", "defaults.isolation")
            )]
        );
        // Not warned: a process plugin, and one plugin's deliberate `in-process`
        // exception to a `required` default.
        for text in [
            "version = 1\n[defaults]\nisolation = \"process\"\nconfine = \"required\"\n",
            "version = 1\n[defaults]\nisolation = \"in-process\"\n[plugins.a]\nisolation = \"process\"\nconfine = \"required\"\n",
            "version = 1\n[defaults]\nconfine = \"required\"\n[plugins.a]\nisolation = \"in-process\"\n",
            "version = 1\n[defaults]\nisolation = \"in-process\"\nconfine = \"best-effort\"\n",
        ] {
            assert_eq!(warnings(text), Vec::<String>::new(), "{text}");
        }
    }
}
