//! Strict MessagePack decoding of guest messages.
//!
//! `rmp_serde::from_slice` is too lenient for hostile input: it ignores trailing bytes
//! and allows 1024 levels of nesting. [`decode`] reads exactly one value, bounds the
//! nesting depth, and refuses anything left over, so a message means one thing only.
//!
//! # Security
//!
//! The input is guest-controlled. Length prefixes inside it are never used to size an
//! allocation up front: strings and byte arrays are copied through a reader that stops
//! at the end of the input, so a `str32` claiming 4 GiB costs nothing but an error.

use serde::de::DeserializeOwned;
use std::io::Cursor;

/// Deepest MessagePack nesting accepted in any guest message.
///
/// A manifest with the deepest subcommand tree [`super::validate`] allows nests about
/// 2 levels per subcommand plus 6; 64 leaves room and stops recursion bombs long before
/// they can exhaust the host stack.
pub const MAX_NESTING_DEPTH: usize = 64;

/// Why a guest message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not the MessagePack encoding of the expected type.
    #[error("not a valid MessagePack {what}: {detail}")]
    Malformed {
        /// The type being decoded (`manifest`, `execute result`).
        what: &'static str,
        /// The decoder's own message.
        detail: String,
    },
    /// The value nests deeper than [`MAX_NESTING_DEPTH`].
    #[error("MessagePack {what} nests deeper than {MAX_NESTING_DEPTH} levels")]
    TooDeep {
        /// The type being decoded.
        what: &'static str,
    },
    /// A complete value was followed by more bytes.
    #[error(
        "{trailing} trailing bytes after the MessagePack {what} (the message must be exactly one value)"
    )]
    TrailingBytes {
        /// The type being decoded.
        what: &'static str,
        /// How many bytes were left over.
        trailing: usize,
    },
}

/// Decodes exactly one `T` from `bytes`, named `what` in errors.
///
/// Accepts both the named-map and the array encodings of structs.
///
/// # Errors
///
/// [`DecodeError`] when the bytes are malformed, nest deeper than
/// [`MAX_NESTING_DEPTH`], or carry bytes after the value.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T, DecodeError> {
    let mut de = rmp_serde::Deserializer::new(Cursor::new(bytes));
    de.set_max_depth(MAX_NESTING_DEPTH);
    let value = T::deserialize(&mut de).map_err(|e| match e {
        rmp_serde::decode::Error::DepthLimitExceeded => DecodeError::TooDeep { what },
        other => DecodeError::Malformed {
            what,
            detail: other.to_string(),
        },
    })?;
    let consumed = usize::try_from(de.position()).unwrap_or(usize::MAX);
    let trailing = bytes.len().saturating_sub(consumed);
    if trailing > 0 {
        return Err(DecodeError::TrailingBytes { what, trailing });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::wire::{ExecuteError, ExecuteResult, PathPattern};

    #[test]
    fn named_and_array_forms_decode_alike() {
        let value = ExecuteResult::Error(ExecuteError {
            code: 1,
            message: "nope".into(),
        });
        let named = rmp_serde::to_vec_named(&value).unwrap();
        let array = rmp_serde::to_vec(&value).unwrap();
        assert_eq!(decode::<ExecuteResult>(&named, "r").unwrap(), value);
        assert_eq!(decode::<ExecuteResult>(&array, "r").unwrap(), value);
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = rmp_serde::to_vec_named(&ExecuteResult::Success("hi".into())).unwrap();
        bytes.extend_from_slice(&[0xc0, 0xc0]);
        assert_eq!(
            decode::<ExecuteResult>(&bytes, "execute result"),
            Err(DecodeError::TrailingBytes {
                what: "execute result",
                trailing: 2
            })
        );
    }

    #[test]
    fn missing_defaults_fill_in() {
        // {"pattern": "./data"} without `recursive`.
        let bytes = rmp_serde::to_vec_named(&serde_json::json!({"pattern": "./data"})).unwrap();
        let p: PathPattern = decode(&bytes, "path").unwrap();
        assert_eq!(p.pattern, "./data");
        assert!(!p.recursive);
    }

    #[test]
    fn deep_nesting_is_refused_without_recursing() {
        // {"zz": [[[[...]]]]}: an unknown field (which serde skips by walking it)
        // holding 100,000 nested one-element arrays.
        let mut bytes = vec![0x81, 0xa2, b'z', b'z'];
        bytes.extend(std::iter::repeat_n(0x91u8, 100_000));
        bytes.push(0xc0);
        assert_eq!(
            decode::<crate::abi::PluginManifest>(&bytes, "manifest"),
            Err(DecodeError::TooDeep { what: "manifest" })
        );
    }

    #[test]
    fn huge_length_prefix_is_an_error_not_an_allocation() {
        // fixmap(1) { str32 claiming 0xFFFF_FFF0 bytes ... }
        let bytes = [0x81, 0xdb, 0xff, 0xff, 0xff, 0xf0, b'a'];
        assert!(matches!(
            decode::<ExecuteResult>(&bytes, "execute result"),
            Err(DecodeError::Malformed { .. })
        ));
    }
}
