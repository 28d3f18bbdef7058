//! Audit webhook bodies and audit log files.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_ingest::Namespaces;

fuzz_target!(|data: &[u8]| {
    let _ = vigil_ingest::audit::decode_webhook(data, &Namespaces::Any);
    let _ = vigil_ingest::audit::decode_lines(data);
});
