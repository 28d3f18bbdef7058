//! OTLP protobuf bodies: the first byte picks the signal, the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_ingest::Namespaces;
use vigil_ingest::otlp::{Encoding, Signal, decode};

fuzz_target!(|data: &[u8]| {
    let Some((first, body)) = data.split_first() else { return };
    let signal = [Signal::Metrics, Signal::Logs, Signal::Traces][usize::from(*first) % 3];
    if let Ok(decoded) = decode(signal, Encoding::Protobuf, body, 1, &Namespaces::Any) {
        let _ = decoded.error_message();
    }
});
