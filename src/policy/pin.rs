//! `warden policy pin`: add or update a plugin's `sha256` pin in a policy file, in
//! place, keeping every comment and the layout (`POLICY.md` rule 8).
//!
//! The file is edited with `toml_edit`, the format-preserving TOML editor the `toml`
//! crate is built on, so only the pinned value changes: a new `sha256` key goes at the
//! end of the plugin's table, a new `[plugins.NAME]` table at the end of the file. A
//! `sha256` list (a rolling update) gets the new digest appended; a single digest is
//! replaced, or, with `rolling`, turned into a list of the old and the new. The result
//! is validated as a policy before it replaces the file.

use toml_edit::{Array, DocumentMut, Item, Table, Value};

/// What [`pin`] did to one plugin's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinChange {
    /// The digest was already pinned.
    Unchanged,
    /// The table had no pin; it has one now.
    Added,
    /// A single pin was replaced (the old digest is given).
    Replaced(String),
    /// The digest was appended to the list of pins (a rolling update).
    Appended,
    /// The table did not exist; it was added with the pin.
    NewTable,
}

/// Why a policy could not be pinned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    /// The text is not TOML.
    #[error("cannot edit `{file}`: it is not valid TOML ({message})")]
    NotToml {
        /// The policy file.
        file: String,
        /// The parser's message.
        message: String,
    },
    /// A key on the way is not a table, or `sha256` is neither a string nor a list.
    #[error("cannot pin in `{file}`: `{key}` is {found}, not {expected}; fix it by hand")]
    Shape {
        /// The policy file.
        file: String,
        /// The key path.
        key: String,
        /// What was found.
        found: String,
        /// What was expected.
        expected: &'static str,
    },
}

/// Pins `digest` (64 hex digits) for plugin `name` in the policy `text` (named `file`
/// in errors); returns the new text and what changed.
///
/// # Errors
///
/// [`PinError`] when the text is not TOML or has an unexpected shape.
pub fn pin(
    file: &str,
    text: &str,
    name: &str,
    digest: &str,
    rolling: bool,
) -> Result<(String, PinChange), PinError> {
    let mut doc: DocumentMut =
        text.parse()
            .map_err(|e: toml_edit::TomlError| PinError::NotToml {
                file: file.to_owned(),
                message: e.message().to_owned(),
            })?;
    let shape = |key: &str, found: &Item, expected| PinError::Shape {
        file: file.to_owned(),
        key: key.to_owned(),
        found: found.type_name().to_owned(),
        expected,
    };
    let root = doc.as_table_mut();
    if !root.contains_key("plugins") {
        let mut plugins = Table::new();
        plugins.set_implicit(true);
        root.insert("plugins", Item::Table(plugins));
    }
    let plugins_item = &mut root["plugins"];
    let Some(plugins) = plugins_item.as_table_mut() else {
        return Err(shape("plugins", plugins_item, "a table"));
    };
    let key = format!("plugins.{}", super::model::toml_key(name));
    let change = if !plugins.contains_key(name) {
        let mut table = Table::new();
        table.insert("sha256", toml_edit::value(digest));
        plugins.insert(name, Item::Table(table));
        PinChange::NewTable
    } else {
        let table_item = &mut plugins[name];
        let Some(table) = table_item.as_table_like_mut() else {
            return Err(shape(&key, table_item, "a table"));
        };
        match table.get_mut("sha256") {
            None => {
                table.insert("sha256", toml_edit::value(digest));
                PinChange::Added
            }
            Some(item) => match item.as_value_mut() {
                Some(Value::String(s)) if s.value().eq_ignore_ascii_case(digest) => {
                    PinChange::Unchanged
                }
                Some(Value::String(s)) => {
                    let old = s.value().clone();
                    let decor = s.decor().clone();
                    let new = if rolling {
                        let mut list = Array::new();
                        list.push(old.as_str());
                        list.push(digest);
                        Value::Array(list)
                    } else {
                        Value::from(digest)
                    };
                    *item = Item::Value(new);
                    if let Some(v) = item.as_value_mut() {
                        *v.decor_mut() = decor;
                    }
                    if rolling {
                        PinChange::Appended
                    } else {
                        PinChange::Replaced(old)
                    }
                }
                Some(Value::Array(list)) => {
                    let present = list
                        .iter()
                        .any(|v| v.as_str().is_some_and(|s| s.eq_ignore_ascii_case(digest)));
                    if present {
                        PinChange::Unchanged
                    } else {
                        list.push(digest);
                        PinChange::Appended
                    }
                }
                _ => return Err(shape(&format!("{key}.sha256"), item, "a string or a list")),
            },
        }
    };
    Ok((doc.to_string(), change))
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "# the fleet's policy\nversion = 1\n\n[plugins.a]   # the reader\nfs.read = [\"./data\"]  # its data\n\n# trailing note\n";
    const D1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn a_pin_is_added_keeping_every_other_byte() {
        let (text, change) = pin("p.toml", POLICY, "a", D1, false).unwrap();
        assert_eq!(change, PinChange::Added);
        assert_eq!(
            text,
            format!(
                "# the fleet's policy\nversion = 1\n\n[plugins.a]   # the reader\nfs.read = [\"./data\"]  # its data\nsha256 = \"{D1}\"\n\n# trailing note\n"
            )
        );
        let (again, change) = pin("p.toml", &text, "a", D1, false).unwrap();
        assert_eq!(
            (again.as_str(), change),
            (text.as_str(), PinChange::Unchanged)
        );
    }

    #[test]
    fn a_list_gets_the_new_digest_appended_and_rolling_makes_one() {
        let (one, _) = pin("p.toml", POLICY, "a", D1, false).unwrap();
        let (rolled, change) = pin("p.toml", &one, "a", D2, true).unwrap();
        assert_eq!(change, PinChange::Appended);
        assert!(
            rolled.contains(&format!("sha256 = [\"{D1}\", \"{D2}\"]")),
            "{rolled}"
        );
        let (replaced, change) = pin("p.toml", &one, "a", D2, false).unwrap();
        assert_eq!(change, PinChange::Replaced(D1.into()));
        assert!(replaced.contains(&format!("sha256 = \"{D2}\"")));
        assert!(!replaced.contains(D1));
    }

    #[test]
    fn a_missing_table_is_added_at_the_end() {
        let (text, change) = pin("p.toml", POLICY, "new-one", D1, false).unwrap();
        assert_eq!(change, PinChange::NewTable);
        let added = format!("[plugins.new-one]\nsha256 = \"{D1}\"\n\n");
        assert!(text.contains(&added), "{text}");
        // Every other byte is where it was (the trailing comment stays last).
        assert_eq!(text.replacen(&added, "", 1), POLICY);
    }

    #[test]
    fn odd_shapes_are_errors_not_guesses() {
        let e = pin("p.toml", "version = 1\nplugins = 3\n", "a", D1, false).unwrap_err();
        assert!(matches!(e, PinError::Shape { .. }), "{e}");
        let e = pin("p.toml", "version = [\n", "a", D1, false).unwrap_err();
        assert!(matches!(e, PinError::NotToml { .. }), "{e}");
    }

    #[test]
    fn a_pinned_table_keeps_its_isolation_and_confine() {
        let text = "version = 1\n[defaults]\nconfine = \"required\"  # the fleet\n\n[plugins.a]\nisolation = \"in-process\"  # a trusted build tool\nconfine = \"best-effort\"\n";
        let (pinned, change) = pin("p.toml", text, "a", D1, false).unwrap();
        assert_eq!(change, PinChange::Added);
        assert_eq!(
            pinned,
            format!("{text}sha256 = \"{D1}\"\n"),
            "only the pin is added"
        );
        let policy = crate::policy::Policy::parse("p.toml", &pinned).unwrap();
        let a = &policy.plugin("a").unwrap().rules;
        assert_eq!(
            a.isolation.as_ref().map(|e| e.value),
            Some(crate::policy::Isolation::InProcess)
        );
        assert_eq!(
            a.confine.as_ref().map(|e| e.value),
            Some(crate::policy::Confine::BestEffort)
        );
        let (new, _) = pin("p.toml", text, "b", D1, false).unwrap();
        assert!(new.starts_with(text), "{new}");
        assert!(!new[text.len()..].contains("isolation") && !new[text.len()..].contains("confine"));
    }
}
