#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cnpg_fuzzing::registry::backup_info(data));
