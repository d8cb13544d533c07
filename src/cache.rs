//! A compiled-module cache for the command line, so a second `warden run` of the same
//! plugin does not compile it again.
//!
//! Entries live in a user-owned directory (`$XDG_CACHE_HOME/warden/`, else
//! `~/.cache/warden/`), one file per module, named by the SHA-256 of the module's bytes
//! and a fingerprint of the engine configuration (wasmtime's own
//! `precompile_compatibility_hash`, plus wasmtime's version). A file holds a header, the
//! SHA-256 of the artifact, and the artifact from [`Module::serialize`].
//!
//! # Security
//!
//! [`Module::deserialize`] trusts its input: a forged artifact is native code. So an
//! entry is used only when (1) the cache directory and the entry are owned by this user
//! and writable by nobody else, (2) the entry is a regular file opened without following
//! symlinks, (3) its header matches and its artifact hashes to the recorded SHA-256
//! (which catches truncation and corruption), and (4) wasmtime itself accepts it for
//! this engine. Anything else is a miss: the module is recompiled and the entry
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
const MAGIC: &[u8; 8] = b"WARDENC1";

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
        self.dir.join(format!(
            "{}-{:016x}.cwasm",
            hex::encode(sha256),
            engine_fingerprint(engine)
        ))
    }

    /// Looks up a compiled module; any doubt is a miss.
    pub fn get(&self, engine: &Engine, sha256: &[u8; 32]) -> (Option<Module>, Lookup) {
        let path = self.entry_path(engine, sha256);
        match self.read_entry(&path) {
            Ok(None) => (None, Lookup::Miss),
            Ok(Some(artifact)) => {
                // SAFETY: `artifact` comes from a regular file owned by this user,
                // writable by nobody else, in a directory with the same properties,
                // and hashes to the digest recorded beside it; wasmtime checks that it
                // was produced by this wasmtime version for a compatible engine.
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

    /// Stores `module`'s compiled form.
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
            f.write_all(MAGIC)?;
            f.write_all(&Sha256::digest(&artifact))?;
            f.write_all(&artifact)?;
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

    /// Reads and checks an entry: `Ok(None)` when absent, `Err(reason)` when unusable.
    fn read_entry(&self, path: &Path) -> Result<Option<Vec<u8>>, String> {
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
        let header = MAGIC.len() + 32;
        if bytes.len() < header || &bytes[..MAGIC.len()] != MAGIC {
            return Err("not a warden cache entry (bad header or truncated)".into());
        }
        let artifact = bytes.split_off(header);
        if Sha256::digest(&artifact).as_slice() != &bytes[MAGIC.len()..header] {
            return Err(
                "artifact does not match its recorded SHA-256 (corrupt or truncated)".into(),
            );
        }
        Ok(Some(artifact))
    }
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
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/plugins/hello.wasm"
        ))
        .unwrap()
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
        let mut entry = MAGIC.to_vec();
        entry.extend_from_slice(&Sha256::digest(&foreign));
        entry.extend_from_slice(&foreign);
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
}
