//! Audit webhook bodies and audit log files.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vigil_ingest::audit::decode_webhook(data);
    let _ = vigil_ingest::audit::decode_lines(data);
});
