//! Loading a plugin under the host's policy, and running it.

use super::{HostError, Inner, ManifestFrom, PolicyState, Warden};
use crate::abi::PluginManifest;
use crate::audit::{AuditRun, PluginInfo, Prepared, Redactor, RunEnd, RunStart};
use crate::confinement::Confinement;
use crate::grant::{Decisions, GrantKind, Outcome, decide};
use crate::policy::{Confine, Isolation};
use crate::runtime::{PluginInstance, RunReport, RuntimeError};
use crate::sandbox::Sandbox;
use crate::worker::WorkerPool;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A plugin to load: a file, or bytes already in memory.
#[derive(Debug, Clone)]
pub enum PluginSource<'a> {
    /// A `.wasm` file, read once.
    File(Cow<'a, Path>),
    /// A module's bytes, called `name` in errors.
    Bytes {
        /// What to call it in errors.
        name: Cow<'a, str>,
        /// The module.
        bytes: Cow<'a, [u8]>,
    },
    /// A `.wasm` file the caller has already read (its bytes are what is loaded and
    /// digested; the path is what the records name).
    ReadFile {
        /// The file.
        path: Cow<'a, Path>,
        /// Its bytes.
        bytes: Cow<'a, [u8]>,
    },
}

impl<'a> PluginSource<'a> {
    /// Bytes already in memory, called `name` in errors.
    pub fn bytes(name: impl Into<Cow<'a, str>>, bytes: impl Into<Cow<'a, [u8]>>) -> Self {
        PluginSource::Bytes {
            name: name.into(),
            bytes: bytes.into(),
        }
    }

    fn name(&self) -> String {
        match self {
            PluginSource::File(path) | PluginSource::ReadFile { path, .. } => {
                path.display().to_string()
            }
            PluginSource::Bytes { name, .. } => name.to_string(),
        }
    }

    fn path(&self) -> Option<PathBuf> {
        match self {
            PluginSource::File(path) | PluginSource::ReadFile { path, .. } => {
                Some(std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()))
            }
            PluginSource::Bytes { .. } => None,
        }
    }

    fn read(&self) -> Result<Cow<'_, [u8]>, HostError> {
        match self {
            PluginSource::File(path) => {
                std::fs::read(path)
                    .map(Cow::Owned)
                    .map_err(|source| HostError::Read {
                        path: path.to_path_buf(),
                        source,
                    })
            }
            PluginSource::Bytes { bytes, .. } | PluginSource::ReadFile { bytes, .. } => {
                Ok(Cow::Borrowed(bytes))
            }
        }
    }
}

impl<'a> From<&'a Path> for PluginSource<'a> {
    fn from(path: &'a Path) -> Self {
        PluginSource::File(Cow::Borrowed(path))
    }
}

impl<'a> From<&'a PathBuf> for PluginSource<'a> {
    fn from(path: &'a PathBuf) -> Self {
        PluginSource::File(Cow::Borrowed(path.as_path()))
    }
}

impl From<PathBuf> for PluginSource<'_> {
    fn from(path: PathBuf) -> Self {
        PluginSource::File(Cow::Owned(path))
    }
}

impl<'a> From<&'a str> for PluginSource<'a> {
    fn from(path: &'a str) -> Self {
        PluginSource::File(Cow::Borrowed(Path::new(path)))
    }
}

/// What [`Warden::load`] made of a plugin.
#[derive(Debug)]
pub enum Loaded {
    /// Decided, sandboxed and ready to run.
    Ready(Plugin),
    /// The policy refuses it (`on_denied = "refuse"` with a denial, a `sha256`
    /// mismatch, `require_digest` without a pin). It cannot run.
    Refused(Box<Refused>),
}

/// A plugin the policy refuses: its manifest and the decisions that refused it, and
/// nothing that could run it.
#[derive(Debug)]
pub struct Refused {
    manifest: PluginManifest,
    decisions: Decisions,
    reason: String,
    run_id: Option<String>,
    redactor: Arc<Redactor>,
}

impl Refused {
    /// What the plugin declared.
    pub fn manifest(&self) -> &PluginManifest {
        &self.manifest
    }

    /// Every decision, the refusing ones included.
    pub fn decisions(&self) -> &Decisions {
        &self.decisions
    }

    /// Why it may not run, with the granted values redacted as in its records
    /// (plugin text in it is not escaped: escape it for a terminal).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The redactor of the granted values, which the load's records passed: print
    /// record-bound values (the decisions) through it ([`Redactor::to_value`]).
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// The `run_id` of the load's records (with its `run_end`), when the host audits.
    pub fn run_id(&self) -> Option<&str> {
        self.run_id.as_deref()
    }
}

/// A plugin loaded under the host's policy: decided, sandboxed, ready to run any
/// number of times, from any number of threads. Cheap to clone.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<PluginInner>,
}

struct PluginInner {
    host: Arc<Inner>,
    instance: PluginInstance,
    /// Where calls run: warden's own process, or the plugin's confined workers.
    workers: Option<WorkerPool>,
    /// What the kernel enforces around the plugin's guest code (`run_start`).
    confinement: Confinement,
    manifest: PluginManifest,
    decisions: Decisions,
    path: Option<PathBuf>,
    policy: Arc<PolicyState>,
    /// The granted values, redacted from every record of the load and its runs.
    redactor: Arc<Redactor>,
    /// The parts of every run's records fixed for the load (`plugin`, `policy`,
    /// `run_start`'s limits and confinement), composed once through `redactor`.
    prepared: Arc<Prepared>,
    /// The `run_id` of the load's records.
    load_id: String,
    /// Whether a run has taken the load's `run_id` (the first run does).
    load_id_taken: AtomicBool,
}

impl Drop for PluginInner {
    /// A plugin loaded and never run still ends its load's story: `run_end` with
    /// outcome `unloaded`, so every `run_id` has exactly one `run_end`. Best effort (a
    /// drop cannot report a failure); the host's next flush reports a log that failed.
    fn drop(&mut self) {
        if self.load_id_taken.load(Ordering::Acquire) {
            return;
        }
        if let Some(log) = &self.host.audit {
            let ended = log
                .run_prepared(Some(self.load_id.clone()), &self.prepared)
                .and_then(|rec| rec.run_end(&RunEnd::unloaded()));
            if let Err(e) = ended {
                tracing::warn!(error = %e, load = %self.load_id, "cannot record the end of an unused load");
            }
        }
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.inner.manifest.command.name)
            .field("path", &self.inner.path)
            .field("load_id", &self.inner.load_id)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// What the plugin declared.
    pub fn manifest(&self) -> &PluginManifest {
        &self.inner.manifest
    }

    /// What the policy granted and denied it.
    pub fn decisions(&self) -> &Decisions {
        &self.inner.decisions
    }

    /// The SHA-256 of the module.
    pub fn sha256(&self) -> [u8; 32] {
        self.inner.instance.sha256()
    }

    /// The file it was loaded from, absolute (none for bytes).
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The `run_id` of its load's records.
    pub fn load_id(&self) -> &str {
        &self.inner.load_id
    }

    /// The redactor of its granted values: every record of its load and runs passed
    /// it, and whatever prints a record-bound value of it (its decisions, a report's
    /// runtime denials, effects and error) prints it through this one
    /// ([`Redactor::to_value`], [`Redactor::redact`]), as `warden run` does.
    pub fn redactor(&self) -> &Redactor {
        &self.inner.redactor
    }

    /// The underlying instance (lower level: running it directly bypasses the audit
    /// log, and runs the plugin in this process whatever its isolation).
    pub fn instance(&self) -> &PluginInstance {
        &self.inner.instance
    }

    /// What the kernel enforces around the plugin's guest code: its isolation and, in
    /// a worker, what Landlock and the syscall filter enforce on this machine.
    pub fn confinement(&self) -> &Confinement {
        &self.inner.confinement
    }

    /// Runs `plugin_execute` with `args`: `run_start` is appended before the guest runs,
    /// then the call (a fresh store, every limit), its runtime denials, the limit that
    /// ended it and `run_end`, whatever happened. The first run continues the load's
    /// `run_id`; later runs have their own, and their `run_start` names the load's
    /// (`load`).
    ///
    /// # Errors
    ///
    /// [`HostError::StalePolicy`] (nothing runs; a `run_end` with outcome `refused`
    /// says so) when the policy was replaced since the load;
    /// [`HostError::Audit`] when a record could not be written: before the guest runs,
    /// it does not run.
    pub fn run(&self, args: &[String]) -> Result<RunReport, HostError> {
        let inner = &*self.inner;
        let current = inner.host.policy();
        let Some(log) = &inner.host.audit else {
            if !Arc::ptr_eq(&current, &inner.policy) {
                return Err(self.stale(&current));
            }
            return Ok(inner.call(args));
        };
        let _syncing = inner.host.sync_each_run.then(|| log.syncing_run());
        let first = !inner.load_id_taken.swap(true, Ordering::AcqRel);
        let rec = log.run_prepared(first.then(|| inner.load_id.clone()), &inner.prepared)?;
        if !Arc::ptr_eq(&current, &inner.policy) {
            let e = self.stale(&current);
            rec.run_end(&RunEnd::refused(e.exit_code(), e.to_string()))?;
            return Err(e);
        }
        rec.run_start(RunStart {
            args,
            log_args: inner.policy.policy.log_args(),
            limits: inner.instance.limits(),
            load: (!first).then_some(inner.load_id.as_str()),
            confinement: &inner.confinement,
        })?;
        if inner.host.sync_each_run {
            log.sync_data()?;
        }
        let report = inner.call(args);
        rec.run_finished(&report, report.exit_code())?;
        if inner.host.sync_each_run {
            log.sync_data()?;
        }
        Ok(report)
    }

    fn stale(&self, current: &PolicyState) -> HostError {
        HostError::StalePolicy {
            plugin: self.inner.manifest.command.name.clone(),
            loaded_under: self.inner.policy.policy.sha256_hex(),
            current: current.policy.sha256_hex(),
        }
    }
}

impl PluginInner {
    /// One call, where the policy says it runs, once one of the host's call slots is
    /// free: the wait counts against the call's `timeout`, and a call whose deadline
    /// passes while it waits ends as a `concurrency` limit without running.
    fn call(&self, args: &[String]) -> RunReport {
        let started = std::time::Instant::now();
        let timeout = self.instance.limits().timeout;
        let Some(_slot) = self.host.slots.acquire(started.checked_add(timeout)) else {
            return RunReport::failed(
                RuntimeError::new(crate::runtime::RuntimeErrorKind::Busy {
                    slots: self.host.slots.capacity(),
                    timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                })
                .for_plugin(&self.manifest.command.name),
                started.elapsed(),
            );
        };
        let budget = timeout.saturating_sub(started.elapsed());
        let mut report = match &self.workers {
            Some(workers) => workers.run(args, budget),
            None => self.instance.run_within(args, budget),
        };
        report.duration = started.elapsed();
        report
    }
}

/// The redactor of the variables `decisions` grant (name, value).
fn redactor_of(decisions: &Decisions) -> Arc<Redactor> {
    let vars = decisions.grants().flat_map(|grant| match grant.kind() {
        GrantKind::Env(vars) => vars.as_slice(),
        _ => &[],
    });
    Arc::new(Redactor::new(
        vars.map(|(name, value)| (name.as_str(), value.as_str())),
    ))
}

/// What [`Warden::explain`] says about a plugin: its manifest and the decisions a load
/// would make, without running `plugin_execute` or writing records.
#[derive(Debug)]
pub struct Explanation {
    /// What the plugin declared.
    pub manifest: PluginManifest,
    /// What the policy grants and denies it.
    pub decisions: Decisions,
    /// The policy that decided.
    pub policy: crate::policy::Policy,
    /// What would confine the plugin's guest code on this machine: under
    /// `isolation = "process"`, what a worker started for it reports (it runs no
    /// guest code); why, when no worker could start.
    pub confinement: Result<Confinement, RuntimeError>,
}

/// What [`Warden::inspect`] says about a plugin.
#[derive(Debug)]
pub struct Inspection {
    /// What the plugin declared.
    pub manifest: PluginManifest,
    /// The SHA-256 of the module.
    pub sha256: [u8; 32],
}

/// Wraps a load's records, or nothing when the host keeps no log.
struct LoadRecords<'log>(Option<AuditRun<'log>>);

impl LoadRecords<'_> {
    fn with(
        &mut self,
        f: impl FnOnce(&mut AuditRun<'_>) -> Result<(), crate::audit::AuditError>,
    ) -> Result<(), HostError> {
        match &mut self.0 {
            Some(rec) => Ok(f(rec)?),
            None => Ok(()),
        }
    }

    /// `plugin_rejected` and `run_end` for a load that failed, then the failure.
    fn rejected(&mut self, sha256: [u8; 32], e: HostError) -> HostError {
        let message = e.to_string();
        let code = e.exit_code();
        let recorded = self.with(|rec| {
            rec.plugin_rejected(&PluginInfo::unnamed(sha256), &message)?;
            rec.run_end(&RunEnd::rejected(code, message.clone()))
        });
        match recorded {
            Ok(()) => e,
            Err(audit) => audit,
        }
    }

    fn id(&self) -> Option<String> {
        self.0.as_ref().map(|r| r.run_id().to_owned())
    }
}

impl Warden {
    /// Loads a plugin under the policy in force: compiles it (through the cache),
    /// reads its manifest, decides every declared item, and records `policy_loaded`,
    /// `plugin_loaded` and a `grant` or `deny` per item (a refused plugin's load also
    /// gets its `run_end`).
    ///
    /// # Errors
    ///
    /// [`HostError::Read`] and [`HostError::Plugin`] (after `plugin_rejected` and
    /// `run_end` are recorded) when the file cannot be read or is not a valid plugin;
    /// [`HostError::Audit`] when a record cannot be written.
    pub fn load<'a>(&self, source: impl Into<PluginSource<'a>>) -> Result<Loaded, HostError> {
        let source = source.into();
        let inner = &self.inner;
        let policy = inner.policy();
        // A worker starts now (on a thread of its own), when the policy may run this
        // plugin in one, so that it builds its engine while this process loads the
        // plugin (it gets the module once compiled, and nothing else until the plugin
        // is decided; an unused one is killed).
        let may_isolate = policy.policy.may_isolate();
        let starting = may_isolate
            .then(|| crate::worker::program(inner.worker_program.as_deref()).ok())
            .flatten()
            .map(|program| {
                crate::worker::Spawned::start_in_background(
                    program,
                    policy.policy.default_limits().stack,
                )
            });
        let mut rec = LoadRecords(match &inner.audit {
            Some(log) => Some(log.run()?),
            None => None,
        });
        rec.with(|r| r.policy_loaded(&policy.info))?;
        let bytes = match source.read() {
            Ok(bytes) => bytes,
            Err(e) => return Err(rec.rejected([0; 32], e)),
        };
        let sha256: [u8; 32] = Sha256::digest(&bytes).into();
        let name = source.name();
        let failed = |source: RuntimeError| HostError::Plugin {
            plugin: name.clone(),
            source,
        };
        let defaults = policy.policy.default_limits();
        let manifest_from = Inner::manifest_from(&policy.policy);
        let mut loaded =
            match inner.load_bytes(&bytes, sha256, &defaults, manifest_from, !may_isolate) {
                Ok(loaded) => loaded,
                Err(e) => return Err(rec.rejected(sha256, failed(e))),
            };
        // The early worker gets the module now, and loads it while the plugin is
        // decided (when the plugin turns out to run elsewhere, it is killed unused).
        let mut early = starting.and_then(crate::worker::parent::Starting::wait);
        if let Some(worker) = early.as_mut()
            && worker.send_module(loaded.instance.module()).is_err()
        {
            early = None;
        }
        let path = source.path();
        let info = PluginInfo::new(
            &loaded.manifest.command.name,
            loaded.manifest.command.version.clone(),
            sha256,
        )
        .with_path(path.as_deref());
        // Decided before anything the plugin chose is recorded: its name and version
        // are on every record from `plugin_loaded` on, and pass the redactor of the
        // values these decisions grant.
        let decisions = decide(
            &loaded.manifest.capabilities,
            &loaded.manifest.command.name,
            sha256,
            &policy.policy,
            &inner.host,
        );
        let redactor = redactor_of(&decisions);
        rec.with(|r| {
            r.set_redactor(Arc::clone(&redactor));
            r.plugin_loaded(&info, &loaded.manifest.capabilities)
        })?;
        for decision in decisions.items() {
            rec.with(|r| {
                if decision.outcome() == Outcome::Granted {
                    r.grant(decision)
                } else {
                    r.deny(decision)
                }
            })?;
        }
        // A refusal ends the load's story: its `run_end`, synced, then the verdict.
        let refuse = |rec: &mut LoadRecords<'_>,
                      reason: String,
                      manifest: PluginManifest,
                      decisions: Decisions|
         -> Result<Loaded, HostError> {
            rec.with(|r| {
                r.run_end(&RunEnd::refused(
                    crate::exit::REFUSED,
                    crate::escape::escape_line(&reason),
                ))
            })?;
            if let Some(log) = &inner.audit {
                log.sync()?;
            }
            Ok(Loaded::Refused(Box::new(Refused {
                manifest,
                decisions,
                reason: redactor.redact(&reason).into_owned(),
                run_id: rec.id(),
                redactor: Arc::clone(&redactor),
            })))
        };
        if let Some(refusal) = decisions.refusal() {
            let reason = format!("refused to run plugin `{}`: {refusal}", decisions.plugin());
            return refuse(&mut rec, reason, loaded.manifest, decisions);
        }
        let limits = decisions.limits().clone();
        let (isolation, _) = decisions.isolation();
        let in_process = isolation == Isolation::InProcess;
        if limits.stack != defaults.stack || in_process == may_isolate {
            // The stack ceiling is the engine's, and so is the instance pool calls in
            // this process need: the same bytes, on the engine for them.
            let known = ManifestFrom::Known(Box::new(loaded.manifest.clone()));
            loaded = match inner.load_bytes(&bytes, sha256, &limits, known, in_process) {
                Ok(loaded) => loaded,
                Err(e) => return Err(rec.rejected(sha256, failed(e))),
            };
        }
        loaded.instance.set_limits(limits);
        loaded
            .instance
            .set_sandbox(Sandbox::from_decisions(&decisions));
        let (confine, confine_rule) = decisions.confine();
        let workers = match isolation {
            Isolation::InProcess => None,
            Isolation::Process => {
                let started = crate::worker::program(inner.worker_program.as_deref())
                    .map_err(|message| {
                        RuntimeError::new(crate::runtime::RuntimeErrorKind::Worker { message })
                    })
                    .and_then(|program| {
                        WorkerPool::start(
                            program,
                            &loaded.instance,
                            early,
                            inner.slots.capacity() as usize,
                        )
                    });
                match started {
                    Ok(pool) => Some(pool),
                    Err(e) => return Err(rec.rejected(sha256, failed(e))),
                }
            }
        };
        let confinement = workers
            .as_ref()
            .map_or_else(Confinement::in_process, |w| w.confinement().clone());
        if isolation == Isolation::Process
            && confine == Confine::Required
            && let Err(why) = confinement.check_required()
        {
            let reason = format!(
                "refused to run plugin `{}`: {why}; `{confine_rule}` requires it",
                decisions.plugin()
            );
            return refuse(&mut rec, reason, loaded.manifest, decisions);
        }
        let load_id = rec.id().unwrap_or_default();
        let prepared = Prepared::for_load(
            Arc::clone(&redactor),
            &load_id,
            &policy.info,
            &info,
            loaded.instance.limits(),
            &confinement,
        );
        let prepared = match prepared {
            Ok(prepared) => Arc::new(prepared),
            Err(e) => return Err(rec.rejected(sha256, e.into())),
        };
        Ok(Loaded::Ready(Plugin {
            inner: Arc::new(PluginInner {
                host: Arc::clone(inner),
                instance: loaded.instance,
                workers,
                confinement,
                manifest: loaded.manifest,
                decisions,
                path,
                policy,
                redactor,
                prepared,
                load_id,
                load_id_taken: AtomicBool::new(false),
            }),
        }))
    }

    /// What a load would decide for the plugin, item by item, without running
    /// `plugin_execute` and without writing records.
    ///
    /// # Errors
    ///
    /// [`HostError::Read`], [`HostError::Plugin`].
    pub fn explain<'a>(
        &self,
        source: impl Into<PluginSource<'a>>,
    ) -> Result<Explanation, HostError> {
        let source = source.into();
        let policy = self.inner.policy();
        let bytes = source.read()?;
        let loaded = self
            .inner
            .load_bytes(
                &bytes,
                Sha256::digest(&bytes).into(),
                &policy.policy.default_limits(),
                Inner::manifest_from(&policy.policy),
                !policy.policy.may_isolate(),
            )
            .map_err(|e| HostError::Plugin {
                plugin: source.name(),
                source: e,
            })?;
        let decisions = decide(
            &loaded.manifest.capabilities,
            &loaded.manifest.command.name,
            loaded.instance.sha256(),
            &policy.policy,
            &self.inner.host,
        );
        let confinement = match decisions.isolation().0 {
            Isolation::InProcess => Ok(Confinement::in_process()),
            Isolation::Process => {
                let mut instance = loaded.instance;
                // The engine's stack ceiling stays the one the module was compiled for.
                let stack = instance.limits().stack;
                instance.set_limits(crate::limits::Limits {
                    stack,
                    ..decisions.limits().clone()
                });
                instance.set_sandbox(Sandbox::from_decisions(&decisions));
                crate::worker::program(self.inner.worker_program.as_deref())
                    .map_err(|message| {
                        RuntimeError::new(crate::runtime::RuntimeErrorKind::Worker { message })
                    })
                    .and_then(|program| WorkerPool::start(program, &instance, None, 1))
                    .map(|pool| pool.confinement().clone())
            }
        };
        Ok(Explanation {
            manifest: loaded.manifest,
            decisions,
            policy: policy.policy.clone(),
            confinement,
        })
    }

    /// The plugin's manifest and digest, read under the default limits (only
    /// `plugin_manifest` runs; no records are written).
    ///
    /// # Errors
    ///
    /// [`HostError::Read`], [`HostError::Plugin`].
    pub fn inspect<'a>(
        &self,
        source: impl Into<PluginSource<'a>>,
    ) -> Result<Inspection, HostError> {
        let source = source.into();
        let bytes = source.read()?;
        let policy = self.inner.policy();
        let manifest_from = Inner::manifest_from(&policy.policy);
        let loaded = self
            .inner
            .load_bytes(
                &bytes,
                Sha256::digest(&bytes).into(),
                &crate::limits::Limits::default(),
                manifest_from,
                !policy.policy.may_isolate(),
            )
            .map_err(|e| HostError::Plugin {
                plugin: source.name(),
                source: e,
            })?;
        Ok(Inspection {
            sha256: loaded.instance.sha256(),
            manifest: loaded.manifest,
        })
    }
}
