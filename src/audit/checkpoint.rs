//! Signed checkpoints: what makes the chain's tail trustworthy (`AUDIT.md` promise 3).
//!
//! A hash chain shows edits, but whoever can write the file can rebuild it after
//! deleting a record, or cut its tail, and it still verifies. A checkpoint is the
//! chain head at one moment signed with an ed25519 key that the plugin host does not
//! need to hold (`warden audit checkpoint --key`, run from cron or a reviewer's
//! machine):
//!
//! - a `checkpoint` record is appended to the log under the writers' own locks, its
//!   `head` equal to its own `prev` and `records` to its own `seq`, with the
//!   signature over both (and its time and key id); a rebuilt chain changes the head
//!   a signature covers, which no one without the key can sign again;
//! - the same facts, and the SHA-256 of the checkpoint line itself, are written to a
//!   checkpoint file meant to be kept elsewhere: `verify --checkpoint FILE` fails
//!   when that line is no longer in the log (a cut tail).
//!
//! # Security
//!
//! The key holder is not the log's owner, so nothing is written in the log's folder
//! but the record itself: the checkpoint file goes to `--out`, or to the key holder's
//! own state folder ([`default_folder`]), through [`crate::files`] (never through a
//! symlink). The secret key is created mode 0600 and never over anything
//! ([`crate::files::create_new`]); its mode is checked on the opened file, the one then
//! read. Signatures are checked with `verify_strict`, and weak (small-order) public
//! keys are refused.
//!
//! Keys are PKCS#8 (secret, mode 0600) and SPKI (public) PEM files, the formats
//! `openssl pkey` reads, written by `warden audit keygen`.

use super::error::AuditError;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};

/// Why a key or a checkpoint could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A key file could not be read or written.
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        /// `read`, `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key file is not the expected PEM.
    #[error("`{path}` is not {expected}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What it should be.
        expected: &'static str,
        /// The parser's message.
        message: String,
    },
    /// A secret key file others may read.
    #[error(
        "`{path}` may be read by group or others (mode {mode:o}); a signing key must be private: `chmod 600` it"
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// A key file could not be created.
    #[error(transparent)]
    File(crate::files::FileError),
    /// Appending the record failed.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// A signed checkpoint, as the checkpoint file holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The log it was taken of (as given).
    pub log: String,
    /// `ts` of the checkpoint record.
    pub ts: String,
    /// SHA-256 of the last record before the checkpoint (the checkpoint's `prev`).
    pub head: String,
    /// Records before the checkpoint (its `seq`).
    pub records: u64,
    /// Which key signed it ([`key_id`]).
    pub key_id: String,
    /// The ed25519 signature of [`message`], hex.
    pub signature: String,
    /// SHA-256 of the checkpoint record's own line: it must still be in the log.
    pub line_sha256: String,
}

/// The first 16 hex digits of the SHA-256 of the public key's bytes.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// What a checkpoint signs.
pub fn message(head: &str, records: u64, ts: &str, key_id: &str) -> Vec<u8> {
    format!("warden audit checkpoint v1\nhead {head}\nrecords {records}\nts {ts}\nkey {key_id}\n")
        .into_bytes()
}

/// Checks `signature` (hex) over a checkpoint's facts with `key`, strictly
/// (`verify_strict`: no small-order `R` or key, a canonical `S`).
pub fn signature_holds(
    key: &VerifyingKey,
    head: &str,
    records: u64,
    ts: &str,
    signature: &str,
) -> bool {
    let Ok(bytes) = hex::decode(signature) else {
        return false;
    };
    let Ok(sig) = Signature::from_slice(&bytes) else {
        return false;
    };
    // Strict: a signature whose `R` or key is of small order, which plain `verify`
    // accepts for many messages, is refused (as is a non-canonical `S`).
    key.verify_strict(&message(head, records, ts, &key_id(key)), &sig)
        .is_ok()
}

/// Writes a new key pair: `PREFIX.key` (PKCS#8 PEM, mode 0600, never overwritten) and
/// `PREFIX.pub` (SPKI PEM). Returns both paths and the key id.
///
/// # Errors
///
/// [`CheckpointError`] when randomness or a file fails, or a file exists.
pub fn keygen(prefix: &Path) -> Result<(PathBuf, PathBuf, String), CheckpointError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| CheckpointError::Io {
        action: "get randomness for",
        path: prefix.into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let key = SigningKey::from_bytes(&seed);
    let with = |ext: &str| {
        let mut name = prefix.as_os_str().to_owned();
        name.push(ext);
        PathBuf::from(name)
    };
    let (secret_path, public_path) = (with(".key"), with(".pub"));
    let format = |path: &Path, e: String| CheckpointError::Format {
        path: path.into(),
        expected: "encodable",
        message: e,
    };
    let secret = key
        .to_pkcs8_pem(Default::default())
        .map_err(|e| format(&secret_path, e.to_string()))?;
    let public = key
        .verifying_key()
        .to_public_key_pem(Default::default())
        .map_err(|e| format(&public_path, e.to_string()))?;
    write_new(&secret_path, secret.as_bytes(), 0o600)?;
    write_new(&public_path, public.as_bytes(), 0o644)?;
    Ok((secret_path, public_path, key_id(&key.verifying_key())))
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CheckpointError> {
    crate::files::create_new(path, bytes, mode).map_err(CheckpointError::File)
}

/// Reads a signing key (PKCS#8 PEM) that only its owner may read. The mode is checked
/// on the file opened (its descriptor), the very file then read: a file swapped in
/// under the name between a check and the read is never used.
///
/// # Errors
///
/// [`CheckpointError`] when unreadable, readable by others, or not an ed25519 key.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, CheckpointError> {
    use std::io::Read as _;
    use std::os::unix::fs::MetadataExt as _;
    let io = |source| CheckpointError::Io {
        action: "read",
        path: path.into(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(CheckpointError::Format {
            path: path.into(),
            expected: "a regular file",
            message: "a directory, FIFO or device".into(),
        });
    }
    let mode = meta.mode();
    if mode & 0o077 != 0 {
        return Err(CheckpointError::Exposed {
            path: path.into(),
            mode: mode & 0o7777,
        });
    }
    let mut pem = String::new();
    file.take(MAX_KEY_FILE)
        .read_to_string(&mut pem)
        .map_err(io)?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| CheckpointError::Format {
        path: path.into(),
        expected: "an ed25519 private key in PKCS#8 PEM (`warden audit keygen` writes one)",
        message: e.to_string(),
    })
}

/// More than any PEM key file holds.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// Reads a public key (SPKI PEM).
///
/// # Errors
///
/// [`CheckpointError`] when unreadable or not an ed25519 public key.
pub fn read_verifying_key(path: &Path) -> Result<VerifyingKey, CheckpointError> {
    let pem = std::fs::read_to_string(path).map_err(|source| CheckpointError::Io {
        action: "read",
        path: path.into(),
        source,
    })?;
    let expected = "an ed25519 public key in PEM (`warden audit keygen` writes PREFIX.pub)";
    let key = VerifyingKey::from_public_key_pem(&pem).map_err(|e| CheckpointError::Format {
        path: path.into(),
        expected,
        message: e.to_string(),
    })?;
    if key.is_weak() {
        // A point of small order: no signature is ever strictly valid for it, and a
        // lax verifier would take one made without any secret.
        return Err(CheckpointError::Format {
            path: path.into(),
            expected,
            message: "a weak key (a point of small order), which no one holds a secret for".into(),
        });
    }
    Ok(key)
}

/// Reads a checkpoint file.
///
/// # Errors
///
/// [`CheckpointError`] when unreadable or not a checkpoint.
pub fn read_checkpoint(path: &Path) -> Result<Checkpoint, CheckpointError> {
    let text = std::fs::read_to_string(path).map_err(|source| CheckpointError::Io {
        action: "read",
        path: path.into(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| CheckpointError::Format {
        path: path.into(),
        expected: "a checkpoint file (`warden audit checkpoint --out` writes one)",
        message: e.to_string(),
    })
}

/// Where checkpoint files go when no `--out` is given: the key holder's own state
/// folder, `$XDG_STATE_HOME/warden/checkpoints/`, else
/// `~/.local/state/warden/checkpoints/` (`None` when neither variable is set).
///
/// Not the log's folder: whoever owns that folder (the plugin host's account) could
/// plant a symlink or a file there, and a checkpoint kept beside the log is lost, or
/// cut, with it.
pub fn default_folder() -> Option<PathBuf> {
    let from_env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    from_env("XDG_STATE_HOME")
        .filter(|p| p.is_absolute())
        .or_else(|| from_env("HOME").map(|h| h.join(".local/state")))
        .map(|state| state.join("warden/checkpoints"))
}

/// Where a checkpoint file will be written, checked before anything is signed or
/// appended ([`Destination::choose`]), written by [`Destination::save`].
#[derive(Debug)]
pub enum Destination {
    /// `--out FILE`: a new file, or in place of the regular file there, keeping its
    /// mode and owner; a symlink is refused, naming where it leads.
    File(PathBuf),
    /// No `--out`: a new file in [`default_folder`] (created mode 0700, and refused
    /// unless this user's own and private), named `LOG-NAME.TIME.checkpoint` so
    /// that every checkpoint is kept.
    Folder(crate::files::Folder),
}

impl Destination {
    /// `out`, or the default folder, checked: a symlink, a directory or a FIFO at
    /// `out`, or a default folder that is not private, is refused now, before the
    /// log gets a `checkpoint` record.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::File`] as described; [`CheckpointError::Io`] when there is
    /// no `out` and no default folder.
    pub fn choose(out: Option<&Path>) -> Result<Self, CheckpointError> {
        if let Some(out) = out {
            crate::files::check_replaceable(out).map_err(CheckpointError::File)?;
            return Ok(Destination::File(out.to_path_buf()));
        }
        let folder = default_folder().ok_or_else(|| CheckpointError::Io {
            action: "choose a folder for",
            path: PathBuf::from("the checkpoint"),
            source: std::io::Error::other(
                "neither XDG_STATE_HOME nor HOME is set: pass --out FILE",
            ),
        })?;
        crate::files::Folder::open_private(&folder)
            .map(Destination::Folder)
            .map_err(CheckpointError::File)
    }

    /// Writes the checkpoint file and returns its path.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::File`] when the file cannot be written.
    pub fn save(&self, c: &Checkpoint) -> Result<PathBuf, CheckpointError> {
        let text = format!("{}\n", serde_json::to_string_pretty(c).unwrap_or_default());
        let folder = match self {
            Destination::File(out) => {
                crate::files::replace(out, text.as_bytes(), 0o644)
                    .map_err(CheckpointError::File)?;
                return Ok(out.clone());
            }
            Destination::Folder(folder) => folder,
        };
        let log_name = Path::new(&c.log)
            .file_name()
            .map_or_else(|| "log".into(), |n| n.to_string_lossy().into_owned());
        let time: String =
            c.ts.chars()
                .map(|ch| if ch == ':' { '-' } else { ch })
                .collect();
        let mut n = 1;
        loop {
            let suffix = if n == 1 {
                String::new()
            } else {
                format!("-{n}")
            };
            let name = format!("{log_name}.{time}{suffix}.checkpoint");
            match folder.create_new(name.as_ref(), text.as_bytes(), 0o644) {
                // Two checkpoints of one log within a millisecond: number the second.
                Err(crate::files::FileError::Exists { .. }) if n < 9 => n += 1,
                other => return other.map_err(CheckpointError::File),
            }
        }
    }
}

/// Appends a signed `checkpoint` record to the log at `log` (the newest file of its
/// rotated set) and returns the checkpoint, for the file kept elsewhere.
///
/// # Errors
///
/// [`CheckpointError::Audit`] when the log cannot be locked, read or written.
pub fn checkpoint(log: &Path, key: &SigningKey, now: &str) -> Result<Checkpoint, CheckpointError> {
    let verifying = key.verifying_key();
    let id = key_id(&verifying);
    let mut run_id = [0u8; 16];
    getrandom::fill(&mut run_id).map_err(|e| {
        CheckpointError::Audit(AuditError::Random {
            message: e.to_string(),
        })
    })?;
    let event_head = format!(
        "\"event\":\"checkpoint\",\"run_id\":\"{}\"",
        hex::encode(run_id)
    );
    let mut signed = None;
    let (line, head) = super::writer::append_at_head(log, now, &event_head, |head| {
        let signature = key.sign(&message(&head.prev, head.next_seq, now, &id));
        let hex_sig = hex::encode(signature.to_bytes());
        signed = Some(hex_sig.clone());
        format!(
            ",\"head\":\"{}\",\"records\":{},\"key_id\":\"{id}\",\"signature\":\"{hex_sig}\"",
            head.prev, head.next_seq
        )
    })?;
    Ok(Checkpoint {
        log: log.display().to_string(),
        ts: now.to_owned(),
        head: head.prev,
        records: head.next_seq,
        key_id: id,
        signature: signed.unwrap_or_default(),
        line_sha256: super::chain::line_hash(line.as_bytes()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn a_signature_holds_only_for_what_it_signed() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, public, id) = keygen(&dir.path().join("k")).unwrap();
        let key = read_signing_key(&secret).unwrap();
        let vk = read_verifying_key(&public).unwrap();
        assert_eq!(key_id(&vk), id);
        let sig = hex::encode(key.sign(&message("aa", 3, "t", &id)).to_bytes());
        assert!(signature_holds(&vk, "aa", 3, "t", &sig));
        assert!(!signature_holds(&vk, "ab", 3, "t", &sig));
        assert!(!signature_holds(&vk, "aa", 4, "t", &sig));
        assert!(!signature_holds(&vk, "aa", 3, "t", "00"));
        // Never overwritten; refused when others may read it.
        assert!(keygen(&dir.path().join("k")).is_err());
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            read_signing_key(&secret),
            Err(CheckpointError::Exposed { .. })
        ));
    }
}
