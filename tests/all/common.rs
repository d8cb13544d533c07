//! Shared fixtures: example plugin paths, a loader with test limits, and a builder for
//! hand-written WAT plugins.

use std::path::PathBuf;
use warden::abi::{Capabilities, CommandSpec, ExecuteResult, PluginManifest};
use warden::{Limits, Loader, LoaderConfig};

/// Path of a committed example plugin.
pub fn example_plugin(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/plugins")
        .join(format!("{name}.wasm"))
}

/// Bytes of a committed example plugin.
pub fn example_bytes(name: &str) -> Vec<u8> {
    std::fs::read(example_plugin(name)).expect("example plugin is committed")
}

/// A loader with default limits except a short timeout, so hostile cases end fast.
pub fn loader() -> Loader {
    loader_with(Limits {
        timeout: std::time::Duration::from_secs(2),
        ..Limits::default()
    })
}

/// A loader with the given limits.
pub fn loader_with(limits: Limits) -> Loader {
    let mut config = LoaderConfig::new(std::env::temp_dir());
    config.limits = limits;
    Loader::new(config).expect("engine builds")
}

/// Asserts that `loader` still loads and runs the hello example normally.
pub fn assert_still_runs_hello(loader: &Loader) {
    let loaded = loader.load(&example_bytes("hello")).expect("hello loads");
    let result = loaded
        .instance
        .execute(&["warden".into()])
        .expect("hello runs");
    assert_eq!(result, ExecuteResult::Success("Hello, warden!".into()));
}

/// The named-map MessagePack encoding of a minimal valid manifest.
pub fn manifest_bytes(name: &str) -> Vec<u8> {
    manifest_bytes_with(name, 2, Capabilities::default())
}

/// A manifest with the given version and capabilities.
pub fn manifest_bytes_with(name: &str, api_version: u32, capabilities: Capabilities) -> Vec<u8> {
    let manifest = PluginManifest {
        api_version,
        command: CommandSpec {
            name: name.into(),
            about: "a hand-written test plugin".into(),
            version: Some("0.0.1".into()),
            author: None,
            args: vec![],
            subcommands: vec![],
        },
        capabilities,
    };
    rmp_serde::to_vec_named(&manifest).expect("manifest encodes")
}

/// The named-map encoding of an execute result.
pub fn result_bytes(result: &ExecuteResult) -> Vec<u8> {
    rmp_serde::to_vec_named(result).expect("result encodes")
}

/// Escapes bytes for a WAT data string.
pub fn wat_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// Where the builder puts the manifest and result data.
pub const MANIFEST_AT: u32 = 1024;
/// Where the result data starts (after up to 60 KiB of manifest).
pub const RESULT_AT: u32 = 65536;

/// A WAT plugin that follows the ABI unless a part is replaced.
///
/// Memory is 4 pages (256 KiB); `plugin_alloc` is a bump allocator from 128 KiB.
pub struct WatPlugin {
    /// The manifest bytes placed at [`MANIFEST_AT`].
    pub manifest: Vec<u8>,
    /// The result bytes placed at [`RESULT_AT`].
    pub result: Vec<u8>,
    /// Body of `plugin_manifest` (result i64). Default returns the manifest.
    pub manifest_fn: Option<String>,
    /// Body of `plugin_execute` (params $ptr $len, result i64). Default returns the result.
    pub execute_fn: Option<String>,
    /// Body of `plugin_alloc` (param $size, result i32). Default bumps.
    pub alloc_fn: Option<String>,
    /// Extra module fields (imports first, then anything).
    pub imports: String,
    /// Extra module fields after the ABI functions.
    pub extra: String,
    /// The memory declaration.
    pub memory: String,
}

impl WatPlugin {
    /// A well-behaved plugin named `name` that answers `Success("ok")`.
    pub fn new(name: &str) -> Self {
        WatPlugin {
            manifest: manifest_bytes(name),
            result: result_bytes(&ExecuteResult::Success("ok".into())),
            manifest_fn: None,
            execute_fn: None,
            alloc_fn: None,
            imports: String::new(),
            extra: String::new(),
            memory: r#"(memory (export "memory") 4)"#.into(),
        }
    }

    /// `i64` expression packing `(ptr, len)`.
    pub fn packed(ptr: u32, len: u32) -> String {
        format!(
            "(i64.const {})",
            ((u64::from(ptr) << 32) | u64::from(len)) as i64
        )
    }

    /// The module text.
    pub fn wat(&self) -> String {
        let manifest_fn = self
            .manifest_fn
            .clone()
            .unwrap_or_else(|| Self::packed(MANIFEST_AT, self.manifest.len() as u32));
        let execute_fn = self
            .execute_fn
            .clone()
            .unwrap_or_else(|| Self::packed(RESULT_AT, self.result.len() as u32));
        let alloc_fn = self.alloc_fn.clone().unwrap_or_else(|| {
            "(local $p i32) (local.set $p (global.get $bump)) \
             (global.set $bump (i32.add (global.get $bump) (local.get $size))) (local.get $p)"
                .into()
        });
        format!(
            r#"(module
  {imports}
  {memory}
  (global $bump (mut i32) (i32.const 131072))
  (data (i32.const {MANIFEST_AT}) "{manifest}")
  (data (i32.const {RESULT_AT}) "{result}")
  (func (export "plugin_manifest") (result i64) {manifest_fn})
  (func (export "plugin_alloc") (param $size i32) (result i32) {alloc_fn})
  (func (export "plugin_dealloc") (param i32 i32))
  (func (export "plugin_execute") (param $ptr i32) (param $len i32) (result i64) {execute_fn})
  {extra}
)"#,
            imports = self.imports,
            memory = self.memory,
            manifest = wat_bytes(&self.manifest),
            result = wat_bytes(&self.result),
            extra = self.extra,
        )
    }

    /// The compiled module bytes.
    pub fn bytes(&self) -> Vec<u8> {
        wat::parse_str(self.wat()).expect("test WAT parses")
    }
}

/// Every record of the audit log at `path`, parsed.
pub fn log_records(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("the audit log is readable")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each record is JSON"))
        .collect()
}

/// `warden audit verify LOG` says `ok`.
pub fn assert_log_verifies(log: &std::path::Path) {
    let out = crate::cli::warden_command()
        .args(["audit", "verify"])
        .arg(log)
        .output()
        .expect("warden runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
