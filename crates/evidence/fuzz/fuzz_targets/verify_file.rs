//! The verifier judges any bytes, as a certificate and as an audit log, without panicking, and
//! never calls random bytes valid.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

struct Ctx {
    dir: std::path::PathBuf,
    key: proctor_evidence::Verifier,
}

fn ctx() -> &'static Ctx {
    static C: OnceLock<Ctx> = OnceLock::new();
    C.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("proctor-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let key = proctor_evidence::Signer::generate().expect("key").verifier().clone();
        Ctx { dir, key }
    })
}

fuzz_target!(|data: &[u8]| {
    let c = ctx();
    for name in ["r-00000001.cal", "audit.jsonl"] {
        let p = c.dir.join(name);
        std::fs::write(&p, data).expect("write");
        let r = proctor_evidence::verify_paths(&[p], Some(&c.key));
        assert_ne!(r.status, proctor_evidence::Status::Valid);
    }
});
