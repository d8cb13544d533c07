//! Network effects: how a plugin reaches the network, only through warden, only
//! where the policy says (`POLICY.md` rule 7).
//!
//! WASI preview 1 has no sockets. A plugin asks for a request by returning an
//! `Effect` (`HttpGet`, `HttpPost`, `Sleep`); warden performs it and resumes the plugin
//! with the answer (`plugin_resume`).
//!
//! - [`pattern`]: `scheme://host[:port]` allow entries, deny entries and declared
//!   endpoints, normalized as URLs are.
//! - [`address`]: which addresses are globally routable.
//! - [`gate`]: the per-request checks, URL then addresses.
//! - `client`: one name lookup, then ureq pinned to the checked address (internal).
//! - [`effects`]: the effect loop's performer and the `effect` record.
//!
//! # Security
//!
//! A plugin's URL is hostile input aimed at whatever the host can reach. Declarations
//! are granted whole by [`crate::grant`]; every request is then checked on its own,
//! after WHATWG normalization, and the address warden connects to is one it checked
//! (DNS rebinding gains nothing). No redirect is followed, no proxy is used, and
//! every request is bounded in count, size and time, never past the call's deadline.

pub mod address;
// The HTTP client is warden's own business: its requests carry ureq types (pinned
// exactly, and free to change), and it sends wherever it is told, unchecked.
pub(crate) mod client;
pub mod effects;
pub mod gate;
pub mod pattern;

pub use client::Tls;
pub use effects::{EffectOutcome, EffectRecord};
pub use gate::{NetAccess, NetGrant};
pub use pattern::{Endpoint, HostPattern, PatternError, Ports, Scheme};
