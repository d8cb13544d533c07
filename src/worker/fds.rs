//! Passing descriptors to a worker: one message of one byte with `SCM_RIGHTS`, sent
//! before anything else on the channel.
//!
//! The granted directories travel as the very descriptors the parent opened and
//! checked, so the worker never resolves a path (and could not: Landlock lets it open
//! nothing but what is beneath them).

use super::wire::MAX_FDS;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Sends `fds` (at most [`MAX_FDS`]).
///
/// # Errors
///
/// More than [`MAX_FDS`] descriptors, or `sendmsg` failing.
pub fn send(channel: impl AsFd, fds: &[BorrowedFd<'_>]) -> std::io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(std::io::Error::other(format!(
            "{} directories and streams to pass to the worker; at most {MAX_FDS} can be",
            fds.len()
        )));
    }
    let mut space =
        vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(fds.len().max(1)))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(std::io::Error::other(
            "cannot fit the descriptors in one message",
        ));
    }
    let sent = rustix::net::sendmsg(
        channel,
        &[IoSlice::new(&[1])],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    if sent != 1 {
        return Err(std::io::Error::other(
            "the descriptor message was not sent whole",
        ));
    }
    Ok(())
}

/// Receives the descriptors [`send`] sent (close-on-exec).
///
/// # Errors
///
/// End of stream, a truncated control message, or `recvmsg` failing.
pub fn recv(channel: impl AsFd) -> std::io::Result<Vec<OwnedFd>> {
    let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    let got = rustix::net::recvmsg(
        channel,
        &mut [IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    if got.bytes != 1 {
        return Err(std::io::Error::other(
            "the channel closed before the descriptors came",
        ));
    }
    if got.flags.contains(rustix::net::ReturnFlags::CTRUNC) {
        return Err(std::io::Error::other("the descriptors were cut short"));
    }
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    Ok(fds)
}
