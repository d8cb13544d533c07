//! The sen-plugin ABI v2: wire types, strict decoding, validation and checked guest
//! memory reads.
//!
//! Everything a plugin hands back crosses this module before warden acts on it:
//! [`memory`] turns a packed `(ptr, len)` into a bounds-checked slice, [`decode`](mod@decode) turns
//! the slice into exactly one value, and [`validate`] bounds every size and count in a
//! manifest. The contract is `ABI.md`.
//!
//! # Security
//!
//! All input here is guest-controlled. No function in this module panics or allocates
//! according to a guest-supplied length.

pub mod decode;
pub mod encode;
pub mod memory;
pub mod validate;
pub mod wire;

pub use decode::{DecodeError, MAX_NESTING_DEPTH, decode};
pub use memory::{AbiViolation, GuestRegion, check_alloc, read_region};
pub use validate::{ValidationError, validate_manifest};
pub use wire::*;

/// Decodes and validates a manifest in one step, as every loader path must.
///
/// # Errors
///
/// [`ManifestError`] when the bytes do not decode or the manifest breaks a rule.
pub fn parse_manifest(bytes: &[u8]) -> Result<PluginManifest, ManifestError> {
    let manifest: PluginManifest = decode(bytes, "manifest")?;
    validate_manifest(&manifest)?;
    Ok(manifest)
}

/// Why manifest bytes were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The bytes are not one MessagePack manifest.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The manifest decoded but breaks a rule.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}
