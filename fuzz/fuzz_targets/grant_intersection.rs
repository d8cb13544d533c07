//! Declared capabilities against a policy over a real directory tree, through
//! `grant::decide` and the sandbox, checked against an independent oracle
//! (`warden::fuzzing`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| warden::fuzzing::grant_intersection(data));
