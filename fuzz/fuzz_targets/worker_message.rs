//! Bytes a worker whose guest escaped wasm might send, through the parent's reader
//! and checks (`warden::fuzzing::worker_message`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| warden::fuzzing::worker_message(data));
