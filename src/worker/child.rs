//! The worker's side: receive the setup, confine, prepare the plugin, then run calls
//! until the parent closes the channel.
//!
//! The worker starts as `EXE __worker` with the channel as its standard input, its
//! other streams on `/dev/null` and an empty environment. It never opens a file by
//! path (its granted directories come as descriptors), never touches the audit log
//! or the cache (it holds neither), and performs no network effect: it asks the
//! parent (`ParentEffects`).
//!
//! # Security
//!
//! Everything before [`super::confine::confine`] runs on the worker's only thread
//! and reads only what the parent sent; no guest code runs before the worker is
//! confined, and every thread (the engine's epoch ticker, compilation) starts after.

use super::confine::{self, GrantedDir};
use super::wire::{
    self, FromWorker, Setup, ToWorker, WireAccess, WireDeny, WireError, WireManifest, WireReport,
};
use crate::confinement::Confinement;
use crate::net::effects::Answer;
use crate::runtime::instance::EffectPort;
use crate::runtime::{Loader, LoaderConfig, PluginInstance, RunReport};
use crate::sandbox::{Sandbox, StdioGrant};
use std::io::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Instant;

/// Runs the worker and exits the process: 0 when the parent closed the channel, 1
/// when the worker could not go on.
pub fn main() -> ! {
    let code = match serve() {
        Ok(()) => 0,
        Err(_) => 1,
    };
    std::process::exit(code)
}

/// Why the worker stopped early (nowhere to print it: its streams are `/dev/null`;
/// the parent sees the channel close and records the worker's end).
#[derive(Debug)]
struct Stop;

fn stop<E>(_: E) -> Stop {
    Stop
}

fn serve() -> Result<(), Stop> {
    close_inherited_descriptors();
    // The channel is standard input; keep a descriptor of it of our own.
    let channel = UnixStream::from(
        std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map_err(stop)?,
    );
    confine::harden_process().map_err(stop)?;
    // The engine first, while the parent is still loading the plugin: building it
    // starts no thread (the epoch ticker starts with the loader, once confined).
    let stack = std::env::var(super::parent::WORKER_ENV)
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .ok_or(Stop)?;
    let limits = crate::limits::Limits {
        stack,
        ..crate::limits::Limits::default()
    };
    let loader = wasmtime::Engine::new(&crate::runtime::loader::engine_config_with(
        &limits,
        Some(1),
    ))
    .map_err(|e| format!("cannot build the engine: {e:#}"))
    .and_then(|engine| {
        let mut config = LoaderConfig::new("/");
        config.limits = limits;
        Loader::without_ticker(engine, config).map_err(|e| e.to_string())
    });
    // The system-call filter is compiled now too; it is installed with the rest.
    let filter = confine::syscall_filter();
    // The parent's compiled module comes first, as soon as the parent has it: loading
    // it here overlaps the parent deciding the plugin. It runs no guest code.
    let artifact = super::fds::recv(&channel).map_err(stop)?;
    let [artifact] = <[OwnedFd; 1]>::try_from(artifact).map_err(stop)?;
    let module = loader
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|loader| deserialize(loader.engine(), artifact));
    let mut fds = super::fds::recv(&channel).map_err(stop)?;
    let setup: Setup = wire::recv(&channel, usize::MAX >> 1).map_err(stop)?;
    let (stdin, stdout, stderr) = setup.stdio;
    if stdin {
        let parent_stdin = fds.pop().ok_or(Stop)?;
        rustix::stdio::dup2_stdin(&parent_stdin).map_err(stop)?;
    }
    if fds.len() != setup.preopens.len() {
        return Err(Stop);
    }
    let granted: Vec<GrantedDir<'_, OwnedFd>> = fds
        .iter()
        .zip(&setup.preopens)
        .map(|(fd, p)| GrantedDir {
            fd,
            writable: p.writable,
        })
        .collect();
    let confinement = confine::confine(&granted, setup.simulate_no_landlock, filter);
    // Confined: from here on, threads may start.
    let stdio = StdioGrant {
        stdin,
        stdout,
        stderr,
    };
    let prepared = loader.and_then(|loader| {
        if setup.limits.stack == stack {
            prepare(setup, fds, stdio, loader, module?)
        } else {
            Err(format!(
                "the worker's engine is for stacks of {stack} bytes, the plugin's limit is {}",
                setup.limits.stack
            ))
        }
    });
    let (instance, error) = match prepared {
        Ok(instance) => (Some(instance), None),
        Err(e) => (None, Some(e)),
    };
    send(
        &channel,
        &FromWorker::Ready {
            confinement: confinement.clone(),
            error,
        },
    )?;
    let Some(instance) = instance else {
        return Ok(());
    };
    serve_calls(&channel, &instance, &confinement)
}

fn serve_calls(
    channel: &UnixStream,
    instance: &PluginInstance,
    _confinement: &Confinement,
) -> Result<(), Stop> {
    // How long to poll for the next message: after `Ready`, as long as polling may
    // last; after a call, what the parent said (nothing when its CPUs are busy).
    let mut spin = wire::SPIN;
    loop {
        wire::spin_until_readable(channel, spin);
        match wire::recv::<ToWorker>(
            channel,
            wire::MAX_SMALL_MESSAGE.max(instance.limits().max_input as usize * 2),
        ) {
            Ok(ToWorker::Call {
                args,
                budget_ms,
                spin_us,
            }) => {
                spin = std::time::Duration::from_micros(spin_us).min(wire::SPIN);
                let mut effects = ParentEffects { channel };
                let budget = std::time::Duration::from_millis(budget_ms);
                let report = instance.run_with(&args, &mut effects, budget);
                send(
                    channel,
                    &FromWorker::Report(Box::new(wire_report(report, instance.sandbox()))),
                )?;
            }
            Ok(ToWorker::Manifest) => {
                let result = instance
                    .manifest_message()
                    .map(serde_bytes::ByteBuf::from)
                    .map_err(|e| WireError::of(&e));
                send(channel, &FromWorker::Manifest(WireManifest { result }))?;
            }
            Ok(ToWorker::Answer { .. }) => return Err(Stop),
            Err(wire::RecvError::Closed) => return Ok(()),
            Err(_) => return Err(Stop),
        }
    }
}

fn send(channel: &UnixStream, message: &FromWorker) -> Result<(), Stop> {
    let frame = wire::encode(message).map_err(stop)?;
    let mut to = channel;
    to.write_all(&frame).map_err(stop)
}

/// With the loader built before confinement (the parent's engine configuration),
/// starts its epoch ticker and prepares the instance of the parent's module with the
/// granted directories.
fn prepare(
    setup: Setup,
    fds: Vec<OwnedFd>,
    stdio: StdioGrant,
    loader: Loader,
    module: wasmtime::Module,
) -> Result<PluginInstance, String> {
    loader.start_ticker().map_err(|e| e.to_string())?;
    let loader = loader.with_limits(setup.limits.clone());
    let mut instance = loader
        .prepare_for_worker(module, setup.name)
        .map_err(|e| e.to_string())?;
    let dirs = fds
        .into_iter()
        .zip(setup.preopens)
        .map(|(fd, p)| {
            (
                cap_std::fs::Dir::from_std_file(std::fs::File::from(fd)),
                p.guest_path,
                std::path::PathBuf::from(p.host_path),
                p.writable,
            )
        })
        .collect();
    instance.set_sandbox(Sandbox::for_worker(
        dirs,
        setup.env,
        stdio,
        setup.track_access,
    ));
    Ok(instance)
}

/// Loads the module the parent compiled, from the sealed memory file it sent: mapped
/// where the kernel lets it be, else read.
#[allow(unsafe_code)]
fn deserialize(engine: &wasmtime::Engine, artifact: OwnedFd) -> Result<wasmtime::Module, String> {
    let file = std::fs::File::from(artifact);
    let mut copy = file.try_clone().map_err(|e| e.to_string())?;
    // SAFETY: as for `deserialize_bytes`, below.
    if let Ok(module) = unsafe { wasmtime::Module::deserialize_open_file(engine, file) } {
        return Ok(module);
    }
    let mut bytes = Vec::new();
    std::io::Seek::rewind(&mut copy).map_err(|e| e.to_string())?;
    std::io::Read::read_to_end(&mut copy, &mut bytes).map_err(|e| e.to_string())?;
    deserialize_bytes(engine, &bytes)
}

#[allow(unsafe_code)]
fn deserialize_bytes(
    engine: &wasmtime::Engine,
    artifact: &[u8],
) -> Result<wasmtime::Module, String> {
    // SAFETY: `Module::deserialize` runs the machine code it is given. These bytes
    // come from the parent, in a sealed memory file it created and passed over the
    // private socketpair it created for this worker (no other process holds either
    // end, and nobody can change a sealed file), and the parent made them with
    // `Module::serialize` from a module it compiled (or took from its own checked
    // cache) on an engine of the identical configuration; wasmtime checks the
    // engine's compatibility header before using them.
    unsafe { wasmtime::Module::deserialize(engine, artifact) }
        .map_err(|e| format!("cannot load the compiled plugin: {e:#}"))
}

/// Closes every descriptor the worker may have inherited beyond its standard streams:
/// an embedding application's files opened without `O_CLOEXEC` must not reach guest
/// code.
#[allow(unsafe_code)]
fn close_inherited_descriptors() {
    // SAFETY: nothing in this process owns a descriptor above 2 yet: this is the
    // first thing the worker does, on its only thread, before it opens anything.
    unsafe {
        libc::close_range(3, libc::c_uint::MAX, 0);
    }
}

/// The parent performs the plugin's effects: ask over the channel, wait for the
/// answer.
struct ParentEffects<'a> {
    channel: &'a UnixStream,
}

impl EffectPort for ParentEffects<'_> {
    fn perform(&mut self, effect: &crate::abi::Effect, _deadline: Option<Instant>) -> Answer {
        let asked = send(
            self.channel,
            &FromWorker::Effect {
                effect: effect.clone(),
            },
        );
        let answer = asked
            .ok()
            .and_then(|()| wire::recv::<ToWorker>(self.channel, usize::MAX >> 1).ok());
        match answer {
            Some(ToWorker::Answer {
                message: Some(message),
            }) => Answer::Message(message),
            Some(ToWorker::Answer { message: None }) => Answer::DeadlinePassed,
            // The parent is gone or confused: nothing to report to.
            _ => std::process::exit(1),
        }
    }

    fn take_records(&mut self) -> Vec<crate::net::EffectRecord> {
        Vec::new()
    }
}

/// The wire form of a report: preopens by index into the setup's list.
fn wire_report(report: RunReport, sandbox: &Sandbox) -> WireReport {
    let index = |guest: Option<&String>| {
        guest.and_then(|g| {
            sandbox
                .preopens()
                .iter()
                .position(|p| p.guest_path() == g)
                .and_then(|i| u32::try_from(i).ok())
        })
    };
    WireReport {
        result: report.result.map_err(|e| WireError::of(&e)),
        stdout: report.stdout,
        stderr: report.stderr,
        fuel_consumed: report.fuel_consumed,
        output_bytes: report.output_bytes,
        denials: report
            .runtime_denials
            .recorded
            .iter()
            .map(|d| WireDeny {
                call: d.call.to_owned(),
                path: d.path.clone(),
                target: d.target.clone(),
                preopen: index(d.preopen.as_ref()),
                errno: d.errno.code(),
                symlink_target: d.reason.is_some(),
            })
            .collect(),
        denials_dropped: report.runtime_denials.dropped,
        accesses: report
            .accesses
            .recorded
            .iter()
            .map(|a| WireAccess {
                call: a.call.to_owned(),
                path: a.path.clone(),
                preopen: index(a.preopen.as_ref()),
                write: a.write,
            })
            .collect(),
        accesses_dropped: report.accesses.dropped,
    }
}
