//! Compiles the eBPF objects with Debian's clang-19 and generates:
//! - the libbpf-rs skeletons (`proctor.skel.rs`; `lsm.skel.rs` for the BPF LSM object), and
//! - Rust types for the wire contract from `bpf/intf.h` via bindgen, so the kernel and userspace
//!   layouts come from one header and are checked by both compilers.

use libbpf_cargo::SkeletonBuilder;
use std::env;
use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR set by cargo"));
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let bpf = manifest.join("bpf");
    let clang = env::var("PROCTOR_CLANG").unwrap_or_else(|_| "clang-19".to_string());

    for entry in walk(&bpf) {
        println!("cargo:rerun-if-changed={}", entry.display());
    }
    println!("cargo:rerun-if-env-changed=PROCTOR_CLANG");

    // Two objects: the BPF LSM programs apart, so the main object still loads on kernels that
    // refuse them (userspace loads lsm.bpf.c only where the kernel allows it).
    for (src, skel) in [
        ("proctor.bpf.c", "proctor.skel.rs"),
        ("lsm.bpf.c", "lsm.skel.rs"),
    ] {
        SkeletonBuilder::new()
            .source(bpf.join(src))
            .clang(&clang)
            .clang_args([
                format!("-I{}", bpf.display()),
                "-Wall".to_string(),
                "-Wno-unused-function".to_string(),
                "-O2".to_string(),
            ])
            .build_and_generate(out.join(skel))
            .unwrap_or_else(|e| {
                panic!("compiling bpf/{src} with {clang} failed (apt-get install clang-19 libelf-dev zlib1g-dev): {e:#}")
            });
    }

    bindgen::Builder::default()
        .header(bpf.join("intf.h").to_string_lossy())
        .allowlist_type("pr_.*")
        .allowlist_var("PR_.*")
        .derive_default(true)
        .derive_debug(false)
        .layout_tests(true)
        .generate()
        .expect("bindgen on bpf/intf.h")
        .write_to_file(out.join("intf.rs"))
        .expect("write intf.rs");
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                files.extend(walk(&p));
            } else {
                files.push(p);
            }
        }
    }
    files
}
