#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cnpg_fuzzing::packages::debian_release(data));
