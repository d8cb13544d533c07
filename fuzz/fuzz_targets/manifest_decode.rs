//! Arbitrary bytes through manifest decoding and validation (`warden::fuzzing`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| warden::fuzzing::manifest_decode(data));
