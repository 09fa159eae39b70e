#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cnpg_fuzzing::postgres::monitoring_queries(data));
