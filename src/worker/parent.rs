//! The parent's side: start workers, run calls in them, perform their effects, and
//! turn what they report into a [`RunReport`], or into the worker's death.
//!
//! A [`WorkerPool`] belongs to one loaded plugin. It keeps idle workers for reuse (a
//! host calls the same plugin many times; starting a worker costs about a
//! millisecond) and starts another when every worker is busy. A worker that timed
//! out, died or sent something it should not have is killed and never reused.
//!
//! # Security
//!
//! The parent trusts nothing a worker sends ([`super::wire`]). It enforces the wall
//! clock itself: a worker that has not reported by the call's deadline (plus a short
//! grace for its own epoch deadline to fire and report) is killed with `SIGKILL`, and
//! the call ends as a timeout. It performs every network effect itself, with the
//! plugin's own checks ([`crate::net::effects::EffectRunner`]), and keeps their
//! records; a worker has no say in them.

use super::wire::{self, FromWorker, RecvError, Setup, ToWorker, WirePreopen};
use crate::abi::PluginManifest;
use crate::confinement::Confinement;
use crate::limits::{LimitKind, Limits};
use crate::net::effects::{Answer, EffectRunner};
use crate::runtime::instance::MAX_EFFECT_ROUNDS;
use crate::runtime::observed::Access;
use crate::runtime::{GuestCall, PluginInstance, RunReport, RuntimeError, RuntimeErrorKind};
use crate::sandbox::Sandbox;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a worker may take to start, confine itself and load the plugin.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long past a call's deadline the parent waits for the worker's own report of
/// the timeout before it kills the worker.
pub const DEADLINE_GRACE: Duration = Duration::from_millis(100);

/// Idle workers a pool keeps for reuse at most; more are stopped when their call
/// ends. A host keeps as many as it runs calls at once
/// (`WardenBuilder::max_concurrent_calls`), never more than this.
pub const MAX_IDLE: usize = crate::runtime::POOL_SLOTS as usize;

/// The argument that makes warden's executable a worker.
pub const WORKER_ARG: &str = "__worker";

/// The environment variable a worker is started with (and nothing else): together
/// with [`WORKER_ARG`] it tells [`super::main_if_worker`] this process is a worker;
/// its value is the wasm stack ceiling the worker builds its engine for, before the
/// setup comes (so that building it overlaps the parent's own load).
pub const WORKER_ENV: &str = "WARDEN_WORKER_STACK";

/// One worker process and its channel.
pub struct Worker {
    child: Child,
    channel: UnixStream,
}

impl Drop for Worker {
    /// Kills the worker and reaps it: at once when it is already gone, else on a
    /// thread of its own, so that dropping a plugin (or exiting) does not wait on it.
    fn drop(&mut self) {
        let _ = self.child.kill();
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let pid = rustix::process::Pid::from_child(&self.child);
        let reaped = std::thread::Builder::new()
            .name("warden-reaper".into())
            .spawn(move || {
                let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
            });
        if reaped.is_err() {
            let _ = self.child.wait();
        }
    }
}

/// How a call in a worker ended without a report.
enum Ended {
    /// The deadline passed: the worker was killed.
    Timeout,
    /// The worker died, or misbehaved and was killed.
    Died { signal: Option<i32>, why: String },
}

impl Ended {
    /// The call's error: a timeout under `limits`, or the worker's death.
    fn into_error(self, limits: &Limits) -> RuntimeError {
        match self {
            Ended::Timeout => RuntimeError::new(RuntimeErrorKind::Limit {
                limit: LimitKind::Timeout,
                value: u64::try_from(limits.timeout.as_millis()).unwrap_or(u64::MAX),
            }),
            Ended::Died { signal, why } => {
                RuntimeError::new(RuntimeErrorKind::WorkerDied { signal, why })
            }
        }
    }
}

impl Worker {
    /// Starts `program` as a worker whose engine is for wasm stacks of `stack` bytes;
    /// it builds that engine and then waits for [`Worker::set_up`].
    fn spawn(program: &Path, stack: usize) -> Result<Worker, String> {
        let (ours, theirs) =
            UnixStream::pair().map_err(|e| format!("cannot create the worker's channel: {e}"))?;
        let child = Command::new(program)
            .arg(WORKER_ARG)
            .env_clear()
            .env(WORKER_ENV, stack.to_string())
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the worker `{}`: {e}", program.display()))?;
        Ok(Worker {
            child,
            channel: ours,
        })
    }

    /// Sends the worker its compiled module: in a sealed memory file, passed as a
    /// descriptor, so that sending never waits for the worker to read (it may still
    /// be building its engine) and the worker maps the bytes instead of copying them.
    fn send_artifact(&self, artifact: &[u8]) -> std::io::Result<()> {
        use rustix::fs::{MemfdFlags, SealFlags};
        let fd = rustix::fs::memfd_create(
            "warden-plugin",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        let mut file = std::fs::File::from(fd);
        std::io::Write::write_all(&mut file, artifact)?;
        rustix::fs::fcntl_add_seals(
            &file,
            SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE,
        )?;
        super::fds::send(&self.channel, &[file.as_fd()])
    }

    /// Sends a spawned worker `artifact` (unless it has it already), `fds` and `setup`;
    /// returns once it says it is confined and ready, with what confines it.
    fn set_up(
        mut self,
        program: &Path,
        artifact: Option<&[u8]>,
        setup: &[u8],
        fds: &[BorrowedFd<'_>],
    ) -> Result<(Worker, Confinement), String> {
        let worker = &mut self;
        let started = (|| {
            if let Some(artifact) = artifact {
                worker.send_artifact(artifact)?;
            }
            super::fds::send(&worker.channel, fds)?;
            std::io::Write::write_all(&mut &worker.channel, setup)
        })();
        if let Err(e) = started {
            return Err(worker.failed_to_start(format!("cannot send the worker its setup: {e}")));
        }
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        match worker.recv(deadline, wire::MAX_SMALL_MESSAGE) {
            Ok(FromWorker::Ready {
                confinement,
                error: None,
            }) => {
                let confinement = check_confinement(confinement)?;
                Ok((self, confinement))
            }
            Ok(FromWorker::Ready {
                error: Some(error), ..
            }) => Err(format!(
                "the worker cannot run the plugin: {}",
                crate::escape::cut(&error, wire::MAX_WORKER_TEXT)
            )),
            Ok(_) => Err(worker.failed_to_start("the worker spoke out of turn".to_owned())),
            Err(RecvError::Io(e)) if is_timeout(&e) => Err(worker.failed_to_start(format!(
                "the worker did not say it was ready within {} s",
                STARTUP_TIMEOUT.as_secs()
            ))),
            Err(e) => Err(worker.failed_to_start(format!(
                "the worker ended before it was ready ({e}); is `{}` a warden executable, \
                 or does the application call `warden::worker::main_if_worker()` first in `main`?",
                program.display()
            ))),
        }
    }

    fn failed_to_start(&mut self, why: String) -> String {
        let _ = self.child.kill();
        match self.child.wait() {
            Ok(status) => match status.signal() {
                Some(signal) if signal != libc::SIGKILL => format!("{why} (signal {signal})"),
                _ => why,
            },
            Err(_) => why,
        }
    }

    /// Reads one message, waiting at most until `deadline`.
    fn recv(&self, deadline: Instant, max: usize) -> Result<FromWorker, RecvError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(RecvError::Io(std::io::ErrorKind::TimedOut.into()));
        }
        self.channel.set_read_timeout(Some(left))?;
        wire::recv(
            ReadBy {
                channel: &self.channel,
                deadline,
            },
            max,
        )
    }

    fn send(&self, message: &ToWorker) -> std::io::Result<()> {
        wire::send(&self.channel, message)
    }

    /// Runs one call.
    fn call(
        &mut self,
        args: &[String],
        deadline: Instant,
        runner: &mut EffectRunner<'_>,
        sandbox: &Sandbox,
        limits: &Limits,
    ) -> Result<wire::ReportParts, Ended> {
        let budget = deadline.saturating_duration_since(Instant::now());
        let spin = Polling::start();
        if let Err(e) = self.send(&ToWorker::Call {
            args: args.to_vec(),
            budget_ms: u64::try_from(budget.as_millis()).unwrap_or(u64::MAX),
            spin_us: u64::try_from(spin.budget.as_micros()).unwrap_or(0),
        }) {
            return Err(self.died(format!("cannot send the call: {e}")));
        }
        let bound = wire::report_bound(limits);
        let mut rounds = 0usize;
        loop {
            wire::spin_until_readable(&self.channel, spin.budget);
            match self.recv(deadline + DEADLINE_GRACE, bound) {
                Ok(FromWorker::Report(report)) => {
                    return report
                        .into_parts(sandbox, limits)
                        .map_err(|m| self.killed(m.to_string()));
                }
                Ok(FromWorker::Effect { effect }) => {
                    rounds += 1;
                    if rounds > MAX_EFFECT_ROUNDS {
                        return Err(self.killed(format!(
                            "the worker asked for more than {MAX_EFFECT_ROUNDS} effects in one call"
                        )));
                    }
                    let message = match runner.perform(&effect, Some(deadline)) {
                        Answer::Resume(result) => rmp_serde::to_vec_named(&result).ok(),
                        Answer::Message(bytes) => Some(bytes),
                        Answer::DeadlinePassed => None,
                    };
                    if let Err(e) = self.send(&ToWorker::Answer { message }) {
                        return Err(self.died(format!("cannot answer the worker's effect: {e}")));
                    }
                }
                Ok(FromWorker::Ready { .. } | FromWorker::Manifest(_)) => {
                    return Err(self.killed("the worker spoke out of turn".to_owned()));
                }
                Err(e) => return Err(self.ended_by(e)),
            }
        }
    }

    /// Reads the manifest of the plugin this worker was set up for.
    #[allow(clippy::type_complexity)]
    fn manifest(
        &mut self,
        limits: &Limits,
    ) -> Result<Result<(PluginManifest, Vec<u8>), RuntimeError>, Ended> {
        let deadline = Instant::now() + limits.timeout;
        if let Err(e) = self.send(&ToWorker::Manifest) {
            return Err(self.died(format!("cannot ask for the manifest: {e}")));
        }
        match self.recv(deadline + DEADLINE_GRACE, wire::manifest_bound(limits)) {
            Ok(FromWorker::Manifest(manifest)) => manifest
                .into_manifest(limits)
                .map_err(|m| self.killed(m.to_string())),
            Ok(_) => Err(self.killed("the worker spoke out of turn".to_owned())),
            Err(e) => Err(self.ended_by(e)),
        }
    }

    /// How a call ended when reading the worker's next message failed with `e`.
    fn ended_by(&mut self, e: RecvError) -> Ended {
        match e {
            RecvError::Io(e) if is_timeout(&e) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                Ended::Timeout
            }
            RecvError::Malformed(m) => self.killed(m.to_string()),
            RecvError::Closed => self.died("the worker closed its channel".to_owned()),
            RecvError::Io(e) => self.died(format!("cannot read from the worker: {e}")),
        }
    }

    /// The worker broke the protocol: kill it.
    fn killed(&mut self, why: String) -> Ended {
        let _ = self.child.kill();
        let signal = self.child.wait().ok().and_then(|s| s.signal());
        Ended::Died {
            signal,
            why: format!("{why}; warden killed it"),
        }
    }

    /// The worker went away: reap it (briefly waiting for it to finish dying) and
    /// say how it ended.
    fn died(&mut self, why: String) -> Ended {
        let until = Instant::now() + Duration::from_millis(500);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(2)),
                _ => {
                    let _ = self.child.kill();
                    break self.child.wait().ok();
                }
            }
        };
        let signal = status.and_then(|s| s.signal());
        let why = match status.and_then(|s| s.code()) {
            Some(code) => format!("{why}; it exited with status {code}"),
            None => why,
        };
        Ended::Died { signal, why }
    }
}

/// Calls in workers in flight in this process.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// One call in flight, and how long its two sides poll for each other's messages
/// ([`wire::SPIN`]): only while every call in flight can have two CPUs (its caller's
/// and its worker's). Beyond that, a poller would take the CPU another call's worker
/// needs: at 64 callers on 2 CPUs polling cut the throughput by half.
struct Polling {
    budget: Duration,
}

impl Polling {
    fn start() -> Polling {
        static CPUS: OnceLock<usize> = OnceLock::new();
        let cpus =
            *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from));
        let in_flight = IN_FLIGHT.fetch_add(1, Ordering::AcqRel) + 1;
        let budget = if in_flight.saturating_mul(2) <= cpus {
            wire::SPIN
        } else {
            Duration::ZERO
        };
        Polling { budget }
    }
}

impl Drop for Polling {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A reader that keeps the socket's timeout at what is left until `deadline`, so a
/// worker that trickles bytes cannot stretch a read past it.
struct ReadBy<'a> {
    channel: &'a UnixStream,
    deadline: Instant,
}

impl std::io::Read for ReadBy<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.channel.set_read_timeout(Some(left))?;
        std::io::Read::read(&mut &*self.channel, buf)
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Bounds what a worker says of its confinement (its reasons are its words).
fn check_confinement(mut c: Confinement) -> Result<Confinement, String> {
    for e in [&mut c.fs, &mut c.net, &mut c.syscalls] {
        if let Some(reason) = &mut e.reason {
            *reason = crate::escape::cut(reason, 512).into_owned();
        }
    }
    if c.landlock_abi > 64 || c.isolation != crate::policy::Isolation::Process {
        return Err("the worker reported an impossible confinement".to_owned());
    }
    Ok(c)
}

/// A worker started before its plugin is known, building its engine while warden
/// loads the plugin; [`WorkerPool::start`] sets it up (or, when it does not fit,
/// drops it: dropping kills it).
pub struct Spawned {
    worker: Worker,
    program: PathBuf,
    stack: usize,
    /// The compiled module it was sent ahead of its setup, if any.
    artifact: Option<Arc<Vec<u8>>>,
}

impl Spawned {
    /// Starts `program` as a worker for wasm stacks of `stack` bytes.
    ///
    /// # Errors
    ///
    /// When the process cannot be started.
    pub fn start(program: PathBuf, stack: usize) -> Result<Spawned, String> {
        Ok(Spawned {
            worker: Worker::spawn(&program, stack)?,
            program,
            stack,
            artifact: None,
        })
    }

    /// [`Spawned::start`] on a thread of its own: starting a process blocks the caller
    /// until the new one has executed its program (a millisecond for warden's), which
    /// the caller spends loading the plugin instead. [`Starting::wait`] takes it.
    pub fn start_in_background(program: PathBuf, stack: usize) -> Starting {
        Starting(
            std::thread::Builder::new()
                .name("warden-spawn".into())
                .spawn(move || Spawned::start(program, stack).ok())
                .ok(),
        )
    }

    /// Sends the worker `module` now, ahead of its setup, so that it loads it while
    /// this process decides the plugin. `module` must be the one the plugin will run
    /// (compiled for a worker's engine of this stack ceiling).
    ///
    /// # Errors
    ///
    /// When the module cannot be serialized or sent; the worker is then of no use.
    pub fn send_module(&mut self, module: &wasmtime::Module) -> Result<(), RuntimeError> {
        let artifact = artifact_of(module)?;
        self.worker
            .send_artifact(&artifact)
            .map_err(|e| worker_error(format!("cannot send the worker the plugin: {e}")))?;
        self.artifact = Some(Arc::new(artifact));
        Ok(())
    }
}

/// A worker being started ([`Spawned::start_in_background`]); dropped unwaited, the
/// worker is killed once started.
#[derive(Debug)]
pub struct Starting(Option<std::thread::JoinHandle<Option<Spawned>>>);

impl Starting {
    /// The started worker, or `None` when it could not be started.
    pub fn wait(self) -> Option<Spawned> {
        self.0?.join().ok().flatten()
    }
}

impl std::fmt::Debug for Spawned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spawned")
            .field("program", &self.program)
            .field("stack", &self.stack)
            .finish_non_exhaustive()
    }
}

/// The workers of one loaded plugin.
pub struct WorkerPool {
    program: PathBuf,
    artifact: Arc<Vec<u8>>,
    setup: Vec<u8>,
    name: String,
    limits: Limits,
    sandbox: Arc<Sandbox>,
    stdin: bool,
    idle: Mutex<Vec<Worker>>,
    max_idle: usize,
    confinement: Confinement,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("program", &self.program)
            .field("name", &self.name)
            .field("confinement", &self.confinement)
            .finish_non_exhaustive()
    }
}

impl WorkerPool {
    /// Starts the first worker for `instance` (its module, sandbox and limits) from
    /// `program`.
    ///
    /// # Errors
    ///
    /// [`RuntimeErrorKind::Worker`] when the module cannot be serialized or the worker
    /// cannot be started, confined and made ready.
    pub fn start(
        program: PathBuf,
        instance: &PluginInstance,
        early: Option<Spawned>,
        max_idle: usize,
    ) -> Result<WorkerPool, RuntimeError> {
        // A worker started early (while the plugin loaded) is used when its engine is
        // for this plugin's stack ceiling; it may have the module already.
        let early = early.filter(|e| e.stack == instance.limits().stack && e.program == program);
        let (early, artifact) = match early {
            Some(Spawned {
                worker,
                artifact: Some(artifact),
                ..
            }) => (Some((worker, true)), artifact),
            early => (
                early.map(|e| (e.worker, false)),
                Arc::new(artifact_of(instance.module())?),
            ),
        };
        let sandbox = instance.sandbox_arc();
        let stdio = sandbox.stdio();
        let setup = encode_setup(Setup {
            name: instance.name().to_owned(),
            limits: instance.limits().clone(),
            preopens: sandbox
                .preopens()
                .iter()
                .map(|p| WirePreopen {
                    guest_path: p.guest_path().to_owned(),
                    host_path: p.host_path().display().to_string(),
                    writable: p.writable(),
                })
                .collect(),
            env: sandbox.env().to_vec(),
            stdio: (stdio.stdin, stdio.stdout, stdio.stderr),
            track_access: sandbox.tracks_access(),
            simulate_no_landlock: simulate_no_landlock(),
        })?;
        let mut pool = WorkerPool {
            program,
            artifact,
            setup,
            name: instance.name().to_owned(),
            limits: instance.limits().clone(),
            sandbox,
            stdin: stdio.stdin,
            idle: Mutex::new(Vec::new()),
            max_idle: max_idle.clamp(1, MAX_IDLE),
            confinement: Confinement::in_process(),
        };
        let (worker, confinement) = match early {
            Some((worker, has_module)) => pool.set_up(worker, has_module),
            None => pool.spawn(),
        }
        .map_err(worker_error)?;
        pool.confinement = confinement;
        pool.idle_workers().push(worker);
        Ok(pool)
    }

    /// What confines this plugin's workers.
    pub fn confinement(&self) -> &Confinement {
        &self.confinement
    }

    fn idle_workers(&self) -> std::sync::MutexGuard<'_, Vec<Worker>> {
        match self.idle.lock() {
            Ok(idle) => idle,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn spawn(&self) -> Result<(Worker, Confinement), String> {
        self.set_up(Worker::spawn(&self.program, self.limits.stack)?, false)
    }

    /// Sets `worker` up for this pool's plugin (sending the module unless it
    /// `has_module`).
    fn set_up(&self, worker: Worker, has_module: bool) -> Result<(Worker, Confinement), String> {
        let stdin = std::io::stdin();
        let mut fds: Vec<BorrowedFd<'_>> = self
            .sandbox
            .preopens()
            .iter()
            .map(|p| p.dir().as_fd())
            .collect();
        if self.stdin {
            fds.push(stdin.as_fd());
        }
        let artifact = (!has_module).then_some(self.artifact.as_slice());
        worker.set_up(&self.program, artifact, &self.setup, &fds)
    }

    /// Runs `plugin_execute` with `args` in a worker, ending it `budget` from now (at
    /// most the plugin's `timeout`), and reports the call as [`PluginInstance::run`]
    /// does, plus the worker's death when it died.
    pub fn run(&self, args: &[String], budget: Duration) -> RunReport {
        let started = Instant::now();
        let budget = budget.min(self.limits.timeout);
        let mut report = RunReport::not_started();
        let taken = self.idle_workers().pop();
        let worker = match taken {
            Some(worker) => Ok(worker),
            None => self.spawn().map(|(worker, _)| worker),
        };
        let mut worker = match worker {
            Ok(worker) => worker,
            Err(message) => {
                report.result =
                    Err(RuntimeError::new(RuntimeErrorKind::Worker { message })
                        .for_plugin(&self.name));
                report.duration = started.elapsed();
                return report;
            }
        };
        let deadline = started
            .checked_add(budget)
            .unwrap_or(started + Duration::from_secs(86_400 * 365));
        let mut runner = EffectRunner::new(self.sandbox.net(), &self.limits);
        let outcome = worker.call(args, deadline, &mut runner, &self.sandbox, &self.limits);
        report.effects = std::mem::take(&mut runner.records);
        let result = match outcome {
            Ok(parts) => {
                report.stdout = parts.stdout;
                report.stderr = parts.stderr;
                report.fuel_consumed = parts.fuel_consumed;
                report.output_bytes = parts.output_bytes;
                report.runtime_denials = parts.runtime_denials;
                report.accesses = parts.accesses;
                if self.sandbox.tracks_access() {
                    note_effect_uses(&mut report);
                }
                let mut idle = self.idle_workers();
                if idle.len() < self.max_idle {
                    idle.push(worker);
                }
                parts.result
            }
            Err(ended) => Err(ended.into_error(&self.limits)),
        };
        report.result = result.map_err(|e| e.for_plugin(&self.name));
        report.duration = started.elapsed();
        report
    }
}

fn worker_error(message: String) -> RuntimeError {
    RuntimeError::new(RuntimeErrorKind::Worker { message })
}

/// The compiled module as a worker loads it.
fn artifact_of(module: &wasmtime::Module) -> Result<Vec<u8>, RuntimeError> {
    module
        .serialize()
        .map_err(|e| worker_error(format!("cannot serialize the compiled plugin: {e:#}")))
}

fn encode_setup(setup: Setup) -> Result<Vec<u8>, RuntimeError> {
    wire::encode(&setup).map_err(|e| worker_error(e.to_string()))
}

/// Reads `module`'s manifest in a worker of its own (`early` when it was started for
/// this engine), confined with no grant at all: no directory, no variable, no stream.
/// The worker sends the message's bytes; this process bounds and decodes them, and
/// returns them with the manifest. The worker is stopped after.
///
/// Under `isolation = "process"` this is how a load learns what the plugin declares:
/// no guest code runs in warden's own process, not even the manifest's, since the
/// plugin's name (which picks its policy table, and so its isolation) is only known
/// from the manifest.
///
/// # Errors
///
/// The plugin's own errors (a trap, a timeout, a manifest that does not decode) as
/// [`Loader::load`](crate::runtime::Loader::load) reports them;
/// [`RuntimeErrorKind::Worker`] when no worker can be started;
/// [`RuntimeErrorKind::WorkerDied`] when it dies or misbehaves.
pub fn read_manifest(
    program: &Path,
    module: &wasmtime::Module,
    limits: &Limits,
    early: Option<Spawned>,
) -> Result<(PluginManifest, Vec<u8>), RuntimeError> {
    let artifact = artifact_of(module)?;
    let setup = encode_setup(Setup {
        name: String::new(),
        limits: limits.clone(),
        preopens: Vec::new(),
        env: Vec::new(),
        stdio: (false, false, false),
        track_access: false,
        simulate_no_landlock: simulate_no_landlock(),
    })?;
    let worker = match early.filter(|e| e.stack == limits.stack && e.program == program) {
        Some(early) => early.worker,
        None => Worker::spawn(program, limits.stack).map_err(worker_error)?,
    };
    let (mut worker, _) = worker
        .set_up(program, Some(&artifact), &setup, &[])
        .map_err(worker_error)?;
    worker
        .manifest(limits)
        .unwrap_or_else(|ended| Err(ended.into_error(limits)))
        .map_err(|e| match e.call {
            Some(_) => e,
            None => RuntimeError::in_call(GuestCall::Manifest, e.kind),
        })
}

/// Audit mode: the effects the plugin asked for are uses too, as in warden's own
/// process (the worker does not know them; the parent performed them).
fn note_effect_uses(report: &mut RunReport) {
    for effect in &report.effects {
        let use_ = Access {
            call: effect.kind,
            path: effect.destination(),
            host_path: None,
            preopen: None,
            write: effect.kind == "http_post",
        };
        let seen = report
            .accesses
            .recorded
            .iter()
            .any(|a| a.path == use_.path && a.preopen.is_none() && a.write == use_.write);
        if seen {
            continue;
        }
        if report.accesses.recorded.len() >= crate::runtime::observed::MAX_ACCESSES {
            report.accesses.dropped = report.accesses.dropped.saturating_add(1);
        } else {
            report.accesses.recorded.push(use_);
        }
    }
}

/// Tests only: the parent asks its workers to behave as on a kernel without Landlock
/// when `WARDEN_TEST_NO_LANDLOCK=1` (so that `confine = "required"` can be seen to
/// refuse). Without the `escape-simulator` feature this is always `false`: no
/// variable can weaken a worker in a real build.
fn simulate_no_landlock() -> bool {
    #[cfg(feature = "escape-simulator")]
    {
        std::env::var_os("WARDEN_TEST_NO_LANDLOCK").is_some_and(|v| v == "1")
    }
    #[cfg(not(feature = "escape-simulator"))]
    {
        false
    }
}
