//! Performing one checked request: warden's own name lookup, then ureq connecting
//! only to the address warden checked.
//!
//! Why ureq: a small, maintained, blocking HTTP/1.1 client (warden's effect loop is
//! synchronous, between two guest calls), with rustls for TLS, no connection pool
//! shared between requests, and a pluggable resolver. warden resolves the name
//! itself ([`resolve`]; a loopback name such as `localhost` without any lookup),
//! checks every address ([`super::gate`]), and builds for each request an agent whose
//! resolver answers with the one checked address ([`PinnedResolver`]): ureq never
//! looks the name up again.
//!
//! # Security
//!
//! The agent follows no redirect (the 3xx goes back to the plugin, whose next request
//! is checked like any other), ignores the proxy variables of the environment (a
//! proxy would be a second destination nobody checked), treats no status as an
//! error, and has one global timeout that covers connecting, TLS, sending and
//! reading the whole body. The headers that steer the connection are warden's
//! ([`is_connection_header`]). The body is read up to a bound the caller gives
//! (`max_response`, or less when the plugin's memory could not hold more) and no
//! further, into a buffer never larger than that bound; a `Content-Length` past it
//! is refused before the body is read. Nothing is decompressed.

use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use ureq::Agent;
use ureq::config::Config;
use ureq::http;
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

/// What the `User-Agent` of warden's requests says, unless the plugin sets one.
pub const USER_AGENT: &str = concat!("warden/", env!("CARGO_PKG_VERSION"));

/// Whether a request header is one that steers the connection, which only warden
/// sets (`POLICY.md` rule 7): `Host`, `Connection`, `Transfer-Encoding`,
/// `Content-Length`, `Upgrade`, `Proxy-*`, and the other hop-by-hop headers (`TE`,
/// `Trailer`, `Keep-Alive`, `Expect`).
pub fn is_connection_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(
        name.as_str(),
        "host"
            | "connection"
            | "transfer-encoding"
            | "content-length"
            | "upgrade"
            | "te"
            | "trailer"
            | "keep-alive"
            | "expect"
    ) || name.starts_with("proxy-")
}

/// Why a name did not resolve ([`resolve`]). The message goes to the plugin and the
/// `effect` record.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The lookup thread could not be started.
    #[error("cannot start the name lookup: {source}")]
    Spawn {
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The name resolved, to nothing.
    #[error("`{host}` resolves to no address")]
    NoAddress {
        /// The name.
        host: String,
    },
    /// The resolver said no.
    #[error("cannot resolve `{host}`: {source}")]
    Lookup {
        /// The name.
        host: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// The lookup took longer than the time left.
    #[error("resolving `{host}` took longer than {}", humantime::format_duration(*.timeout))]
    Timeout {
        /// The name.
        host: String,
        /// The time it had.
        timeout: Duration,
    },
}

/// Resolves `host` once, within `timeout`. A loopback name (`localhost`, a name under
/// it) is not looked up: it is `127.0.0.1` and `::1` (RFC 6761), whatever a resolver or
/// `/etc/hosts` would say.
///
/// # Errors
///
/// A [`ResolveError`] when the name does not resolve, resolves to nothing, or the
/// lookup takes longer than `timeout` (the lookup thread is left to finish on its own).
pub fn resolve(host: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>, ResolveError> {
    if super::address::is_loopback_name(host) {
        return Ok(super::address::loopback_addresses(port));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let name = host.to_owned();
    std::thread::Builder::new()
        .name("warden-resolve".into())
        .spawn(move || {
            let answer = (name.as_str(), port)
                .to_socket_addrs()
                .map(|addrs| addrs.collect::<Vec<_>>());
            let _ = tx.send(answer);
        })
        .map_err(|source| ResolveError::Spawn { source })?;
    let host = host.to_owned();
    match rx.recv_timeout(timeout) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err(ResolveError::NoAddress { host }),
        Ok(Err(source)) => Err(ResolveError::Lookup { host, source }),
        Err(_) => Err(ResolveError::Timeout { host, timeout }),
    }
}

/// A resolver that answers every lookup with the one address warden checked.
#[derive(Debug)]
struct PinnedResolver(SocketAddr);

impl Resolver for PinnedResolver {
    fn resolve(
        &self,
        _uri: &http::Uri,
        _config: &Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let mut addrs = self.empty();
        addrs.push(self.0);
        Ok(addrs)
    }
}

/// The roots of the system's trust store, loaded once per process.
fn system_roots() -> &'static [Certificate<'static>] {
    static ROOTS: OnceLock<Vec<Certificate<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!(error = %e, "a certificate of the system's trust store could not be loaded");
        }
        found
            .certs
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect()
    })
}

/// Why the policy's TLS roots (`net.tls_roots`) cannot be used: every HTTPS request of
/// the sandbox fails with this message.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TlsRootError {
    /// A root file cannot be read.
    #[error("cannot read the TLS root `{}` (net.tls_roots): {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: Arc<std::io::Error>,
    },
    /// A root file holds no PEM certificate.
    #[error("the TLS root `{}` (net.tls_roots) holds no PEM certificate", .path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
}

/// The TLS settings of one sandbox: the system's roots plus the policy's extra ones
/// (`net.tls_roots`), read at the first HTTPS request.
#[derive(Debug, Default)]
pub struct Tls {
    extra: Vec<PathBuf>,
    config: OnceLock<Result<TlsConfig, TlsRootError>>,
}

impl Clone for Tls {
    fn clone(&self) -> Self {
        Tls::new(self.extra.clone())
    }
}

impl Tls {
    /// Settings trusting the system's roots and the PEM certificates in `extra`.
    pub fn new(extra: Vec<PathBuf>) -> Tls {
        Tls {
            extra,
            config: OnceLock::new(),
        }
    }

    /// The settings, made at first use.
    ///
    /// # Errors
    ///
    /// A [`TlsRootError`] naming the root file that cannot be read or holds no
    /// certificate.
    pub(crate) fn config(&self) -> Result<&TlsConfig, TlsRootError> {
        self.config
            .get_or_init(|| {
                let mut roots: Vec<Certificate<'static>> = system_roots().to_vec();
                for path in &self.extra {
                    let pem = std::fs::read(path).map_err(|e| TlsRootError::Read {
                        path: path.clone(),
                        source: Arc::new(e),
                    })?;
                    let before = roots.len();
                    for item in ureq::tls::parse_pem(&pem) {
                        if let Ok(ureq::tls::PemItem::Certificate(c)) = item {
                            roots.push(c);
                        }
                    }
                    if roots.len() == before {
                        return Err(TlsRootError::NoCertificate { path: path.clone() });
                    }
                }
                // The provider is named here, not taken from a process-wide default an
                // embedding application may have set.
                Ok(TlsConfig::builder()
                    .root_certs(RootCerts::Specific(Arc::new(roots)))
                    .unversioned_rustls_crypto_provider(Arc::new(
                        rustls::crypto::ring::default_provider(),
                    ))
                    .build())
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// One request, as warden sends it.
pub struct Outgoing<'a> {
    /// `GET` or `POST`.
    pub method: http::Method,
    /// The checked, normalized URL.
    pub url: &'a url::Url,
    /// The plugin's headers, minus those that steer the connection.
    pub headers: Vec<(&'a str, &'a str)>,
    /// The body (POST).
    pub body: Option<&'a [u8]>,
}

/// What came back.
#[derive(Debug)]
pub struct Incoming {
    /// The status code.
    pub status: u16,
    /// The response headers (values decoded lossily).
    pub headers: Vec<(String, String)>,
    /// The body, at most `max_response` bytes.
    pub body: Vec<u8>,
}

/// Why a request failed after it passed its checks.
#[derive(Debug)]
pub enum Failure {
    /// The body is larger than the most [`send`] was told to take: by its
    /// `Content-Length` (`Some`, nothing of the body was read), or by what came
    /// (`None`, reading stopped at the bound).
    TooLarge {
        /// The `Content-Length` the server announced, when that was the tell.
        announced: Option<u64>,
    },
    /// The global timeout ran out.
    Timeout,
    /// Anything else (connection refused, TLS, a malformed response), in words.
    Other(String),
}

/// Sends `request` to `address` (and nowhere else), within `timeout`, taking at most
/// `max_body` bytes of body.
///
/// A `Content-Length` over `max_body` is refused before a byte of the body is read
/// (the connection is dropped); otherwise the body is read into one buffer that never
/// holds more than `max_body` bytes, so a response costs the host about `max_body`,
/// whatever the server sends.
///
/// # Errors
///
/// [`Failure`].
pub fn send(
    request: &Outgoing<'_>,
    address: SocketAddr,
    timeout: Duration,
    max_body: u64,
    tls: &Tls,
) -> Result<Incoming, Failure> {
    let mut config = Agent::config_builder()
        .max_redirects(0)
        .max_redirects_will_error(false)
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(timeout))
        .user_agent(USER_AGENT);
    if request.url.scheme() == "https" {
        let tls = tls.config().map_err(|e| Failure::Other(e.to_string()))?;
        config = config.tls_config(tls.clone());
    }
    let agent = Agent::with_parts(
        config.build(),
        DefaultConnector::new(),
        PinnedResolver(address),
    );
    let mut builder = http::Request::builder()
        .method(request.method.clone())
        .uri(request.url.as_str());
    for (name, value) in &request.headers {
        builder = builder.header(*name, *value);
    }
    let outcome = match request.body {
        Some(body) => builder.body(body).map(|r| agent.run(r)),
        None => builder.body(&[][..]).map(|r| agent.run(r)),
    };
    let mut response = outcome
        .map_err(|e| Failure::Other(format!("the request is not valid HTTP: {e}")))?
        .map_err(classify)?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let announced = response.body().content_length();
    if let Some(length) = announced
        && length > max_body
    {
        return Err(Failure::TooLarge {
            announced: Some(length),
        });
    }
    let body = read_body(
        &mut response.body_mut().as_reader(),
        max_body,
        announced.unwrap_or(0),
    )?;
    Ok(Incoming {
        status,
        headers,
        body,
    })
}

/// First capacity of a body buffer of unknown length, and the size of each read.
const CHUNK: usize = 64 * 1024;

/// Reads `reader` to its end into a buffer whose capacity never passes `max` bytes:
/// `hint` (a `Content-Length` already checked against `max`) sizes it up front, and it
/// otherwise doubles up to `max`, never past it.
///
/// # Errors
///
/// [`Failure::TooLarge`] at the first byte past `max`; the reader's error, classified.
pub fn read_body(reader: &mut dyn Read, max: u64, hint: u64) -> Result<Vec<u8>, Failure> {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let too_large = || Failure::TooLarge { announced: None };
    let mut body: Vec<u8> = Vec::new();
    body.try_reserve_exact(usize::try_from(hint).unwrap_or(max).min(max))
        .map_err(|e| Failure::Other(format!("cannot hold the response body: {e}")))?;
    let mut chunk = vec![0u8; CHUNK.min(max.saturating_add(1)).max(1)];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(body),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(classify_io(&e)),
        };
        let len = body.len().checked_add(n).ok_or_else(too_large)?;
        if len > max {
            return Err(too_large());
        }
        if len > body.capacity() {
            let grown = body
                .capacity()
                .saturating_mul(2)
                .max(CHUNK)
                .max(len)
                .min(max);
            body.try_reserve_exact(grown - body.len())
                .map_err(|e| Failure::Other(format!("cannot hold the response body: {e}")))?;
        }
        body.extend_from_slice(&chunk[..n]);
    }
}

fn classify(e: ureq::Error) -> Failure {
    match e {
        ureq::Error::Timeout(_) => Failure::Timeout,
        ureq::Error::Io(io) => classify_io(&io),
        other => Failure::Other(other.to_string()),
    }
}

fn classify_io(e: &std::io::Error) -> Failure {
    if matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    ) || e.to_string().contains("timeout")
    {
        Failure::Timeout
    } else {
        Failure::Other(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback name is never looked up: with no time left for a lookup it still
    /// resolves, to loopback and nothing else, whatever `/etc/hosts` says.
    #[test]
    fn a_loopback_name_is_never_looked_up() {
        for name in ["localhost", "api.localhost"] {
            let addrs = resolve(name, 8000, Duration::ZERO).unwrap();
            assert_eq!(addrs, super::super::address::loopback_addresses(8000));
        }
    }
}
