//! Validation of a decoded manifest: the version, and bounds on every size and count.
//!
//! Decoding only proves the bytes have the right shape. A hostile manifest can still
//! carry a megabyte name, ten thousand arguments or a control character in the name
//! that keys its policy table. [`validate_manifest`] bounds all of these with the named
//! constants below and reports the first offending field by its path
//! (`command.subcommands[2].args[0].help`).
//!
//! # Security
//!
//! The command name becomes a policy key, an audit field and terminal output, so it is
//! held to a strict alphabet. Capability strings become host paths and glob patterns,
//! so they may not contain NUL and are bounded in length.

use super::wire::{API_VERSION, ArgSpec, Capabilities, CommandSpec, PluginManifest};

/// Longest command, subcommand or argument name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// Longest free-text field (about, help, version, author, values), in bytes.
pub const MAX_TEXT_BYTES: usize = 4096;
/// Most arguments one command may declare.
pub const MAX_ARGS: usize = 128;
/// Most subcommands one command may declare.
pub const MAX_SUBCOMMANDS: usize = 64;
/// Deepest subcommand nesting (the top command is depth 1).
pub const MAX_COMMAND_DEPTH: usize = 8;
/// Most possible values one argument may list.
pub const MAX_POSSIBLE_VALUES: usize = 256;
/// Most items in one capability list (`fs_read`, `fs_write`, `env_read`, `net`).
pub const MAX_CAPABILITY_ITEMS: usize = 64;
/// Longest declared path or pattern, in bytes.
pub const MAX_PATTERN_BYTES: usize = 4096;

/// A manifest that decoded but breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// `api_version` is not 2.
    #[error(
        "manifest declares api_version {found}, but warden speaks only version {API_VERSION}; rebuild the plugin with sen-plugin-sdk 0.8"
    )]
    ApiVersion {
        /// The version the plugin declared.
        found: u32,
    },
    /// A field breaks a bound or an alphabet.
    #[error("manifest field `{field}` {problem}")]
    Field {
        /// Path of the field, e.g. `command.args[3].help`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
}

fn field_error(field: impl Into<String>, problem: impl Into<String>) -> ValidationError {
    ValidationError::Field {
        field: field.into(),
        problem: problem.into(),
    }
}

/// Checks `manifest` against the ABI version and every bound in this module.
///
/// # Errors
///
/// The first [`ValidationError`] found, naming the field.
pub fn validate_manifest(manifest: &PluginManifest) -> Result<(), ValidationError> {
    if manifest.api_version != API_VERSION {
        return Err(ValidationError::ApiVersion {
            found: manifest.api_version,
        });
    }
    check_command(&manifest.command, "command", 1)?;
    check_capabilities(&manifest.capabilities)
}

/// Whether `name` may be a command name: `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most
/// [`MAX_NAME_BYTES`] bytes.
pub fn is_valid_command_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_NAME_BYTES
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn check_text(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.len() > MAX_TEXT_BYTES {
        return Err(field_error(
            field,
            format!(
                "is {} bytes long; the limit is {MAX_TEXT_BYTES}",
                value.len()
            ),
        ));
    }
    Ok(())
}

fn check_opt_text(field: &str, value: Option<&String>) -> Result<(), ValidationError> {
    value.map_or(Ok(()), |v| check_text(field, v))
}

fn check_count(field: &str, count: usize, max: usize) -> Result<(), ValidationError> {
    if count > max {
        return Err(field_error(
            field,
            format!("has {count} items; the limit is {max}"),
        ));
    }
    Ok(())
}

fn check_command(cmd: &CommandSpec, at: &str, depth: usize) -> Result<(), ValidationError> {
    if depth > MAX_COMMAND_DEPTH {
        return Err(field_error(
            at,
            format!("nests subcommands deeper than {MAX_COMMAND_DEPTH} levels"),
        ));
    }
    if !is_valid_command_name(&cmd.name) {
        return Err(field_error(
            format!("{at}.name"),
            format!(
                "must be 1 to {MAX_NAME_BYTES} characters from A-Z a-z 0-9 _ . -, starting with a letter or digit"
            ),
        ));
    }
    check_text(&format!("{at}.about"), &cmd.about)?;
    check_opt_text(&format!("{at}.version"), cmd.version.as_ref())?;
    check_opt_text(&format!("{at}.author"), cmd.author.as_ref())?;
    check_count(&format!("{at}.args"), cmd.args.len(), MAX_ARGS)?;
    for (i, arg) in cmd.args.iter().enumerate() {
        check_arg(arg, &format!("{at}.args[{i}]"))?;
    }
    check_count(
        &format!("{at}.subcommands"),
        cmd.subcommands.len(),
        MAX_SUBCOMMANDS,
    )?;
    for (i, sub) in cmd.subcommands.iter().enumerate() {
        check_command(sub, &format!("{at}.subcommands[{i}]"), depth + 1)?;
    }
    Ok(())
}

fn check_arg(arg: &ArgSpec, at: &str) -> Result<(), ValidationError> {
    if arg.name.is_empty() || arg.name.len() > MAX_NAME_BYTES {
        return Err(field_error(
            format!("{at}.name"),
            format!("must be 1 to {MAX_NAME_BYTES} bytes long"),
        ));
    }
    check_opt_text(&format!("{at}.long"), arg.long.as_ref())?;
    check_text(&format!("{at}.help"), &arg.help)?;
    check_opt_text(&format!("{at}.value_name"), arg.value_name.as_ref())?;
    check_opt_text(&format!("{at}.default_value"), arg.default_value.as_ref())?;
    if let Some(values) = &arg.possible_values {
        check_count(
            &format!("{at}.possible_values"),
            values.len(),
            MAX_POSSIBLE_VALUES,
        )?;
        for (i, v) in values.iter().enumerate() {
            check_text(&format!("{at}.possible_values[{i}]"), v)?;
        }
    }
    Ok(())
}

fn check_pattern(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(field_error(field, "is empty"));
    }
    if value.len() > MAX_PATTERN_BYTES {
        return Err(field_error(
            field,
            format!(
                "is {} bytes long; the limit is {MAX_PATTERN_BYTES}",
                value.len()
            ),
        ));
    }
    if value.contains('\0') {
        return Err(field_error(field, "contains a NUL byte"));
    }
    Ok(())
}

fn check_capabilities(caps: &Capabilities) -> Result<(), ValidationError> {
    for (list, items) in [("fs_read", &caps.fs_read), ("fs_write", &caps.fs_write)] {
        let at = format!("capabilities.{list}");
        check_count(&at, items.len(), MAX_CAPABILITY_ITEMS)?;
        for (i, p) in items.iter().enumerate() {
            check_pattern(&format!("{at}[{i}].pattern"), &p.pattern)?;
        }
    }
    check_count(
        "capabilities.env_read",
        caps.env_read.len(),
        MAX_CAPABILITY_ITEMS,
    )?;
    for (i, pattern) in caps.env_read.iter().enumerate() {
        let at = format!("capabilities.env_read[{i}]");
        check_pattern(&at, pattern)?;
        if pattern.contains('=') {
            return Err(field_error(at, "contains `=`, which no variable name can"));
        }
    }
    check_count("capabilities.net", caps.net.len(), MAX_CAPABILITY_ITEMS)?;
    for (i, net) in caps.net.iter().enumerate() {
        check_pattern(&format!("capabilities.net[{i}].host"), &net.host)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::wire::PathPattern;

    fn manifest(name: &str) -> PluginManifest {
        PluginManifest {
            api_version: 2,
            command: CommandSpec {
                name: name.into(),
                about: "x".into(),
                version: None,
                author: None,
                args: vec![],
                subcommands: vec![],
            },
            capabilities: Capabilities::default(),
        }
    }

    #[test]
    fn accepts_ordinary_names() {
        for name in ["hello", "file-reader", "my_tool.v2", "X"] {
            assert_eq!(validate_manifest(&manifest(name)), Ok(()), "{name}");
        }
    }

    #[test]
    fn refuses_names_that_could_forge_output() {
        for name in [
            "",
            "a b",
            "evil\nname",
            "-flag",
            "a\u{1b}[31m",
            "ä",
            &"n".repeat(65),
        ] {
            assert!(
                matches!(validate_manifest(&manifest(name)), Err(ValidationError::Field { ref field, .. }) if field == "command.name"),
                "{name:?}"
            );
        }
    }

    #[test]
    fn wrong_version_is_named() {
        let mut m = manifest("x");
        m.api_version = 1;
        assert_eq!(
            validate_manifest(&m),
            Err(ValidationError::ApiVersion { found: 1 })
        );
    }

    #[test]
    fn too_many_items_names_the_list() {
        let mut m = manifest("x");
        m.capabilities.fs_read = vec![
            PathPattern {
                pattern: "./d".into(),
                recursive: false
            };
            MAX_CAPABILITY_ITEMS + 1
        ];
        assert_eq!(
            validate_manifest(&m),
            Err(ValidationError::Field {
                field: "capabilities.fs_read".into(),
                problem: format!("has 65 items; the limit is {MAX_CAPABILITY_ITEMS}"),
            })
        );
    }

    #[test]
    fn nested_field_paths_are_precise() {
        let mut m = manifest("x");
        let mut sub = manifest("sub").command;
        sub.args.push(ArgSpec {
            name: "a".into(),
            long: None,
            short: None,
            required: false,
            help: "h".repeat(MAX_TEXT_BYTES + 1),
            value_name: None,
            default_value: None,
            possible_values: None,
        });
        m.command.subcommands.push(sub);
        assert!(matches!(
            validate_manifest(&m),
            Err(ValidationError::Field { field, .. }) if field == "command.subcommands[0].args[0].help"
        ));
    }
}
