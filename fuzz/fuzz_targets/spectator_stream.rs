//! libFuzzer binary for `ricochet_fuzz::spectator_stream` (built by scripts/fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ricochet_fuzz::spectator_stream(data));
