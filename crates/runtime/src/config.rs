//! The host configuration `proctor daemon` reads: `/etc/proctor/proctor.toml` (or the file
//! `--config` names) and the drop-ins `proctor.d/*.toml` beside it (in name order, each layered
//! on the ones before). Every file is validated on its own, so an error names the file, line
//! and column where it is (the policy loader's format); unknown keys are refused.
//!
//! Layering: a later file's `[daemon]` keys replace earlier ones; `[[agent]]` entries add up (a
//! second agent of the same name is an error); `[outputs]` and `[metrics]` merge key by key as
//! policy overlays do. Those two sections are typed by their own subsystems: here they are
//! carried as TOML tables.

use proctor_detect::PolicyError;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The main file, and the directory of drop-ins beside it.
pub const DEFAULT_CONFIG: &str = "/etc/proctor/proctor.toml";
pub const DROP_IN_DIR: &str = "proctor.d";
/// The daemon's control socket when the config names none.
pub const DEFAULT_SOCKET: &str = "/run/proctor/proctor.sock";
/// Learning window of an agent that names neither a profile nor a baseline.
pub const DEFAULT_BASELINE: Duration = Duration::from_secs(300);

/// What went wrong reading the configuration: a file that could not be read, or errors at a
/// place in one (each `FILE:LINE:COL: message`).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    At(#[from] PolicyError),
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Config {
    pub daemon: DaemonConfig,
    #[serde(rename = "agent")]
    pub agents: Vec<AgentRule>,
    /// Typed by the outputs subsystem.
    pub outputs: toml::Table,
    /// Typed by the metrics subsystem.
    pub metrics: toml::Table,
    /// The files read, in order.
    #[serde(skip)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DaemonConfig {
    /// Run directories go to STATE_DIR/runs/AGENT/SESSION/.
    pub state_dir: PathBuf,
    /// The control socket of `proctor ctl`.
    pub socket: PathBuf,
    /// A group whose members may use the control socket besides root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_group: Option<String>,
    /// The signing key (default: the state directory's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

/// One `[[agent]]`: how the kernel recognises it at exec, and how its sessions are judged.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AgentRule {
    pub name: String,
    /// Executables by path, resolved to their file identity (device, inode) at start and reload:
    /// a rename or a hard link of the file is still that file.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exe: Vec<PathBuf>,
    /// Executables by file name, looked up in `search` and the daemon's PATH.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub basename: Vec<String>,
    /// ELF build-ids (hex), looked up in `search` and the daemon's PATH: copies of the binary
    /// under any name there are matched.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub build_id: Vec<String>,
    /// Directories searched for `basename` and `build_id`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<PathBuf>,
    /// cgroup v2 paths (from the cgroup2 mount, e.g. `/system.slice/agent.service`): a process
    /// that execs in that cgroup or below it starts a session.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cgroup: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<PathBuf>,
    pub mode: String,
    /// Learning window (ignored with a profile).
    #[serde(with = "humantime_serde_compat")]
    pub baseline: Duration,
}

/// `baseline = "5m"` as text in `config show`.
mod humantime_serde_compat {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}s", d.as_secs_f64()))
    }
}

/// A list of strings, each with its place in the file.
type Strings = Option<Vec<Spanned<String>>>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    daemon: Option<RawDaemon>,
    #[serde(default)]
    agent: Vec<Spanned<RawAgent>>,
    outputs: Option<toml::Table>,
    metrics: Option<toml::Table>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    state_dir: Option<Spanned<String>>,
    socket: Option<Spanned<String>>,
    socket_group: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    name: Spanned<String>,
    exe: Strings,
    basename: Strings,
    build_id: Strings,
    search: Strings,
    cgroup: Strings,
    policy: Option<Spanned<String>>,
    profile: Option<Spanned<String>>,
    mode: Option<Spanned<String>>,
    baseline: Option<Spanned<String>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            daemon: DaemonConfig {
                state_dir: PathBuf::from("/var/lib/proctor"),
                socket: PathBuf::from(DEFAULT_SOCKET),
                socket_group: None,
                key: None,
            },
            agents: Vec::new(),
            outputs: toml::Table::new(),
            metrics: toml::Table::new(),
            files: Vec::new(),
        }
    }
}

impl Config {
    /// The `[outputs]` section, typed (empty: no outputs). The section may be spread over
    /// several files, so an error names the section rather than one file's line.
    pub fn outputs_config(&self) -> anyhow::Result<proctor_outputs::OutputsConfig> {
        let cfg: proctor_outputs::OutputsConfig = typed_section("outputs", &self.outputs)?;
        if let Some(ca) = &cfg.ca_file {
            proctor_outputs::read_ca_file(ca)
                .map_err(|why| anyhow::anyhow!("[outputs] ca_file: {why}"))?;
        }
        Ok(cfg)
    }

    /// The `[metrics]` section, typed (None when absent: no endpoint).
    pub fn metrics_config(&self) -> anyhow::Result<Option<proctor_metrics::MetricsConfig>> {
        if self.metrics.is_empty() {
            return Ok(None);
        }
        typed_section("metrics", &self.metrics).map(Some)
    }

    /// The host configuration: the main file (`--config FILE`, else [`DEFAULT_CONFIG`], which
    /// may be missing: defaults) and the drop-ins of the `proctor.d/` directory beside it, in name
    /// order. So the service's `--config /etc/proctor/proctor.toml` reads the drop-ins too.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        let main = file.unwrap_or(Path::new(DEFAULT_CONFIG));
        // A file named on the command line must exist; the default one may not.
        let mut files: Vec<PathBuf> = (file.is_some() || main.exists())
            .then(|| main.to_path_buf())
            .into_iter()
            .collect();
        files.extend(drop_ins(&main.with_file_name(DROP_IN_DIR))?);
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|source| ConfigError::Read {
                path: f.clone(),
                source,
            })?;
            cfg.layer(&text, &f.display().to_string())?;
            cfg.files.push(f);
        }
        Ok(cfg)
    }

    /// Layer one file's text (named `origin` in errors) on this configuration.
    pub fn layer(&mut self, text: &str, origin: &str) -> Result<(), PolicyError> {
        let at = |span: Option<std::ops::Range<usize>>, m: String| {
            PolicyError::at(text, origin, span, m)
        };
        let raw: RawFile =
            toml::from_str(text).map_err(|e| at(e.span(), e.message().trim().to_string()))?;
        if let Some(d) = raw.daemon {
            let abs = |s: Spanned<String>, what: &str| -> Result<PathBuf, PolicyError> {
                if !s.get_ref().starts_with('/') {
                    return Err(at(
                        Some(s.span()),
                        format!("{what} must be an absolute path, not {:?}", s.get_ref()),
                    ));
                }
                Ok(PathBuf::from(s.into_inner()))
            };
            if let Some(s) = d.state_dir {
                self.daemon.state_dir = abs(s, "state_dir")?;
            }
            if let Some(s) = d.socket {
                let p = abs(s.clone(), "socket")?;
                // sun_path holds 107 bytes and a NUL.
                if p.as_os_str().len() > 100 || p.file_name().is_none() {
                    return Err(at(
                        Some(s.span()),
                        format!(
                            "socket {:?} must be a file path of at most 100 bytes",
                            s.get_ref()
                        ),
                    ));
                }
                self.daemon.socket = p;
            }
            if let Some(g) = d.socket_group {
                if group_id(g.get_ref()).is_none() {
                    return Err(at(
                        Some(g.span()),
                        format!("socket_group: no such group {:?}", g.get_ref()),
                    ));
                }
                self.daemon.socket_group = Some(g.into_inner());
            }
            if let Some(k) = d.key {
                self.daemon.key = Some(abs(k, "key")?);
            }
        }
        let mut names: BTreeSet<String> = self.agents.iter().map(|a| a.name.clone()).collect();
        for a in raw.agent {
            let span = a.span();
            let a = a.into_inner();
            let rule = agent_rule(a, span.clone(), &at)?;
            if !names.insert(rule.name.clone()) {
                return Err(at(
                    Some(span),
                    format!("a second [[agent]] named {:?}", rule.name),
                ));
            }
            self.agents.push(rule);
        }
        if let Some(o) = raw.outputs {
            proctor_detect::merge_tables(&mut self.outputs, o);
        }
        if let Some(m) = raw.metrics {
            proctor_detect::merge_tables(&mut self.metrics, m);
        }
        Ok(())
    }

    /// The effective configuration as TOML (`proctor config show`).
    pub fn to_toml(&self) -> String {
        let mut head = String::from("# effective configuration");
        if self.files.is_empty() {
            head.push_str(": built-in defaults (no file found)");
        } else {
            head.push_str(" from ");
            let names: Vec<String> = self.files.iter().map(|f| f.display().to_string()).collect();
            head.push_str(&names.join(", "));
        }
        format!(
            "{head}\n{}",
            toml::to_string(self).expect("the configuration serializes as TOML")
        )
    }
}

/// The id of a group by name, from the group database.
pub fn group_id(name: &str) -> Option<libc::gid_t> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: getgrnam returns NULL or a pointer to static storage, read at once.
    let g = unsafe { libc::getgrnam(c.as_ptr()) };
    // SAFETY: non-null, points to a valid group entry.
    (!g.is_null()).then(|| unsafe { (*g).gr_gid })
}

/// The `*.toml` files of the drop-in directory in name order (none if it does not exist).
fn drop_ins(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ConfigError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    Ok(v)
}

fn agent_rule(
    a: RawAgent,
    span: std::ops::Range<usize>,
    at: &dyn Fn(Option<std::ops::Range<usize>>, String) -> PolicyError,
) -> Result<AgentRule, PolicyError> {
    let name = a.name.get_ref();
    if name.is_empty()
        || name.len() > 64
        || name.starts_with('.')
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(at(
            Some(a.name.span()),
            format!("agent name {name:?} must be 1 to 64 of [A-Za-z0-9._-], not starting with '.' (it names a directory)"),
        ));
    }
    let list = |s: Strings| s.unwrap_or_default();
    let absolute = |v: Vec<Spanned<String>>, what: &str| -> Result<Vec<PathBuf>, PolicyError> {
        v.into_iter()
            .map(|s| {
                if s.get_ref().starts_with('/') {
                    Ok(PathBuf::from(s.into_inner()))
                } else {
                    Err(at(
                        Some(s.span()),
                        format!("{what} must be an absolute path, not {:?}", s.get_ref()),
                    ))
                }
            })
            .collect()
    };
    let exe = absolute(list(a.exe), "exe")?;
    let search = absolute(list(a.search), "search")?;
    let mut basename = Vec::new();
    for b in list(a.basename) {
        if b.get_ref().is_empty() || b.get_ref().contains('/') {
            return Err(at(
                Some(b.span()),
                format!("basename {:?} must be a file name without '/'", b.get_ref()),
            ));
        }
        basename.push(b.into_inner());
    }
    let mut build_id = Vec::new();
    for b in list(a.build_id) {
        let h = b.get_ref();
        if h.len() < 8 || h.len() % 2 != 0 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(at(
                Some(b.span()),
                format!("build_id {h:?} must be an even number (at least 8) of hex digits"),
            ));
        }
        build_id.push(h.to_ascii_lowercase());
    }
    let mut cgroup = Vec::new();
    for c in list(a.cgroup) {
        let p = c.get_ref();
        if !p.starts_with('/') || p.split('/').any(|part| part == "..") {
            return Err(at(Some(c.span()), format!("cgroup {p:?} must be a path from the cgroup2 mount, starting with '/', without '..'")));
        }
        cgroup.push(p.trim_end_matches('/').to_string());
    }
    if exe.is_empty() && basename.is_empty() && build_id.is_empty() && cgroup.is_empty() {
        return Err(at(
            Some(span),
            format!("agent {name:?} matches nothing: give exe, basename, build_id or cgroup"),
        ));
    }
    let mode = match &a.mode {
        None => "audit".to_string(),
        Some(m) if m.get_ref() == "audit" => "audit".to_string(),
        Some(m) if ["shadow", "enforce"].contains(&m.get_ref().as_str()) => {
            return Err(at(
                Some(m.span()),
                format!("mode {:?}: daemon sessions run in audit mode in this version (use `proctor run --mode {}` for one agent)", m.get_ref(), m.get_ref()),
            ))
        }
        Some(m) => {
            return Err(at(Some(m.span()), format!("mode {:?} must be audit, shadow or enforce", m.get_ref())))
        }
    };
    let baseline = match &a.baseline {
        None => DEFAULT_BASELINE,
        Some(b) => proctor_detect::parse_duration(b.get_ref())
            .map_err(|e| at(Some(b.span()), format!("baseline: {e}")))?,
    };
    Ok(AgentRule {
        name: name.clone(),
        exe,
        basename,
        build_id,
        search,
        cgroup,
        policy: a.policy.map(|p| PathBuf::from(p.into_inner())),
        profile: a.profile.map(|p| PathBuf::from(p.into_inner())),
        mode,
        baseline,
    })
}

fn typed_section<T: serde::de::DeserializeOwned>(name: &str, t: &toml::Table) -> anyhow::Result<T> {
    toml::Value::Table(t.clone())
        .try_into()
        .map_err(|e: toml::de::Error| anyhow::anyhow!("configuration [{name}]: {}", e.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(text: &str) -> Result<Config, String> {
        let mut c = Config::default();
        c.layer(text, "proctor.toml").map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn defaults_without_files() {
        let c = layer("").unwrap();
        assert_eq!(c.daemon.state_dir, Path::new("/var/lib/proctor"));
        assert_eq!(c.daemon.socket, Path::new(DEFAULT_SOCKET));
        assert!(c.agents.is_empty());
    }

    #[test]
    fn agents_and_typed_sections() {
        let c = layer(
            r#"
[daemon]
state_dir = "/srv/proctor"
[[agent]]
name = "claude"
exe = ["/usr/local/bin/claude"]
profile = "builtin:claude-code"
[[agent]]
name = "svc"
cgroup = ["/system.slice/agent.service/"]
baseline = "30s"
[outputs]
syslog = "unix:/dev/log"
format = "ocsf"
[metrics]
listen = "127.0.0.1:9464"
"#,
        )
        .unwrap();
        assert_eq!(c.daemon.state_dir, Path::new("/srv/proctor"));
        assert_eq!(c.agents.len(), 2);
        assert_eq!(
            c.agents[0].exe,
            vec![PathBuf::from("/usr/local/bin/claude")]
        );
        assert_eq!(
            c.agents[1].cgroup,
            vec!["/system.slice/agent.service".to_string()]
        );
        assert_eq!(c.agents[1].baseline, Duration::from_secs(30));
        assert_eq!(c.agents[0].mode, "audit");
        let outputs = c.outputs_config().unwrap();
        assert_eq!(outputs.syslog.as_deref(), Some("unix:/dev/log"));
        assert_eq!(outputs.format, proctor_outputs::AlertFormat::Ocsf);
        let metrics = c.metrics_config().unwrap().unwrap();
        assert_eq!(metrics.listen, "127.0.0.1:9464".parse().unwrap());
        assert!(layer("").unwrap().metrics_config().unwrap().is_none());
        // A misspelt key in a typed section is an error naming the section and the key.
        let e = layer("[outputs]\nsyslg = \"x\"\n")
            .unwrap()
            .outputs_config()
            .unwrap_err()
            .to_string();
        assert!(e.contains("[outputs]") && e.contains("syslg"), "{e}");
        let e = layer("[metrics]\nlisten = 9464\n")
            .unwrap()
            .metrics_config()
            .unwrap_err()
            .to_string();
        assert!(e.contains("[metrics]"), "{e}");
        // show prints what load reads back.
        let shown = c.to_toml();
        assert!(
            shown.contains("[[agent]]") && shown.contains("name = \"svc\""),
            "{shown}"
        );
        let again = layer(&shown).unwrap();
        assert_eq!(again.agents, c.agents);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let cases = [
            ("[daemon]\nstate_dirr = \"/x\"\n", "proctor.toml:2:1: unknown field `state_dirr`"),
            ("[[agent]]\nname = \"a\"\nexe = [\"/x\"]\nmatch = 1\n", "proctor.toml:4:1: unknown field `match`"),
            ("[[agent]]\nname = \"a\"\n", "proctor.toml:1:1: agent \"a\" matches nothing"),
            ("[[agent]]\nname = \"a/b\"\nexe = [\"/x\"]\n", "proctor.toml:2:8: agent name \"a/b\""),
            ("[[agent]]\nname = \"a\"\nexe = [\"bin/a\"]\n", "proctor.toml:3:8: exe must be an absolute path"),
            ("[[agent]]\nname = \"a\"\nbuild_id = [\"xyz\"]\n", "proctor.toml:3:13: build_id \"xyz\""),
            ("[[agent]]\nname = \"a\"\ncgroup = [\"/a/../b\"]\n", "proctor.toml:3:11: cgroup \"/a/../b\""),
            ("[[agent]]\nname = \"a\"\nexe = [\"/x\"]\nmode = \"loud\"\n", "proctor.toml:4:8: mode \"loud\""),
            ("[[agent]]\nname = \"a\"\nexe = [\"/x\"]\nbaseline = \"soon\"\n", "proctor.toml:4:12: baseline:"),
            ("[[agent]]\nname = \"a\"\nexe = [\"/x\"]\n[[agent]]\nname = \"a\"\nexe = [\"/y\"]\n", "proctor.toml:4:1: a second [[agent]] named \"a\""),
            ("[daemon]\nsocket = \"run/p.sock\"\n", "proctor.toml:2:10: socket must be an absolute path"),
            ("[daemon\n", "proctor.toml:1:"),
        ];
        for (text, want) in cases {
            let got = layer(text).expect_err(text);
            assert!(
                got.starts_with(want),
                "{text:?}: got {got:?}, want {want:?}"
            );
            assert!(!got.contains('\n'), "one line: {got:?}");
        }
    }

    #[test]
    fn drop_ins_layer_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("proctor.toml");
        std::fs::write(&main, "[daemon]\nstate_dir = \"/a\"\n[[agent]]\nname = \"one\"\nexe = [\"/bin/one\"]\n[outputs]\nx = 1\ny = 1\n").unwrap();
        let d = dir.path().join(DROP_IN_DIR);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("20-b.toml"), "[daemon]\nstate_dir = \"/c\"\n").unwrap();
        std::fs::write(d.join("10-a.toml"), "[daemon]\nstate_dir = \"/b\"\n[[agent]]\nname = \"two\"\ncgroup = [\"/x\"]\n[outputs]\ny = 2\n").unwrap();
        std::fs::write(d.join("ignored.conf"), "garbage").unwrap();
        let mut c = Config::load(Some(&main)).unwrap();
        assert_eq!(c.files.len(), 3, "{:?}", c.files);
        assert_eq!(c.daemon.state_dir, Path::new("/c"));
        let names: Vec<&str> = c.agents.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["one", "two"]);
        assert_eq!(c.outputs["x"].as_integer(), Some(1));
        assert_eq!(c.outputs["y"].as_integer(), Some(2));
        // An error in a drop-in names the drop-in.
        let bad = d.join("30-bad.toml");
        std::fs::write(&bad, "\n[[agent]]\nname = \"one\"\nexe = [\"/z\"]\n").unwrap();
        let e = c
            .layer(
                &std::fs::read_to_string(&bad).unwrap(),
                &bad.display().to_string(),
            )
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("{}:2:1: a second", bad.display())),
            "{e}"
        );
    }
}
