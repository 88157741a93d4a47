//! Host facts from a real filesystem: interpreters are known by device+inode, so a hard link
//! under another name is still the interpreter; a byte copy is not (and that is documented).

mod common;

use common::*;
use proctor_detect::{
    parse_resolv_conf, Engine, EngineConfig, HostFacts, Policy, DEFAULT_POLICY_TOML,
};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("proctor-detect-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(p.join("bin")).expect("scratch dir");
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_hard_link_of_an_interpreter_is_that_interpreter_and_a_copy_is_not() {
    let s = Scratch::new("host");
    let bash = s.0.join("bin/bash");
    std::fs::write(&bash, b"#!fake bash\n").unwrap();
    let link = s.0.join("innocent");
    std::fs::hard_link(&bash, &link).unwrap();
    let copy = s.0.join("copied");
    std::fs::copy(&bash, &copy).unwrap();
    std::os::unix::fs::symlink(&bash, s.0.join("bin/sh")).unwrap();

    let text = DEFAULT_POLICY_TOML.replace(
        "dirs = [\"/bin\", \"/usr/bin\", \"/usr/local/bin\", \"/sbin\", \"/usr/sbin\"]",
        &format!("dirs = [\"{}\"]", s.0.join("bin").display()),
    );
    assert_ne!(text, DEFAULT_POLICY_TOML, "the dirs line was replaced");
    let policy = Policy::from_toml_str(&text, "p.toml").unwrap();
    let facts = HostFacts::discover(&policy);
    let id = |p: &PathBuf| {
        let m = std::fs::metadata(p).unwrap();
        (m.dev(), m.ino())
    };
    assert_eq!(
        facts.interpreters.get(&id(&bash)).map(String::as_str),
        Some("bash"),
        "{facts:?}"
    );
    assert_eq!(
        facts.interpreters.len(),
        1,
        "the symlink names the same file: {facts:?}"
    );

    let mut e = Engine::with_host(
        policy,
        EngineConfig {
            baseline_ns: BASELINE,
            ..Default::default()
        },
        facts,
    );
    e.observe(&exec(
        0,
        AGENT,
        1,
        "/usr/bin/python3.11",
        &["python3"],
        (5, 1),
    ));
    e.tick(BASELINE);
    let t = BASELINE + S;
    let linked = feed(
        &mut e,
        &[
            fork(t, AGENT, 300),
            exec(
                t + 1,
                300,
                AGENT,
                link.to_str().unwrap(),
                &["innocent"],
                id(&link),
            ),
        ],
    );
    let kinds = kinds(&linked);
    assert!(kinds.iter().any(|k| k == "LLM_AGENT_HIJACK"), "{kinds:?}");
    let copied = feed(
        &mut e,
        &[
            fork(t + 2, AGENT, 301),
            exec(
                t + 3,
                301,
                AGENT,
                copy.to_str().unwrap(),
                &["copied"],
                id(&copy),
            ),
        ],
    );
    let kinds = common::kinds(&copied);
    assert!(
        !kinds.iter().any(|k| k == "LLM_AGENT_HIJACK"),
        "a byte copy is a new file: {kinds:?}"
    );
    assert!(
        kinds.iter().any(|k| k == "STRUCTURAL_DRIFT"),
        "but a new binary: {kinds:?}"
    );
}

#[test]
fn resolv_conf_nameservers_are_read() {
    let text = "# comment\nsearch example.com\nnameserver 127.0.0.53\nnameserver ::1\nnameserver bogus\noptions edns0\n";
    let v = parse_resolv_conf(text);
    assert_eq!(
        v,
        vec![
            "127.0.0.53".parse::<std::net::IpAddr>().unwrap(),
            "::1".parse().unwrap()
        ]
    );
}
