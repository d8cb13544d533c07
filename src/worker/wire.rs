//! The messages between warden (the parent) and a worker, and how they travel: one
//! `u32` little-endian length, then that many bytes of msgpack, over a Unix
//! socketpair. The parent sends, in order: its compiled module, in a sealed memory
//! file passed with `SCM_RIGHTS` (as soon as it has it, so that the worker loads it
//! while the parent decides the plugin), the granted directories' descriptors, alone,
//! with `SCM_RIGHTS`, and the [`Setup`]; then [`ToWorker`] messages.
//!
//! # Security
//!
//! Everything a worker sends is hostile input: code that escaped wasm in the worker
//! writes whatever bytes it likes to the channel. The parent reads a frame only up to
//! a bound fixed by the call's limits ([`report_bound`]), decodes it strictly (the
//! decoder of guest messages: no trailing bytes, bounded nesting), and
//! [`WireReport::into_parts`] checks every field against what the worker could
//! legitimately have produced (sizes, counts, names it must pick from warden's own
//! lists, preopens by index into the parent's own sandbox) before any of it reaches a
//! record. A frame that fails is the worker misbehaving: the parent kills it.

use crate::abi::{Effect, ExecuteResult};
use crate::confinement::Confinement;
use crate::limits::{LimitKind, Limits};
use crate::runtime::observed::{
    Access, Accesses, MAX_ACCESSES, MAX_DENIED_PATH, MAX_RUNTIME_DENIALS, Refusal, RuntimeDenials,
    RuntimeDeny,
};
use crate::runtime::{GuestCall, RuntimeError, RuntimeErrorKind};
use crate::sandbox::Sandbox;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

/// Most descriptors the parent passes (the kernel's `SCM_MAX_FD` is 253).
pub const MAX_FDS: usize = 250;

/// Largest message the parent sends or a worker may answer outside a report
/// (setup aside, whose artifact is the parent's own).
pub const MAX_SMALL_MESSAGE: usize = 1 << 20;

/// Longest message text (a trap, an error) the parent keeps from a worker, in bytes.
pub const MAX_WORKER_TEXT: usize = 4096;

/// What the parent sends once the plugin is decided (after the compiled module and
/// the descriptors): everything else the worker needs for its calls.
#[derive(Debug, Serialize, Deserialize)]
pub struct Setup {
    /// The plugin's declared name (its `argv[0]`).
    pub name: String,
    /// The limits of every call.
    pub limits: Limits,
    /// The granted directories, in the order of the descriptors passed.
    pub preopens: Vec<WirePreopen>,
    /// The granted variables.
    pub env: Vec<(String, String)>,
    /// The granted streams: stdin, stdout, stderr. With stdin, the last descriptor
    /// passed is warden's own standard input.
    pub stdio: (bool, bool, bool),
    /// Whether calls record what the plugin uses (audit mode).
    pub track_access: bool,
    /// Tests only (`escape-simulator`): behave as on a kernel without Landlock.
    pub simulate_no_landlock: bool,
}

/// A granted directory as the worker sees it.
#[derive(Debug, Serialize, Deserialize)]
pub struct WirePreopen {
    /// Where the plugin sees it.
    pub guest_path: String,
    /// Where it is on the host (for the worker's messages only; the parent names host
    /// paths from its own sandbox).
    pub host_path: String,
    /// Whether the plugin may write in it.
    pub writable: bool,
}

/// What the parent sends after the setup.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToWorker {
    /// Run `plugin_execute` with these arguments.
    Call {
        /// The plugin's arguments.
        args: Vec<String>,
        /// Milliseconds the call may take (at most the plugin's `timeout`: less when
        /// it waited for a slot).
        budget_ms: u64,
        /// Microseconds to poll for the parent's next message after the report (at
        /// most [`SPIN`]; none when the parent's CPUs are busy).
        spin_us: u64,
    },
    /// Call `plugin_manifest` and send its message back, undecoded.
    Manifest,
    /// The answer to the effect the worker asked for: the encoded message to resume
    /// the plugin with, or `None` when the call's deadline passed meanwhile.
    Answer {
        /// The message.
        #[serde(with = "serde_bytes")]
        message: Option<Vec<u8>>,
    },
}

/// What a worker sends.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromWorker {
    /// Confined and ready (or not: `error` says why it cannot run calls).
    Ready {
        /// What the kernel enforces around the worker.
        confinement: Confinement,
        /// Why the worker cannot run calls, if it cannot.
        error: Option<String>,
    },
    /// The plugin asks for an effect; the parent performs it and answers.
    Effect {
        /// The effect as the plugin asked for it.
        effect: Effect,
    },
    /// The call is over.
    Report(Box<WireReport>),
    /// The manifest's message, or the error that ended its call.
    Manifest(WireManifest),
}

/// What `plugin_manifest` returned in a worker: its message's bytes, which the parent
/// decodes itself.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireManifest {
    /// The bytes, or the error that ended the call.
    pub result: Result<serde_bytes::ByteBuf, WireError>,
}

impl WireManifest {
    /// The manifest, decoded and validated by the parent, with the message it came
    /// from (or the plugin's error), once the message is checked against `limits`.
    ///
    /// # Errors
    ///
    /// [`Malformed`] when no honest worker could have sent this: a message past
    /// `max_manifest`, an error it could not have met.
    #[allow(clippy::type_complexity)]
    pub fn into_manifest(
        self,
        limits: &Limits,
    ) -> Result<Result<(crate::abi::PluginManifest, Vec<u8>), RuntimeError>, Malformed> {
        match self.result {
            Ok(bytes) => {
                if bytes.len() as u64 > limits.max_manifest {
                    return Err(malformed(format!(
                        "a manifest of {} bytes, past max_manifest {}",
                        bytes.len(),
                        limits.max_manifest
                    )));
                }
                let bytes = bytes.into_vec();
                Ok(crate::runtime::instance::parse_manifest_message(&bytes).map(|m| (m, bytes)))
            }
            Err(e) => Ok(Err(e.into_error()?)),
        }
    }
}

/// The largest manifest answer a worker under `limits` can honestly send.
pub fn manifest_bound(limits: &Limits) -> usize {
    usize::try_from(limits.max_manifest)
        .unwrap_or(usize::MAX)
        .saturating_add(MAX_SMALL_MESSAGE)
}

/// A call's report, as a worker sends it.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireReport {
    /// The result, or the error that ended the call.
    pub result: Result<ExecuteResult, WireError>,
    /// What the plugin wrote to stdout.
    #[serde(with = "serde_bytes")]
    pub stdout: Vec<u8>,
    /// What the plugin wrote to stderr.
    #[serde(with = "serde_bytes")]
    pub stderr: Vec<u8>,
    /// Fuel consumed.
    pub fuel_consumed: u64,
    /// Size of the result message.
    pub output_bytes: u64,
    /// Refused WASI calls.
    pub denials: Vec<WireDeny>,
    /// How many more there were.
    pub denials_dropped: u64,
    /// What the plugin used (audit mode).
    pub accesses: Vec<WireAccess>,
    /// How many more distinct uses there were.
    pub accesses_dropped: u64,
}

/// An error that ended a call in a worker.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireError {
    /// The guest call in progress.
    pub call: Option<GuestCall>,
    /// What happened.
    pub kind: WireKind,
}

/// The kinds of [`WireError`].
#[derive(Debug, Serialize, Deserialize)]
pub enum WireKind {
    /// A limit ran out.
    Limit {
        /// Which.
        limit: LimitKind,
        /// Its value.
        value: u64,
    },
    /// The guest trapped.
    Trap {
        /// The trap.
        message: String,
    },
    /// The guest broke the ABI (or returned something invalid).
    Invalid {
        /// What was wrong.
        message: String,
    },
    /// An effect that cannot be answered.
    EffectRefused {
        /// The effect's kind.
        effect: String,
        /// Why.
        why: String,
    },
    /// The arguments are too large.
    ArgsTooLarge {
        /// Their encoded length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The sandbox could not be built.
    Sandbox {
        /// What failed.
        message: String,
    },
    /// The engine failed.
    Engine {
        /// What failed.
        message: String,
    },
}

/// A refused WASI call, as a worker sends it.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireDeny {
    /// The WASI function.
    pub call: String,
    /// The path.
    pub path: String,
    /// The second path.
    pub target: Option<String>,
    /// The preopen, by index into the setup's list.
    pub preopen: Option<u32>,
    /// The WASI errno.
    pub errno: u16,
    /// Whether warden refused a symlink target itself.
    pub symlink_target: bool,
}

/// A use, as a worker sends it.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireAccess {
    /// The WASI function or stream.
    pub call: String,
    /// The path (relative to the preopen) or the stream.
    pub path: String,
    /// The preopen, by index into the setup's list.
    pub preopen: Option<u32>,
    /// Whether it writes.
    pub write: bool,
}

impl WireError {
    /// The wire form of a worker-side error.
    pub fn of(e: &RuntimeError) -> Self {
        let kind = match &e.kind {
            RuntimeErrorKind::Limit { limit, value } => WireKind::Limit {
                limit: *limit,
                value: *value,
            },
            RuntimeErrorKind::Trap { message } => WireKind::Trap {
                message: message.clone(),
            },
            RuntimeErrorKind::EffectRefused { effect, why } => WireKind::EffectRefused {
                effect: (*effect).to_owned(),
                why: (*why).to_owned(),
            },
            RuntimeErrorKind::ArgsTooLarge { len, max } => WireKind::ArgsTooLarge {
                len: *len as u64,
                max: *max,
            },
            RuntimeErrorKind::Sandbox { message } => WireKind::Sandbox {
                message: message.clone(),
            },
            RuntimeErrorKind::Engine { message } => WireKind::Engine {
                message: message.clone(),
            },
            other => WireKind::Invalid {
                message: other.to_string(),
            },
        };
        WireError { call: e.call, kind }
    }
}

/// A worker's message that is not what a worker could legitimately send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the worker sent {0}")]
pub struct Malformed(pub String);

fn malformed(what: impl Into<String>) -> Malformed {
    Malformed(what.into())
}

/// `s`, unless it is longer than `max` bytes.
fn bounded(s: String, max: usize, what: &str) -> Result<String, Malformed> {
    if s.len() > max {
        return Err(malformed(format!(
            "a {what} of {} bytes (at most {max})",
            s.len()
        )));
    }
    Ok(s)
}

/// The one of warden's own names `name` is, or an error.
fn intern(name: &str, names: &[&'static str], what: &str) -> Result<&'static str, Malformed> {
    names.iter().find(|n| **n == name).copied().ok_or_else(|| {
        malformed(format!(
            "an unknown {what} `{}`",
            crate::escape::escape_line(name)
        ))
    })
}

/// The calls a refusal or a use may name.
/// The names a worker may give a use (audit mode): the WASI calls warden observes and
/// the streams. Effects are the parent's to record (it performed them).
fn known_uses() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = crate::runtime::shadow::SHADOWED.to_vec();
    names.extend(["stdin", "stdout", "stderr"]);
    names
}

/// The parts of a run report a worker's report becomes, checked.
pub struct ReportParts {
    /// The result.
    pub result: Result<ExecuteResult, RuntimeError>,
    /// stdout.
    pub stdout: Vec<u8>,
    /// stderr.
    pub stderr: Vec<u8>,
    /// Fuel consumed.
    pub fuel_consumed: u64,
    /// Size of the result message.
    pub output_bytes: u64,
    /// Refused WASI calls.
    pub runtime_denials: RuntimeDenials,
    /// Uses (audit mode).
    pub accesses: Accesses,
}

impl WireReport {
    /// Checks every field against what a worker running under `limits` in `sandbox`
    /// could have produced, and names preopens and host paths from the parent's own
    /// `sandbox`.
    ///
    /// # Errors
    ///
    /// [`Malformed`] for the first field that could not have come from an honest
    /// worker.
    pub fn into_parts(self, sandbox: &Sandbox, limits: &Limits) -> Result<ReportParts, Malformed> {
        let max_output = usize::try_from(limits.max_output).unwrap_or(usize::MAX);
        for (name, stream) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            if stream.len() > max_output {
                return Err(malformed(format!(
                    "{} bytes of {name}, past the plugin's max_output of {max_output}",
                    stream.len()
                )));
            }
        }
        if self.fuel_consumed > limits.fuel {
            return Err(malformed(format!(
                "fuel consumed {} past the plugin's fuel limit {}",
                self.fuel_consumed, limits.fuel
            )));
        }
        let uses = known_uses();
        let calls = crate::runtime::shadow::SHADOWED;
        let preopens = sandbox.preopens();
        let preopen_at =
            |index: Option<u32>| -> Result<Option<&crate::sandbox::Preopen>, Malformed> {
                match index {
                    None => Ok(None),
                    Some(i) => usize::try_from(i)
                        .ok()
                        .and_then(|i| preopens.get(i))
                        .map(Some)
                        .ok_or_else(|| {
                            malformed(format!("preopen {i}, which the plugin does not have"))
                        }),
                }
            };
        if self.denials.len() > MAX_RUNTIME_DENIALS {
            return Err(malformed(format!(
                "{} runtime denials (at most {MAX_RUNTIME_DENIALS})",
                self.denials.len()
            )));
        }
        let path_max = MAX_DENIED_PATH + 16;
        let mut recorded = Vec::with_capacity(self.denials.len());
        for d in self.denials {
            let errno = Refusal::from_errno(i32::from(d.errno))
                .ok_or_else(|| malformed(format!("a runtime denial with errno {}", d.errno)))?;
            recorded.push(RuntimeDeny {
                call: intern(&d.call, &calls, "WASI call")?,
                path: bounded(d.path, path_max, "denied path")?,
                target: d
                    .target
                    .map(|t| bounded(t, path_max, "denied path"))
                    .transpose()?,
                preopen: preopen_at(d.preopen)?.map(|p| p.guest_path().to_owned()),
                errno,
                reason: d
                    .symlink_target
                    .then_some(crate::runtime::shadow::SYMLINK_TARGET_REASON),
            });
        }
        if self.accesses.len() > MAX_ACCESSES {
            return Err(malformed(format!(
                "{} accesses (at most {MAX_ACCESSES})",
                self.accesses.len()
            )));
        }
        let mut used = Vec::with_capacity(self.accesses.len());
        for a in self.accesses {
            let preopen = preopen_at(a.preopen)?;
            let path = bounded(a.path, path_max, "used path")?;
            used.push(Access {
                call: intern(&a.call, &uses, "use")?,
                host_path: preopen.map(|p| {
                    crate::paths::lexical_join(p.host_path(), &path)
                        .display()
                        .to_string()
                }),
                preopen: preopen.map(|p| p.guest_path().to_owned()),
                path,
                write: a.write,
            });
        }
        let result = match self.result {
            Ok(result) => Ok(check_result(result, max_output)?),
            Err(e) => Err(e.into_error()?),
        };
        Ok(ReportParts {
            result,
            stdout: self.stdout,
            stderr: self.stderr,
            fuel_consumed: self.fuel_consumed,
            output_bytes: self.output_bytes,
            runtime_denials: RuntimeDenials {
                recorded,
                dropped: self.denials_dropped,
            },
            accesses: Accesses {
                recorded: used,
                dropped: self.accesses_dropped,
            },
        })
    }
}

fn check_result(result: ExecuteResult, max_output: usize) -> Result<ExecuteResult, Malformed> {
    let len = match &result {
        ExecuteResult::Success(text) => text.len(),
        ExecuteResult::Error(e) => e.message.len(),
        // A call that ends asking for an effect ends with an error, never this.
        ExecuteResult::Effect(_) => return Err(malformed("a result that is an effect")),
    };
    if len > max_output {
        return Err(malformed(format!(
            "a result of {len} bytes, past max_output {max_output}"
        )));
    }
    Ok(result)
}

impl WireError {
    fn into_error(self) -> Result<RuntimeError, Malformed> {
        let text = |m: String| bounded(m, MAX_WORKER_TEXT, "message");
        let kind = match self.kind {
            WireKind::Limit { limit, value } => RuntimeErrorKind::Limit { limit, value },
            WireKind::Trap { message } => RuntimeErrorKind::Trap {
                message: text(message)?,
            },
            WireKind::Invalid { message } => RuntimeErrorKind::Invalid {
                message: text(message)?,
            },
            WireKind::EffectRefused { effect, why } => RuntimeErrorKind::EffectRefused {
                effect: intern(&effect, &["http_get", "http_post", "sleep"], "effect")?,
                why: intern(
                    &why,
                    &[
                        crate::runtime::instance::NO_RESUME,
                        crate::runtime::instance::TOO_MANY_EFFECTS,
                    ],
                    "refusal",
                )?,
            },
            WireKind::ArgsTooLarge { len, max } => RuntimeErrorKind::ArgsTooLarge {
                len: usize::try_from(len).unwrap_or(usize::MAX),
                max,
            },
            WireKind::Sandbox { message } => RuntimeErrorKind::Sandbox {
                message: text(message)?,
            },
            WireKind::Engine { message } => RuntimeErrorKind::Engine {
                message: text(message)?,
            },
        };
        Ok(RuntimeError {
            plugin: None,
            call: self.call,
            kind,
        })
    }
}

/// The largest report a worker under `limits` can honestly send: the result and both
/// streams at `max_output`, every runtime denial and access at its longest.
pub fn report_bound(limits: &Limits) -> usize {
    let output = usize::try_from(limits.max_output).unwrap_or(usize::MAX);
    let per_path = 2 * (MAX_DENIED_PATH + 16) + 256;
    output
        .saturating_mul(3)
        .saturating_add(MAX_RUNTIME_DENIALS.saturating_mul(per_path))
        .saturating_add(MAX_ACCESSES.saturating_mul(per_path))
        .saturating_add(MAX_SMALL_MESSAGE)
}

/// Encodes `message` (msgpack, fields by name) as one frame.
///
/// # Errors
///
/// When it cannot be encoded, or is larger than a `u32` length.
pub fn encode<T: Serialize>(message: &T) -> std::io::Result<Vec<u8>> {
    let mut frame = vec![0; 4];
    rmp_serde::encode::write_named(&mut frame, message)
        .map_err(|e| std::io::Error::other(format!("cannot encode a worker message: {e}")))?;
    let len = u32::try_from(frame.len() - 4)
        .map_err(|_| std::io::Error::other("a worker message over 4 GiB"))?;
    frame[..4].copy_from_slice(&len.to_le_bytes());
    Ok(frame)
}

/// Writes `message` as one frame.
///
/// # Errors
///
/// As [`encode`], and any write failure.
pub fn send<T: Serialize>(mut to: impl Write, message: &T) -> std::io::Result<()> {
    to.write_all(&encode(message)?)
}

/// How long each side of the channel polls for the other's next message before it
/// sleeps in the kernel. A message that comes while a process sleeps pays for its
/// wake-up, tens of microseconds on an idle machine (more than a small call's whole
/// run); polling (yielding the CPU to anything else runnable between polls) costs at
/// most this much CPU a message, and only while the other side is working for it.
pub const SPIN: std::time::Duration = std::time::Duration::from_micros(200);

/// Returns once `channel` has something to read (or is closed, or fails), or after
/// `spin` of polling it; the read that follows then finds its message at once, or
/// sleeps for it.
pub fn spin_until_readable(channel: &std::os::unix::net::UnixStream, spin: std::time::Duration) {
    use rustix::net::RecvFlags;
    let start = std::time::Instant::now();
    let mut byte = [0u8; 1];
    loop {
        match rustix::net::recv(channel, &mut byte, RecvFlags::PEEK | RecvFlags::DONTWAIT) {
            Err(rustix::io::Errno::AGAIN) => {}
            _ => return,
        }
        if start.elapsed() >= spin {
            return;
        }
        std::thread::yield_now();
    }
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecvError {
    /// The other side closed the channel (a worker that died or exited).
    #[error("the channel closed")]
    Closed,
    /// Reading failed (a timeout included: `WouldBlock`/`TimedOut`).
    #[error("cannot read from the channel: {0}")]
    Io(#[from] std::io::Error),
    /// The frame is not an acceptable message.
    #[error(transparent)]
    Malformed(#[from] Malformed),
}

/// Reads one frame of at most `max` bytes and decodes it strictly.
///
/// # Errors
///
/// [`RecvError::Closed`] at end of stream before a frame starts; [`RecvError::Io`];
/// [`RecvError::Malformed`] for a frame over `max` or one that does not decode.
pub fn recv<T: serde::de::DeserializeOwned>(from: impl Read, max: usize) -> Result<T, RecvError> {
    decode(&recv_raw(from, max)?).map_err(RecvError::Malformed)
}

/// Reads one frame of at most `max` bytes, undecoded.
///
/// # Errors
///
/// As [`recv`], less decoding.
fn recv_raw(mut from: impl Read, max: usize) -> Result<Vec<u8>, RecvError> {
    let mut len = [0u8; 4];
    match from.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(RecvError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Err(malformed(format!("a message of {len} bytes (at most {max})")).into());
    }
    let mut body = vec![0; len];
    from.read_exact(&mut body)?;
    Ok(body)
}

/// Decodes one message strictly: the guest-message decoder (no trailing bytes,
/// bounded nesting).
///
/// # Errors
///
/// [`Malformed`] naming what did not decode.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Malformed> {
    crate::abi::decode(bytes, "worker message")
        .map_err(|e| malformed(format!("a message that does not decode: {e}")))
}
