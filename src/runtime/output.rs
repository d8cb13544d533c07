//! Capped in-memory stdout/stderr for plugins.
//!
//! A granted stream is captured, not inherited, so that warden decides what reaches the
//! terminal (escaped, after the audit records are written) and so that a plugin cannot
//! flood it. The cap is the plugin's `max_output`; the write that would pass it traps
//! the guest at once, and the stream remembers that it overflowed so the error is
//! reported as the `stdout`/`stderr` limit rather than as a generic trap.

use bytes::Bytes;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Largest chunk the stream advertises as writable at once.
const WRITE_CHUNK: usize = 64 * 1024;

/// A shared, bounded byte buffer standing in for stdout or stderr.
#[derive(Debug, Clone)]
pub struct CappedOutput {
    capacity: usize,
    buffer: Arc<Mutex<Vec<u8>>>,
    overflowed: Arc<AtomicBool>,
}

impl CappedOutput {
    /// A stream that accepts at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        CappedOutput {
            capacity,
            buffer: Arc::new(Mutex::new(Vec::new())),
            overflowed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether the plugin tried to write past the cap.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
    }

    /// The cap, in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether anything was written (or tried past the cap).
    pub fn was_written(&self) -> bool {
        self.overflowed()
            || !self
                .buffer
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_empty()
    }

    /// Takes what was written so far.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.buffer.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Appends `bytes`, or marks the stream overflowed and refuses them all.
    fn append(&self, bytes: &[u8]) -> Result<(), ()> {
        if self.overflowed() {
            return Err(());
        }
        let mut buffer = self.buffer.lock().unwrap_or_else(PoisonError::into_inner);
        if bytes.len() > self.capacity.saturating_sub(buffer.len()) {
            self.overflowed.store(true, Ordering::Relaxed);
            return Err(());
        }
        buffer.extend_from_slice(bytes);
        Ok(())
    }

    fn overflow_error(&self) -> StreamError {
        StreamError::Trap(wasmtime::format_err!(
            "plugin output exceeded its cap of {} bytes",
            self.capacity
        ))
    }
}

impl IsTerminal for CappedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedOutput {
    async fn ready(&mut self) {}
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CappedOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.append(&bytes).map_err(|()| self.overflow_error())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        if self.overflowed() {
            Err(self.overflow_error())
        } else {
            Ok(WRITE_CHUNK)
        }
    }
}

impl tokio::io::AsyncWrite for CappedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(
            self.append(buf)
                .map(|()| buf.len())
                .map_err(|()| std::io::Error::other("plugin output exceeded its cap")),
        )
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_the_write_that_passes_the_cap_and_stays_refused() {
        let mut out = CappedOutput::new(8);
        assert!(out.write(Bytes::from_static(b"12345")).is_ok());
        assert!(out.write(Bytes::from_static(b"6789")).is_err());
        assert!(out.overflowed());
        assert!(out.check_write().is_err());
        assert!(out.write(Bytes::from_static(b"x")).is_err());
        assert_eq!(out.take(), b"12345");
    }
}
