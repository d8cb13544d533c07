//! Policy text through `Policy::parse`; an input starting with a NUL byte is instead
//! read as choices for a near-valid policy with mutations (`warden::fuzzing`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| warden::fuzzing::policy_parse(data));
