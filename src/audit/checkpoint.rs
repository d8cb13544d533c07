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
//! Keys are PKCS#8 (secret, mode 0600) and SPKI (public) PEM files, the formats
//! `openssl pkey` reads, written by `warden audit keygen`.

use super::error::AuditError;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
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

/// Checks `signature` (hex) over a checkpoint's facts with `key`.
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
    key.verify(&message(head, records, ts, &key_id(key)), &sig)
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
    let io = |source| CheckpointError::Io {
        action: "write",
        path: path.into(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io)
}

/// Reads a signing key (PKCS#8 PEM) that only its owner may read.
///
/// # Errors
///
/// [`CheckpointError`] when unreadable, readable by others, or not an ed25519 key.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, CheckpointError> {
    let io = |source| CheckpointError::Io {
        action: "read",
        path: path.into(),
        source,
    };
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(CheckpointError::Exposed {
            path: path.into(),
            mode: mode & 0o7777,
        });
    }
    let pem = std::fs::read_to_string(path).map_err(io)?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| CheckpointError::Format {
        path: path.into(),
        expected: "an ed25519 private key in PKCS#8 PEM (`warden audit keygen` writes one)",
        message: e.to_string(),
    })
}

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
    VerifyingKey::from_public_key_pem(&pem).map_err(|e| CheckpointError::Format {
        path: path.into(),
        expected: "an ed25519 public key in PEM (`warden audit keygen` writes PREFIX.pub)",
        message: e.to_string(),
    })
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
