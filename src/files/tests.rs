//! The module's own checks: modes, refusals, edits through a link, appends.

use super::*;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn a_new_file_gets_exactly_its_mode_and_never_replaces_anything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new");
    create_new(&path, b"one", 0o640).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"one");
    assert_eq!(mode_of(&path), 0o640);
    let e = create_new(&path, b"two", 0o600).unwrap_err();
    assert!(matches!(e, FileError::Exists { .. }), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), b"one");

    let victim = dir.path().join("victim");
    std::fs::write(&victim, "untouched").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let e = create_new(&link, b"x", 0o600).unwrap_err();
    assert!(matches!(e, FileError::Exists { .. }), "{e}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

#[test]
fn a_replaced_file_keeps_its_mode_and_a_symlink_is_refused_naming_its_target() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, "old").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o604)).unwrap();
    replace(&path, b"new", 0o600).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"new");
    assert_eq!(mode_of(&path), 0o604);

    let link = dir.path().join("l");
    std::os::unix::fs::symlink("f", &link).unwrap();
    let e = replace(&link, b"evil", 0o600).unwrap_err();
    let real = std::fs::canonicalize(&path).unwrap();
    assert!(
        matches!(&e, FileError::Symlink { target, .. } if *target == real),
        "{e:?}"
    );
    assert!(e.to_string().contains(&real.display().to_string()), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), b"new");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );

    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    assert!(matches!(
        replace(&sub, b"x", 0o600),
        Err(FileError::NotAFile { .. })
    ));
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

#[test]
fn an_edit_through_a_link_edits_the_file_it_resolves_to() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("releases")).unwrap();
    let real = dir.path().join("releases/v3.toml");
    std::fs::write(&real, "v3").unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
    let link = dir.path().join("policy.toml");
    std::os::unix::fs::symlink("releases/v3.toml", &link).unwrap();

    assert!(matches!(Edit::open(&link), Err(FileError::Symlink { .. })));
    let edit = Edit::open_following_link(&link).unwrap();
    assert_eq!(edit.contents(), b"v3");
    let edited = edit.replace(b"v3 pinned").unwrap();
    assert_eq!(edited, std::fs::canonicalize(&real).unwrap());
    assert_eq!(std::fs::read(&real).unwrap(), b"v3 pinned");
    assert_eq!(mode_of(&real), 0o640);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn an_edit_refuses_a_file_swapped_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, "read").unwrap();
    let edit = Edit::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, "someone else's").unwrap();
    assert!(matches!(edit.replace(b"x"), Err(FileError::Changed { .. })));
    assert_eq!(std::fs::read(&path).unwrap(), b"someone else's");
}

#[test]
fn the_log_is_opened_for_appending_never_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let mut f = open_append(&log, 0o600).unwrap();
    f.write_all(b"a\n").unwrap();
    assert_eq!(mode_of(&log), 0o600);
    let mut f = open_append(&log, 0o600).unwrap();
    f.write_all(b"b\n").unwrap();
    assert_eq!(std::fs::read(&log).unwrap(), b"a\nb\n");

    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&log, &link).unwrap();
    assert!(matches!(
        open_append(&link, 0o600),
        Err(FileError::Symlink { .. })
    ));
    let dangling = dir.path().join("dangling");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
    assert!(matches!(
        open_append(&dangling, 0o600),
        Err(FileError::Symlink { .. })
    ));
    assert!(!dir.path().join("nowhere").exists());
    assert!(matches!(
        open_append(dir.path(), 0o600),
        Err(FileError::Io { .. } | FileError::NotAFile { .. })
    ));
}

#[test]
fn a_file_moved_aside_never_lands_on_an_existing_name() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::write(&a, "a").unwrap();
    std::os::unix::fs::symlink("elsewhere", &b).unwrap();
    assert!(matches!(
        rename_aside(&a, &b),
        Err(FileError::Exists { .. })
    ));
    let c = dir.path().join("c");
    rename_aside(&a, &c).unwrap();
    assert_eq!(std::fs::read(&c).unwrap(), b"a");
    assert!(!a.exists());
}

/// Temporary files left in `dir`.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}
