//! Canonical JSON is a fixed point: canonicalising the canonical text changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let once = proctor_evidence::canonical_json(&v);
        let back: serde_json::Value = serde_json::from_slice(&once).expect("canonical JSON parses");
        assert_eq!(proctor_evidence::canonical_json(&back), once);
    }
});
