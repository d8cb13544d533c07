//! Encoding an HTTP answer for `plugin_resume` straight from the response's bytes.
//!
//! The ABI's `HttpResponse.body` is a MessagePack string, so a body that is not UTF-8
//! reaches the plugin decoded lossily (each invalid sequence becomes U+FFFD, as
//! `String::from_utf8_lossy` does). Building that `String` and then serializing it
//! would hold the body three times (bytes, lossy copy, message), and a lossy copy of
//! invalid bytes is up to three times their size. [`http_response`] writes the message
//! in one buffer of exactly its size instead, decoding as it copies, and
//! [`lossy_len`] with [`http_response_len`] say that size before anything is
//! allocated, so an answer that cannot fit the plugin's memory is refused first
//! (`crate::net::effects`).
//!
//! The bytes are exactly those of `rmp_serde::to_vec_named` on the matching
//! [`EffectResult::Http`](super::EffectResult::Http), which the tests check.

use rmp::encode;

/// The bytes of `body` as the plugin gets them: `body` when it is UTF-8, else its
/// lossy decoding, in pieces.
fn lossy_pieces(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();
    body.utf8_chunks().flat_map(|chunk| {
        let invalid = if chunk.invalid().is_empty() {
            &[][..]
        } else {
            REPLACEMENT
        };
        [chunk.valid().as_bytes(), invalid]
    })
}

/// How long `body` is once decoded lossily (what the plugin's string holds).
pub fn lossy_len(body: &[u8]) -> u64 {
    if std::str::from_utf8(body).is_ok() {
        return body.len() as u64;
    }
    lossy_pieces(body).map(|p| p.len() as u64).sum()
}

/// Bytes a MessagePack string header for `len` bytes takes.
fn str_header(len: u64) -> u64 {
    match len {
        0..32 => 1,
        32..256 => 2,
        256..65_536 => 3,
        _ => 5,
    }
}

/// Bytes a MessagePack array header for `len` items takes.
fn array_header(len: u64) -> u64 {
    match len {
        0..16 => 1,
        16..65_536 => 3,
        _ => 5,
    }
}

fn str_field(text: &str) -> u64 {
    str_header(text.len() as u64) + text.len() as u64
}

/// The exact size of [`http_response`]'s message for a body whose lossy decoding is
/// `body_len` bytes ([`lossy_len`]), computed without allocating.
pub fn http_response_len(status: u16, body_len: u64, headers: &[(String, String)]) -> u64 {
    let status_len = match status {
        0..128 => 1,
        128..256 => 2,
        _ => 3,
    };
    let headers_len: u64 = headers
        .iter()
        .map(|(k, v)| array_header(2) + str_field(k) + str_field(v))
        .sum();
    1 + str_field("Http")
        + 1
        + str_field("status")
        + status_len
        + str_field("body")
        + str_header(body_len)
        + body_len
        + str_field("headers")
        + array_header(headers.len() as u64)
        + headers_len
}

/// Why an answer could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the answer is {len} bytes, more than a MessagePack message can hold (4 GiB)")]
pub struct TooLong {
    /// The size it would have had.
    pub len: u64,
}

/// `EffectResult::Http(HttpResponse { status, body, headers })` as MessagePack, with
/// `body` decoded lossily on the way, in one buffer of exactly its size. `body_len` is
/// [`lossy_len`] of `body` (computed once by the caller, which checks it against the
/// plugin's memory first).
///
/// # Errors
///
/// [`TooLong`] when a length does not fit MessagePack's 32 bits, or when `body_len`
/// is not the length of `body`'s lossy decoding (the message would not decode).
pub fn http_response(
    status: u16,
    body: &[u8],
    body_len: u64,
    headers: &[(String, String)],
) -> Result<Vec<u8>, TooLong> {
    let len = http_response_len(status, body_len, headers);
    let too_long = || TooLong { len };
    let body_len = u32::try_from(body_len).map_err(|_| too_long())?;
    let headers_count = u32::try_from(headers.len()).map_err(|_| too_long())?;
    let capacity = usize::try_from(len).map_err(|_| too_long())?;
    let mut out: Vec<u8> = Vec::with_capacity(capacity);
    // Writing to a Vec cannot fail; a string past 4 GiB is refused above.
    type WriteError = encode::ValueWriteError<<Vec<u8> as encode::RmpWrite>::Error>;
    let mut put = || -> Result<(), WriteError> {
        encode::write_map_len(&mut out, 1)?;
        encode::write_str(&mut out, "Http")?;
        encode::write_map_len(&mut out, 3)?;
        encode::write_str(&mut out, "status")?;
        encode::write_uint(&mut out, u64::from(status))?;
        encode::write_str(&mut out, "body")?;
        encode::write_str_len(&mut out, body_len)?;
        let start = out.len();
        if std::str::from_utf8(body).is_ok() {
            out.extend_from_slice(body);
        } else {
            for piece in lossy_pieces(body) {
                out.extend_from_slice(piece);
            }
        }
        if out.len() - start != body_len as usize {
            return Err(encode::ValueWriteError::InvalidDataWrite(
                std::io::ErrorKind::InvalidInput.into(),
            ));
        }
        encode::write_str(&mut out, "headers")?;
        encode::write_array_len(&mut out, headers_count)?;
        for (name, value) in headers {
            encode::write_array_len(&mut out, 2)?;
            encode::write_str(&mut out, name)?;
            encode::write_str(&mut out, value)?;
        }
        Ok(())
    };
    put().map_err(|_| too_long())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{EffectResult, HttpResponse};

    fn by_serde(status: u16, body: &[u8], headers: &[(String, String)]) -> Vec<u8> {
        rmp_serde::to_vec_named(&EffectResult::Http(HttpResponse {
            status,
            body: String::from_utf8_lossy(body).into_owned(),
            headers: headers.to_vec(),
        }))
        .unwrap()
    }

    #[test]
    fn the_message_is_byte_for_byte_what_serde_writes() {
        let long_header = ("x".repeat(300), "y".repeat(70_000));
        let many: Vec<(String, String)> = (0..20).map(|i| (format!("h{i}"), "v".into())).collect();
        type Headers = Vec<(String, String)>;
        let cases: Vec<(u16, Vec<u8>, Headers)> = vec![
            (
                200,
                b"hello".to_vec(),
                vec![("x-test".into(), "yes".into())],
            ),
            (0, Vec::new(), vec![]),
            (127, vec![0xff; 10], vec![]),
            (128, b"a\xffb\xe2\x82c\xf0\x9f\x98".to_vec(), vec![]),
            (302, "é€😀".repeat(20).into_bytes(), vec![long_header]),
            (599, vec![0x80; 70_000], many),
            (65_535, vec![b'x'; 31], vec![]),
            (404, vec![b'x'; 255], vec![]),
        ];
        for (status, body, headers) in cases {
            let text = lossy_len(&body);
            let ours = http_response(status, &body, text, &headers).unwrap();
            assert_eq!(ours, by_serde(status, &body, &headers), "status {status}");
            assert_eq!(ours.len() as u64, http_response_len(status, text, &headers));
            assert_eq!(
                ours.capacity(),
                ours.len(),
                "one buffer of exactly its size"
            );
            // A wrong length is refused, never a message that would not decode.
            assert!(http_response(status, &body, text + 1, &headers).is_err());
        }
    }

    #[test]
    fn invalid_bytes_cost_three_bytes_each_in_the_plugins_string() {
        assert_eq!(lossy_len(b"abc"), 3);
        assert_eq!(lossy_len(&[0xff; 1000]), 3000);
        // One replacement per invalid sequence, as from_utf8_lossy makes.
        let cut = b"\xe2\x82";
        assert_eq!(lossy_len(cut), String::from_utf8_lossy(cut).len() as u64);
    }
}
