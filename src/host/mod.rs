//! The host: warden's whole pipeline (policy → compile → manifest → decisions →
//! sandbox → audit → run) as one type that an application embeds.
//!
//! [`Warden`] is what the `warden` command line itself uses, and the only way in this
//! crate to run a plugin under a policy with its audit records: it owns the order in
//! which things happen, so an embedding application cannot get it wrong.
//!
//! ```no_run
//! use warden::host::{Loaded, Warden};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let warden = Warden::builder()
//!     .policy_file("policies/examples.toml")
//!     .audit_log("/var/log/warden/audit.jsonl")
//!     .build()?;
//! match warden.load("examples/plugins/hello.wasm")? {
//!     Loaded::Ready(plugin) => {
//!         let report = plugin.run(&["world".to_string()])?;
//!         println!("{:?}", report.result);
//!     }
//!     Loaded::Refused(refused) => eprintln!("refused: {}", refused.reason()),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! - [`Warden::load`] compiles the plugin (through the compiled-module cache), reads its
//!   manifest, decides every declared item under the policy and writes
//!   `policy_loaded`, `plugin_loaded` and one `grant`/`deny` per item. It returns
//!   [`Loaded::Ready`] with a [`Plugin`] that can run, or [`Loaded::Refused`], which
//!   has no way to run at all.
//! - [`Plugin::run`] writes `run_start` (on disk before the guest runs, or the guest
//!   does not run), runs the call in a fresh store, and writes its runtime denials, the
//!   limit that ended it and `run_end`, whatever happened.
//! - [`Warden::explain`] and [`Warden::inspect`] answer without running
//!   `plugin_execute` and without writing records.
//! - [`Warden::reload_policy`] and [`Warden::set_policy`] swap the policy atomically;
//!   plugins loaded under the old one refuse to run ([`HostError::StalePolicy`]) until
//!   they are loaded again, since their decisions may no longer hold.
//!
//! A [`Warden`] is cheap to clone and `Send + Sync`: one host serves many threads, and
//! one [`Plugin`] may be run from many threads at once (each call has its own store).
//! The wasm stack ceiling is a property of a wasmtime engine; the host keeps one engine
//! per distinct ceiling the policy asks for.
//!
//! The lower-level parts ([`crate::runtime::Loader`], [`crate::grant::decide`],
//! [`crate::sandbox::Sandbox`], [`crate::audit::AuditLog`]) stay public for those who
//! need them; using them directly, the order above is the caller's to keep.
//!
//! # Security
//!
//! This is where the trust boundaries meet. A plugin runs only with a sandbox built
//! from its decisions ([`crate::sandbox::Sandbox::from_decisions`]), only after its
//! `run_start` is appended, and only under the policy it was decided under. A refused
//! plugin is a different type from a runnable one. A failure to write a record stops
//! the pipeline (fail closed): [`HostError::Audit`].

mod error;
mod plugin;
pub mod registry;
mod slots;

pub use error::HostError;
pub use plugin::{Explanation, Inspection, Loaded, Plugin, PluginSource, Refused};
pub use registry::{CommandInfo, CommandStatus, Registry, RegistryError};

use crate::audit::{AuditLog, PolicyInfo, Rotation, RunEnd};
use crate::cache::ModuleCache;
use crate::grant::Host;
use crate::limits::Limits;
use crate::policy::Policy;
use crate::runtime::{LoadedPlugin, Loader, LoaderConfig, RuntimeError, RuntimeErrorKind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// Where a policy comes from.
#[derive(Debug, Clone)]
pub enum PolicySource {
    /// A TOML file, read (and checked like sshd's `StrictModes`) on build and reload.
    File(PathBuf),
    /// Policy text, named `name` in errors.
    Text {
        /// What to call it in errors and records.
        name: String,
        /// The TOML text.
        text: String,
    },
    /// A policy already read and validated ([`Policy::load`], [`Policy::parse`]).
    Policy(Box<Policy>),
    /// The built-in policy (`POLICY.md` rule 10): stdout and stderr only.
    Builtin,
}

/// Where the audit records go.
#[derive(Debug, Clone)]
enum AuditTarget {
    /// `$WARDEN_AUDIT_LOG`, else `$XDG_STATE_HOME/warden/audit.jsonl`, else
    /// `~/.local/state/warden/audit.jsonl`.
    Default,
    /// This file.
    File(PathBuf),
    /// Nowhere (measurements and tests only).
    Disabled,
}

/// Which compiled-module cache to use.
#[derive(Debug, Clone)]
enum CacheChoice {
    /// `$XDG_CACHE_HOME/warden` (`~/.cache/warden`).
    Default,
    /// This directory.
    Dir(PathBuf),
    /// None: every load compiles.
    Disabled,
}

/// Builds a [`Warden`]. Every setting has a default: the built-in policy, the default
/// audit log, the current directory, this process's environment and the default cache.
#[derive(Debug, Clone)]
#[must_use]
pub struct WardenBuilder {
    policy: PolicySource,
    allow_insecure_policy: bool,
    audit: AuditTarget,
    rotation: Rotation,
    keep: Option<usize>,
    workdir: Option<PathBuf>,
    env: Option<Vec<(String, String)>>,
    cache: CacheChoice,
    protected_log: Option<PathBuf>,
    home: Option<PathBuf>,
    sync_each_run: bool,
    worker_program: Option<PathBuf>,
    max_concurrent_calls: u32,
}

/// Calls a host runs at once unless told otherwise
/// ([`WardenBuilder::max_concurrent_calls`]): the engine pool's size.
pub const DEFAULT_MAX_CONCURRENT_CALLS: u32 = crate::runtime::POOL_SLOTS;

impl Default for WardenBuilder {
    fn default() -> Self {
        WardenBuilder {
            policy: PolicySource::Builtin,
            allow_insecure_policy: false,
            audit: AuditTarget::Default,
            rotation: Rotation::Never,
            keep: None,
            workdir: None,
            env: None,
            cache: CacheChoice::Default,
            protected_log: None,
            home: None,
            sync_each_run: false,
            worker_program: None,
            max_concurrent_calls: DEFAULT_MAX_CONCURRENT_CALLS,
        }
    }
}

impl WardenBuilder {
    /// The policy to decide under.
    pub fn policy(mut self, source: PolicySource) -> Self {
        self.policy = source;
        self
    }

    /// The policy in the TOML file at `path`.
    pub fn policy_file(self, path: impl Into<PathBuf>) -> Self {
        self.policy(PolicySource::File(path.into()))
    }

    /// Accept a policy file that fails the ownership checks (`--allow-insecure-policy`).
    pub fn allow_insecure_policy(mut self, allow: bool) -> Self {
        self.allow_insecure_policy = allow;
        self
    }

    /// Write the audit records to `path` (created, with its folder, when missing).
    pub fn audit_log(mut self, path: impl Into<PathBuf>) -> Self {
        self.audit = AuditTarget::File(path.into());
        self
    }

    /// `fsync` the log after each run's `run_start` and `run_end` (default: off). With
    /// it, a run's records survive a power loss, not only a crash of the process: the
    /// guest runs only once its `run_start` is on the disk, and [`Plugin::run`] returns
    /// once its `run_end` is. Threads running at once share `fsync`s (group commit).
    /// Without it, records are appended to the file (visible to every reader, kept if
    /// the process dies) before the guest runs, and [`Warden::flush`] `fsync`s.
    pub fn sync_each_run(mut self, sync: bool) -> Self {
        self.sync_each_run = sync;
        self
    }

    /// When to start a new audit log file (default: never).
    pub fn audit_rotation(mut self, rotation: Rotation) -> Self {
        self.rotation = rotation;
        self
    }

    /// Keep at most `count` rotated audit log files besides the one being written,
    /// deleting the oldest when a new one starts (default: keep all). Deleting them
    /// leaves a set that `audit verify --key` verifies from its first signed
    /// checkpoint: run `warden audit checkpoint` more often than files are deleted.
    pub fn audit_keep(mut self, count: usize) -> Self {
        self.keep = Some(count);
        self
    }

    /// Write no audit records at all. For measurements, tests and read-only questions
    /// ([`Warden::explain`], [`Warden::inspect`]): a host that runs plugins for real
    /// keeps an audit log.
    pub fn without_audit(mut self) -> Self {
        self.audit = AuditTarget::Disabled;
        self
    }

    /// Decide as a host writing its audit log at `path` would: no plugin is granted
    /// it (`builtin.protected`), although nothing is written there (for
    /// [`Warden::explain`] with [`WardenBuilder::without_audit`]).
    pub fn protect_audit_log(mut self, path: impl Into<PathBuf>) -> Self {
        self.protected_log = Some(path.into());
        self
    }

    /// What relative paths in the policy and the manifests resolve against.
    pub fn workdir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.workdir = Some(dir.into());
        self
    }

    /// The host environment plugins may be granted variables from (default: this
    /// process's). `HOME` in it is what `~` means.
    pub fn env(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        self.env = Some(vars.into_iter().collect());
        self
    }

    /// What `~` means in the policy and the manifests (default: `HOME` of the
    /// environment given to [`WardenBuilder::env`], else of this process).
    pub fn home(mut self, dir: impl Into<PathBuf>) -> Self {
        self.home = Some(dir.into());
        self
    }

    /// Keep compiled modules in `dir` (checked like the default cache).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache = CacheChoice::Dir(dir.into());
        self
    }

    /// Start confined workers (plugins under `isolation = "process"`, the default)
    /// from `program`, a `warden` executable, instead of this process's own
    /// executable. Needed when the application's `main` does not call
    /// [`crate::worker::main_if_worker`] first; the `WARDEN_WORKER` variable does
    /// the same. Nothing here weakens the policy: a plugin the policy runs in a
    /// worker runs in one, or not at all.
    pub fn worker_program(mut self, program: impl Into<PathBuf>) -> Self {
        self.worker_program = Some(program.into());
        self
    }

    /// How many calls run at once, over every plugin of this host (default
    /// [`DEFAULT_MAX_CONCURRENT_CALLS`], 64; at most 64, the engine pool's size). A
    /// call that finds every slot taken waits for one, first come first served; the
    /// wait counts against its own `timeout`, and a call whose deadline passes first
    /// ends as a `concurrency` limit ([`crate::runtime::RuntimeErrorKind::Busy`],
    /// recorded as `run_end` outcome `limit`), never as the plugin's fault.
    ///
    /// Each call in flight holds, in warden's process, one slot of the engine's pool
    /// (a 4 GiB virtual reservation of which only the memory the guest touches is
    /// resident, up to its `memory` limit) and, under `isolation = "process"`, one
    /// worker process (about 10 MiB resident besides the guest's memory). Size it for
    /// the calls that wait: plugins that wait on the network hold their slot while
    /// they wait.
    pub fn max_concurrent_calls(mut self, calls: u32) -> Self {
        self.max_concurrent_calls = calls.clamp(1, crate::runtime::POOL_SLOTS);
        self
    }

    /// Use no compiled-module cache: every load compiles.
    pub fn without_cache(mut self) -> Self {
        self.cache = CacheChoice::Disabled;
        self
    }

    /// Opens the audit log, reads the policy and opens the cache.
    ///
    /// # Errors
    ///
    /// [`HostError::Audit`] when the log cannot be opened (nothing may run then);
    /// [`HostError::Policy`] when the policy cannot be read or is invalid, after its
    /// `policy_rejected` and `run_end` records are written;
    /// [`HostError::Workdir`] when there is no working directory.
    pub fn build(self) -> Result<Warden, HostError> {
        let workdir = match &self.workdir {
            Some(dir) => std::path::absolute(dir),
            None => std::env::current_dir(),
        }
        .map_err(|source| HostError::Workdir { source })?;
        // The log first: if it cannot be written, nothing else happens.
        let audit = match &self.audit {
            AuditTarget::Default => Some(open_audit_log(
                &default_audit_log()?,
                self.rotation,
                self.keep,
            )?),
            AuditTarget::File(path) => Some(open_audit_log(path, self.rotation, self.keep)?),
            AuditTarget::Disabled => None,
        };
        let (cache, cache_warning) = match &self.cache {
            CacheChoice::Disabled => (None, None),
            CacheChoice::Default => match ModuleCache::default_dir() {
                Some(dir) => open_cache(dir),
                None => (None, None),
            },
            CacheChoice::Dir(dir) => open_cache(dir.clone()),
        };
        let host = {
            let mut host = Host::from_process(&workdir);
            if let Some(vars) = &self.env {
                host.home = vars
                    .iter()
                    .find(|(k, v)| k == "HOME" && !v.is_empty())
                    .map(|(_, v)| PathBuf::from(v));
                host.env = vars.clone();
            }
            if let Some(home) = &self.home {
                host.home = Some(home.clone());
            }
            if let Some(log) = audit
                .as_ref()
                .map(AuditLog::path)
                .or(self.protected_log.as_deref())
            {
                host = host.with_audit_log(log);
            }
            host
        };
        let inner = Inner {
            policy: RwLock::new(Arc::new(PolicyState::builtin())),
            policy_source: Mutex::new(self.policy.clone()),
            allow_insecure_policy: self.allow_insecure_policy,
            audit,
            host,
            cache,
            cache_warning,
            loaders: Mutex::new(Vec::new()),
            sync_each_run: self.sync_each_run,
            worker_program: self.worker_program.clone(),
            slots: slots::CallSlots::new(self.max_concurrent_calls),
        };
        let policy = inner.read_policy(&self.policy)?;
        inner.install(policy);
        Ok(Warden {
            inner: Arc::new(inner),
        })
    }
}

/// A policy in force, with the facts its records carry.
#[derive(Debug)]
struct PolicyState {
    policy: Policy,
    info: PolicyInfo,
}

impl PolicyState {
    fn new(policy: Policy) -> Self {
        let info = policy_info(&policy);
        PolicyState { policy, info }
    }

    fn builtin() -> Self {
        PolicyState::new(Policy::builtin())
    }
}

/// The `policy` object of the records: the file where it really is (absolute).
fn policy_info(policy: &Policy) -> PolicyInfo {
    PolicyInfo {
        path: policy
            .file()
            .map_or_else(|| policy.path().to_owned(), |f| f.display().to_string()),
        sha256: Some(policy.sha256_hex()),
        mode: policy.mode().as_str().to_owned(),
    }
}

/// The host's shared state.
struct Inner {
    policy: RwLock<Arc<PolicyState>>,
    policy_source: Mutex<PolicySource>,
    allow_insecure_policy: bool,
    audit: Option<AuditLog>,
    host: Host,
    cache: Option<ModuleCache>,
    cache_warning: Option<String>,
    /// One loader (engine) per wasm stack ceiling in use.
    loaders: Mutex<Vec<(Loader, bool)>>,
    /// `fsync` after `run_start` and `run_end` ([`WardenBuilder::sync_each_run`]).
    sync_each_run: bool,
    /// The executable workers start from ([`WardenBuilder::worker_program`]).
    worker_program: Option<PathBuf>,
    /// The calls in flight ([`WardenBuilder::max_concurrent_calls`]).
    slots: slots::CallSlots,
}

impl Inner {
    /// The policy in force now.
    fn policy(&self) -> Arc<PolicyState> {
        match self.policy.read() {
            Ok(p) => Arc::clone(&p),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn install(&self, state: PolicyState) {
        let state = Arc::new(state);
        match self.policy.write() {
            Ok(mut p) => *p = state,
            Err(poisoned) => *poisoned.into_inner() = state,
        }
    }

    /// Reads `source`; a failure is recorded (`policy_rejected`, `run_end`) and
    /// returned.
    fn read_policy(&self, source: &PolicySource) -> Result<PolicyState, HostError> {
        let loaded = match source {
            PolicySource::File(path) => Policy::load(path, self.allow_insecure_policy),
            PolicySource::Text { name, text } => {
                Policy::parse(name, text).map_err(crate::policy::LoadError::Invalid)
            }
            PolicySource::Policy(policy) => Ok((**policy).clone()),
            PolicySource::Builtin => Ok(Policy::builtin()),
        };
        match loaded {
            Ok(policy) => Ok(PolicyState::new(policy)),
            Err(e) => {
                let e = HostError::Policy(e);
                if let Some(log) = &self.audit {
                    let mut rec = log.run()?;
                    let info = PolicyInfo {
                        path: match source {
                            PolicySource::File(p) => std::path::absolute(p)
                                .unwrap_or_else(|_| p.clone())
                                .display()
                                .to_string(),
                            PolicySource::Text { name, .. } => name.clone(),
                            PolicySource::Policy(policy) => policy.path().to_owned(),
                            PolicySource::Builtin => crate::policy::BUILTIN_NAME.to_owned(),
                        },
                        sha256: None,
                        mode: crate::policy::Mode::Enforce.as_str().to_owned(),
                    };
                    let message = e.to_string();
                    rec.policy_rejected(&info, &message)?;
                    rec.run_end(&RunEnd::rejected(e.exit_code(), message))?;
                    log.sync()?;
                }
                Err(e)
            }
        }
    }

    /// The loader for calls under `limits`: the engine for its stack ceiling (built
    /// the first time that ceiling is asked for), set up for `limits`; `pooled` when
    /// calls will run in this process (an engine whose plugins all run in workers
    /// only compiles, and skips the instance pool's set-up and tear-down).
    fn loader(&self, limits: &Limits, pooled: bool) -> Result<Loader, RuntimeError> {
        let mut loaders = match self.loaders.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((loader, _)) = loaders
            .iter()
            .find(|(l, p)| l.config().limits.stack == limits.stack && *p == pooled)
        {
            return Ok(loader.with_limits(limits.clone()));
        }
        let mut config = LoaderConfig::new(&self.host.workdir);
        config.limits = limits.clone();
        let loader = Loader::with_pool(config, pooled.then_some(crate::runtime::POOL_SLOTS))?;
        loaders.push((loader.clone(), pooled));
        Ok(loader)
    }

    /// Compiles (through the cache) and reads the manifest of `bytes`, whose SHA-256
    /// is `sha256`, for calls under `limits`, where `manifest` says unless it is known (given, or kept by the
    /// cache from an earlier load); `pooled` picks the engine ([`Inner::loader`]).
    fn load_bytes(
        &self,
        bytes: &[u8],
        sha256: [u8; 32],
        limits: &Limits,
        manifest: ManifestFrom,
        pooled: bool,
    ) -> Result<LoadedPlugin, RuntimeError> {
        let loader = self.loader(limits, pooled)?;
        let (known, in_worker) = match manifest {
            ManifestFrom::Known(manifest) => (Some(*manifest), false),
            ManifestFrom::Worker => (self.cached_manifest(&sha256, limits), true),
            ManifestFrom::ThisProcess => (self.cached_manifest(&sha256, limits), false),
        };
        // A worker to read the manifest starts before compiling, so that its start
        // overlaps the compilation.
        let worker = match known {
            None if in_worker => Some(self.manifest_worker(limits)?),
            _ => None,
        };
        let module = match &self.cache {
            Some(cache) => loader.compile_cached(bytes, sha256, cache)?.0,
            None => loader.compile(bytes)?,
        };
        loader.load_module_with(module, sha256, |here| {
            if let Some(manifest) = known {
                return Ok(manifest);
            }
            let (manifest, message) = match worker {
                Some((program, early)) => crate::worker::parent::read_manifest(
                    &program,
                    here.module(),
                    here.limits(),
                    early,
                )?,
                None => {
                    let message = here.read()?;
                    (
                        crate::runtime::instance::parse_manifest_message(&message)?,
                        message,
                    )
                }
            };
            if let Some(cache) = &self.cache
                && let Err(e) = cache.put_manifest(&sha256, &message)
            {
                tracing::warn!(error = %e, "cannot keep the manifest in the cache");
            }
            Ok(manifest)
        })
    }

    /// The manifest the cache keeps for the module `sha256`, bounded by `limits` and
    /// decoded and validated as any manifest (one that fails is not used).
    fn cached_manifest(
        &self,
        sha256: &[u8; 32],
        limits: &Limits,
    ) -> Option<crate::abi::PluginManifest> {
        let message = self.cache.as_ref()?.manifest(sha256)?;
        if message.len() as u64 > limits.max_manifest {
            return None;
        }
        crate::runtime::instance::parse_manifest_message(&message).ok()
    }

    /// The program workers start from, and one started for a manifest under `limits`.
    fn manifest_worker(
        &self,
        limits: &Limits,
    ) -> Result<(PathBuf, Option<crate::worker::Spawned>), RuntimeError> {
        let program = crate::worker::program(self.worker_program.as_deref())
            .map_err(|message| RuntimeError::new(RuntimeErrorKind::Worker { message }))?;
        let early = crate::worker::Spawned::start(program.clone(), limits.stack).ok();
        Ok((program, early))
    }

    /// Where a load under `policy` reads a plugin's manifest: in a worker when the
    /// policy may run plugins in one (the plugin's name, which picks its table and so
    /// its isolation, is only known from the manifest), else in this process.
    fn manifest_from(policy: &Policy) -> ManifestFrom {
        if policy.may_isolate() {
            ManifestFrom::Worker
        } else {
            ManifestFrom::ThisProcess
        }
    }
}

/// Where [`Inner::load_bytes`] reads the manifest.
enum ManifestFrom {
    /// Here: no plugin of the policy runs in a worker.
    ThisProcess,
    /// In a worker of its own, confined with no grant.
    Worker,
    /// Already read, by an earlier load of the same bytes.
    Known(Box<crate::abi::PluginManifest>),
}

/// An embedded warden: a policy, an audit log, a working directory, a host
/// environment and a compiled-module cache, shared by every plugin it loads.
///
/// See the [module documentation](self) for the pipeline it owns.
///
/// # Errors
///
/// Every operation returns a typed [`HostError`] that says what failed and carries the
/// exit code ([`crate::exit`]) a command line gives it ([`HostError::exit_code`]): the
/// audit log (74: nothing ran), the policy (66 unreadable, 78 invalid), the plugin file
/// (66), the plugin itself (65 invalid, 70 trap, 124/125 limits), a stale policy (77).
///
/// # Security
///
/// A plugin runs only through [`Plugin::run`], which exists only for a plugin whose
/// load decided it may run ([`Loaded::Ready`]), with the sandbox built from those
/// decisions, after its `run_start` is appended, and under the policy in force when it
/// was loaded. Records are written in the pipeline's order; a record that cannot be
/// written stops it. Without [`WardenBuilder::without_audit`], there is no way to run a
/// plugin that leaves no records.
#[derive(Clone)]
pub struct Warden {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Warden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warden")
            .field("policy", &self.inner.policy().info)
            .field("workdir", &self.inner.host.workdir)
            .field("audit_log", &self.audit_log_path())
            .finish_non_exhaustive()
    }
}

impl Warden {
    /// A builder with every default.
    pub fn builder() -> WardenBuilder {
        WardenBuilder::default()
    }

    /// The policy in force.
    pub fn policy(&self) -> Policy {
        self.inner.policy().policy.clone()
    }

    /// The audit log's path, unless records are disabled.
    pub fn audit_log_path(&self) -> Option<&Path> {
        self.inner.audit.as_ref().map(AuditLog::path)
    }

    /// The working directory relative paths resolve against.
    pub fn workdir(&self) -> &Path {
        &self.inner.host.workdir
    }

    /// Why the compiled-module cache is not used, when one was asked for and could not
    /// be opened (the host works without it; a command line prints this as a warning).
    pub fn cache_warning(&self) -> Option<&str> {
        self.inner.cache_warning.as_deref()
    }

    /// Appends every record emitted so far and `fsync`s the log.
    ///
    /// # Errors
    ///
    /// [`HostError::Audit`] when a record could not be written.
    pub fn flush(&self) -> Result<(), HostError> {
        if let Some(log) = &self.inner.audit {
            log.sync_data()?;
        }
        Ok(())
    }

    /// How many `fsync`s the audit log has issued ([`AuditLog::sync_data`]).
    pub fn fsyncs(&self) -> u64 {
        self.inner.audit.as_ref().map_or(0, AuditLog::fsyncs)
    }

    /// Reads the policy again from where it came from, and puts it in force.
    ///
    /// # Errors
    ///
    /// As [`Warden::set_policy`].
    pub fn reload_policy(&self) -> Result<(), HostError> {
        let source = match self.inner.policy_source.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        self.set_policy(source)
    }

    /// Puts the policy from `source` in force, atomically: loads that start after this
    /// returns decide under it, and plugins loaded under the previous policy refuse to
    /// run ([`HostError::StalePolicy`]) until loaded again. The new policy's
    /// `policy_loaded` record is written here, under a run id of its own that a
    /// `run_end` with outcome `unloaded` closes (no plugin ran under it).
    ///
    /// # Errors
    ///
    /// [`HostError::Policy`] when it cannot be read or is invalid (the previous policy
    /// stays in force; `policy_rejected` is recorded), [`HostError::Audit`].
    pub fn set_policy(&self, source: PolicySource) -> Result<(), HostError> {
        let state = self.inner.read_policy(&source)?;
        if let Some(log) = &self.inner.audit {
            // The reload is a load of its own, with no plugin and no run: its
            // `run_end` (outcome `unloaded`, exit code 0) closes it, so every run id
            // in the log has exactly one `run_end` and `verify` sees no open load.
            let mut rec = log.run()?;
            rec.policy_loaded(&state.info)?;
            rec.run_end(&RunEnd::unloaded())?;
            log.sync()?;
        }
        match self.inner.policy_source.lock() {
            Ok(mut s) => *s = source,
            Err(poisoned) => *poisoned.into_inner() = source,
        }
        self.inner.install(state);
        Ok(())
    }
}
/// `$WARDEN_AUDIT_LOG`, else `$XDG_STATE_HOME/warden/audit.jsonl`, else
/// `~/.local/state/warden/audit.jsonl`.
///
/// # Errors
///
/// [`HostError::Audit`] when none of them is set.
pub fn default_audit_log() -> Result<PathBuf, HostError> {
    let from_env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    from_env("WARDEN_AUDIT_LOG")
        .or_else(|| {
            from_env("XDG_STATE_HOME")
                .filter(|p| p.is_absolute())
                .map(|p| p.join("warden/audit.jsonl"))
        })
        .or_else(|| from_env("HOME").map(|h| h.join(".local/state/warden/audit.jsonl")))
        .ok_or(HostError::Audit(crate::audit::AuditError::NoPath))
}

/// Opens (creating it and its folder, mode 0700, when missing) the audit log.
fn open_audit_log(
    path: &Path,
    rotation: Rotation,
    keep: Option<usize>,
) -> Result<AuditLog, HostError> {
    AuditLog::open_keeping(path, rotation, keep).map_err(HostError::AuditUnavailable)
}

/// The cache in `dir`, or why it cannot be used (never a reason to fail).
fn open_cache(dir: PathBuf) -> (Option<ModuleCache>, Option<String>) {
    match ModuleCache::open(&dir) {
        Ok(cache) => (Some(cache), None),
        Err(e) => (None, Some(format!("{e}; compiling without the cache"))),
    }
}
