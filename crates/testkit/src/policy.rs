//! Test policies from typed values: the built-in policy parsed into a TOML table, the values a
//! test needs set by section and key, then serialized and validated as `proctor` would. No test
//! edits the shipped file's text, so a reworded comment or a reordered key there breaks nothing.

use proctor_detect::{Policy, DEFAULT_POLICY_TOML};
use std::path::{Path, PathBuf};
use toml::{Table, Value};

/// An `[enforce]` verdict: detect only, refuse in the kernel, or hold for an approver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Alert,
    Block,
    Ask,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Alert => "alert",
            Verdict::Block => "block",
            Verdict::Ask => "ask",
        }
    }
}

/// The built-in policy with typed changes. Every setter names a key the built-in policy has
/// (a test must not silently run on a default), and [`PolicyBuilder::write`] validates the
/// result with the same parser `proctor run --policy` uses.
#[derive(Debug, Clone)]
pub struct PolicyBuilder {
    doc: Table,
}

impl Default for PolicyBuilder {
    fn default() -> Self {
        PolicyBuilder::new()
    }
}

impl PolicyBuilder {
    /// The built-in policy's values.
    pub fn new() -> PolicyBuilder {
        let doc = DEFAULT_POLICY_TOML
            .parse::<Table>()
            .expect("the built-in policy is valid TOML");
        PolicyBuilder { doc }
    }

    /// Set `[section].key`, which the built-in policy must have, to `value`.
    pub fn set(mut self, section: &str, key: &str, value: impl Into<Value>) -> PolicyBuilder {
        let table = self
            .doc
            .get_mut(section)
            .and_then(Value::as_table_mut)
            .unwrap_or_else(|| panic!("the built-in policy has no [{section}] section"));
        let slot = table
            .get_mut(key)
            .unwrap_or_else(|| panic!("the built-in policy has no [{section}].{key}"));
        *slot = value.into();
        self
    }

    /// `[enforce].network`.
    pub fn network(self, v: Verdict) -> PolicyBuilder {
        self.set("enforce", "network", v.as_str())
    }

    /// `[enforce].ptrace` (alert or block).
    pub fn ptrace(self, v: Verdict) -> PolicyBuilder {
        self.set("enforce", "ptrace", v.as_str())
    }

    /// `[enforce].files` (alert or block).
    pub fn files(self, v: Verdict) -> PolicyBuilder {
        self.set("enforce", "files", v.as_str())
    }

    /// `[enforce].exec`: binaries refused by identity.
    pub fn block_exec<P: AsRef<Path>>(self, paths: impl IntoIterator<Item = P>) -> PolicyBuilder {
        self.set("enforce", "exec", path_list(paths))
    }

    /// `[enforce].ask_exec`: binaries whose exec is held for an approver.
    pub fn ask_exec<P: AsRef<Path>>(self, paths: impl IntoIterator<Item = P>) -> PolicyBuilder {
        self.set("enforce", "ask_exec", path_list(paths))
    }

    /// `[enforce].ask_timeout`, e.g. "1500ms".
    pub fn ask_timeout(self, t: &str) -> PolicyBuilder {
        self.set("enforce", "ask_timeout", t)
    }

    /// Entries added to `[network].allow` (after the built-in ones).
    pub fn allow<S: Into<String>>(mut self, entries: impl IntoIterator<Item = S>) -> PolicyBuilder {
        let allow = self
            .doc
            .get_mut("network")
            .and_then(|n| n.get_mut("allow"))
            .and_then(Value::as_array_mut)
            .expect("the built-in policy has [network].allow");
        allow.extend(entries.into_iter().map(|e| Value::String(e.into())));
        self
    }

    /// The policy as TOML text.
    pub fn text(&self) -> String {
        toml::to_string(&self.doc).expect("a TOML table serializes")
    }

    /// The validated policy, as `proctor` would load it.
    pub fn build(&self) -> Policy {
        Policy::from_toml_str(&self.text(), "test policy")
            .unwrap_or_else(|e| panic!("the test policy is invalid: {e}\n{}", self.text()))
    }

    /// Validate, write to DIR/policy.toml and return its path (for `--policy`).
    pub fn write(&self, dir: &Path) -> String {
        self.build();
        let path: PathBuf = dir.join("policy.toml");
        std::fs::write(&path, self.text())
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path.to_str().expect("a UTF-8 temp path").to_string()
    }
}

fn path_list<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>) -> Value {
    Value::Array(
        paths
            .into_iter()
            .map(|p| {
                let p = p.as_ref();
                Value::String(
                    p.to_str()
                        .unwrap_or_else(|| panic!("non-UTF-8 path {}", p.display()))
                        .to_string(),
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_builder_is_the_builtin_policy() {
        let built = PolicyBuilder::new().build();
        let builtin = Policy::builtin();
        assert_eq!(built.enforce, builtin.enforce);
        assert_eq!(built.network.allow, builtin.network.allow);
    }

    #[test]
    fn typed_changes_reach_the_parsed_policy() {
        let p = PolicyBuilder::new()
            .network(Verdict::Ask)
            .ptrace(Verdict::Block)
            .files(Verdict::Block)
            .block_exec(["/usr/bin/id"])
            .ask_exec(["/usr/bin/true"])
            .ask_timeout("1500ms")
            .allow(["127.0.0.1:4444"])
            .set("alerts", "trace_len", 4)
            .build();
        assert!(p.enforce.network && p.enforce.ask_network && p.enforce.ptrace && p.enforce.files);
        assert_eq!(p.enforce.exec, ["/usr/bin/id"]);
        assert_eq!(p.enforce.ask_exec, ["/usr/bin/true"]);
        assert_eq!(p.enforce.ask_timeout_ns, 1_500_000_000);
        assert_eq!(p.network.allow.len(), 1);
    }

    #[test]
    #[should_panic(expected = "no [enforce].netwrok")]
    fn a_misspelt_key_fails_the_test() {
        let _ = PolicyBuilder::new().set("enforce", "netwrok", "block");
    }
}
