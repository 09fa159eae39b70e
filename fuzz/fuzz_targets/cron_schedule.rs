#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cnpg_fuzzing::api::cron_schedule(data));
