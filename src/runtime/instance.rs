//! Running a loaded plugin: a fresh store and WASI context per call.
//!
//! [`PluginInstance::run`] instantiates the prepared module in a new [`Store`] with a
//! new WASI context built from the plugin's [`Sandbox`], so nothing (memory, globals,
//! open files, environment) survives from one call to the next. Every call sets fuel,
//! an epoch deadline and the resource limiter before any guest code runs, a start
//! function and `_initialize` included. The store also knows the deadline as an
//! [`Instant`], for the host calls that wait ([`super::deadline`]): the epoch
//! interrupts wasm code only.
//!
//! # Security
//!
//! Every value the guest returns is checked through [`crate::abi`] before use; every
//! wasmtime error is classified into a typed [`RuntimeError`] naming the call and, for
//! limits, which limit.

use super::deadline::DeadlineReached;
use super::error::{GuestCall, RuntimeError, RuntimeErrorKind};
use super::limiter::GuestLimiter;
use super::observed::{RuntimeDenials, ShadowState};
use super::output::CappedOutput;
use super::store::{AbiExports, EPOCH_TICK, StoreState};
use crate::abi::{self, Capabilities, ExecuteResult, GuestRegion};
use crate::limits::{LimitKind, Limits};
use crate::sandbox::Sandbox;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{
    Engine, Instance, InstancePre, Memory, ModuleExport, Store, Trap, TypedFunc, WasmParams,
    WasmResults,
};
use wasmtime_wasi::WasiCtxBuilder;

/// How many effects one call may ask for, of every kind, before it fails. Requests
/// past `max_requests` are refused one by one (and recorded); this bounds the rest
/// (sleeps of no time, for one) and the records a call leaves.
pub const MAX_EFFECT_ROUNDS: usize = 256;

/// Why an effect cannot be answered: the plugin has no `plugin_resume`.
pub(crate) const NO_RESUME: &str = "the plugin exports no `plugin_resume` to answer it through";

/// Why an effect cannot be answered: the call asked for too many.
pub(crate) const TOO_MANY_EFFECTS: &str =
    "the plugin already asked for 256 effects in this call (the most one call may)";

/// Who performs the effects a call asks for: warden's [`EffectRunner`] in warden's
/// own process; in a worker, the parent, over the channel (`crate::worker`).
///
/// [`EffectRunner`]: crate::net::effects::EffectRunner
pub(crate) trait EffectPort {
    /// Performs `effect`; the call's wall-clock limit ends at `deadline`.
    fn perform(
        &mut self,
        effect: &crate::abi::Effect,
        deadline: Option<Instant>,
    ) -> crate::net::effects::Answer;
    /// The records of the effects performed so far (none where another process keeps
    /// them).
    fn take_records(&mut self) -> Vec<crate::net::EffectRecord>;
}

impl EffectPort for crate::net::effects::EffectRunner<'_> {
    fn perform(
        &mut self,
        effect: &crate::abi::Effect,
        deadline: Option<Instant>,
    ) -> crate::net::effects::Answer {
        crate::net::effects::EffectRunner::perform(self, effect, deadline)
    }

    fn take_records(&mut self) -> Vec<crate::net::EffectRecord> {
        std::mem::take(&mut self.records)
    }
}

/// What one call produced, whatever its outcome.
#[derive(Debug)]
pub struct RunReport {
    /// The plugin's result, or why there is none.
    pub result: Result<ExecuteResult, RuntimeError>,
    /// What the plugin wrote to stdout (empty unless granted).
    pub stdout: Vec<u8>,
    /// What the plugin wrote to stderr (empty unless granted).
    pub stderr: Vec<u8>,
    /// Fuel the call consumed.
    pub fuel_consumed: u64,
    /// Wall time of the call.
    pub duration: Duration,
    /// Size of the result message the plugin returned, in bytes.
    pub output_bytes: u64,
    /// What the plugin tried past its grants through WASI (refused).
    pub runtime_denials: RuntimeDenials,
    /// Every host effect the plugin asked for, performed, denied or failed.
    pub effects: Vec<crate::net::EffectRecord>,
    /// In audit mode: what the plugin really used (paths, streams, effects).
    pub accesses: super::observed::Accesses,
}

impl RunReport {
    /// The report of a call that ended with `error` before the plugin ran (until a
    /// call fills it in).
    pub(crate) fn failed(error: RuntimeError, duration: Duration) -> Self {
        RunReport {
            result: Err(error),
            stdout: Vec::new(),
            stderr: Vec::new(),
            fuel_consumed: 0,
            duration,
            output_bytes: 0,
            runtime_denials: RuntimeDenials::default(),
            effects: Vec::new(),
            accesses: super::observed::Accesses::default(),
        }
    }

    /// The report of a call that has not started yet.
    pub(crate) fn not_started() -> Self {
        RunReport::failed(
            RuntimeError::new(RuntimeErrorKind::Sandbox {
                message: "the call did not start".into(),
            }),
            Duration::ZERO,
        )
    }

    /// The exit code ([`crate::exit`]) of this call: 0 for `Success`, the plugin's own
    /// code for `Error` ([`crate::exit::plugin_code`]: in 1-125, never one of warden's own
    /// codes), [`crate::exit::REFUSED`] for a call that ended asking for an effect, and the
    /// error's code otherwise.
    pub fn exit_code(&self) -> u8 {
        match &self.result {
            Ok(ExecuteResult::Success(_)) => crate::exit::SUCCESS,
            Ok(ExecuteResult::Error(e)) => crate::exit::plugin_code(e.code),
            Ok(ExecuteResult::Effect(_)) => crate::exit::REFUSED,
            Err(e) => e.exit_code(),
        }
    }
}

/// A loaded plugin, ready to be called any number of times.
pub struct PluginInstance {
    engine: Engine,
    pre: InstancePre<StoreState>,
    exports: AbiExports,
    limits: Limits,
    name: String,
    capabilities: Capabilities,
    sha256: [u8; 32],
    sandbox: Arc<Sandbox>,
}

impl std::fmt::Debug for PluginInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginInstance")
            .field("name", &self.name)
            .field("limits", &self.limits)
            .field("sandbox", &self.sandbox)
            .finish_non_exhaustive()
    }
}

impl PluginInstance {
    #[expect(clippy::too_many_arguments, reason = "internal constructor")]
    pub(crate) fn new(
        engine: Engine,
        pre: InstancePre<StoreState>,
        exports: AbiExports,
        limits: Limits,
        name: String,
        capabilities: Capabilities,
        sha256: [u8; 32],
        sandbox: Sandbox,
    ) -> Self {
        PluginInstance {
            engine,
            pre,
            exports,
            limits,
            name,
            capabilities,
            sha256,
            sandbox: Arc::new(sandbox),
        }
    }

    /// The capabilities the plugin declared (not what it was granted).
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// The plugin's declared name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// SHA-256 of the module's bytes.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// The limits every call runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The sandbox every call runs in.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// The same sandbox, shared (a worker pool keeps it for its calls).
    pub(crate) fn sandbox_arc(&self) -> Arc<Sandbox> {
        Arc::clone(&self.sandbox)
    }

    /// Replaces the sandbox (built from policy decisions).
    pub fn set_sandbox(&mut self, sandbox: Sandbox) {
        self.sandbox = Arc::new(sandbox);
    }

    /// The compiled module (what a worker is sent, serialized).
    pub(crate) fn module(&self) -> &wasmtime::Module {
        self.pre.module()
    }

    /// Replaces the per-call limits. The wasm stack ceiling is the loader's and does
    /// not change here.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Runs `plugin_execute` with `args` and returns the plugin's result.
    ///
    /// # Errors
    ///
    /// A [`RuntimeError`] for traps, limits and ABI violations.
    pub fn execute(&self, args: &[String]) -> Result<ExecuteResult, RuntimeError> {
        self.run(args).result
    }

    /// Runs `plugin_execute` with `args` and reports everything about the call.
    pub fn run(&self, args: &[String]) -> RunReport {
        self.run_within(args, self.limits.timeout)
    }

    /// Calls `plugin_manifest` in a fresh store with an empty sandbox and returns the
    /// message's bytes, undecoded (a worker does this for its parent).
    pub(crate) fn manifest_message(&self) -> Result<Vec<u8>, RuntimeError> {
        manifest_message(&self.engine, &self.pre, &self.exports, &self.limits)
    }

    /// Like [`PluginInstance::run`], ending the call by `budget` from now when that
    /// comes before its `timeout` (a call that waited for a slot has less left); a
    /// timeout is still reported as the plugin's `timeout`.
    pub(crate) fn run_within(&self, args: &[String], budget: Duration) -> RunReport {
        let mut runner = crate::net::effects::EffectRunner::new(self.sandbox.net(), &self.limits);
        self.run_with(args, &mut runner, budget)
    }

    /// Like [`PluginInstance::run_within`], with `effects` performing what the plugin
    /// asks for (in a worker: the parent, over the channel).
    pub(crate) fn run_with(
        &self,
        args: &[String],
        effects: &mut dyn EffectPort,
        budget: Duration,
    ) -> RunReport {
        let started = Instant::now();
        let mut report = RunReport::not_started();
        let argv: Vec<&str> = std::iter::once(self.name.as_str())
            .chain(args.iter().map(String::as_str))
            .collect();
        match Session::start(
            &self.engine,
            &self.pre,
            &self.exports,
            &self.limits,
            budget.min(self.limits.timeout),
            &self.sandbox,
            &argv,
        ) {
            Ok(mut session) => {
                report.result =
                    self.execute_in(&mut session, args, &mut report.output_bytes, effects);
                report.effects = effects.take_records();
                report.fuel_consumed = session.fuel_consumed();
                report.runtime_denials =
                    session.store.data_mut().shadow.take_denials(&self.sandbox);
                let state = session.store.data_mut();
                for (stream, name) in [(&state.stdout, "stdout"), (&state.stderr, "stderr")] {
                    if stream.as_ref().is_some_and(CappedOutput::was_written) {
                        state.shadow.used(name, name.to_owned(), true);
                    }
                }
                for effect in &report.effects {
                    state.shadow.used(
                        effect.kind,
                        effect.destination(),
                        effect.kind == "http_post",
                    );
                }
                report.accesses = state.shadow.take_accesses(&self.sandbox);
                let state = session.store.data();
                report.stdout = state
                    .stdout
                    .as_ref()
                    .map(CappedOutput::take)
                    .unwrap_or_default();
                report.stderr = state
                    .stderr
                    .as_ref()
                    .map(CappedOutput::take)
                    .unwrap_or_default();
            }
            Err(failure) => {
                report.result = Err(failure.error);
                report.fuel_consumed = failure.fuel_consumed;
                report.runtime_denials = failure.runtime_denials;
            }
        }
        report.result = report.result.map_err(|e| e.for_plugin(&self.name));
        report.duration = started.elapsed();
        report
    }

    fn execute_in(
        &self,
        session: &mut Session,
        args: &[String],
        output_bytes: &mut u64,
        effects: &mut dyn EffectPort,
    ) -> Result<ExecuteResult, RuntimeError> {
        let encoded = rmp_serde::to_vec(args).map_err(|e| {
            RuntimeError::new(RuntimeErrorKind::Sandbox {
                message: format!("cannot encode arguments: {e}"),
            })
        })?;
        if encoded.len() as u64 > self.limits.max_input {
            return Err(RuntimeError::new(RuntimeErrorKind::ArgsTooLarge {
                len: encoded.len(),
                max: self.limits.max_input,
            }));
        }
        let (ptr, len) = session.write_message(&encoded)?;
        let packed: i64 = session.call(
            GuestCall::Execute,
            &self.exports.execute,
            (ptr as i32, len as i32),
        )?;
        session.dealloc(ptr, len);
        let mut result = self.read_result(session, GuestCall::Execute, packed, output_bytes)?;
        self.effect_loop(session, &mut result, effects, output_bytes)?;
        Ok(result)
    }

    /// Performs the effects `result` asks for, resuming the plugin with each answer,
    /// until it returns something else.
    fn effect_loop(
        &self,
        session: &mut Session,
        result: &mut ExecuteResult,
        runner: &mut dyn EffectPort,
        output_bytes: &mut u64,
    ) -> Result<(), RuntimeError> {
        let mut last_call = GuestCall::Execute;
        for _ in 0..MAX_EFFECT_ROUNDS {
            let ExecuteResult::Effect(effect) = &*result else {
                return Ok(());
            };
            let Some(resume) = &self.exports.resume else {
                return Err(RuntimeError::in_call(
                    last_call,
                    RuntimeErrorKind::EffectRefused {
                        effect: effect.kind(),
                        why: NO_RESUME,
                    },
                ));
            };
            let deadline = session.store.data().deadline;
            let encoded = match runner.perform(effect, deadline) {
                crate::net::effects::Answer::Resume(answer) => rmp_serde::to_vec_named(&answer)
                    .map_err(|e| {
                        RuntimeError::new(RuntimeErrorKind::Sandbox {
                            message: format!("cannot encode effect result: {e}"),
                        })
                    })?,
                crate::net::effects::Answer::Message(encoded) => encoded,
                crate::net::effects::Answer::DeadlinePassed => {
                    return Err(RuntimeError::in_call(
                        last_call,
                        RuntimeErrorKind::Limit {
                            limit: LimitKind::Timeout,
                            value: u64::try_from(self.limits.timeout.as_millis())
                                .unwrap_or(u64::MAX),
                        },
                    ));
                }
            };
            let (ptr, len) = session.write_message(&encoded)?;
            drop(encoded);
            let packed: i64 = session.call(
                GuestCall::Resume,
                resume,
                (effect.id() as i32, ptr as i32, len as i32),
            )?;
            session.dealloc(ptr, len);
            last_call = GuestCall::Resume;
            *result = self.read_result(session, GuestCall::Resume, packed, output_bytes)?;
        }
        match &*result {
            ExecuteResult::Effect(effect) => Err(RuntimeError::in_call(
                GuestCall::Resume,
                RuntimeErrorKind::EffectRefused {
                    effect: effect.kind(),
                    why: TOO_MANY_EFFECTS,
                },
            )),
            _ => Ok(()),
        }
    }

    fn read_result(
        &self,
        session: &mut Session,
        call: GuestCall,
        packed: i64,
        output_bytes: &mut u64,
    ) -> Result<ExecuteResult, RuntimeError> {
        let region = GuestRegion::unpack(packed);
        *output_bytes = u64::from(region.len);
        if u64::from(region.len) > self.limits.max_output {
            return Err(RuntimeError::in_call(
                call,
                RuntimeErrorKind::Limit {
                    limit: LimitKind::Output,
                    value: self.limits.max_output,
                },
            ));
        }
        let result = session
            .with_message(call, region, "execute result", |bytes| {
                abi::decode::<ExecuteResult>(bytes, "execute result")
            })?
            .map_err(|e| RuntimeError::in_call(call, RuntimeErrorKind::Result(e)))?;
        session.dealloc(region.ptr, region.len);
        Ok(result)
    }
}

/// One instantiated store, for the duration of one call.
pub(crate) struct Session<'a> {
    store: Store<StoreState>,
    instance: Instance,
    exports: &'a AbiExports,
    memory: Memory,
    fuel: u64,
    timeout: Duration,
    stack: u64,
}

/// Why a [`Session`] did not start, and what the plugin did before it failed.
#[derive(Debug)]
pub(crate) struct StartFailure {
    pub(crate) error: RuntimeError,
    pub(crate) fuel_consumed: u64,
    /// Refused WASI calls of a start function or `_initialize`: a plugin must not be
    /// able to hide an attempt by trapping right after it.
    pub(crate) runtime_denials: RuntimeDenials,
}

impl StartFailure {
    fn before_running(error: RuntimeError) -> Box<Self> {
        Box::new(StartFailure {
            error,
            fuel_consumed: 0,
            runtime_denials: RuntimeDenials::default(),
        })
    }
}

impl<'a> Session<'a> {
    /// Builds the WASI context from `sandbox`, sets every limit, instantiates, and runs
    /// `_initialize` when exported. The wall clock ends the call `budget` from now (at
    /// most `limits.timeout`; a timeout is reported as `limits.timeout`). On failure
    /// returns the error, the fuel consumed and the refusals recorded so far.
    pub(crate) fn start(
        engine: &Engine,
        pre: &InstancePre<StoreState>,
        exports: &'a AbiExports,
        limits: &Limits,
        budget: Duration,
        sandbox: &Sandbox,
        argv: &[&str],
    ) -> Result<Self, Box<StartFailure>> {
        let mut builder = WasiCtxBuilder::new();
        builder.allow_blocking_current_thread(true).args(argv);
        sandbox.configure(&mut builder).map_err(|message| {
            StartFailure::before_running(RuntimeError::new(RuntimeErrorKind::Sandbox { message }))
        })?;
        let cap = usize::try_from(limits.max_output).unwrap_or(usize::MAX);
        let grant = sandbox.stdio();
        let stdout = grant.stdout.then(|| CappedOutput::new(cap));
        let stderr = grant.stderr.then(|| CappedOutput::new(cap));
        if let Some(out) = &stdout {
            builder.stdout(out.clone());
        }
        if let Some(err) = &stderr {
            builder.stderr(err.clone());
        }
        if grant.stdin {
            builder.stdin(wasmtime_wasi::cli::stdin());
        }
        let state = StoreState {
            wasi: builder.build_p1(),
            limiter: GuestLimiter::new(limits.memory, limits.table_elements),
            stdout,
            stderr,
            shadow: ShadowState::tracking(sandbox.preopens().len(), sandbox.tracks_access()),
            // The same limit as the epoch deadline set below, which ends it no sooner
            // (whole ticks, plus one): a host call that waits ends by this instant.
            deadline: Instant::now().checked_add(budget),
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limiter);
        let fuel = limits.fuel;
        let setup = |e: wasmtime::Error| {
            StartFailure::before_running(RuntimeError::new(RuntimeErrorKind::Engine {
                message: format!("{e:#}"),
            }))
        };
        store.set_fuel(fuel).map_err(setup)?;
        store.set_epoch_deadline(epoch_ticks(budget));
        store.epoch_deadline_trap();

        let instance = match pre.instantiate(&mut store) {
            Ok(instance) => instance,
            Err(e) => {
                return Err(Box::new(StartFailure {
                    error: classify(
                        &store,
                        GuestCall::Instantiate,
                        e,
                        fuel,
                        limits.timeout,
                        limits.stack as u64,
                    ),
                    fuel_consumed: fuel.saturating_sub(store.get_fuel().unwrap_or(0)),
                    runtime_denials: store.data_mut().shadow.take_denials(sandbox),
                }));
            }
        };
        let Some(memory) = instance
            .get_module_export(&mut store, &exports.memory)
            .and_then(|e| e.into_memory())
        else {
            return Err(StartFailure::before_running(RuntimeError::new(
                RuntimeErrorKind::MissingExport { name: "memory" },
            )));
        };
        let mut session = Session {
            store,
            instance,
            exports,
            memory,
            fuel,
            timeout: limits.timeout,
            stack: limits.stack as u64,
        };
        if let Some(init) = &exports.initialize
            && let Err(error) = session.call::<(), ()>(GuestCall::Initialize, init, ())
        {
            return Err(Box::new(StartFailure {
                error,
                fuel_consumed: session.fuel_consumed(),
                runtime_denials: session.store.data_mut().shadow.take_denials(sandbox),
            }));
        }
        Ok(session)
    }

    /// Calls one export with typed params, classifying any failure.
    pub(crate) fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        call: GuestCall,
        export: &ModuleExport,
        params: P,
    ) -> Result<R, RuntimeError> {
        let func: TypedFunc<P, R> = self
            .instance
            .get_module_export(&mut self.store, export)
            .and_then(|e| e.into_func())
            .ok_or_else(|| {
                RuntimeError::in_call(
                    call,
                    RuntimeErrorKind::MissingExport {
                        name: call.export_name(),
                    },
                )
            })?
            .typed(&self.store)
            .map_err(|e| {
                RuntimeError::in_call(
                    call,
                    RuntimeErrorKind::ExportSignature {
                        name: call.export_name(),
                        expected: "the ABI signature",
                        found: format!("{e:#}"),
                    },
                )
            })?;
        func.call(&mut self.store, params)
            .map_err(|e| classify(&self.store, call, e, self.fuel, self.timeout, self.stack))
    }

    /// Allocates a block with `plugin_alloc`, checks it, and copies `bytes` into it.
    pub(crate) fn write_message(&mut self, bytes: &[u8]) -> Result<(u32, u32), RuntimeError> {
        let len = u32::try_from(bytes.len()).map_err(|_| {
            RuntimeError::new(RuntimeErrorKind::ArgsTooLarge {
                len: bytes.len(),
                max: u64::from(u32::MAX),
            })
        })?;
        let alloc = self.exports.alloc;
        let ptr: i32 = self.call(GuestCall::Alloc, &alloc, len as i32)?;
        let ptr = ptr as u32;
        let memory_size = self.memory.data_size(&self.store);
        abi::check_alloc(memory_size, ptr, len)
            .map_err(|v| RuntimeError::in_call(GuestCall::Alloc, RuntimeErrorKind::Abi(v)))?;
        self.memory
            .write(&mut self.store, ptr as usize, bytes)
            .map_err(|_| {
                RuntimeError::in_call(
                    GuestCall::Alloc,
                    RuntimeErrorKind::Abi(abi::AbiViolation::AllocOutOfBounds {
                        size: len,
                        ptr,
                        memory_size,
                    }),
                )
            })?;
        Ok((ptr, len))
    }

    /// Reads the message at `region` (checked against the memory's current size) and
    /// hands it to `f` without copying.
    pub(crate) fn with_message<T>(
        &mut self,
        call: GuestCall,
        region: GuestRegion,
        what: &'static str,
        f: impl FnOnce(&[u8]) -> T,
    ) -> Result<T, RuntimeError> {
        let bytes = abi::read_region(self.memory.data(&self.store), region, what)
            .map_err(|v| RuntimeError::in_call(call, RuntimeErrorKind::Abi(v)))?;
        Ok(f(bytes))
    }

    /// Frees a block with `plugin_dealloc`; a failure is logged, never fatal.
    pub(crate) fn dealloc(&mut self, ptr: u32, len: u32) {
        let dealloc = self.exports.dealloc;
        if let Err(e) =
            self.call::<(i32, i32), ()>(GuestCall::Alloc, &dealloc, (ptr as i32, len as i32))
        {
            tracing::warn!(error = %e, ptr, len, "plugin_dealloc failed; ignoring (the store is discarded after the call)");
        }
    }

    /// Fuel used so far in this call.
    pub(crate) fn fuel_consumed(&self) -> u64 {
        self.fuel.saturating_sub(self.store.get_fuel().unwrap_or(0))
    }
}

/// Calls `plugin_manifest` in a fresh store with an empty sandbox and returns its
/// message's bytes, at most `limits.max_manifest` of them, undecoded.
///
/// A worker calls this for its parent, which decodes the bytes itself
/// ([`parse_manifest_message`]): guest code runs only where the plugin's isolation
/// says it may.
pub(crate) fn manifest_message(
    engine: &Engine,
    pre: &wasmtime::InstancePre<StoreState>,
    exports: &AbiExports,
    limits: &Limits,
) -> Result<Vec<u8>, RuntimeError> {
    let mut session = Session::start(
        engine,
        pre,
        exports,
        limits,
        limits.timeout,
        &Sandbox::empty(),
        &[],
    )
    .map_err(|failure| failure.error)?;
    let packed: i64 = session.call(GuestCall::Manifest, &exports.manifest, ())?;
    let region = abi::GuestRegion::unpack(packed);
    check_manifest_len(u64::from(region.len), limits)?;
    let bytes = session.with_message(GuestCall::Manifest, region, "manifest", <[u8]>::to_vec)?;
    session.dealloc(region.ptr, region.len);
    Ok(bytes)
}

/// The manifest's size against `limits.max_manifest`.
pub(crate) fn check_manifest_len(len: u64, limits: &Limits) -> Result<(), RuntimeError> {
    if len > limits.max_manifest {
        return Err(RuntimeError::in_call(
            GuestCall::Manifest,
            RuntimeErrorKind::ManifestTooLarge {
                len: u32::try_from(len).unwrap_or(u32::MAX),
                max: limits.max_manifest,
            },
        ));
    }
    Ok(())
}

/// Decodes and validates a manifest message.
pub(crate) fn parse_manifest_message(
    bytes: &[u8],
) -> Result<crate::abi::PluginManifest, RuntimeError> {
    abi::parse_manifest(bytes)
        .map_err(|e| RuntimeError::in_call(GuestCall::Manifest, RuntimeErrorKind::Manifest(e)))
}

/// Epoch ticks for `timeout`, rounded up, plus one for the partial current tick.
fn epoch_ticks(timeout: Duration) -> u64 {
    let tick = EPOCH_TICK.as_nanos().max(1);
    u64::try_from(timeout.as_nanos().div_ceil(tick))
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

/// Turns a wasmtime error from a guest call into a typed error.
fn classify(
    store: &Store<StoreState>,
    call: GuestCall,
    error: wasmtime::Error,
    fuel: u64,
    timeout: Duration,
    stack: u64,
) -> RuntimeError {
    let state = store.data();
    let limit = |limit: LimitKind, value: u64| {
        RuntimeError::in_call(call, RuntimeErrorKind::Limit { limit, value })
    };
    if let Some(hit) = state.limiter.hit() {
        return limit(hit.kind, hit.value);
    }
    for (stream, kind) in [
        (&state.stdout, LimitKind::Stdout),
        (&state.stderr, LimitKind::Stderr),
    ] {
        if let Some(out) = stream
            && out.overflowed()
        {
            return limit(kind, out.capacity() as u64);
        }
    }
    let timed_out = || {
        limit(
            LimitKind::Timeout,
            u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        )
    };
    // A host call that was still waiting at the deadline: the same limit as the epoch
    // interrupt that stops wasm code, reported the same way.
    if error.downcast_ref::<DeadlineReached>().is_some() {
        return timed_out();
    }
    if let Some(trap) = error.downcast_ref::<Trap>() {
        return match trap {
            Trap::OutOfFuel => limit(LimitKind::Fuel, fuel),
            Trap::Interrupt => timed_out(),
            Trap::StackOverflow => limit(LimitKind::Stack, stack),
            other => RuntimeError::in_call(
                call,
                RuntimeErrorKind::Trap {
                    message: other.to_string(),
                },
            ),
        };
    }
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return RuntimeError::in_call(
            call,
            RuntimeErrorKind::Trap {
                message: format!("the plugin called proc_exit({})", exit.0),
            },
        );
    }
    RuntimeError::in_call(
        call,
        RuntimeErrorKind::Trap {
            message: format!("{error:#}"),
        },
    )
}
