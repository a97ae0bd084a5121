//! libFuzzer binary for `ricochet_fuzz::relay_client_frame` (built by scripts/fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ricochet_fuzz::relay_client_frame(data));
