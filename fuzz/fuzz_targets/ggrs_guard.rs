//! libFuzzer binary for `ricochet_fuzz::ggrs_guard` (built by scripts/fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ricochet_fuzz::ggrs_guard(data));
