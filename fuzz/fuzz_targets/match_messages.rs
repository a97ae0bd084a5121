//! libFuzzer binary for `ricochet_fuzz::match_messages` (built by scripts/fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ricochet_fuzz::match_messages(data));
