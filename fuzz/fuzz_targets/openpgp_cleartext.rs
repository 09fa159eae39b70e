#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cnpg_fuzzing::packages::openpgp_cleartext(data));
