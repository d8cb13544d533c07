//! The loader: one engine, one linker, one compile per plugin.
//!
//! A [`Loader`] owns a wasmtime [`Engine`] configured for hostile code (fuel, epoch
//! interruption, a wasm stack ceiling, no multi-memory, no 64-bit or shared memories)
//! and a [`Linker`] holding WASI preview 1 and nothing else. [`Loader::load`] compiles a
//! module once, checks its imports and ABI exports, prepares an [`InstancePre`](wasmtime::InstancePre), and
//! reads the manifest under the same limits as any other call.
//!
//! # Security
//!
//! The module bytes are untrusted. Everything the module declares (imports, exports,
//! their types) is checked here before any guest code runs; the manifest it returns is
//! read through [`crate::abi`].

use super::error::{RuntimeError, RuntimeErrorKind};
use super::instance::PluginInstance;
use super::store::{AbiExports, StoreState};
pub use super::store::{EPOCH_TICK, WASI_MODULE};
use crate::abi::PluginManifest;
use crate::limits::Limits;
use crate::sandbox::{Sandbox, StdioGrant};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use wasmtime::{
    Config, Enabled, Engine, ExternType, FuncType, Linker, Module, PoolingAllocationConfig, Store,
    ValType, WasmFeatures,
};

/// How a [`Loader`] is set up.
#[derive(Debug, Clone)]
pub struct LoaderConfig {
    /// Directory that relative declared paths resolve against.
    pub working_directory: PathBuf,
    /// Whether symlinks in declared paths are followed when resolving them (the
    /// resolved target is then what the policy is checked against).
    pub follow_symlinks: bool,
    /// Whether a declared path must exist to be granted.
    pub require_existence: bool,
    /// Limits for every call; `stack` is fixed per loader.
    pub limits: Limits,
}

impl LoaderConfig {
    /// A configuration with default limits for `working_directory`.
    pub fn new(working_directory: impl Into<PathBuf>) -> Self {
        LoaderConfig {
            working_directory: working_directory.into(),
            follow_symlinks: true,
            require_existence: true,
            limits: Limits::default(),
        }
    }
}

/// A compiled plugin with its manifest, ready to run.
#[derive(Debug)]
pub struct LoadedPlugin {
    /// What the plugin declared, decoded and validated.
    pub manifest: PluginManifest,
    /// The runnable instance.
    pub instance: PluginInstance,
}

/// Compiles and prepares plugins. Cheap to share across threads.
#[derive(Clone)]
pub struct Loader {
    engine: Engine,
    linker: Arc<Linker<StoreState>>,
    wasi_names: Arc<HashSet<String>>,
    config: LoaderConfig,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn engine_error(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::new(RuntimeErrorKind::Engine {
        message: e.to_string(),
    })
}

/// The engine configuration warden runs every plugin under.
///
/// Exposed so that a compiled-module cache can key on it and benchmarks can build the
/// same engine.
pub fn engine_config(limits: &Limits) -> Config {
    engine_config_with(limits, Some(POOL_SLOTS))
}

/// [`engine_config`] with a pool of `slots` instances, or none: an engine that never
/// instantiates (a parent whose plugins run in workers) or instantiates one at a time
/// (a worker) does not pay for 64 slots at start and exit. The compiled code is the
/// same: an artifact of one loads in the others.
pub(crate) fn engine_config_with(limits: &Limits, slots: Option<u32>) -> Config {
    let mut cfg = Config::new();
    cfg.consume_fuel(true);
    cfg.epoch_interruption(true);
    cfg.max_wasm_stack(limits.stack);
    // wasmtime requires the (unused) async stack to be at least the wasm stack.
    cfg.async_stack_size(limits.stack.max(2 << 20));
    // Proposals: what wasm32-wasip1 plugins are built with stays on (MVP, mutable
    // globals, sign extension, non-trapping float-to-int, multi-value, bulk memory,
    // reference types: rustc's defaults for the target, and SIMD, which plugins may
    // opt into). Everything else is off: each is code in the compiler and runtime a
    // hostile module could reach, and no plugin of the ABI needs it.
    cfg.wasm_multi_memory(false); // one linear memory is the ABI's (`memory`)
    cfg.wasm_memory64(false); // the ABI's pointers are i32
    cfg.wasm_tail_call(false); // not emitted for wasm32-wasip1 by default
    cfg.wasm_stack_switching(false);
    cfg.wasm_relaxed_simd(false); // results that differ between hosts
    cfg.wasm_wide_arithmetic(false);
    cfg.wasm_custom_page_sizes(false);
    cfg.wasm_extended_const(false);
    cfg.wasm_component_model(false); // plugins are core modules
    cfg.wasm_branch_hinting(false);
    // These have no switch of their own in this build (their cargo features are off);
    // say so anyway, so that no default of a later wasmtime turns one on unseen.
    cfg.wasm_features(
        WasmFeatures::THREADS // shared memory and atomics: a plugin call is one thread
            | WasmFeatures::SHARED_EVERYTHING_THREADS
            | WasmFeatures::FUNCTION_REFERENCES // typed function references: GC's groundwork
            | WasmFeatures::GC // managed structs and arrays: no plugin of the ABI needs them
            | WasmFeatures::EXCEPTIONS // Rust plugins abort on panic
            | WasmFeatures::LEGACY_EXCEPTIONS,
        false,
    );
    // The pooling allocator reuses pre-reserved memory and table slots, so a call does
    // not mmap/munmap a fresh 4 GiB reservation. It bounds how many calls can be in
    // flight at once in one process (`POOL_SLOTS`); the memory ceiling itself is still
    // the per-store limiter's job, so the pool's per-slot maximum stays at wasmtime's
    // 4 GiB default.
    let Some(slots) = slots else {
        return cfg;
    };
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(slots)
        .total_memories(slots)
        .total_tables(slots)
        // Fiber stacks, for async calls, which warden never makes: wasmtime's default of
        // 1,000 cost 1,000 `mprotect`s (guard pages) at every engine start, half of a
        // cached `warden run`.
        .total_stacks(slots)
        .max_memories_per_module(1);
    // By default a slot is reset by `madvise`, which empties it: the next call
    // page-faults every page back in and the TLB shootdowns cost an IPI each. Where the
    // kernel has `PAGEMAP_SCAN` (Linux 6.7+), wasmtime finds exactly the pages a call
    // dirtied and copies their original contents back (zero, or the data segment), so
    // the slot stays resident and the next call faults nothing: `execute/file-reader`
    // went from 1.18x to 0.70x of raw wasmtime's default pool. A call that dirties
    // more than `KEEP_RESIDENT_MEMORY` has the rest decommitted as before. Without the
    // ioctl, keeping memory resident would mean a `memset` of the whole region on
    // every reset (measured: 1.7x slower), so the default stays.
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
            .table_keep_resident(KEEP_RESIDENT_TABLE)
            .pagemap_scan(Enabled::Yes);
    }
    cfg.allocation_strategy(pool);
    cfg
}

/// How many plugin instances one loader's engine can have alive at once.
pub const POOL_SLOTS: u32 = 64;

/// Dirty linear-memory bytes a pool slot resets by copying (and keeps resident) when
/// `PAGEMAP_SCAN` is available; beyond this the rest of the slot is decommitted.
pub const KEEP_RESIDENT_MEMORY: usize = 1 << 20;

/// Dirty table bytes a pool slot resets by copying when `PAGEMAP_SCAN` is available.
pub const KEEP_RESIDENT_TABLE: usize = 64 << 10;

impl Loader {
    /// Builds the engine, the WASI linker and the epoch ticker.
    ///
    /// # Errors
    ///
    /// [`RuntimeErrorKind::Engine`] when wasmtime rejects the configuration.
    pub fn new(config: LoaderConfig) -> Result<Self, RuntimeError> {
        Self::with_pool(config, Some(POOL_SLOTS))
    }

    /// [`Loader::new`] with a pool of `slots` instances, or none
    /// ([`engine_config_with`]).
    pub(crate) fn with_pool(
        config: LoaderConfig,
        slots: Option<u32>,
    ) -> Result<Self, RuntimeError> {
        let engine =
            Engine::new(&engine_config_with(&config.limits, slots)).map_err(engine_error)?;
        Self::with_engine(engine, config)
    }

    /// Like [`Loader::new`] with an engine built by the caller from [`engine_config`]
    /// (for example with a compiled-module cache).
    ///
    /// # Errors
    ///
    /// [`RuntimeErrorKind::Engine`] when the linker cannot be built.
    pub fn with_engine(engine: Engine, config: LoaderConfig) -> Result<Self, RuntimeError> {
        let loader = Self::without_ticker(engine, config)?;
        loader.start_ticker()?;
        Ok(loader)
    }

    /// The loader without its epoch ticker (no thread started): a worker builds it
    /// before it confines itself, and starts the ticker ([`Loader::start_ticker`])
    /// after. No call may run before the ticker starts.
    pub(crate) fn without_ticker(
        engine: Engine,
        config: LoaderConfig,
    ) -> Result<Self, RuntimeError> {
        let mut linker: Linker<StoreState> = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut StoreState| &mut s.wasi)
            .map_err(engine_error)?;
        super::shadow::add_to_linker(&mut linker).map_err(engine_error)?;
        #[cfg(feature = "escape-simulator")]
        super::escape_sim::add_to_linker(&mut linker).map_err(engine_error)?;
        let mut store = Store::new(&engine, StoreState::bare(&config.limits));
        let wasi_names = linker
            .iter(&mut store)
            .filter(|(module, _, _)| *module == WASI_MODULE)
            .map(|(_, name, _)| name.to_owned())
            .collect();
        Ok(Loader {
            engine,
            linker: Arc::new(linker),
            wasi_names: Arc::new(wasi_names),
            config,
        })
    }

    /// Starts the thread that advances the engine's epoch (the wall-clock limit).
    pub(crate) fn start_ticker(&self) -> Result<(), RuntimeError> {
        start_epoch_ticker(&self.engine).map_err(|e| {
            engine_error(format!(
                "cannot start the epoch ticker thread, without which wall-clock limits cannot fire: {e}"
            ))
        })
    }

    /// The engine every plugin of this loader compiles for.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// This loader (the same engine and linker) setting up calls under `limits`,
    /// except the wasm stack ceiling, which is the engine's and stays.
    pub fn with_limits(&self, limits: Limits) -> Loader {
        let stack = self.config.limits.stack;
        let mut loader = self.clone();
        loader.config.limits = Limits { stack, ..limits };
        loader
    }

    /// Compiles `wasm`, checks it, and reads its manifest.
    ///
    /// The instance it returns runs with the built-in policy's sandbox (stdout and
    /// stderr only) until [`PluginInstance::set_sandbox`] says otherwise.
    ///
    /// # Errors
    ///
    /// A [`RuntimeError`] for invalid modules, missing or mistyped exports, imports
    /// warden does not provide, and any failure of the manifest call.
    pub fn load(&self, wasm: &[u8]) -> Result<LoadedPlugin, RuntimeError> {
        let sha256: [u8; 32] = Sha256::digest(wasm).into();
        self.load_module(self.compile(wasm)?, sha256)
    }

    /// Compiles `wasm` for this loader's engine, without running anything.
    ///
    /// # Errors
    ///
    /// [`RuntimeErrorKind::Compile`] when the bytes are not a valid module or use a
    /// feature warden disables.
    pub fn compile(&self, wasm: &[u8]) -> Result<Module, RuntimeError> {
        if let Some(message) = not_a_core_module(wasm) {
            return Err(RuntimeError::new(RuntimeErrorKind::Compile { message }));
        }
        Module::new(&self.engine, wasm).map_err(|e| {
            RuntimeError::new(RuntimeErrorKind::Compile {
                message: format!("{e:#}"),
            })
        })
    }

    /// Like [`Loader::load`] for a module already compiled for this loader's engine,
    /// whose file has the SHA-256 `sha256`.
    ///
    /// # Errors
    ///
    /// As [`Loader::load`], less compilation.
    pub fn load_module(
        &self,
        module: Module,
        sha256: [u8; 32],
    ) -> Result<LoadedPlugin, RuntimeError> {
        let (exports, pre) = self.prepare(&module)?;
        let manifest = read_manifest(&self.engine, &pre, &exports, &self.config.limits)?;
        Ok(self.ready(pre, exports, manifest, sha256))
    }

    /// Like [`Loader::load_module`] with the manifest from `manifest`, which may read
    /// it here ([`ManifestHere::read`]) or know it otherwise (a worker read it, an
    /// earlier load did, the cache keeps it): then no guest code runs here.
    ///
    /// # Errors
    ///
    /// As [`Loader::load_module`], with `manifest`'s errors for the manifest call's.
    pub(crate) fn load_module_with(
        &self,
        module: Module,
        sha256: [u8; 32],
        manifest: impl FnOnce(ManifestHere<'_>) -> Result<PluginManifest, RuntimeError>,
    ) -> Result<LoadedPlugin, RuntimeError> {
        let (exports, pre) = self.prepare(&module)?;
        let manifest = manifest(ManifestHere {
            engine: &self.engine,
            pre: &pre,
            exports: &exports,
            limits: &self.config.limits,
            module: &module,
        })?;
        Ok(self.ready(pre, exports, manifest, sha256))
    }

    fn ready(
        &self,
        pre: wasmtime::InstancePre<StoreState>,
        exports: AbiExports,
        manifest: PluginManifest,
        sha256: [u8; 32],
    ) -> LoadedPlugin {
        let limits = self.config.limits.clone();
        let instance = PluginInstance::new(
            self.engine.clone(),
            pre,
            exports,
            limits,
            manifest.command.name.clone(),
            manifest.capabilities.clone(),
            sha256,
            Sandbox::stdio_only(StdioGrant {
                stdin: false,
                stdout: true,
                stderr: true,
            }),
        );
        LoadedPlugin { manifest, instance }
    }

    /// The instance a worker runs calls on: `module` (the parent's, already checked
    /// and its manifest read there), checked again and prepared, with no manifest
    /// call. Its sandbox and limits are the caller's to set.
    ///
    /// # Errors
    ///
    /// As [`Loader::load_module`], less the manifest.
    pub(crate) fn prepare_for_worker(
        &self,
        module: Module,
        name: String,
    ) -> Result<PluginInstance, RuntimeError> {
        let (exports, pre) = self.prepare(&module)?;
        Ok(PluginInstance::new(
            self.engine.clone(),
            pre,
            exports,
            self.config.limits.clone(),
            name,
            crate::abi::Capabilities::default(),
            [0; 32],
            Sandbox::empty(),
        ))
    }

    /// Checks `module`'s imports and ABI exports and links it.
    fn prepare(
        &self,
        module: &Module,
    ) -> Result<(AbiExports, wasmtime::InstancePre<StoreState>), RuntimeError> {
        self.check_imports(module)?;
        let exports = check_exports(module)?;
        let pre = self.linker.instantiate_pre(module).map_err(|e| {
            RuntimeError::new(RuntimeErrorKind::Link {
                message: format!("{e:#}"),
            })
        })?;
        Ok((exports, pre))
    }

    fn check_imports(&self, module: &Module) -> Result<(), RuntimeError> {
        for import in module.imports() {
            #[cfg(feature = "escape-simulator")]
            if import.module() == super::escape_sim::MODULE {
                continue;
            }
            let provided = import.module() == WASI_MODULE
                && matches!(import.ty(), ExternType::Func(_))
                && self.wasi_names.contains(import.name());
            if !provided {
                return Err(RuntimeError::new(RuntimeErrorKind::UnsupportedImport {
                    module: import.module().to_owned(),
                    name: import.name().to_owned(),
                }));
            }
        }
        Ok(())
    }
}

/// What a file that is plainly not a core WebAssembly module is, in one line; `None`
/// for anything that starts like one (the parser says what is wrong with it).
fn not_a_core_module(bytes: &[u8]) -> Option<String> {
    const MAGIC: &[u8] = b"\0asm";
    if !bytes.starts_with(MAGIC) {
        return Some(if bytes.len() < MAGIC.len() {
            format!(
                "the file has {} bytes, too few for a WebAssembly module",
                bytes.len()
            )
        } else {
            "the file is not a WebAssembly module (it does not start with `\\0asm`)".to_owned()
        });
    }
    // Bytes 4..8: the version, 1 for a core module; components have layer 1.
    match bytes.get(4..8) {
        Some([1, 0, 0, 0]) | None => None,
        Some([_, _, 1, 0]) => Some(
            "the file is a WebAssembly component; warden runs core modules (wasm32-wasip1)"
                .to_owned(),
        ),
        Some(other) => Some(format!(
            "the file is WebAssembly of an unknown version {other:02x?}; warden runs version 1 core modules"
        )),
    }
}

/// A checked, linked module whose manifest a load is about to learn
/// ([`Loader::load_module_with`]).
pub(crate) struct ManifestHere<'a> {
    engine: &'a Engine,
    pre: &'a wasmtime::InstancePre<StoreState>,
    exports: &'a AbiExports,
    limits: &'a Limits,
    module: &'a Module,
}

impl ManifestHere<'_> {
    /// Calls `plugin_manifest` in this process and returns its message's bytes.
    pub(crate) fn read(&self) -> Result<Vec<u8>, RuntimeError> {
        super::instance::manifest_message(self.engine, self.pre, self.exports, self.limits)
    }

    /// The module.
    pub(crate) fn module(&self) -> &Module {
        self.module
    }

    /// The limits the manifest is read under.
    pub(crate) fn limits(&self) -> &Limits {
        self.limits
    }
}

/// Reads, bounds, decodes and validates the manifest in a fresh store with an empty
/// sandbox.
fn read_manifest(
    engine: &Engine,
    pre: &wasmtime::InstancePre<StoreState>,
    exports: &AbiExports,
    limits: &Limits,
) -> Result<PluginManifest, RuntimeError> {
    use super::instance::{manifest_message, parse_manifest_message};
    parse_manifest_message(&manifest_message(engine, pre, exports, limits)?)
}

/// One ABI function export: name, params, results, signature as text, required.
type AbiFunc = (
    &'static str,
    &'static [ValType],
    &'static [ValType],
    &'static str,
    bool,
);

/// The ABI's function exports.
const ABI_FUNCS: [AbiFunc; 6] = [
    ("plugin_manifest", &[], &[ValType::I64], "() -> i64", true),
    (
        "plugin_alloc",
        &[ValType::I32],
        &[ValType::I32],
        "(i32) -> i32",
        true,
    ),
    (
        "plugin_dealloc",
        &[ValType::I32, ValType::I32],
        &[],
        "(i32, i32) -> ()",
        true,
    ),
    (
        "plugin_execute",
        &[ValType::I32, ValType::I32],
        &[ValType::I64],
        "(i32, i32) -> i64",
        true,
    ),
    (
        "plugin_resume",
        &[ValType::I32, ValType::I32, ValType::I32],
        &[ValType::I64],
        "(i32, i32, i32) -> i64",
        false,
    ),
    ("_initialize", &[], &[], "() -> ()", false),
];

fn describe_extern(ty: &ExternType) -> String {
    match ty {
        ExternType::Func(f) => format!("a function {}", describe_func(f)),
        ExternType::Global(_) => "a global".to_owned(),
        ExternType::Table(_) => "a table".to_owned(),
        ExternType::Memory(m) if m.is_shared() => "a shared memory".to_owned(),
        ExternType::Memory(m) if m.is_64() => "a 64-bit memory".to_owned(),
        ExternType::Memory(_) => "a memory".to_owned(),
        ExternType::Tag(_) => "a tag".to_owned(),
    }
}

fn describe_func(f: &FuncType) -> String {
    let list = |tys: &mut dyn Iterator<Item = ValType>| {
        tys.map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
    };
    format!(
        "({}) -> ({})",
        list(&mut f.params()),
        list(&mut f.results())
    )
}

fn same_types(actual: impl ExactSizeIterator<Item = ValType>, expected: &[ValType]) -> bool {
    actual.len() == expected.len() && actual.zip(expected).all(|(a, e)| ValType::eq(&a, e))
}

fn check_exports(module: &Module) -> Result<AbiExports, RuntimeError> {
    let ty_of = |name: &str| module.exports().find(|e| e.name() == name).map(|e| e.ty());
    match ty_of("memory") {
        None => {
            return Err(RuntimeError::new(RuntimeErrorKind::MissingExport {
                name: "memory",
            }));
        }
        Some(ExternType::Memory(m)) if !m.is_shared() && !m.is_64() => {}
        Some(other) => {
            return Err(RuntimeError::new(RuntimeErrorKind::ExportSignature {
                name: "memory",
                expected: "a 32-bit unshared memory",
                found: describe_extern(&other),
            }));
        }
    }
    for (name, params, results, expected, required) in ABI_FUNCS {
        match ty_of(name) {
            None if required => {
                return Err(RuntimeError::new(RuntimeErrorKind::MissingExport { name }));
            }
            None => {}
            Some(ExternType::Func(f))
                if same_types(f.params(), params) && same_types(f.results(), results) => {}
            Some(other) => {
                return Err(RuntimeError::new(RuntimeErrorKind::ExportSignature {
                    name,
                    expected,
                    found: describe_extern(&other),
                }));
            }
        }
    }
    let index = |name: &'static str| {
        module
            .get_export_index(name)
            .ok_or(RuntimeError::new(RuntimeErrorKind::MissingExport { name }))
    };
    Ok(AbiExports {
        memory: index("memory")?,
        manifest: index("plugin_manifest")?,
        alloc: index("plugin_alloc")?,
        dealloc: index("plugin_dealloc")?,
        execute: index("plugin_execute")?,
        resume: module.get_export_index("plugin_resume"),
        initialize: module.get_export_index("_initialize"),
    })
}

/// Starts the thread that advances `engine`'s epoch every [`EPOCH_TICK`]; it ends by
/// itself once the engine is dropped.
fn start_epoch_ticker(engine: &Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("warden-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .map(drop)
}
