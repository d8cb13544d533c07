//! A compiled-module cache for the command line, so a second `warden run` of the same
//! plugin does not compile it again.
//!
//! Entries live in a user-owned directory (`$XDG_CACHE_HOME/warden/`, else
//! `~/.cache/warden/`), one file per module, named by the SHA-256 of the module's bytes
//! and a fingerprint of the engine configuration (wasmtime's own
//! `precompile_compatibility_hash`, which covers wasmtime's version, plus warden's
//! version). A file holds a header that names the module and the engine it was
//! compiled for, a SHA-256 over the header and the artifact, and the artifact from
//! [`Module::serialize`].
//!
//! # Security
//!
//! [`Module::deserialize`] trusts its input: a forged artifact is native code. So an
//! entry is used only when (1) the cache directory and the entry are owned by this user
//! and writable by nobody else, (2) the entry is a regular file opened without following
//! symlinks, (3) it hashes to the recorded SHA-256 (which catches truncation and
//! corruption) and its header names the module digest and the engine fingerprint it is
//! being looked up for (so an intact entry copied or renamed under another module's
//! name is not that module's code), and (4) wasmtime itself accepts it for this
//! engine. Anything else is a miss: the module is recompiled and the entry
//! rewritten. Entries are written to a private temporary file and renamed into place,
//! mode 0600, in a directory of mode 0700.

use crate::runtime::{LoadedPlugin, Loader, RuntimeError};
use sha2::{Digest, Sha256};
use std::fs::{self, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use wasmtime::{Engine, Module};

/// First bytes of every entry; bump the digit when the layout changes.
const MAGIC: &[u8; 8] = b"WARDENC2";

/// Header layout: [`MAGIC`], the module's SHA-256, the engine fingerprint (big-endian),
/// then the SHA-256 of everything else in the file (header fields and artifact).
const MODULE_AT: usize = MAGIC.len();
const ENGINE_AT: usize = MODULE_AT + 32;
const DIGEST_AT: usize = ENGINE_AT + 8;
const HEADER_LEN: usize = DIGEST_AT + 32;

/// Why the cache could not be used (always recoverable: compile instead).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The cache directory could not be created or is unsafe.
    #[error("compiled-module cache directory `{path}` {problem}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// An entry could not be written.
    #[error("cannot write cache entry `{path}`: {source}")]
    Write {
        /// The entry.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// wasmtime could not serialize the module.
    #[error("cannot serialize compiled module: {0}")]
    Serialize(String),
}

/// Where a lookup ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The entry was used.
    Hit,
    /// No entry existed.
    Miss,
    /// An entry existed but was rejected (and will be overwritten).
    Rejected(String),
}

/// The compiled-module cache.
#[derive(Debug, Clone)]
pub struct ModuleCache {
    dir: PathBuf,
}

impl ModuleCache {
    /// The default location: `$XDG_CACHE_HOME/warden`, else `$HOME/.cache/warden`.
    pub fn default_dir() -> Option<PathBuf> {
        let from_env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        from_env("XDG_CACHE_HOME")
            .filter(|p| p.is_absolute())
            .or_else(|| from_env("HOME").map(|h| h.join(".cache")))
            .map(|base| base.join("warden"))
    }

    /// A cache in `dir`, created (mode 0700) if missing.
    ///
    /// # Errors
    ///
    /// [`CacheError::Directory`] when the directory cannot be created, is not a
    /// directory, is not owned by this user, or is writable by group or others.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, CacheError> {
        let dir = dir.into();
        let bad = |problem: String| CacheError::Directory {
            path: dir.clone(),
            problem,
        };
        if let Err(e) = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
        {
            return Err(bad(format!("cannot be created: {e}")));
        }
        let meta = fs::symlink_metadata(&dir).map_err(|e| bad(format!("cannot be read: {e}")))?;
        if !meta.is_dir() {
            return Err(bad("is not a directory".into()));
        }
        if meta.uid() != current_uid() {
            return Err(bad(format!(
                "is owned by uid {}, not by this user",
                meta.uid()
            )));
        }
        if meta.mode() & 0o022 != 0 {
            // Our own directory: tighten it rather than give up.
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(|e| {
                bad(format!(
                    "is writable by group or others and cannot be fixed: {e}"
                ))
            })?;
        }
        Ok(ModuleCache { dir })
    }

    /// The directory entries live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry path for a module with SHA-256 `sha256` under `engine`.
    pub fn entry_path(&self, engine: &Engine, sha256: &[u8; 32]) -> PathBuf {
        self.dir
            .join(entry_name(sha256, engine_fingerprint(engine)))
    }

    /// Looks up a compiled module; any doubt is a miss.
    pub fn get(&self, engine: &Engine, sha256: &[u8; 32]) -> (Option<Module>, Lookup) {
        let path = self.entry_path(engine, sha256);
        match self.read_entry(&path, sha256, engine_fingerprint(engine)) {
            Ok(None) => (None, Lookup::Miss),
            Ok(Some(artifact)) => {
                // SAFETY: `artifact` comes from a regular file owned by this user,
                // writable by nobody else, in a directory with the same properties;
                // its header names exactly this module digest and this engine's
                // fingerprint and it hashes to the digest it records; wasmtime checks
                // that it was produced by this wasmtime version for a compatible engine.
                #[allow(unsafe_code)]
                let module = unsafe { Module::deserialize(engine, &artifact) };
                match module {
                    Ok(module) => (Some(module), Lookup::Hit),
                    Err(e) => (None, Lookup::Rejected(format!("wasmtime refused it: {e}"))),
                }
            }
            Err(reason) => (None, Lookup::Rejected(reason)),
        }
    }

    /// Stores `module`'s compiled form, bound to `sha256` and `engine`.
    ///
    /// # Errors
    ///
    /// [`CacheError`] when serialization or the write fails.
    pub fn put(
        &self,
        engine: &Engine,
        sha256: &[u8; 32],
        module: &Module,
    ) -> Result<(), CacheError> {
        let artifact = module
            .serialize()
            .map_err(|e| CacheError::Serialize(format!("{e:#}")))?;
        let path = self.entry_path(engine, sha256);
        let tmp = self.dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            hex::encode(&sha256[..8])
        ));
        let write = |tmp: &Path| -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(tmp)?;
            f.write_all(&encode_entry(sha256, engine_fingerprint(engine), &artifact))?;
            f.sync_all()?;
            fs::rename(tmp, &path)
        };
        write(&tmp).map_err(|source| {
            let _ = fs::remove_file(&tmp);
            CacheError::Write {
                path: path.clone(),
                source,
            }
        })
    }

    /// Reads and checks the entry at `path` for `sha256` under the engine `fingerprint`:
    /// `Ok(None)` when absent, `Err(reason)` when unusable, else the artifact.
    fn read_entry(
        &self,
        path: &Path,
        sha256: &[u8; 32],
        fingerprint: u64,
    ) -> Result<Option<Vec<u8>>, String> {
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot open: {e}")),
        };
        let meta = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
        if !meta.is_file() {
            return Err("not a regular file".into());
        }
        if meta.uid() != current_uid() {
            return Err(format!("owned by uid {}, not by this user", meta.uid()));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(format!(
                "writable by group or others (mode {:o})",
                meta.mode() & 0o777
            ));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        (&file)
            .take(meta.len())
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read: {e}"))?;
        decode_entry(bytes, sha256, fingerprint).map(Some)
    }
}

/// The file name of an entry.
fn entry_name(sha256: &[u8; 32], fingerprint: u64) -> String {
    format!("{}-{fingerprint:016x}.cwasm", hex::encode(sha256))
}

/// The SHA-256 an entry records: over everything in it but the digest itself.
fn entry_digest(header: &[u8], artifact: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(&header[..DIGEST_AT]);
    h.update(artifact);
    h.finalize().into()
}

/// An entry binding `artifact` to the module `sha256` and the engine `fingerprint`.
fn encode_entry(sha256: &[u8; 32], fingerprint: u64, artifact: &[u8]) -> Vec<u8> {
    let mut entry = Vec::with_capacity(HEADER_LEN + artifact.len());
    entry.extend_from_slice(MAGIC);
    entry.extend_from_slice(sha256);
    entry.extend_from_slice(&fingerprint.to_be_bytes());
    let digest = entry_digest(&entry, artifact);
    entry.extend_from_slice(&digest);
    entry.extend_from_slice(artifact);
    entry
}

/// The artifact of `entry`, if it is intact and bound to exactly this module and engine.
fn decode_entry(
    mut entry: Vec<u8>,
    sha256: &[u8; 32],
    fingerprint: u64,
) -> Result<Vec<u8>, String> {
    if entry.len() < HEADER_LEN || &entry[..MAGIC.len()] != MAGIC {
        return Err("not a warden cache entry of this version (bad header or truncated)".into());
    }
    let artifact = entry.split_off(HEADER_LEN);
    let header = entry;
    if entry_digest(&header, &artifact).as_slice() != &header[DIGEST_AT..HEADER_LEN] {
        return Err("entry does not match its recorded SHA-256 (corrupt or truncated)".into());
    }
    let module = &header[MODULE_AT..ENGINE_AT];
    if module != sha256.as_slice() {
        return Err(format!(
            "entry holds another module (sha256 {}), not this one (copied or renamed)",
            hex::encode(module)
        ));
    }
    let mut engine = [0u8; 8];
    engine.copy_from_slice(&header[ENGINE_AT..DIGEST_AT]);
    let engine = u64::from_be_bytes(engine);
    if engine != fingerprint {
        return Err(format!(
            "entry was compiled by another engine configuration ({engine:016x}, this one is \
             {fingerprint:016x})"
        ));
    }
    Ok(artifact)
}

/// A fingerprint of everything that makes compiled code compatible with `engine`.
pub fn engine_fingerprint(engine: &Engine) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    env!("CARGO_PKG_VERSION").hash(&mut h);
    h.finish()
}

fn current_uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// Removes a cache entry file (used by tests and `--no-cache` callers that want a clean
/// slate).
pub fn remove_entry(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl Loader {
    /// Like [`Loader::load`], but takes the compiled module from `cache` when a valid
    /// entry exists, and stores it there after compiling otherwise. A cache problem is
    /// logged and never fails the load.
    ///
    /// # Errors
    ///
    /// As [`Loader::load`].
    pub fn load_cached(
        &self,
        wasm: &[u8],
        cache: &ModuleCache,
    ) -> Result<(LoadedPlugin, Lookup), RuntimeError> {
        let sha256: [u8; 32] = Sha256::digest(wasm).into();
        let (module, lookup) = cache.get(self.engine(), &sha256);
        if let Lookup::Rejected(reason) = &lookup {
            tracing::warn!(%reason, "ignoring compiled-module cache entry; recompiling");
        }
        let module = match module {
            Some(module) => module,
            None => {
                let module = self.compile(wasm)?;
                if let Err(e) = cache.put(self.engine(), &sha256, &module) {
                    tracing::warn!(error = %e, "cannot store compiled module in the cache");
                }
                module
            }
        };
        Ok((self.load_module(module, sha256)?, lookup))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::LoaderConfig;

    fn hello() -> Vec<u8> {
        example("hello")
    }

    fn example(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/examples/plugins/{name}.wasm",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn sha(wasm: &[u8]) -> [u8; 32] {
        Sha256::digest(wasm).into()
    }

    /// What a call with `args` returns, as text (the greeting, or the error).
    fn output(plugin: &LoadedPlugin, args: &[&str]) -> String {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        match plugin.instance.execute(&args) {
            Ok(crate::abi::ExecuteResult::Success(text)) => text,
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn second_load_hits_and_corruption_recompiles() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModuleCache::open(dir.path().join("c")).unwrap();
        let loader = Loader::new(LoaderConfig::new("/")).unwrap();
        let wasm = hello();
        let (_, first) = loader.load_cached(&wasm, &cache).unwrap();
        assert_eq!(first, Lookup::Miss);
        let (plugin, second) = loader.load_cached(&wasm, &cache).unwrap();
        assert_eq!(second, Lookup::Hit);
        assert!(plugin.instance.execute(&[]).is_ok());

        // Flip one byte of the artifact: the entry is rejected, the module recompiled.
        let sha: [u8; 32] = Sha256::digest(&wasm).into();
        let entry = cache.entry_path(loader.engine(), &sha);
        let mut bytes = std::fs::read(&entry).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&entry, &bytes).unwrap();
        let (plugin, third) = loader.load_cached(&wasm, &cache).unwrap();
        assert!(
            matches!(third, Lookup::Rejected(ref r) if r.contains("SHA-256")),
            "{third:?}"
        );
        assert!(plugin.instance.execute(&[]).is_ok());
        // ... and rewritten, so the next load hits again.
        assert_eq!(loader.load_cached(&wasm, &cache).unwrap().1, Lookup::Hit);

        // Truncated: rejected.
        std::fs::write(&entry, &bytes[..20]).unwrap();
        assert!(matches!(
            loader.load_cached(&wasm, &cache).unwrap().1,
            Lookup::Rejected(_)
        ));

        // Group-writable: rejected, never deserialized.
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o664)).unwrap();
        assert!(matches!(
            cache.get(loader.engine(), &sha).1,
            Lookup::Rejected(ref r) if r.contains("writable")
        ));
    }

    #[test]
    fn foreign_engine_entry_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModuleCache::open(dir.path()).unwrap();
        let loader = Loader::new(LoaderConfig::new("/")).unwrap();
        let wasm = hello();
        let sha: [u8; 32] = Sha256::digest(&wasm).into();
        // A well-formed entry whose artifact was compiled by another engine (no fuel,
        // no epochs): the header and hash check pass, wasmtime must refuse it.
        let foreign = Module::new(&Engine::default(), &wasm)
            .unwrap()
            .serialize()
            .unwrap();
        let entry = encode_entry(&sha, engine_fingerprint(loader.engine()), &foreign);
        let path = cache.entry_path(loader.engine(), &sha);
        std::fs::write(&path, entry).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (plugin, lookup) = loader.load_cached(&wasm, &cache).unwrap();
        assert!(
            matches!(lookup, Lookup::Rejected(ref r) if r.contains("wasmtime")),
            "{lookup:?}"
        );
        assert!(plugin.instance.execute(&[]).is_ok());
        assert_eq!(loader.load_cached(&wasm, &cache).unwrap().1, Lookup::Hit);
    }

    #[test]
    fn an_entry_copied_under_another_modules_key_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModuleCache::open(dir.path().join("c")).unwrap();
        let loader = Loader::new(LoaderConfig::new("/")).unwrap();
        let (hello, reader) = (hello(), example("file-reader"));
        let (plugin, lookup) = loader.load_cached(&hello, &cache).unwrap();
        assert_eq!(lookup, Lookup::Miss);
        assert_eq!(output(&plugin, &["print", "B"]), "Hello, print!");

        // hello's genuine, intact entry (its integrity hash is valid as it stands),
        // copied under file-reader's key, as by someone who can rename or copy in the
        // cache but not compile: file-reader's own code must run, never hello's.
        let hello_entry = cache.entry_path(loader.engine(), &sha(&hello));
        let reader_entry = cache.entry_path(loader.engine(), &sha(&reader));
        std::fs::copy(&hello_entry, &reader_entry).unwrap();
        std::fs::set_permissions(&reader_entry, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (plugin, lookup) = loader.load_cached(&reader, &cache).unwrap();
        assert!(
            matches!(lookup, Lookup::Rejected(ref r) if r.contains("another module")),
            "{lookup:?}"
        );
        assert_eq!(plugin.manifest.command.name, "file-reader");
        assert_eq!(output(&plugin, &["print", "B"]), "printed");

        // The entry was rewritten with file-reader's code; hello's own still hits.
        let (plugin, lookup) = loader.load_cached(&reader, &cache).unwrap();
        assert_eq!(lookup, Lookup::Hit);
        assert_eq!(output(&plugin, &["print", "B"]), "printed");
        let (plugin, lookup) = loader.load_cached(&hello, &cache).unwrap();
        assert_eq!(lookup, Lookup::Hit);
        assert_eq!(output(&plugin, &["print", "B"]), "Hello, print!");
    }

    #[test]
    fn an_entry_copied_under_another_engines_key_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModuleCache::open(dir.path()).unwrap();
        let optimized = Loader::new(LoaderConfig::new("/")).unwrap();
        let mut config = crate::runtime::engine_config(&optimized.config().limits);
        config.cranelift_opt_level(wasmtime::OptLevel::None);
        let other =
            Loader::with_engine(Engine::new(&config).unwrap(), LoaderConfig::new("/")).unwrap();
        assert_ne!(
            engine_fingerprint(optimized.engine()),
            engine_fingerprint(other.engine())
        );
        let wasm = hello();
        optimized.load_cached(&wasm, &cache).unwrap();
        std::fs::copy(
            cache.entry_path(optimized.engine(), &sha(&wasm)),
            cache.entry_path(other.engine(), &sha(&wasm)),
        )
        .unwrap();
        // wasmtime itself accepts an artifact of another optimization level: only the
        // header tells this entry is not the one looked up.
        let (_, lookup) = other.load_cached(&wasm, &cache).unwrap();
        assert!(
            matches!(lookup, Lookup::Rejected(ref r) if r.contains("another engine")),
            "{lookup:?}"
        );
    }
}
