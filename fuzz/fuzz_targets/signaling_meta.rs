//! libFuzzer binary for `ricochet_fuzz::signaling_meta` (built by scripts/fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ricochet_fuzz::signaling_meta(data));
