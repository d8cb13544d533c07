//! The files warden writes, attacked by whoever owns the folder they are written in:
//! a symlink planted where `audit checkpoint` writes, a symlinked policy under
//! `policy pin`, a secret key swapped between its check and its read; and checkpoint
//! signatures checked strictly.

use crate::cli::warden_command;
use crate::common::*;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Output;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path)
        .unwrap()
        .file_type()
        .is_symlink()
}

/// A folder with an audit log of one real run (`audit.jsonl`), a key pair in its own
/// `keys/` folder, and a state folder for the key holder (`state/`).
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let site = Site { dir };
        std::fs::create_dir(site.path("keys")).unwrap();
        let out = site.warden(&["run", example_plugin("hello").to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let prefix = site.path("keys/ops");
        let out = site.warden(&["audit", "keygen", "--out", prefix.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        site
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn log(&self) -> PathBuf {
        self.path("audit.jsonl")
    }

    /// `warden ARGS` with this site's log as the default log and `state/` as the
    /// key holder's state folder.
    fn warden(&self, args: &[&str]) -> Output {
        warden_command()
            .env("WARDEN_AUDIT_LOG", self.log())
            .env("XDG_STATE_HOME", self.path("state"))
            .args(args)
            .output()
            .unwrap()
    }

    /// A file the key holder may write and the log's owner may not: the link's target.
    fn victim(&self) -> PathBuf {
        let victim = self.path("keys/precious.txt");
        std::fs::write(&victim, "precious\n").unwrap();
        victim
    }
}

/// Defect 5: the folder's owner plants a symlink where the checkpoint is written. The
/// checkpoint is refused, naming where the link leads; the link's target is untouched;
/// the log still verifies (the `checkpoint` record was appended under the locks).
#[test]
fn audit_checkpoint_refuses_to_write_through_a_planted_symlink() {
    let site = Site::new();
    let victim = site.victim();
    let secret = site.path("keys/ops.key");
    let planted = site.path("head.checkpoint");
    std::os::unix::fs::symlink(&victim, &planted).unwrap();

    let out = site.warden(&[
        "audit",
        "checkpoint",
        "--key",
        secret.to_str().unwrap(),
        "--out",
        planted.to_str().unwrap(),
        site.log().to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(66), "{stderr}");
    let real = std::fs::canonicalize(&victim).unwrap();
    assert!(
        stderr.contains(&format!(
            "`{}` is a symbolic link to `{}`; warden does not write through a symbolic link",
            planted.display(),
            real.display()
        )),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(is_symlink(&planted));
    // Refused before anything was signed: the log has no checkpoint record.
    let records = log_records(&site.log());
    assert!(!records.iter().any(|r| r["event"] == "checkpoint"));
    assert_log_verifies(&site.log());
}

/// Defect 5, the default place: without `--out` the checkpoint goes to the key holder's
/// own state folder, never beside the log, where a link planted under the old default
/// name (`LOG.checkpoint`) stays as it was and its target untouched.
#[test]
fn audit_checkpoint_writes_to_the_key_holders_state_folder_not_beside_the_log() {
    let site = Site::new();
    let victim = site.victim();
    let secret = site.path("keys/ops.key");
    let old_default = site.path("audit.jsonl.checkpoint");
    std::os::unix::fs::symlink(&victim, &old_default).unwrap();

    let out = site.warden(&[
        "audit",
        "checkpoint",
        "--key",
        secret.to_str().unwrap(),
        site.log().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(is_symlink(&old_default));

    let folder = site.path("state/warden/checkpoints");
    let files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        name.starts_with("audit.jsonl.") && name.ends_with(".checkpoint"),
        "{name}"
    );
    assert!(text(&out.stdout).contains(&files[0].display().to_string()));
    assert_eq!(
        std::fs::metadata(&folder).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let checkpoint: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert_eq!(checkpoint["records"], log_records(&site.log()).len() - 1);
    assert_log_verifies(&site.log());

    // A second checkpoint is a second file: none is ever overwritten.
    let out = site.warden(&["audit", "checkpoint", "--key", secret.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 2);

    // A state folder others can write is refused, not written into.
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = site.warden(&["audit", "checkpoint", "--key", secret.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(66));
    assert!(
        text(&out.stderr).contains("is writable by group or others"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 2);
    let signed = log_records(&site.log())
        .iter()
        .filter(|r| r["event"] == "checkpoint")
        .count();
    assert_eq!(signed, 2, "a refused checkpoint was still appended");
}

/// An explicit `--out` that already holds a regular file is replaced in place, keeping
/// the file's mode.
#[test]
fn audit_checkpoint_replaces_a_regular_out_file_keeping_its_mode() {
    let site = Site::new();
    let secret = site.path("keys/ops.key");
    let out_file = site.path("keys/head.checkpoint");
    std::fs::write(&out_file, "old\n").unwrap();
    std::fs::set_permissions(&out_file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = site.warden(&[
        "audit",
        "checkpoint",
        "--key",
        secret.to_str().unwrap(),
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();
    assert!(written["signature"].is_string(), "{written}");
    let meta = std::fs::symlink_metadata(&out_file).unwrap();
    assert!(meta.is_file());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
}

/// `audit keygen` never writes over anything: a symlink planted at `PREFIX.key` is
/// refused and its target untouched.
#[test]
fn audit_keygen_never_writes_through_a_planted_symlink() {
    let site = Site::new();
    let victim = site.victim();
    let prefix = site.path("new");
    std::os::unix::fs::symlink(&victim, site.path("new.key")).unwrap();
    let out = site.warden(&["audit", "keygen", "--out", prefix.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(66));
    assert!(
        text(&out.stderr).contains("already exists, and warden never overwrites it"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(!site.path("new.pub").exists());
}

const POLICY: &str = "# release 3\nversion = 1\n\n[plugins.hello]\nstdio = [\"stdout\"]\n";

/// Defect 10: `policy.toml -> releases/v3.toml`. Pin edits `v3.toml` (the file the
/// link resolves to), keeping its mode and owner, says so, and the link stays a link.
#[test]
fn policy_pin_edits_the_file_a_symlinked_policy_resolves_to() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("releases")).unwrap();
    let v3 = dir.path().join("releases/v3.toml");
    std::fs::write(&v3, POLICY).unwrap();
    std::fs::set_permissions(&v3, std::fs::Permissions::from_mode(0o640)).unwrap();
    let root = rustix::process::geteuid().is_root();
    if root {
        // Owned by the account that maintains the policies, not by whoever pins.
        std::os::unix::fs::chown(&v3, Some(4242), Some(4243)).unwrap();
    }
    let link = dir.path().join("policy.toml");
    std::os::unix::fs::symlink("releases/v3.toml", &link).unwrap();

    let hello = example_plugin("hello");
    let out = crate::cli::warden(&[
        "policy",
        "pin",
        "--policy",
        link.to_str().unwrap(),
        hello.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let real = std::fs::canonicalize(&v3).unwrap();
    let said = text(&out.stdout);
    assert!(
        said.contains(&format!(
            "{}: a symbolic link; edited the file it resolves to, {}",
            link.display(),
            real.display()
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!("{}: [plugins.hello] sha256", real.display())),
        "{said}"
    );

    assert!(is_symlink(&link), "the link was replaced by a copy");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("releases/v3.toml")
    );
    let digest = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(std::fs::read(&hello).unwrap()))
    };
    assert_eq!(
        std::fs::read_to_string(&v3).unwrap(),
        format!("{POLICY}sha256 = \"{digest}\"\n")
    );
    let meta = std::fs::metadata(&v3).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    if root {
        assert_eq!((meta.uid(), meta.gid()), (4242, 4243));
    }
    let left: Vec<_> = std::fs::read_dir(dir.path().join("releases"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["v3.toml"], "a temporary file was left behind");
}

/// `policy pin` on a plain policy file keeps its owner and mode too (it used to leave
/// a file owned by whoever pinned, often root).
#[test]
fn policy_pin_keeps_the_policy_files_owner_and_mode() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o604)).unwrap();
    let root = rustix::process::geteuid().is_root();
    if root {
        std::os::unix::fs::chown(&policy, Some(4242), Some(4243)).unwrap();
    }
    let out = crate::cli::warden(&[
        "policy",
        "pin",
        "--policy",
        policy.to_str().unwrap(),
        example_plugin("hello").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("symbolic link"));
    let meta = std::fs::symlink_metadata(&policy).unwrap();
    assert!(meta.is_file());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o604);
    if root {
        assert_eq!((meta.uid(), meta.gid()), (4242, 4243));
    }
}

/// The secret key's mode is checked on the file that is read, not on the name: a
/// key another user may read, swapped in and out under the private key's name
/// (`renameat2(RENAME_EXCHANGE)`) while warden reads it, is never used.
#[test]
fn a_secret_key_swapped_under_its_name_is_never_read_unchecked() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use warden::audit::checkpoint::{CheckpointError, key_id, keygen, read_signing_key};

    let dir = tempfile::tempdir().unwrap();
    let (private, _, private_id) = keygen(&dir.path().join("private")).unwrap();
    let (exposed, _, exposed_id) = keygen(&dir.path().join("exposed")).unwrap();
    std::fs::set_permissions(&exposed, std::fs::Permissions::from_mode(0o644)).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let swapper = {
        let (a, b) = (private.clone(), exposed.clone());
        let (stop, swaps) = (Arc::clone(&stop), Arc::clone(&swaps));
        std::thread::spawn(move || {
            use rustix::fs::{CWD, RenameFlags, renameat_with};
            while !stop.load(Ordering::Relaxed) {
                renameat_with(CWD, &a, CWD, &b, RenameFlags::EXCHANGE).unwrap();
                swaps.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let (mut used, mut refused) = (0u32, 0u32);
    let mut leaked = 0u32;
    for _ in 0..20_000 {
        match read_signing_key(&private) {
            Ok(key) if key_id(&key.verifying_key()) == private_id => used += 1,
            Ok(key) => {
                assert_eq!(key_id(&key.verifying_key()), exposed_id);
                leaked += 1;
            }
            Err(CheckpointError::Exposed { .. }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    assert!(swaps.load(Ordering::Relaxed) > 0);
    assert_eq!(
        leaked, 0,
        "the key others may read was used {leaked} times ({used} private, {refused} refused)"
    );
}

/// Checkpoint signatures are checked with `verify_strict`: with a public key of
/// small order (here the identity point), plain `verify` accepts `R = B, S = 1` over
/// any message, a signature made without any secret; the strict check refuses it,
/// and such a key file is refused outright.
#[test]
fn a_checkpoint_signature_is_checked_strictly() {
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    use warden::audit::checkpoint::{read_verifying_key, signature_holds};

    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak = ed25519_dalek::VerifyingKey::from_bytes(&identity).unwrap();
    // R = the base point (compressed), S = 1.
    let mut signature = [0u8; 64];
    signature[0] = 0x58;
    signature[1..32].fill(0x66);
    signature[32] = 1;
    let signature = hex::encode(signature);
    assert!(
        ed25519_dalek::Verifier::verify(
            &weak,
            b"anything at all",
            &ed25519_dalek::Signature::from_slice(&hex::decode(&signature).unwrap()).unwrap()
        )
        .is_ok(),
        "the lax check takes it: the test's premise"
    );
    let head = "ab".repeat(32);
    assert!(!signature_holds(
        &weak,
        &head,
        7,
        "2026-12-06T00:00:00.000Z",
        &signature
    ));

    // A non-canonical S (S + L, same point) is refused too.
    let dir = tempfile::tempdir().unwrap();
    let (secret, public, _) = warden::audit::checkpoint::keygen(&dir.path().join("k")).unwrap();
    let key = warden::audit::checkpoint::read_signing_key(&secret).unwrap();
    let vk = read_verifying_key(&public).unwrap();
    let message = warden::audit::checkpoint::message(&head, 7, "t", &key_id_of(&vk));
    let good = ed25519_dalek::Signer::sign(&key, &message).to_bytes();
    assert!(signature_holds(&vk, &head, 7, "t", &hex::encode(good)));
    let mut high = good;
    add_l(&mut high[32..]);
    assert!(!signature_holds(&vk, &head, 7, "t", &hex::encode(high)));

    // The weak key as a key file: refused, naming why.
    let pem = weak.to_public_key_pem(Default::default()).unwrap();
    let weak_file = dir.path().join("weak.pub");
    std::fs::write(&weak_file, pem).unwrap();
    let e = read_verifying_key(&weak_file).unwrap_err().to_string();
    assert!(e.contains("a weak key"), "{e}");
}

fn key_id_of(key: &ed25519_dalek::VerifyingKey) -> String {
    warden::audit::checkpoint::key_id(key)
}

/// Adds the group order L to the little-endian scalar `s` (the result is >= L).
fn add_l(s: &mut [u8]) {
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut carry = 0u16;
    for (b, l) in s.iter_mut().zip(L) {
        let sum = u16::from(*b) + u16::from(l) + carry;
        *b = (sum & 0xff) as u8;
        carry = sum >> 8;
    }
}
