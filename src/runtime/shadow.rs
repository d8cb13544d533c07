//! Runtime denials: what a plugin tried, past its grants, through WASI.
//!
//! wasmtime-wasi's preview-1 trait is private, so warden *shadows* the WASI functions
//! that take a path: the linker's `wasi_snapshot_preview1::path_open` (and the others
//! listed in [`SHADOWED`]) is replaced by a wrapper that calls the original, taken
//! from a second linker holding only WASI, and looks at the errno it returns.
//!
//! The original cannot be called straight from the wrapper: a host function called
//! from host code (`Func::call`) has no calling instance, and wasmtime-wasi finds the
//! guest's memory through the calling instance's `memory` export. So each store gets,
//! on the first wrapped call, a tiny *adapter* instance (see `adapter_wat`) that
//! imports the plugin's memory, exports it as `memory`, and forwards each function to
//! the original import; the wrapper calls the adapter, the adapter calls the original
//! with itself as the caller, and wasmtime-wasi sees the plugin's memory. Public API
//! only, at the price of one host-to-wasm call per wrapped call.
//!
//! A refusal ([`Refusal`]: `NOTCAPABLE`, `PERM`, `ACCES`, `ROFS`) is recorded in the
//! store as a [`RuntimeDeny`] naming the call, the path as the guest gave it and the
//! preopen it was relative to; [`crate::runtime::RunReport::runtime_denials`] returns
//! them. `NOENT` is not a refusal: a missing file inside a grant is no attempt to
//! leave it, and a path that leaves a preopen is refused (`PERM`) before it is looked
//! up.
//!
//! When nothing is refused a wrapper costs one call into the adapter and an integer
//! comparison: the adapter is instantiated once per store (only if the plugin calls a
//! wrapped function at all), its functions are kept in the store's data, and guest
//! memory is read only for a refusal.
//!
//! `fd_close` and `fd_renumber` are shadowed too, only to keep the map from
//! descriptor to preopen right when a plugin closes or moves a preopened descriptor.
//!
//! # Symlinks
//!
//! A symlink a plugin creates in a writable grant stays on the host, where the host's
//! own users may follow it. The `path_symlink` wrapper therefore refuses, with
//! `PERM` (what wasmtime-wasi itself answers for an absolute target) and before
//! anything is created, every target that is absolute or has a `..` component at all.
//! A target made of plain components only descends from the link's directory, so it
//! stays in the grant wherever the link is later moved (rename, hard link), and
//! whatever the other links in the grant point to (each of them descends too). A rule
//! that allows `..` while it stays inside is not enough: after `a -> .`, the target
//! `a/..` climbs out although it looks like it stays put, and renaming a link to a
//! shallower directory changes where its `..` lead.
//!
//! # Security
//!
//! The paths recorded are guest-controlled: they are read with checked bounds, capped
//! at [`MAX_DENIED_PATH`] bytes, decoded lossily, and escaped by whoever prints them.
//! At most [`MAX_RUNTIME_DENIALS`] are kept per call; the rest are counted.
//!
//! A symlink target is read from guest memory for the check and again by
//! wasmtime-wasi; nothing can change it in between: the loader refuses shared
//! memories and a second memory, and a plugin has no threads.

use super::instance::StoreState;
use super::loader::WASI_MODULE;
use crate::sandbox::Sandbox;
use serde::Serialize;
use std::sync::Arc;
use wasmtime::{Caller, Extern, Instance, Linker, Module, TypedFunc, WasmParams};

/// Runtime denials kept per call; later ones are only counted.
pub const MAX_RUNTIME_DENIALS: usize = 1000;

/// Longest path recorded, in bytes; longer ones are cut and marked.
pub const MAX_DENIED_PATH: usize = 4096;

/// The WASI functions warden wraps.
pub const SHADOWED: [&str; 12] = [
    "path_open",
    "path_create_directory",
    "path_remove_directory",
    "path_unlink_file",
    "path_filestat_get",
    "path_filestat_set_times",
    "path_link",
    "path_readlink",
    "path_rename",
    "path_symlink",
    "fd_close",
    "fd_renumber",
];

/// An errno that means "not allowed", as opposed to "not there" or "bad argument".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Refusal {
    /// `ACCES` (2): the host's permissions refused.
    Acces,
    /// `PERM` (63): outside the preopen, a write in a read-only preopen, or a symlink
    /// target warden refuses.
    Perm,
    /// `ROFS` (69): a read-only file system.
    Rofs,
    /// `NOTCAPABLE` (76): the descriptor lacks the right.
    Notcapable,
}

impl Refusal {
    /// The WASI errno value.
    pub const fn code(self) -> u16 {
        match self {
            Refusal::Acces => 2,
            Refusal::Perm => 63,
            Refusal::Rofs => 69,
            Refusal::Notcapable => 76,
        }
    }

    /// The refusal an errno value means, if any.
    #[inline]
    pub const fn from_errno(errno: i32) -> Option<Self> {
        match errno {
            2 => Some(Refusal::Acces),
            63 => Some(Refusal::Perm),
            69 => Some(Refusal::Rofs),
            76 => Some(Refusal::Notcapable),
            _ => None,
        }
    }

    /// The errno's WASI name, upper case.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Acces => "ACCES",
            Refusal::Perm => "PERM",
            Refusal::Rofs => "ROFS",
            Refusal::Notcapable => "NOTCAPABLE",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

/// Why warden itself refused a call (rather than wasmtime-wasi).
pub const SYMLINK_TARGET_REASON: &str = "a symlink target must be relative and without `..`: it would lead outside the grant for the host's users";

/// One refused WASI call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuntimeDeny {
    /// The WASI function.
    pub call: &'static str,
    /// The path as the guest gave it (for `path_symlink`, the link).
    pub path: String,
    /// The second path: the target of `path_symlink`, the destination of
    /// `path_rename` and `path_link`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The guest path of the preopen the path was relative to, or `None` when the
    /// descriptor was not a preopen (a directory the plugin opened).
    pub preopen: Option<String>,
    /// The errno the plugin got.
    pub errno: Refusal,
    /// Set when warden refused the call itself, before wasmtime-wasi saw it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// The refusals of one call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeDenials {
    /// The first [`MAX_RUNTIME_DENIALS`] refusals, in order.
    pub recorded: Vec<RuntimeDeny>,
    /// How many more there were.
    pub dropped: u64,
}

impl RuntimeDenials {
    /// True when nothing was refused.
    pub fn is_empty(&self) -> bool {
        self.recorded.is_empty() && self.dropped == 0
    }
}

/// A refusal as recorded in the store (the preopen by index until the call ends).
#[derive(Debug)]
struct Pending {
    call: &'static str,
    path: String,
    target: Option<String>,
    preopen: Option<usize>,
    errno: Refusal,
    reason: Option<&'static str>,
}

/// Which descriptor each preopen has now. WASI gives preopens the descriptors 3, 4,
/// ... in order; this changes only when the plugin closes or renumbers one.
#[derive(Debug, Default)]
struct PreopenFds {
    count: usize,
    moved: Option<Vec<Option<u32>>>,
}

impl PreopenFds {
    fn new(count: usize) -> Self {
        PreopenFds { count, moved: None }
    }

    fn index_of(&self, fd: u32) -> Option<usize> {
        match &self.moved {
            None => usize::try_from(fd.checked_sub(3)?)
                .ok()
                .filter(|i| *i < self.count),
            Some(fds) => fds.iter().position(|f| *f == Some(fd)),
        }
    }

    fn table(&mut self) -> &mut Vec<Option<u32>> {
        let count = self.count;
        self.moved
            .get_or_insert_with(|| (0..count).map(|i| u32::try_from(i + 3).ok()).collect())
    }

    fn closed(&mut self, fd: u32) {
        if self.index_of(fd).is_some() {
            for f in self.table() {
                if *f == Some(fd) {
                    *f = None;
                }
            }
        }
    }

    fn renumbered(&mut self, from: u32, to: u32) {
        if from == to || (self.index_of(from).is_none() && self.index_of(to).is_none()) {
            return;
        }
        for f in self.table() {
            if *f == Some(to) {
                *f = None;
            } else if *f == Some(from) {
                *f = Some(to);
            }
        }
    }
}

type Func<P> = Option<TypedFunc<P, i32>>;

/// The core-wasm parameters of `path_open`.
type PathOpenParams = (i32, i32, i32, i32, i32, i64, i64, i32, i32);

/// The core-wasm parameter types of each function in [`SHADOWED`] (all return `i32`).
const SIGNATURES: [(&str, &str); 12] = [
    ("path_open", "i32 i32 i32 i32 i32 i64 i64 i32 i32"),
    ("path_create_directory", "i32 i32 i32"),
    ("path_remove_directory", "i32 i32 i32"),
    ("path_unlink_file", "i32 i32 i32"),
    ("path_filestat_get", "i32 i32 i32 i32 i32"),
    ("path_filestat_set_times", "i32 i32 i32 i32 i64 i64 i32"),
    ("path_link", "i32 i32 i32 i32 i32 i32 i32"),
    ("path_readlink", "i32 i32 i32 i32 i32 i32"),
    ("path_rename", "i32 i32 i32 i32 i32 i32"),
    ("path_symlink", "i32 i32 i32 i32 i32"),
    ("fd_close", "i32"),
    ("fd_renumber", "i32 i32"),
];

/// The adapter module: imports a memory and the originals, exports the memory as
/// `memory` and one forwarding function per original, under the original's name.
pub fn adapter_wat() -> String {
    let mut wat = String::from("(module\n  (import \"env\" \"memory\" (memory 0))\n");
    for (name, params) in SIGNATURES {
        wat.push_str(&format!(
            "  (import \"{WASI_MODULE}\" \"{name}\" (func ${name} (param {params}) (result i32)))\n"
        ));
    }
    wat.push_str("  (export \"memory\" (memory 0))\n");
    for (name, params) in SIGNATURES {
        let forward: Vec<String> = (0..params.split(' ').count())
            .map(|i| format!("local.get {i}"))
            .collect();
        wat.push_str(&format!(
            "  (func (export \"{name}\") (param {params}) (result i32) {} call ${name})\n",
            forward.join(" ")
        ));
    }
    wat.push(')');
    wat
}

/// What every wrapper shares: the WASI-only linker and the compiled adapter.
struct Originals {
    wasi: Linker<StoreState>,
    adapter: Module,
}

/// The adapter's forwarding functions, fetched on first use in each store.
#[derive(Default)]
struct Forwarders {
    instance: Option<Instance>,
    path_open: Func<PathOpenParams>,
    path_create_directory: Func<(i32, i32, i32)>,
    path_remove_directory: Func<(i32, i32, i32)>,
    path_unlink_file: Func<(i32, i32, i32)>,
    path_filestat_get: Func<(i32, i32, i32, i32, i32)>,
    path_filestat_set_times: Func<(i32, i32, i32, i32, i64, i64, i32)>,
    path_link: Func<(i32, i32, i32, i32, i32, i32, i32)>,
    path_readlink: Func<(i32, i32, i32, i32, i32, i32)>,
    path_rename: Func<(i32, i32, i32, i32, i32, i32)>,
    path_symlink: Func<(i32, i32, i32, i32, i32)>,
    fd_close: Func<(i32,)>,
    fd_renumber: Func<(i32, i32)>,
}

/// What the wrappers keep in a store.
#[derive(Default)]
pub(crate) struct ShadowState {
    forwarders: Forwarders,
    preopens: PreopenFds,
    denials: Vec<Pending>,
    dropped: u64,
}

impl std::fmt::Debug for ShadowState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShadowState")
            .field("denials", &self.denials)
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

impl ShadowState {
    /// The state for a store whose WASI context has `preopens` preopened directories.
    pub(crate) fn new(preopens: usize) -> Self {
        ShadowState {
            preopens: PreopenFds::new(preopens),
            ..ShadowState::default()
        }
    }

    /// Takes the refusals recorded so far, naming preopens from `sandbox` (the one the
    /// store's WASI context was built from).
    pub(crate) fn take_denials(&mut self, sandbox: &Sandbox) -> RuntimeDenials {
        let preopens = sandbox.preopens();
        RuntimeDenials {
            recorded: std::mem::take(&mut self.denials)
                .into_iter()
                .map(|p| RuntimeDeny {
                    call: p.call,
                    path: p.path,
                    target: p.target,
                    preopen: p
                        .preopen
                        .and_then(|i| preopens.get(i))
                        .map(|p| p.guest_path().to_owned()),
                    errno: p.errno,
                    reason: p.reason,
                })
                .collect(),
            dropped: std::mem::take(&mut self.dropped),
        }
    }
}

/// The adapter instance of this store, instantiated on first use with the calling
/// plugin's memory and the originals.
fn adapter(
    caller: &mut Caller<'_, StoreState>,
    originals: &Originals,
) -> wasmtime::Result<Instance> {
    if let Some(instance) = caller.data().shadow.forwarders.instance {
        return Ok(instance);
    }
    let memory = caller
        .get_export("memory")
        .and_then(Extern::into_memory)
        .ok_or_else(|| {
            wasmtime::format_err!("the plugin exports no 32-bit memory named `memory`")
        })?;
    let mut imports = Vec::with_capacity(SIGNATURES.len() + 1);
    for import in originals.adapter.imports() {
        imports.push(match (import.module(), import.name()) {
            ("env", "memory") => Extern::Memory(memory),
            (module, name) => originals.wasi.get(&mut *caller, module, name)?,
        });
    }
    let instance = Instance::new(&mut *caller, &originals.adapter, &imports)?;
    caller.data_mut().shadow.forwarders.instance = Some(instance);
    Ok(instance)
}

/// The forwarder for `name`, from the store's cache or the adapter.
fn forwarder<P: WasmParams>(
    caller: &mut Caller<'_, StoreState>,
    originals: &Originals,
    name: &str,
    slot: fn(&mut Forwarders) -> &mut Func<P>,
) -> wasmtime::Result<TypedFunc<P, i32>> {
    if let Some(f) = slot(&mut caller.data_mut().shadow.forwarders) {
        return Ok(f.clone());
    }
    let instance = adapter(caller, originals)?;
    let func = instance.get_typed_func::<P, i32>(&mut *caller, name)?;
    *slot(&mut caller.data_mut().shadow.forwarders) = Some(func.clone());
    Ok(func)
}

/// `memory[ptr .. ptr + len]` with checked bounds (unlike [`crate::abi::read_region`],
/// address 0 is a valid place for a WASI string).
fn guest_bytes(memory: &[u8], ptr: i32, len: i32) -> Option<&[u8]> {
    let start = usize::try_from(ptr as u32).ok()?;
    let end = start.checked_add(usize::try_from(len as u32).ok()?)?;
    memory.get(start..end)
}

/// A guest path for the record: lossy UTF-8, at most [`MAX_DENIED_PATH`] bytes.
fn path_text(bytes: Option<&[u8]>) -> String {
    let Some(bytes) = bytes else {
        return "<outside guest memory>".to_owned();
    };
    let cut = bytes.len() > MAX_DENIED_PATH;
    let mut text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_DENIED_PATH)]).into_owned();
    if cut {
        text.push_str("...[cut]");
    }
    text
}

/// Whether a symlink target would lead out of the link's directory tree for a host
/// user: absolute, or any `..` component (see the module docs).
pub fn symlink_target_refused(target: &[u8]) -> bool {
    target.first() == Some(&b'/') || target.split(|b| *b == b'/').any(|c| c == b"..")
}

/// What a refused call was about.
struct Attempt {
    call: &'static str,
    dirfd: i32,
    path: (i32, i32),
    target: Option<(i32, i32)>,
}

/// An attempt on one path relative to `dirfd`.
fn one(call: &'static str, dirfd: i32, ptr: i32, len: i32) -> impl FnOnce() -> Attempt {
    move || Attempt {
        call,
        dirfd,
        path: (ptr, len),
        target: None,
    }
}

/// Records `attempt` when `errno` is a refusal. The fast path is the comparison.
#[inline]
fn check(caller: &mut Caller<'_, StoreState>, errno: i32, attempt: impl FnOnce() -> Attempt) {
    if let Some(refusal) = Refusal::from_errno(errno) {
        record(caller, attempt(), refusal, None);
    }
}

#[cold]
fn record(
    caller: &mut Caller<'_, StoreState>,
    attempt: Attempt,
    errno: Refusal,
    reason: Option<&'static str>,
) {
    if caller.data().shadow.denials.len() >= MAX_RUNTIME_DENIALS {
        let shadow = &mut caller.data_mut().shadow;
        shadow.dropped = shadow.dropped.saturating_add(1);
        return;
    }
    let memory = caller.get_export("memory").and_then(Extern::into_memory);
    let (path, target) = match memory {
        Some(memory) => {
            let data = memory.data(&*caller);
            let text = |(ptr, len)| path_text(guest_bytes(data, ptr, len));
            (text(attempt.path), attempt.target.map(text))
        }
        None => (path_text(None), attempt.target.map(|_| path_text(None))),
    };
    let shadow = &mut caller.data_mut().shadow;
    let preopen = shadow.preopens.index_of(attempt.dirfd as u32);
    shadow.denials.push(Pending {
        call: attempt.call,
        path,
        target,
        preopen,
        errno,
        reason,
    });
}

/// Defines a wrapper for `$name` that calls the original and then runs `$after` with
/// the errno in `$errno`.
macro_rules! shadow {
    ($linker:ident, $wasi:ident, $name:ident($($arg:ident: $ty:ty),*), |$caller:ident, $errno:ident| $after:expr) => {{
        let originals = Arc::clone(&$wasi);
        $linker.func_wrap(
            WASI_MODULE,
            stringify!($name),
            move |mut $caller: Caller<'_, StoreState>, $($arg: $ty),*| -> wasmtime::Result<i32> {
                let original = forwarder(&mut $caller, &originals, stringify!($name), |f| &mut f.$name)?;
                let $errno = original.call(&mut $caller, ($($arg,)*))?;
                $after;
                Ok($errno)
            },
        )?;
    }};
}

/// Replaces the path functions of `linker` (which must already hold WASI preview 1)
/// with recording wrappers that delegate to `wasi`, a copy made before.
///
/// # Errors
///
/// When the adapter does not compile or wasmtime rejects a definition.
pub(crate) fn add_to_linker(
    linker: &mut Linker<StoreState>,
    wasi: Linker<StoreState>,
) -> wasmtime::Result<()> {
    let adapter = Module::new(linker.engine(), wat::parse_str(adapter_wat())?)?;
    let wasi = Arc::new(Originals { wasi, adapter });
    linker.allow_shadowing(true);
    shadow!(linker, wasi, path_open(fd: i32, dirflags: i32, ptr: i32, len: i32, oflags: i32, base: i64, inheriting: i64, fdflags: i32, out: i32),
        |caller, errno| check(&mut caller, errno, one("path_open", fd, ptr, len)));
    shadow!(linker, wasi, path_create_directory(fd: i32, ptr: i32, len: i32),
        |caller, errno| check(&mut caller, errno, one("path_create_directory", fd, ptr, len)));
    shadow!(linker, wasi, path_remove_directory(fd: i32, ptr: i32, len: i32),
        |caller, errno| check(&mut caller, errno, one("path_remove_directory", fd, ptr, len)));
    shadow!(linker, wasi, path_unlink_file(fd: i32, ptr: i32, len: i32),
        |caller, errno| check(&mut caller, errno, one("path_unlink_file", fd, ptr, len)));
    shadow!(linker, wasi, path_filestat_get(fd: i32, flags: i32, ptr: i32, len: i32, out: i32),
        |caller, errno| check(&mut caller, errno, one("path_filestat_get", fd, ptr, len)));
    shadow!(linker, wasi, path_filestat_set_times(fd: i32, flags: i32, ptr: i32, len: i32, atim: i64, mtim: i64, fst: i32),
        |caller, errno| check(&mut caller, errno, one("path_filestat_set_times", fd, ptr, len)));
    shadow!(linker, wasi, path_readlink(fd: i32, ptr: i32, len: i32, buf: i32, buf_len: i32, out: i32),
        |caller, errno| check(&mut caller, errno, one("path_readlink", fd, ptr, len)));
    shadow!(linker, wasi, path_link(old_fd: i32, flags: i32, old_ptr: i32, old_len: i32, new_fd: i32, new_ptr: i32, new_len: i32),
    |caller, errno| check(&mut caller, errno, || Attempt {
        call: "path_link",
        dirfd: old_fd,
        path: (old_ptr, old_len),
        target: Some((new_ptr, new_len)),
    }));
    shadow!(linker, wasi, path_rename(old_fd: i32, old_ptr: i32, old_len: i32, new_fd: i32, new_ptr: i32, new_len: i32),
    |caller, errno| check(&mut caller, errno, || Attempt {
        call: "path_rename",
        dirfd: old_fd,
        path: (old_ptr, old_len),
        target: Some((new_ptr, new_len)),
    }));
    shadow!(linker, wasi, fd_close(fd: i32),
    |caller, errno| if errno == 0 {
        caller.data_mut().shadow.preopens.closed(fd as u32);
    });
    shadow!(linker, wasi, fd_renumber(from: i32, to: i32),
    |caller, errno| if errno == 0 {
        caller.data_mut().shadow.preopens.renumbered(from as u32, to as u32);
    });
    {
        let originals = Arc::clone(&wasi);
        linker.func_wrap(
            WASI_MODULE,
            "path_symlink",
            move |mut caller: Caller<'_, StoreState>,
                  old_ptr: i32,
                  old_len: i32,
                  fd: i32,
                  new_ptr: i32,
                  new_len: i32|
                  -> wasmtime::Result<i32> {
                let attempt = || Attempt {
                    call: "path_symlink",
                    dirfd: fd,
                    path: (new_ptr, new_len),
                    target: Some((old_ptr, old_len)),
                };
                let refused = caller
                    .get_export("memory")
                    .and_then(Extern::into_memory)
                    .and_then(|m| {
                        guest_bytes(m.data(&caller), old_ptr, old_len).map(symlink_target_refused)
                    })
                    .unwrap_or(false);
                if refused {
                    record(
                        &mut caller,
                        attempt(),
                        Refusal::Perm,
                        Some(SYMLINK_TARGET_REASON),
                    );
                    return Ok(i32::from(Refusal::Perm.code()));
                }
                let original = forwarder(&mut caller, &originals, "path_symlink", |f| {
                    &mut f.path_symlink
                })?;
                let errno = original.call(&mut caller, (old_ptr, old_len, fd, new_ptr, new_len))?;
                check(&mut caller, errno, attempt);
                Ok(errno)
            },
        )?;
    }
    linker.allow_shadowing(false);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_the_permission_errnos() {
        for r in [
            Refusal::Acces,
            Refusal::Perm,
            Refusal::Rofs,
            Refusal::Notcapable,
        ] {
            assert_eq!(Refusal::from_errno(i32::from(r.code())), Some(r));
        }
        for other in [0, 8, 20, 28, 44, 54, 76 + 1] {
            assert_eq!(Refusal::from_errno(other), None, "{other}");
        }
        assert_eq!(
            serde_json::to_string(&Refusal::Notcapable).unwrap(),
            "\"NOTCAPABLE\""
        );
    }

    #[test]
    fn symlink_targets_that_could_leave_are_refused() {
        for bad in [
            "/etc/passwd",
            "..",
            "../x",
            "../../secret",
            "a/../../b",
            "a/..",
            "./..",
            "a//../b",
            "/",
        ] {
            assert!(symlink_target_refused(bad.as_bytes()), "{bad}");
        }
        for ok in ["x", "a/b/c", "./x", "a/./b", "..x", "x..", "a/..b/c", ""] {
            assert!(!symlink_target_refused(ok.as_bytes()), "{ok}");
        }
    }

    #[test]
    fn preopen_descriptors_follow_close_and_renumber() {
        let mut fds = PreopenFds::new(2);
        assert_eq!(fds.index_of(2), None);
        assert_eq!(fds.index_of(3), Some(0));
        assert_eq!(fds.index_of(4), Some(1));
        assert_eq!(fds.index_of(5), None);
        fds.renumbered(7, 8);
        assert!(fds.moved.is_none(), "unrelated descriptors cost nothing");
        fds.renumbered(3, 9);
        assert_eq!((fds.index_of(3), fds.index_of(9)), (None, Some(0)));
        // A plain directory renumbered onto a preopen's descriptor replaces it.
        fds.renumbered(12, 4);
        assert_eq!(fds.index_of(4), None);
        fds.closed(9);
        assert_eq!(fds.index_of(9), None);
        assert_eq!(fds.moved, Some(vec![None, None]));
    }

    #[test]
    fn guest_bytes_are_bounds_checked() {
        let memory = [1u8, 2, 3, 4];
        assert_eq!(guest_bytes(&memory, 0, 2), Some(&memory[..2]));
        assert_eq!(guest_bytes(&memory, 2, 2), Some(&memory[2..]));
        assert_eq!(guest_bytes(&memory, 3, 2), None);
        assert_eq!(guest_bytes(&memory, -1, 2), None);
        assert_eq!(guest_bytes(&memory, 1, -1), None);
        assert_eq!(path_text(None), "<outside guest memory>");
        let long = vec![b'a'; MAX_DENIED_PATH + 10];
        let text = path_text(Some(&long));
        assert!(text.ends_with("...[cut]") && text.len() == MAX_DENIED_PATH + 8);
    }

    #[test]
    fn the_adapter_forwards_exactly_the_shadowed_functions() {
        let names: Vec<&str> = SIGNATURES.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, SHADOWED);
        wat::parse_str(adapter_wat()).unwrap();
    }

    #[test]
    fn every_shadow_has_the_type_of_the_original() {
        use wasmtime::{Engine, Store};
        let engine = Engine::default();
        let mut plain: Linker<StoreState> = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut plain, |s: &mut StoreState| &mut s.wasi)
            .unwrap();
        let mut shadowed = plain.clone();
        add_to_linker(&mut shadowed, plain.clone()).unwrap();
        let mut store = Store::new(&engine, StoreState::bare(&crate::Limits::default()));
        for name in SHADOWED {
            let ty = |l: &Linker<StoreState>, store: &mut Store<StoreState>| {
                l.get(&mut *store, WASI_MODULE, name)
                    .unwrap()
                    .into_func()
                    .unwrap()
                    .ty(&*store)
            };
            let (a, b) = (ty(&plain, &mut store), ty(&shadowed, &mut store));
            assert!(wasmtime::FuncType::eq(&a, &b), "{name}: {a:?} vs {b:?}");
        }
    }
}

/// Measures the wrappers against plain WASI; prints, asserts nothing about time.
/// `cargo test --release --lib shadow_overhead -- --ignored --nocapture`
#[cfg(test)]
mod measure {
    use super::*;
    use std::time::Instant;
    use wasmtime::{Engine, Store};
    use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

    const MODULE: &str = r#"(module
      (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
      (import "wasi_snapshot_preview1" "path_filestat_get" (func $stat (param i32 i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "ok.txt")
      (data (i32.const 32) "missing")
      ;; n times: open ok.txt and close it
      (func (export "open_close") (param $n i32) (local $i i32)
        (loop $l
          (if (call $open (i32.const 3) (i32.const 0) (i32.const 16) (i32.const 6) (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 8))
            (then unreachable))
          (if (call $close (i32.load (i32.const 8))) (then unreachable))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (local.get $n)))))
      ;; n times: stat a missing file (NOENT, not a refusal)
      (func (export "stat_missing") (param $n i32) (local $i i32)
        (loop $l
          (drop (call $stat (i32.const 3) (i32.const 0) (i32.const 32) (i32.const 7) (i32.const 64)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (local.get $n))))))"#;

    fn per_call(
        engine: &Engine,
        linker: &Linker<StoreState>,
        module: &wasmtime::Module,
        dir: &std::path::Path,
        export: &str,
        n: i32,
    ) -> std::time::Duration {
        let mut state = StoreState::bare(&crate::Limits::default());
        let mut b = WasiCtxBuilder::new();
        b.allow_blocking_current_thread(true);
        b.preopened_dir(dir, "/d", FsPerms::ReadWrite).unwrap();
        state.wasi = b.build_p1();
        state.shadow = ShadowState::new(1);
        let mut store = Store::new(engine, state);
        let instance = linker.instantiate(&mut store, module).unwrap();
        let f = instance
            .get_typed_func::<i32, ()>(&mut store, export)
            .unwrap();
        let started = Instant::now();
        f.call(&mut store, n).unwrap();
        started.elapsed() / n.unsigned_abs()
    }

    #[test]
    #[ignore = "measurement: run with --release --ignored --nocapture"]
    fn shadow_overhead() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ok.txt"), "fine").unwrap();
        let engine = Engine::default();
        let mut plain: Linker<StoreState> = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut plain, |s: &mut StoreState| &mut s.wasi)
            .unwrap();
        let mut shadowed = plain.clone();
        add_to_linker(&mut shadowed, plain.clone()).unwrap();
        let module = wasmtime::Module::new(&engine, wat::parse_str(MODULE).unwrap()).unwrap();
        for (what, n) in [("open_close", 20_000), ("stat_missing", 50_000)] {
            let mut best = [std::time::Duration::MAX; 2];
            for _ in 0..5 {
                for (i, linker) in [&plain, &shadowed].into_iter().enumerate() {
                    best[i] = best[i].min(per_call(&engine, linker, &module, dir.path(), what, n));
                }
            }
            println!(
                "{what}: plain {:?}/iteration, shadowed {:?}/iteration, overhead {:?}",
                best[0],
                best[1],
                best[1].saturating_sub(best[0])
            );
        }
        // First call in a fresh store: includes instantiating the adapter.
        let mut best = [std::time::Duration::MAX; 2];
        for _ in 0..200 {
            for (i, linker) in [&plain, &shadowed].into_iter().enumerate() {
                best[i] = best[i].min(per_call(
                    &engine,
                    linker,
                    &module,
                    dir.path(),
                    "stat_missing",
                    1,
                ));
            }
        }
        println!(
            "first call in a store: plain {:?}, shadowed {:?} (adapter instantiation included)",
            best[0], best[1]
        );
    }
}
