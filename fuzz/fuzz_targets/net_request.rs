//! A plugin's URL, and what its name resolved to, through warden's per-request network
//! checks (`warden::fuzzing::net_request`); any text as an allow or deny entry.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| warden::fuzzing::net_request(data));
