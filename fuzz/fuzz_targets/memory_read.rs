//! An arbitrary memory size and packed `(ptr, len)` through the checked guest read.
#![no_main]
libfuzzer_sys::fuzz_target!(|input: (u32, i64)| warden::fuzzing::memory_read(input.0, input.1));
