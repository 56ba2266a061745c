#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postel_fuzz::check_auth(data));
