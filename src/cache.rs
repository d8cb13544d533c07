//! A compiled-module cache for the command line, so a second `warden run` of the same
//! plugin does not compile it again.
//!
//! Entries live in a user-owned directory (`$XDG_CACHE_HOME/warden/`, else
//! `~/.cache/warden/`), one file per module, named by the SHA-256 of the module's bytes
//! and a fingerprint of the engine configuration (wasmtime's own
//! `precompile_compatibility_hash`, which covers wasmtime's version, plus warden's
//! version). A file holds a header that names the module and the engine it was
//! compiled for, a SHA-256 over the header and the artifact, and the artifact from
//! [`Module::serialize`]. Beside it, `SHA256.manifest` keeps the message the module's
//! `plugin_manifest` returned the first time it was loaded, bound and checked the
//! same way (and decoded and validated again at every use, as any manifest): a
//! cached load runs no guest code before its policy is decided.
//!
//! # Security
//!
//! [`Module::deserialize`] trusts its input: a forged artifact is native code, and it
//! runs under the name, the grants and the audited SHA-256 of the module it was looked
//! up for. So:
//!
//! - The directory is opened once, by [`ModuleCache::open`], one path component at a
//!   time without following symbolic links (a symlink anywhere on the path refuses the
//!   cache: with a `$HOME` reached through one, set `XDG_CACHE_HOME` to its real path),
//!   and must be owned by this user and writable by nobody else (checked on the open
//!   descriptor). Every later read, write and rename is relative to that one
//!   descriptor: whoever can rename things above the directory can swap its path for
//!   a symlink to their own files, but not what warden has already opened.
//! - An entry is used only when (1) it is a regular file, opened without following
//!   symlinks, owned by this user and writable by nobody else (checked on the open
//!   file), (2) its SHA-256 matches (which catches truncation and corruption), (3) its
//!   header names the module digest and the engine fingerprint it is being looked up
//!   for (so an intact entry copied or renamed under another module's name is not
//!   that module's code), and (4) wasmtime itself accepts it for this engine.
//!
//! Anything else is a miss, never an error: the module is recompiled and the entry
//! rewritten, through [`crate::files::Folder::supersede`] on the held directory: a
//! private temporary file (mode 0600, created exclusively) renamed into place over
//! whatever had the name (a symlink there is replaced, never followed), in a directory
//! of mode 0700.
//!
//! The header and hash are not a signature: anyone who can write the directory can
//! forge an entry. What keeps them out is that nobody else can write it, checked
//! on the descriptor that every operation goes through.

use crate::files::Folder;
use crate::runtime::{LoadedPlugin, Loader, RuntimeError};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};
use std::fs;
use std::hash::Hash;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use wasmtime::{Engine, Module};

/// First bytes of every entry; bump the digit when the layout changes.
const MAGIC: &[u8; 8] = b"WARDENC2";

/// The first bytes of a manifest entry: the message a module's `plugin_manifest`
/// returned when it was first loaded, bound to the module as an artifact is.
const MANIFEST_MAGIC: &[u8; 8] = b"WARDENM1";

/// How an entry is opened for reading: never through a symlink, never blocking (a FIFO
/// in its place is refused after `fstat`, not waited on).
const READ_ENTRY: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

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
    #[error("cannot store a compiled module: {0}")]
    Write(#[from] crate::files::FileError),
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

/// The compiled-module cache: the directory opened by [`ModuleCache::open`], held open.
#[derive(Debug, Clone)]
pub struct ModuleCache {
    /// The directory itself, with the path it was opened by (for messages only,
    /// never resolved again); every entry operation is relative to it.
    folder: Folder,
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

    /// Opens the cache in `dir`, creating it (and missing parents, mode 0700) if
    /// needed, without following symbolic links, and holds it open.
    ///
    /// # Errors
    ///
    /// [`CacheError::Directory`] when the directory cannot be created or opened, when
    /// it or any directory on its path is a symbolic link, or when it is not owned by
    /// this user, or is writable by group or others and cannot be made private.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, CacheError> {
        let dir = dir.into();
        let bad = |problem: String| CacheError::Directory {
            path: dir.clone(),
            problem,
        };
        let fd = open_dir_no_follow(&dir).map_err(bad)?;
        let stat = rustix::fs::fstat(&fd).map_err(|e| bad(format!("cannot be read: {e}")))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
            return Err(bad("is not a directory".into()));
        }
        if stat.st_uid != current_uid() {
            return Err(bad(format!(
                "is owned by uid {}, not by this user (uid {}); use a cache directory of \
                 your own (XDG_CACHE_HOME) or run with --no-cache",
                stat.st_uid,
                current_uid()
            )));
        }
        if stat.st_mode & 0o022 != 0 {
            // Our own directory: tighten it (the one we hold) rather than give up.
            rustix::fs::fchmod(&fd, Mode::RWXU).map_err(|e| {
                bad(format!(
                    "is writable by group or others and cannot be made private: {e}"
                ))
            })?;
        }
        Ok(ModuleCache {
            folder: Folder::from_opened(fd, dir),
        })
    }

    /// The path the cache was opened by (entries are found through the directory
    /// held open since then, not through this path).
    pub fn dir(&self) -> &Path {
        self.folder.path()
    }

    /// Where the entry for a module with SHA-256 `sha256` under `engine` is named, for
    /// messages and tests; the cache itself opens it relative to the held directory.
    pub fn entry_path(&self, engine: &Engine, sha256: &[u8; 32]) -> PathBuf {
        self.folder
            .path()
            .join(entry_name(sha256, engine_fingerprint(engine)))
    }

    /// Looks up a compiled module; any doubt is a miss.
    pub fn get(&self, engine: &Engine, sha256: &[u8; 32]) -> (Option<Module>, Lookup) {
        let fingerprint = engine_fingerprint(engine);
        match self.read_entry(sha256, fingerprint) {
            Ok(None) => (None, Lookup::Miss),
            Ok(Some(artifact)) => {
                // SAFETY: `artifact` comes from a regular file, not a symlink, owned by
                // this user and writable by nobody else, opened relative to a
                // directory with the same properties that was opened without following
                // symlinks; its header names exactly this module digest and this
                // engine's fingerprint and it hashes to the digest it records; wasmtime
                // checks that it was produced by this wasmtime version for a
                // compatible engine.
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

    /// Stores `module`'s compiled form, bound to `sha256` and `engine`, replacing any
    /// entry (or symlink) under that name atomically.
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
        let fingerprint = engine_fingerprint(engine);
        let entry = encode_entry(MAGIC, sha256, fingerprint, &artifact);
        let name = entry_name(sha256, fingerprint);
        Ok(self.folder.supersede(name.as_ref(), &entry, 0o600)?)
    }

    /// The manifest message the module with SHA-256 `sha256` returned when it was
    /// first loaded, if an intact entry holds it; any doubt is a miss (and a warning).
    /// The caller decodes and validates it as any manifest.
    ///
    /// A module's manifest is read once and kept with it, as its compiled code is: a
    /// cached load runs no guest code before its policy is decided (under `isolation
    /// = "process"`, no worker is started just to read it).
    pub(crate) fn manifest(&self, sha256: &[u8; 32]) -> Option<Vec<u8>> {
        let name = manifest_entry_name(sha256);
        match self.read_file(&name, MANIFEST_MAGIC, sha256, manifest_fingerprint()) {
            Ok(found) => found,
            Err(reason) => {
                tracing::warn!(
                    entry = %self.folder.path().join(&name).display(),
                    %reason,
                    "ignoring cached manifest; reading it from the plugin"
                );
                None
            }
        }
    }

    /// Keeps `message`, the manifest the module `sha256` returned, for
    /// [`ModuleCache::manifest`].
    ///
    /// # Errors
    ///
    /// [`CacheError`] when the write fails.
    pub(crate) fn put_manifest(&self, sha256: &[u8; 32], message: &[u8]) -> Result<(), CacheError> {
        let entry = encode_entry(MANIFEST_MAGIC, sha256, manifest_fingerprint(), message);
        let name = manifest_entry_name(sha256);
        Ok(self.folder.supersede(name.as_ref(), &entry, 0o600)?)
    }

    /// Reads and checks the entry for `sha256` under the engine `fingerprint`:
    /// `Ok(None)` when absent, `Err(reason)` when unusable, else the artifact.
    fn read_entry(&self, sha256: &[u8; 32], fingerprint: u64) -> Result<Option<Vec<u8>>, String> {
        self.read_file(&entry_name(sha256, fingerprint), MAGIC, sha256, fingerprint)
    }

    /// Reads and checks the entry `name` of kind `magic`, bound to `sha256` and
    /// `fingerprint`: `Ok(None)` when absent, `Err(reason)` when unusable, else its
    /// payload.
    fn read_file(
        &self,
        name: &str,
        magic: &[u8; 8],
        sha256: &[u8; 32],
        fingerprint: u64,
    ) -> Result<Option<Vec<u8>>, String> {
        let fd = match rustix::fs::openat(&self.folder, name, READ_ENTRY, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP) => return Err("is a symbolic link, which is never followed".into()),
            Err(e) => return Err(format!("cannot open: {e}")),
        };
        let stat = rustix::fs::fstat(&fd).map_err(|e| format!("cannot stat: {e}"))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err("not a regular file".into());
        }
        if stat.st_uid != current_uid() {
            return Err(format!("owned by uid {}, not by this user", stat.st_uid));
        }
        if stat.st_mode & 0o022 != 0 {
            return Err(format!(
                "writable by group or others (mode {:o})",
                stat.st_mode & 0o777
            ));
        }
        let len = u64::try_from(stat.st_size).unwrap_or(0);
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        fs::File::from(fd)
            .take(len)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read: {e}"))?;
        decode_entry(magic, bytes, sha256, fingerprint).map(Some)
    }
}

/// The file name of a manifest entry.
fn manifest_entry_name(sha256: &[u8; 32]) -> String {
    format!("{}.manifest", hex::encode(sha256))
}

/// What a manifest entry is bound to besides its module: warden's version (a manifest
/// does not depend on the engine, but what warden accepts in one may change).
fn manifest_fingerprint() -> u64 {
    let digest = Sha256::digest(concat!("manifest ", env!("CARGO_PKG_VERSION")));
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
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
fn encode_entry(magic: &[u8; 8], sha256: &[u8; 32], fingerprint: u64, artifact: &[u8]) -> Vec<u8> {
    let mut entry = Vec::with_capacity(HEADER_LEN + artifact.len());
    entry.extend_from_slice(magic);
    entry.extend_from_slice(sha256);
    entry.extend_from_slice(&fingerprint.to_be_bytes());
    let digest = entry_digest(&entry, artifact);
    entry.extend_from_slice(&digest);
    entry.extend_from_slice(artifact);
    entry
}

/// The artifact of `entry`, if it is intact and bound to exactly this module and engine.
fn decode_entry(
    magic: &[u8; 8],
    mut entry: Vec<u8>,
    sha256: &[u8; 32],
    fingerprint: u64,
) -> Result<Vec<u8>, String> {
    if entry.len() < HEADER_LEN || &entry[..magic.len()] != magic {
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

/// Opens the directory `path` (creating missing components, mode 0700) one component at
/// a time, each relative to the last and none through a symbolic link.
fn open_dir_no_follow(path: &Path) -> Result<OwnedFd, String> {
    // O_PATH: passing through a directory needs only search permission, as with a path.
    const STEP: OFlags = OFlags::PATH
        .union(OFlags::DIRECTORY)
        .union(OFlags::NOFOLLOW)
        .union(OFlags::CLOEXEC);
    let step =
        |at: &OwnedFd, name: &std::ffi::OsStr| rustix::fs::openat(at, name, STEP, Mode::empty());
    let start = if path.has_root() { "/" } else { "." };
    let mut dir = rustix::fs::openat(rustix::fs::CWD, start, STEP, Mode::empty())
        .map_err(|e| format!("cannot be opened: `{start}`: {e}"))?;
    let mut walked = PathBuf::from(start);
    for component in path.components() {
        let name = match component {
            Component::RootDir | Component::CurDir => continue,
            Component::ParentDir => std::ffi::OsStr::new(".."),
            Component::Normal(name) => name,
            Component::Prefix(_) => return Err("has a path prefix warden does not support".into()),
        };
        walked.push(name);
        let next = match step(&dir, name) {
            Err(Errno::NOENT) if matches!(component, Component::Normal(_)) => {
                match rustix::fs::mkdirat(&dir, name, Mode::RWXU) {
                    Ok(()) | Err(Errno::EXIST) => step(&dir, name),
                    Err(e) => {
                        return Err(format!("cannot be created: `{}`: {e}", walked.display()));
                    }
                }
            }
            other => other,
        };
        dir = next.map_err(|e| match e {
            // `O_PATH | O_NOFOLLOW | O_DIRECTORY` on a symlink: `ENOTDIR`.
            Errno::NOTDIR | Errno::LOOP => {
                match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(s) if FileType::from_raw_mode(s.st_mode) == FileType::Symlink => {
                        symlink_refusal(&walked)
                    }
                    _ => format!(
                        "cannot be opened: `{}` is not a directory",
                        walked.display()
                    ),
                }
            }
            e => format!("cannot be opened: `{}`: {e}", walked.display()),
        })?;
    }
    // The walk held the directory by `O_PATH`; reopen it (no lookup: `.`) for `fchmod`.
    rustix::fs::openat(
        &dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("cannot be opened: {e}"))
}

/// Why a cache path through the symbolic link `link` is refused, and what to do.
fn symlink_refusal(link: &Path) -> String {
    format!(
        "is refused: `{}` is a symbolic link, and the cache is only opened through real \
         directories so that no one can redirect it; set XDG_CACHE_HOME to a path without \
         symbolic links, or run with --no-cache",
        link.display()
    )
}

/// A fingerprint of everything that makes compiled code compatible with `engine`:
/// the first 8 bytes of a SHA-256 over wasmtime's compatibility hash and warden's
/// version. SHA-256, not `std`'s `DefaultHasher`, whose output may change between
/// Rust releases (a rebuilt warden would then miss every entry, or worse, agree by
/// chance with another engine's).
pub fn engine_fingerprint(engine: &Engine) -> u64 {
    struct Sha(Sha256);
    impl std::hash::Hasher for Sha {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            0
        }
    }
    let mut h = Sha(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    h.0.update(env!("CARGO_PKG_VERSION").as_bytes());
    let digest: [u8; 32] = h.0.finalize().into();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
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
        let (module, lookup) = self.compile_cached(wasm, sha256, cache)?;
        Ok((self.load_module(module, sha256)?, lookup))
    }

    /// Compiles `wasm` through `cache`, running nothing: the module, the file's
    /// SHA-256, and how the cache answered.
    ///
    /// # Errors
    ///
    /// As [`Loader::compile`].
    pub(crate) fn compile_cached(
        &self,
        wasm: &[u8],
        sha256: [u8; 32],
        cache: &ModuleCache,
    ) -> Result<(wasmtime::Module, Lookup), RuntimeError> {
        let (module, lookup) = cache.get(self.engine(), &sha256);
        if let Lookup::Rejected(reason) = &lookup {
            tracing::warn!(
                entry = %cache.entry_path(self.engine(), &sha256).display(),
                %reason,
                "ignoring compiled-module cache entry; recompiling"
            );
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
        Ok((module, lookup))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::LoaderConfig;
    use std::os::unix::fs::PermissionsExt;

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

    #[test]
    fn a_kept_manifest_is_bound_to_its_module_and_intact() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModuleCache::open(dir.path().join("c")).unwrap();
        let (hello, reader) = (sha(&hello()), sha(&example("file-reader")));
        assert_eq!(cache.manifest(&hello), None, "nothing kept yet");
        cache.put_manifest(&hello, b"the message").unwrap();
        assert_eq!(cache.manifest(&hello).as_deref(), Some(&b"the message"[..]));
        assert_eq!(cache.manifest(&reader), None);
        // Renamed under another module's name: not that module's manifest.
        let path = |s: &[u8; 32]| dir.path().join("c").join(manifest_entry_name(s));
        std::fs::rename(path(&hello), path(&reader)).unwrap();
        assert_eq!(cache.manifest(&reader), None);
        // Changed in place: its digest no longer matches.
        cache.put_manifest(&hello, b"the message").unwrap();
        let mut bytes = std::fs::read(path(&hello)).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(path(&hello), bytes).unwrap();
        assert_eq!(cache.manifest(&hello), None);
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
        let entry = encode_entry(MAGIC, &sha, engine_fingerprint(loader.engine()), &foreign);
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

    #[test]
    fn replacing_the_cache_directory_by_a_symlink_after_open_changes_nothing() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("c");
        let cache = ModuleCache::open(&path).unwrap();
        let loader = Loader::new(LoaderConfig::new("/")).unwrap();
        let (hello, reader) = (hello(), example("file-reader"));

        // The attacker's directory holds an entry that would pass every check of the
        // entry itself: file-reader's key, hello's code, made by warden's own `put`.
        let evil_path = root.path().join("evil");
        let evil = ModuleCache::open(&evil_path).unwrap();
        let forged = loader.compile(&hello).unwrap();
        evil.put(loader.engine(), &sha(&reader), &forged).unwrap();
        assert_eq!(evil.get(loader.engine(), &sha(&reader)).1, Lookup::Hit);
        let planted = std::fs::read(evil.entry_path(loader.engine(), &sha(&reader))).unwrap();

        // After `open`, the cache directory's path is swapped for a symlink to it.
        std::fs::rename(&path, root.path().join("c.moved")).unwrap();
        std::os::unix::fs::symlink(&evil_path, &path).unwrap();

        let (plugin, lookup) = loader.load_cached(&reader, &cache).unwrap();
        assert_eq!(lookup, Lookup::Miss, "read through the swapped path");
        assert_eq!(plugin.manifest.command.name, "file-reader");
        assert_eq!(output(&plugin, &["print", "B"]), "printed");
        // The new entry went to the directory opened at `open`, not the attacker's.
        let name = cache
            .entry_path(loader.engine(), &sha(&reader))
            .file_name()
            .unwrap()
            .to_owned();
        assert!(root.path().join("c.moved").join(&name).is_file());
        assert_eq!(std::fs::read(evil_path.join(&name)).unwrap(), planted);
        let (plugin, lookup) = loader.load_cached(&reader, &cache).unwrap();
        assert_eq!(lookup, Lookup::Hit);
        assert_eq!(output(&plugin, &["print", "B"]), "printed");
    }

    #[test]
    fn an_entry_that_is_a_symlink_is_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let cache = ModuleCache::open(root.path().join("c")).unwrap();
        let loader = Loader::new(LoaderConfig::new("/")).unwrap();
        let (hello, reader) = (hello(), example("file-reader"));
        // Outside the cache: a well-formed entry for file-reader's key with hello's code.
        let elsewhere = ModuleCache::open(root.path().join("elsewhere")).unwrap();
        elsewhere
            .put(
                loader.engine(),
                &sha(&reader),
                &loader.compile(&hello).unwrap(),
            )
            .unwrap();
        let target = elsewhere.entry_path(loader.engine(), &sha(&reader));
        let before = std::fs::read(&target).unwrap();
        let entry = cache.entry_path(loader.engine(), &sha(&reader));
        std::os::unix::fs::symlink(&target, &entry).unwrap();

        let (plugin, lookup) = loader.load_cached(&reader, &cache).unwrap();
        assert!(
            matches!(lookup, Lookup::Rejected(ref r) if r.contains("symbolic link")),
            "{lookup:?}"
        );
        assert_eq!(output(&plugin, &["print", "B"]), "printed");
        // The symlink itself was replaced by a regular entry; its target is untouched.
        assert!(std::fs::symlink_metadata(&entry).unwrap().is_file());
        assert_eq!(std::fs::read(&target).unwrap(), before);
        assert_eq!(loader.load_cached(&reader, &cache).unwrap().1, Lookup::Hit);
    }

    #[test]
    fn a_cache_directory_behind_a_symlink_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let real = root.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();

        // A directory above it is a symlink (say `$XDG_CACHE_HOME`, in a folder that
        // someone else can rename things in).
        let above = root.path().join("above");
        std::os::unix::fs::symlink(&real, &above).unwrap();
        let err = ModuleCache::open(above.join("warden"))
            .unwrap_err()
            .to_string();
        assert!(!real.join("warden").exists(), "created through the symlink");
        assert!(err.contains("symbolic link"), "{err}");

        // The cache directory itself is a symlink.
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = ModuleCache::open(&link).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
    }

    #[test]
    fn entries_and_directories_of_another_user_are_not_used() {
        if current_uid() != 0 {
            return; // giving a file away needs root
        }
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("c");
        let cache = ModuleCache::open(&path).unwrap();
        let loader = Loader::new(LoaderConfig::new("/")).unwrap();
        let wasm = hello();
        loader.load_cached(&wasm, &cache).unwrap();
        let entry = cache.entry_path(loader.engine(), &sha(&wasm));
        std::os::unix::fs::chown(&entry, Some(65534), None).unwrap();
        let (plugin, lookup) = loader.load_cached(&wasm, &cache).unwrap();
        assert!(
            matches!(lookup, Lookup::Rejected(ref r) if r.contains("owned by uid 65534")),
            "{lookup:?}"
        );
        assert_eq!(output(&plugin, &[]), "Hello, World!");
        assert_eq!(loader.load_cached(&wasm, &cache).unwrap().1, Lookup::Hit);

        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        let err = ModuleCache::open(&path).unwrap_err().to_string();
        assert!(err.contains("owned by uid 65534"), "{err}");
    }

    #[test]
    fn a_fifo_in_place_of_an_entry_is_refused_without_blocking() {
        let root = tempfile::tempdir().unwrap();
        let cache = ModuleCache::open(root.path()).unwrap();
        let loader = Loader::new(LoaderConfig::new("/")).unwrap();
        let wasm = hello();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            cache.entry_path(loader.engine(), &sha(&wasm)),
            FileType::Fifo,
            Mode::RUSR | Mode::WUSR,
            0,
        )
        .unwrap();
        let (plugin, lookup) = loader.load_cached(&wasm, &cache).unwrap();
        assert!(
            matches!(lookup, Lookup::Rejected(ref r) if r.contains("not a regular file")),
            "{lookup:?}"
        );
        assert_eq!(output(&plugin, &[]), "Hello, World!");
        assert_eq!(loader.load_cached(&wasm, &cache).unwrap().1, Lookup::Hit);
    }
}
