//! The example plugins, built with `sen-plugin-sdk` 0.8, through the library API.

use crate::common::*;
use warden::abi::{ExecuteResult, PathPattern, StdioCapability};

#[test]
fn hello_greets() {
    let loader = loader();
    let loaded = loader.load(&example_bytes("hello")).unwrap();
    assert_eq!(loaded.manifest.command.name, "hello");
    assert!(loaded.manifest.capabilities.is_empty());
    assert_eq!(
        loaded.instance.execute(&[]).unwrap(),
        ExecuteResult::Success("Hello, World!".into())
    );
    assert_eq!(
        loaded.instance.execute(&["Ada".into()]).unwrap(),
        ExecuteResult::Success("Hello, Ada!".into())
    );
}

#[test]
fn file_reader_declares_what_the_readme_says() {
    let loader = loader();
    let loaded = loader.load(&example_bytes("file-reader")).unwrap();
    let caps = &loaded.manifest.capabilities;
    assert_eq!(
        caps.fs_read,
        vec![PathPattern {
            pattern: "./data".into(),
            recursive: true
        }]
    );
    assert_eq!(caps.env_read, vec!["HOME".to_string(), "APP_*".to_string()]);
    assert_eq!(
        caps.stdio,
        StdioCapability {
            stdin: false,
            stdout: true,
            stderr: false
        }
    );
}

#[test]
fn default_sandbox_grants_no_files_and_no_env() {
    let loader = loader();
    let loaded = loader.load(&example_bytes("file-reader")).unwrap();
    let result = loaded
        .instance
        .execute(&["read".into(), "/etc/passwd".into()])
        .unwrap();
    match result {
        ExecuteResult::Error(e) => {
            assert_eq!(e.code, 1);
            assert!(
                e.message.starts_with("cannot read /etc/passwd"),
                "{}",
                e.message
            );
        }
        other => panic!("expected a user error, got {other:?}"),
    }
    assert_eq!(
        loaded
            .instance
            .execute(&["env".into(), "HOME".into()])
            .unwrap(),
        ExecuteResult::Success("<unset>".into())
    );
}

#[test]
fn stdout_is_captured_per_call() {
    let loader = loader();
    let loaded = loader.load(&example_bytes("file-reader")).unwrap();
    let report = loaded.instance.run(&["print".into(), "one".into()]);
    assert_eq!(
        report.result.unwrap(),
        ExecuteResult::Success("printed".into())
    );
    assert_eq!(report.stdout, b"one\n");
    let report = loaded.instance.run(&["print".into(), "two".into()]);
    assert_eq!(report.stdout, b"two\n");
    assert!(report.fuel_consumed > 0);
}
