//! HTML (inline CSS and SVG only) and Markdown renderings of a [`Data`].

use crate::scan::{AlertInfo, Run};
use crate::{compliance, duration, top, utc, Data};
use proctor_evidence::Status;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Alerts, decisions and tool calls listed in a report; more are counted.
const LISTED: usize = 200;
/// Process trees drawn; nodes per tree.
const TREES: usize = 6;
const TREE_NODES: usize = 40;

pub fn status_word(s: Status) -> &'static str {
    match s {
        Status::Valid => "VALID",
        Status::Incomplete => "INCOMPLETE",
        Status::Unchecked => "UNCHECKED",
        Status::Invalid => "INVALID",
    }
}

/// Escape for HTML text and attribute values (and SVG text).
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// Escape for a Markdown table cell.
fn md(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' => o.push_str("\\|"),
            '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' => {
                o.push('\\');
                o.push(c);
            }
            c if c.is_control() => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// The summary rows both formats print.
fn summary_rows(d: &Data) -> Vec<(&'static str, String)> {
    let r = &d.run;
    let mut mode = if r.mode.is_empty() {
        "unknown".to_string()
    } else {
        r.mode.clone()
    };
    for (ts, m) in &r.mode_changes {
        let _ = write!(mode, "; {m} from {}", utc(*ts));
    }
    let keys: Vec<String> = d
        .verdict
        .keys
        .iter()
        .map(|k| {
            format!(
                "{} ({}{})",
                k.fingerprint,
                if k.pinned { "pinned" } else { "not pinned" },
                k.rotated_from
                    .as_ref()
                    .map(|f| format!(", rotated from {}", &f[..16.min(f.len())]))
                    .unwrap_or_default()
            )
        })
        .collect();
    vec![
        ("Agent", r.agent_id.clone()),
        ("Command", r.command.clone()),
        (
            "Host",
            if d.host.is_empty() {
                "(no certificate names it)".into()
            } else {
                d.host.clone()
            },
        ),
        (
            "Time span",
            format!(
                "{} to {} ({})",
                utc(r.first_ns),
                utc(r.last_ns),
                duration(r.last_ns.saturating_sub(r.first_ns))
            ),
        ),
        ("Mode", mode),
        (
            "Records",
            format!(
                "{} in {} segment(s), {} signed checkpoint(s){}",
                r.records,
                r.segments,
                r.checkpoints,
                if r.unreadable_lines > 0 {
                    format!(", {} unreadable line(s)", r.unreadable_lines)
                } else {
                    String::new()
                }
            ),
        ),
        (
            "Alerts / incidents",
            format!("{} / {}", r.alerts_total, r.incidents.len()),
        ),
        ("Verdict of proctor verify", verdict_line(d)),
        (
            "Signing key(s)",
            if keys.is_empty() {
                "none checked".into()
            } else {
                keys.join("; ")
            },
        ),
        ("Trusted time", time_line(d)),
    ]
}

fn verdict_line(d: &Data) -> String {
    let mut s = status_word(d.verdict.status).to_string();
    if !d.pinned {
        s.push_str(
            " (checked with the key found next to the data, which proves integrity relative to that key only: give --key with an independently obtained key)",
        );
    }
    s
}

fn time_line(d: &Data) -> String {
    let t = &d.verdict.trusted_time;
    if d.tokens == 0 {
        "none: every time in this report is the monitored host's clock, which its root user controls".into()
    } else if t.verified > 0 {
        format!(
            "{} RFC 3161 timestamp token(s) verified against the TSA certificate given, genTime {} to {}",
            t.verified,
            t.first_ns.map(utc).unwrap_or_default(),
            t.last_ns.map(utc).unwrap_or_default()
        )
    } else if d.tsa_checked {
        format!(
            "{} RFC 3161 timestamp token(s), none verified (see what verify found); times are the host's clock",
            d.tokens
        )
    } else {
        format!(
            "{} RFC 3161 timestamp token(s) present but not checked (give --tsa-cert); until then times are the host's clock",
            d.tokens
        )
    }
}

/// Problems the verdict found (not notes), bounded.
fn findings(d: &Data) -> Vec<String> {
    d.verdict
        .items
        .iter()
        .flat_map(|i| {
            i.findings
                .iter()
                .filter(|f| f.severity != proctor_evidence::Severity::Note)
                .map(|f| format!("{}: {}", f.location, f.message))
        })
        .take(20)
        .collect()
}

/// Alerts in the report's scope (one incident's, or all).
fn scoped_alerts(d: &Data) -> Vec<&AlertInfo> {
    match d.incident.as_ref().and_then(|id| d.run.incidents.get(id)) {
        Some(inc) => d.run.incident_alerts(inc),
        None => d.run.alerts.iter().collect(),
    }
}

/// One process tree to draw: its root, the pids to show in order with depth, the highlighted.
struct Tree {
    title: String,
    rows: Vec<(u32, usize)>,
    hot: BTreeSet<u32>,
}

/// Trees around the incidents (or, without incidents, around the alerts grouped by the child
/// of the agent's root process they descend from: one tool call each).
fn trees(d: &Data) -> Vec<Tree> {
    let r = &d.run;
    let children = r.children();
    let mut groups: BTreeMap<u32, (String, Vec<&AlertInfo>)> = BTreeMap::new();
    let incidents: Vec<(&String, &Value)> = match &d.incident {
        Some(id) => r.incidents.get_key_value(id).into_iter().collect(),
        None => r.incidents.iter().collect(),
    };
    for (id, inc) in incidents {
        let alerts = r.incident_alerts(inc);
        let root = inc
            .get("root_pid")
            .and_then(Value::as_u64)
            .map(|p| p as u32)
            .or_else(|| alerts.first().map(|a| group_root(r, a.pid)));
        if let Some(root) = root {
            let title = format!(
                "incident {id} ({}): {}",
                inc.get("severity").and_then(Value::as_str).unwrap_or("?"),
                inc.get("title").and_then(Value::as_str).unwrap_or("")
            );
            groups.entry(root).or_insert((title, alerts));
        }
    }
    if groups.is_empty() {
        for a in scoped_alerts(d) {
            let root = group_root(r, a.pid);
            groups
                .entry(root)
                .or_insert_with(|| (String::new(), Vec::new()))
                .1
                .push(a);
        }
    }
    let mut out = Vec::new();
    for (root, (title, alerts)) in groups.into_iter().take(TREES) {
        let mut hot: BTreeSet<u32> = BTreeSet::new();
        for a in &alerts {
            hot.insert(a.pid);
            hot.extend(a.trigger_pids.iter().copied());
        }
        // Must show: the ancestors of the root and of every hot pid.
        let mut must: BTreeSet<u32> = r.ancestors(root).into_iter().collect();
        for p in &hot {
            must.extend(r.ancestors(*p));
        }
        // Then the root's descendants, breadth first, up to the cap.
        let mut shown = must.clone();
        let mut queue = std::collections::VecDeque::from([root]);
        while let Some(p) = queue.pop_front() {
            for c in children.get(&p).map(Vec::as_slice).unwrap_or_default() {
                if shown.len() >= TREE_NODES {
                    break;
                }
                if shown.insert(*c) {
                    queue.push_back(*c);
                }
            }
        }
        // Rows in depth-first order from the topmost shown ancestor.
        let top = r.ancestors(root)[0];
        let mut rows = Vec::new();
        let mut stack = vec![(top, 0usize)];
        while let Some((p, depth)) = stack.pop() {
            if rows.len() >= TREE_NODES * 2 {
                break;
            }
            rows.push((p, depth));
            let mut kids: Vec<u32> = children
                .get(&p)
                .map(|k| k.iter().copied().filter(|c| shown.contains(c)).collect())
                .unwrap_or_default();
            kids.reverse();
            stack.extend(kids.into_iter().map(|c| (c, depth + 1)));
        }
        let kinds: BTreeSet<&str> = alerts.iter().map(|a| a.kind.as_str()).collect();
        let title = if title.is_empty() {
            format!(
                "pid {root} ({}): {} alert(s): {}",
                r.procs.get(&root).map(|p| p.comm.as_str()).unwrap_or("?"),
                alerts.len(),
                kinds.into_iter().collect::<Vec<_>>().join(", ")
            )
        } else {
            title
        };
        out.push(Tree { title, rows, hot });
    }
    out
}

/// The child of the agent's root that `pid` descends from (the process of one tool call), or
/// the root itself.
fn group_root(r: &Run, pid: u32) -> u32 {
    let chain = r.ancestors(pid);
    let root_idx = r
        .root_pid
        .and_then(|root| chain.iter().position(|&p| p == root))
        .unwrap_or(0);
    chain
        .get(root_idx + 1)
        .or(chain.get(root_idx))
        .copied()
        .unwrap_or(pid)
}

fn tree_svg(r: &Run, t: &Tree) -> String {
    let row_h = 22;
    let h = t.rows.len() * row_h + 10;
    let mut s = format!(
        r#"<svg class="tree" width="940" height="{h}" viewBox="0 0 940 {h}" role="img" aria-label="process tree">"#
    );
    let mut last_at_depth: Vec<usize> = Vec::new();
    for (i, (pid, depth)) in t.rows.iter().enumerate() {
        let y = i * row_h + 16;
        let x = 8 + depth * 22;
        if *depth > 0 {
            if let Some(py) = last_at_depth.get(depth - 1) {
                let px = 8 + (depth - 1) * 22 + 5;
                let _ = write!(
                    s,
                    r#"<path d="M{px} {} V{} H{x}" class="edge"/>"#,
                    py + 4,
                    y - 4
                );
            }
        }
        last_at_depth.truncate(*depth);
        last_at_depth.push(y);
        let p = r.procs.get(pid);
        let hot = t.hot.contains(pid);
        let label = format!(
            "{pid} {}  {}",
            p.map(|p| p.comm.as_str()).unwrap_or("?"),
            p.map(|p| p.cmdline.as_str()).unwrap_or("")
        );
        let label: String = label.chars().take(110).collect();
        let _ = write!(
            s,
            r#"<circle cx="{}" cy="{}" r="5" class="{}"/><text x="{}" y="{}" class="{}">{}</text>"#,
            x + 5,
            y - 4,
            if hot { "node hot" } else { "node" },
            x + 14,
            y,
            if hot { "hot" } else { "" },
            esc(&label)
        );
    }
    s.push_str("</svg>");
    s
}

/// Records, alerts and decisions over time, in 120 bins.
fn timeline_svg(r: &Run) -> String {
    const BINS: usize = 120;
    let (w, h, top_pad, bottom) = (940.0f64, 185.0f64, 10.0f64, 140.0f64);
    let first = r.first_ns / 1_000_000_000;
    let last = (r.last_ns / 1_000_000_000).max(first + 1);
    let span = (last - first + 1) as f64;
    let mut bins = vec![(0u64, 0u64, 0u64); BINS];
    for (sec, (n, a, dc)) in &r.per_second {
        if *sec < first {
            continue;
        }
        let i = (((sec - first) as f64 / span) * BINS as f64) as usize;
        let b = &mut bins[i.min(BINS - 1)];
        b.0 += n;
        b.1 += a;
        b.2 += dc;
    }
    let max = bins.iter().map(|b| b.0).max().unwrap_or(1).max(1) as f64;
    let bw = (w - 60.0) / BINS as f64;
    let mut s = format!(
        r#"<svg class="timeline" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="timeline">"#
    );
    let _ = write!(
        s,
        r#"<line x1="50" y1="{bottom}" x2="{}" y2="{bottom}" class="axis"/><text x="46" y="{}" class="tick" text-anchor="end">{}</text><text x="46" y="{bottom}" class="tick" text-anchor="end">0</text>"#,
        w - 10.0,
        top_pad + 8.0,
        max as u64
    );
    for (i, (n, a, dc)) in bins.iter().enumerate() {
        let x = 50.0 + i as f64 * bw;
        if *n > 0 {
            // Square-root scale: a quiet stretch stays visible next to a burst.
            let bh = ((*n as f64 / max).sqrt() * (bottom - top_pad)).max(1.0);
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" class="rec"><title>{n} record(s)</title></rect>"#,
                bottom - bh,
                (bw - 1.0).max(0.5)
            );
        }
        if *a > 0 {
            let _ = write!(
                s,
                r#"<circle cx="{:.1}" cy="{}" r="{:.1}" class="alert"><title>{a} alert(s)</title></circle>"#,
                x + bw / 2.0,
                top_pad + 6.0,
                (2.5 + (*a as f64).ln()).min(8.0)
            );
        }
        if *dc > 0 {
            let cx = x + bw / 2.0;
            let _ = write!(
                s,
                r#"<path d="M{:.1} {} l5 9 h-10 z" class="block"><title>{dc} block(s)/approval(s)</title></path>"#,
                cx,
                top_pad + 16.0
            );
        }
    }
    let _ = write!(
        s,
        r#"<text x="50" y="{}" class="tick">{}</text><text x="{}" y="{}" class="tick" text-anchor="end">{}</text>"#,
        bottom + 16.0,
        esc(&utc(r.first_ns)),
        w - 10.0,
        bottom + 16.0,
        esc(&utc(r.last_ns))
    );
    let _ = write!(
        s,
        r#"<g class="legend"><rect x="60" y="{y}" width="10" height="10" class="rec"/><text x="75" y="{ty}">records (sqrt scale)</text><circle cx="215" cy="{cy}" r="5" class="alert"/><text x="225" y="{ty}">alerts</text><path d="M290 {y} l5 9 h-10 z" class="block"/><text x="302" y="{ty}">blocks / approvals</text></g>"#,
        y = bottom + 26.0,
        ty = bottom + 35.0,
        cy = bottom + 31.0
    );
    s.push_str("</svg>");
    s
}

/// Per channel: (label, baseline items, observed items).
fn channels(d: &Data) -> Vec<(&'static str, BTreeSet<String>, BTreeSet<String>)> {
    let b = d.baseline.as_ref();
    let list = |k: &str| -> BTreeSet<String> {
        b.and_then(|b| b.get(k))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let obs = |k: &str| d.run.observed.get(k).cloned().unwrap_or_default();
    vec![
        ("L2/L3 binaries executed", list("binaries"), obs("binaries")),
        ("L4 destinations", list("destinations"), obs("destinations")),
        ("DNS domains", list("dns_domains"), obs("dns_domains")),
    ]
}

fn egress(d: &Data) -> (Option<f64>, u64) {
    let base = d
        .baseline
        .as_ref()
        .and_then(|b| b.pointer("/egress/max"))
        .and_then(Value::as_f64);
    (base, d.run.egress_max_per_s)
}

fn baseline_svg(rows: &[(&str, BTreeSet<String>, BTreeSet<String>)]) -> String {
    let max = rows
        .iter()
        .map(|(_, b, o)| b.len().max(o.len()))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let h = rows.len() * 54 + 30;
    let mut s = format!(
        r#"<svg class="bars" width="940" height="{h}" viewBox="0 0 940 {h}" role="img" aria-label="baseline against observed">"#
    );
    for (i, (label, b, o)) in rows.iter().enumerate() {
        let y = i * 54 + 10;
        let new = o.difference(b).count();
        let wb = b.len() as f64 / max * 600.0;
        let wo = o.len() as f64 / max * 600.0;
        let wn = new as f64 / max * 600.0;
        let _ = write!(
            s,
            r#"<text x="0" y="{}" class="lbl">{}</text><rect x="220" y="{y}" width="{wb:.1}" height="14" class="base"/><text x="{:.1}" y="{}" class="tick">{} in baseline</text><rect x="220" y="{}" width="{wo:.1}" height="14" class="obs"/><rect x="{:.1}" y="{}" width="{wn:.1}" height="14" class="new"/><text x="{:.1}" y="{}" class="tick">{} observed, {new} new</text>"#,
            y + 20,
            esc(label),
            226.0 + wb,
            y + 11,
            b.len(),
            y + 18,
            220.0 + wo - wn,
            y + 18,
            226.0 + wo,
            y + 29,
            o.len()
        );
    }
    let _ = write!(
        s,
        r#"<g class="legend"><rect x="220" y="{y}" width="10" height="10" class="base"/><text x="235" y="{ty}">baseline</text><rect x="310" y="{y}" width="10" height="10" class="obs"/><text x="325" y="{ty}">observed</text><rect x="400" y="{y}" width="10" height="10" class="new"/><text x="415" y="{ty}">observed, not in the baseline</text></g>"#,
        y = h - 18,
        ty = h - 9
    );
    s.push_str("</svg>");
    s
}

const CSS: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;margin:0;background:#f4f6f9}
main{max-width:980px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:2px solid #d5dbe5;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px} section h2{margin-top:4px}
.sub{color:#5a6475;margin:0 0 16px}
section{background:#fff;border:1px solid #dfe4ec;border-radius:8px;padding:12px 16px;margin:14px 0}
table{border-collapse:collapse;width:100%;font-size:13px} th,td{text-align:left;vertical-align:top;padding:4px 8px;border-bottom:1px solid #eceff4}
th{background:#f0f3f8;font-weight:600} td.k{width:200px;color:#4a5568;font-weight:600}
code,.mono{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,monospace;font-size:12px;word-break:break-all}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;font-weight:700;color:#fff}
.VALID{background:#1f8a4c}.INVALID{background:#c62828}.INCOMPLETE{background:#d98200}.UNCHECKED{background:#6b7280}
.warn{background:#fff6e5;border-left:4px solid #d98200;padding:6px 10px;margin:8px 0}
.note{color:#5a6475;font-size:12px}
svg text{font:11px system-ui,sans-serif;fill:#333} svg .tick{fill:#666;font-size:10px} svg .lbl{font-size:12px;font-weight:600}
svg .axis{stroke:#999} svg .rec{fill:#8fa8c8} svg .alert{fill:#d62828} svg .block{fill:#f08c00}
svg .base{fill:#9aa5b1} svg .obs{fill:#4c7bd9} svg .new{fill:#d62828}
svg .edge{fill:none;stroke:#9aa5b1} svg .node{fill:#4c7bd9} svg .node.hot{fill:#d62828} svg text.hot{fill:#b71c1c;font-weight:700}
svg .tree text{font-family:ui-monospace,Menlo,Consolas,monospace}
.sev-critical,.sev-high{color:#c62828;font-weight:700}.sev-medium{color:#d98200;font-weight:700}
"#;

/// The whole report as one HTML document with no external resources.
pub fn render_html(d: &Data) -> String {
    let r = &d.run;
    let mut h = String::with_capacity(64 * 1024);
    let title = match &d.incident {
        Some(id) => format!("proctor report: incident {id}"),
        None => "proctor report".into(),
    };
    let _ = write!(
        h,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:"><title>{}</title><style>{CSS}</style></head><body><main>"#,
        esc(&title)
    );
    let _ = write!(
        h,
        r#"<h1>{}</h1><p class="sub">Agent <b>{}</b> · {} · generated from <span class="mono">{}</span> by proctor {}</p>"#,
        esc(&title),
        esc(&r.agent_id),
        esc(&utc(r.first_ns)),
        esc(&d.dir.display().to_string()),
        esc(env!("CARGO_PKG_VERSION"))
    );

    // Summary.
    h.push_str(r#"<section id="summary"><h2>Summary</h2><table>"#);
    for (k, v) in summary_rows(d) {
        let v = if k == "Verdict of proctor verify" {
            format!(
                r#"<span class="badge {w}">{w}</span> {}"#,
                esc(v.trim_start_matches(status_word(d.verdict.status))),
                w = status_word(d.verdict.status)
            )
        } else if k == "Signing key(s)" {
            format!(r#"<span class="mono">{}</span>"#, esc(&v))
        } else {
            esc(&v)
        };
        let _ = write!(h, r#"<tr><td class="k">{}</td><td>{v}</td></tr>"#, esc(k));
    }
    h.push_str("</table>");
    if d.verdict.trusted_time.verified == 0 {
        h.push_str(r#"<p class="warn">Times are the host's clock: no verified trusted timestamp (RFC 3161) vouches for them, so whoever controlled the host could have set them.</p>"#);
    }
    let problems = findings(d);
    if !problems.is_empty() {
        h.push_str("<h3>What verify found</h3><ul>");
        for p in problems {
            let _ = write!(h, r#"<li class="mono">{}</li>"#, esc(&p));
        }
        h.push_str("</ul>");
    }
    h.push_str("</section>");

    // Timeline.
    let _ = write!(
        h,
        r#"<section id="timeline"><h2>Timeline</h2>{}<p class="note">{} records over {}; alerts in red, kernel blocks and approvals in orange.</p></section>"#,
        timeline_svg(r),
        r.records,
        esc(&duration(r.last_ns.saturating_sub(r.first_ns)))
    );

    // Incidents.
    h.push_str(r#"<section id="incidents"><h2>Incidents</h2>"#);
    if r.incidents.is_empty() {
        h.push_str("<p>No incident records in this run (alerts are listed below).</p>");
    } else {
        h.push_str("<table><tr><th>id</th><th>severity</th><th>title</th><th>alerts</th><th>techniques</th></tr>");
        for (id, inc) in &r.incidents {
            if d.incident.as_ref().is_some_and(|x| x != id) {
                continue;
            }
            let sev = inc.get("severity").and_then(Value::as_str).unwrap_or("");
            let techniques = inc
                .get("techniques")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let _ = write!(
                h,
                r#"<tr><td class="mono">{}</td><td class="sev-{}">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                esc(id),
                esc(sev),
                esc(sev),
                esc(inc.get("title").and_then(Value::as_str).unwrap_or("")),
                r.incident_alerts(inc).len(),
                esc(&techniques)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</section>");

    // Process trees.
    h.push_str(r#"<section id="process-tree"><h2>Process trees</h2>"#);
    let ts = trees(d);
    if ts.is_empty() {
        h.push_str("<p>No alert or incident to draw a tree for.</p>");
    }
    for t in &ts {
        let _ = write!(h, "<h3>{}</h3>{}", esc(&t.title), tree_svg(r, t));
    }
    if !ts.is_empty() {
        h.push_str(r#"<p class="note">Red: the processes whose records triggered an alert. Each tree is the subtree of one child of the agent's root process (one tool call), with the ancestors of every alert.</p>"#);
    }
    h.push_str("</section>");

    // LLM tool calls.
    h.push_str(r#"<section id="tool-calls"><h2>Tool calls and what ran</h2>"#);
    if r.tool_turns.is_empty() {
        let _ = write!(
            h,
            "<p>No LLM tool calls captured ({} LLM request(s) seen). Run with --capture-tls to record them.</p>",
            r.llm_requests
        );
    } else {
        h.push_str("<table><tr><th>time</th><th>model</th><th>the model asked for</th><th>then ran</th></tr>");
        for t in r.tool_turns.iter().take(LISTED) {
            let _ = write!(
                h,
                r#"<tr><td>{}</td><td>{}</td><td class="mono">{}</td><td class="mono">{}</td></tr>"#,
                esc(&utc(t.ts_ns)),
                esc(&t.model),
                t.calls
                    .iter()
                    .map(|c| esc(c))
                    .collect::<Vec<_>>()
                    .join("<br>"),
                t.ran
                    .iter()
                    .map(|c| esc(c))
                    .collect::<Vec<_>>()
                    .join("<br>")
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</section>");

    // Alerts.
    let alerts = scoped_alerts(d);
    h.push_str(r#"<section id="alerts"><h2>Alerts</h2>"#);
    if r.alerts_total == 0 {
        h.push_str("<p>No alerts.</p>");
    } else {
        h.push_str("<table><tr><th>kind</th><th>count</th></tr>");
        for (k, n) in top(&r.alerts_by_kind, 30) {
            let _ = write!(h, "<tr><td>{}</td><td>{n}</td></tr>", esc(&k));
        }
        h.push_str("</table>");
        let head = "<table><tr><th>time</th><th>channel</th><th>kind</th><th>pid</th><th>action</th><th>summary</th></tr>";
        let _ = write!(
            h,
            "<details><summary>the first {} alert(s)</summary>{head}",
            alerts.len().min(LISTED)
        );
        for a in alerts.iter().take(LISTED) {
            let _ = write!(
                h,
                r#"<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="mono">{}</td></tr>"#,
                esc(&utc(a.ts_ns)),
                esc(&a.channel),
                esc(&a.kind),
                a.pid,
                esc(&a.action),
                esc(&a.summary)
            );
        }
        h.push_str("</table></details>");
        let more = (alerts.len() as u64)
            .max(r.alerts_total)
            .saturating_sub(LISTED as u64);
        if more > 0 && d.incident.is_none() {
            let _ = write!(
                h,
                r#"<p class="note">{more} more alert(s) not listed (see alerts.jsonl and the certificates).</p>"#
            );
        }
    }
    h.push_str("</section>");

    // Baseline.
    h.push_str(r#"<section id="baseline"><h2>Baseline against observed</h2>"#);
    match &d.baseline {
        None => h.push_str("<p>No baseline.json in this run.</p>"),
        Some(b) => {
            let rows = channels(d);
            h.push_str(&baseline_svg(&rows));
            h.push_str("<table><tr><th>channel</th><th>baseline</th><th>observed</th><th>new (first 8)</th></tr>");
            for (label, base, obs) in &rows {
                let new: Vec<String> = obs.difference(base).take(8).map(|x| esc(x)).collect();
                let _ = write!(
                    h,
                    r#"<tr><td>{}</td><td>{}</td><td>{}</td><td class="mono">{}</td></tr>"#,
                    esc(label),
                    base.len(),
                    obs.len(),
                    new.join("<br>")
                );
            }
            let (be, oe) = egress(d);
            let _ = write!(
                h,
                "<tr><td>L4 egress (connects per second, max)</td><td>{}</td><td>{oe}</td><td></td></tr>",
                be.map_or("?".into(), |x| format!("{x}"))
            );
            let _ = write!(
                h,
                "<tr><td>baseline learned from</td><td colspan=3>{} record(s) over {}</td></tr></table>",
                b.get("records").and_then(Value::as_u64).unwrap_or(0),
                esc(&duration(
                    b.get("duration_ns").and_then(Value::as_u64).unwrap_or(0)
                ))
            );
        }
    }
    h.push_str("</section>");

    // Blocks and approvals.
    h.push_str(r#"<section id="decisions"><h2>Blocks and approvals</h2>"#);
    if r.decisions.is_empty() {
        h.push_str("<p>None: nothing was blocked, held for approval or refused in this run.</p>");
    } else {
        h.push_str("<table><tr><th>time</th><th>record</th><th>what</th><th>verdict</th><th>decided by</th><th>reason</th></tr>");
        for x in r.decisions.iter().take(LISTED) {
            let _ = write!(
                h,
                r#"<tr><td>{}</td><td>{}</td><td class="mono">{} (pid {} {})</td><td><b>{}</b></td><td class="mono">{}</td><td>{}</td></tr>"#,
                esc(&utc(x.ts_ns)),
                esc(&x.ty),
                esc(&x.what),
                x.pid,
                esc(&x.comm),
                esc(&x.verdict),
                esc(&x.by),
                esc(&x.reason)
            );
        }
        h.push_str("</table>");
        if r.decisions_total > LISTED as u64 {
            let _ = write!(
                h,
                r#"<p class="note">{} more not listed.</p>"#,
                r.decisions_total - LISTED as u64
            );
        }
    }
    h.push_str("</section>");

    // Losses.
    h.push_str(r#"<section id="losses"><h2>Losses</h2>"#);
    if r.lost.is_empty() {
        h.push_str("<p>No lost events recorded: the kernel counts every event it could not deliver, and none were counted.</p>");
    } else {
        h.push_str("<table><tr><th>what</th><th>events lost</th></tr>");
        for (k, n) in &r.lost {
            let _ = write!(h, "<tr><td>{}</td><td>{n}</td></tr>", esc(k));
        }
        h.push_str("</table><p class=\"warn\">The record of this run has gaps: the counts above were lost in the kernel or on the way.</p>");
    }
    h.push_str("</section>");

    // Certificates.
    let _ = write!(
        h,
        r#"<section id="certificates"><h2>Certificates</h2><p>{} signed certificate(s) in <span class="mono">alerts/</span>. Check them with <span class="mono">proctor verify {} --key KEY.pem</span> or with openssl alone.</p>"#,
        d.certificates.len() + d.certificates_omitted,
        esc(&d.dir.display().to_string())
    );
    if !d.certificates.is_empty() {
        h.push_str("<table><tr><th>file</th><th>kind</th><th>time</th><th>sha256</th></tr>");
        for c in d.certificates.iter().take(LISTED) {
            let _ = write!(
                h,
                r#"<tr><td class="mono">{}</td><td>{}</td><td>{}{}</td><td class="mono">{}</td></tr>"#,
                esc(&c.file),
                esc(&c.kind),
                esc(&utc(c.ts_ns)),
                if c.timestamped { " (timestamped)" } else { "" },
                esc(&c.sha256)
            );
        }
        h.push_str("</table>");
        let more = (d.certificates.len() + d.certificates_omitted).saturating_sub(LISTED);
        if more > 0 {
            let _ = write!(h, r#"<p class="note">{more} more not listed.</p>"#);
        }
    }
    h.push_str("</section>");

    // Compliance.
    h.push_str(r#"<section id="compliance"><h2>Compliance mapping</h2><p class="note">What this run's evidence can support under DORA, NIS2 and the EU AI Act, and what it cannot. A description of evidence, not legal advice; see docs/compliance.md.</p><table><tr><th>evidence in this run</th><th></th></tr>"#);
    for (k, v) in compliance::evidence_lines(d) {
        let _ = write!(
            h,
            r#"<tr><td class="k">{}</td><td>{}</td></tr>"#,
            esc(&k),
            esc(&v)
        );
    }
    h.push_str("</table><table><tr><th>article</th><th>proctor's evidence supports</th><th>not covered</th></tr>");
    for a in compliance::ARTICLES {
        let _ = write!(
            h,
            "<tr><td><b>{}</b><br>{}</td><td>{}</td><td>{}</td></tr>",
            esc(a.regulation),
            esc(a.article),
            esc(a.supports),
            esc(a.not)
        );
    }
    h.push_str("</table></section></main></body></html>\n");
    h
}

/// The same content as Markdown (no charts: the timeline as a table of busy minutes).
pub fn render_markdown(d: &Data) -> String {
    let r = &d.run;
    let mut m = String::new();
    let _ = writeln!(
        m,
        "# proctor report{}\n",
        d.incident
            .as_ref()
            .map(|i| format!(": incident {}", md(i)))
            .unwrap_or_default()
    );
    m.push_str("## Summary\n\n| | |\n|---|---|\n");
    for (k, v) in summary_rows(d) {
        let _ = writeln!(m, "| {k} | {} |", md(&v));
    }
    if d.verdict.trusted_time.verified == 0 {
        m.push_str(
            "\n> Times are the host's clock: no verified trusted timestamp (RFC 3161) vouches for them.\n",
        );
    }
    let problems = findings(d);
    if !problems.is_empty() {
        m.push_str("\n### What verify found\n\n");
        for p in problems {
            let _ = writeln!(m, "- {}", md(&p));
        }
    }
    m.push_str("\n## Timeline\n\n| minute (UTC) | records | alerts | blocks/approvals |\n|---|---:|---:|---:|\n");
    let mut minutes: BTreeMap<u64, (u64, u64, u64)> = BTreeMap::new();
    for (s, (n, a, dc)) in &r.per_second {
        let e = minutes.entry(s / 60).or_default();
        e.0 += n;
        e.1 += a;
        e.2 += dc;
    }
    let busiest: BTreeSet<u64> = {
        let mut v: Vec<(u64, u64)> = minutes
            .iter()
            .map(|(k, x)| (x.1 * 1_000_000 + x.0, *k))
            .collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v.into_iter().take(30).map(|x| x.1).collect()
    };
    for (k, (n, a, dc)) in minutes.iter().filter(|(k, _)| busiest.contains(k)) {
        let _ = writeln!(m, "| {} | {n} | {a} | {dc} |", utc(k * 60_000_000_000));
    }
    m.push_str("\n## Incidents\n\n");
    if r.incidents.is_empty() {
        m.push_str("No incident records in this run.\n");
    } else {
        m.push_str("| id | severity | title | alerts |\n|---|---|---|---:|\n");
        for (id, inc) in &r.incidents {
            if d.incident.as_ref().is_some_and(|x| x != id) {
                continue;
            }
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} |",
                md(id),
                md(inc.get("severity").and_then(Value::as_str).unwrap_or("")),
                md(inc.get("title").and_then(Value::as_str).unwrap_or("")),
                r.incident_alerts(inc).len()
            );
        }
    }
    m.push_str("\n## Alerts\n\n");
    if r.alerts_total == 0 {
        m.push_str("No alerts.\n");
    } else {
        m.push_str("| kind | count |\n|---|---:|\n");
        for (k, n) in top(&r.alerts_by_kind, 30) {
            let _ = writeln!(m, "| {} | {n} |", md(&k));
        }
        m.push_str("\n| time | channel | kind | pid | summary |\n|---|---|---|---:|---|\n");
        for a in scoped_alerts(d).iter().take(LISTED) {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} |",
                utc(a.ts_ns),
                md(&a.channel),
                md(&a.kind),
                a.pid,
                md(&a.summary)
            );
        }
    }
    m.push_str("\n## Process trees\n\n");
    for t in trees(d) {
        let _ = writeln!(m, "### {}\n\n```", md(&t.title));
        for (pid, depth) in &t.rows {
            let p = r.procs.get(pid);
            let line = format!(
                "{}{}{pid} {} {}",
                "  ".repeat(*depth),
                if t.hot.contains(pid) { "!! " } else { "" },
                p.map(|p| p.comm.as_str()).unwrap_or("?"),
                p.map(|p| p.cmdline.as_str()).unwrap_or("")
            );
            // Inside a code block only a fence can escape it.
            let _ = writeln!(m, "{}", line.replace("```", "'''"));
        }
        m.push_str("```\n(!! = triggered an alert)\n\n");
    }
    m.push_str("## Tool calls and what ran\n\n");
    if r.tool_turns.is_empty() {
        m.push_str("No LLM tool calls captured.\n");
    } else {
        m.push_str("| time | asked for | then ran |\n|---|---|---|\n");
        for t in r.tool_turns.iter().take(LISTED) {
            let _ = writeln!(
                m,
                "| {} | {} | {} |",
                utc(t.ts_ns),
                md(&t.calls.join("; ")),
                md(&t.ran.join("; "))
            );
        }
    }
    m.push_str("\n## Baseline against observed\n\n");
    if d.baseline.is_none() {
        m.push_str("No baseline.json in this run.\n");
    } else {
        m.push_str("| channel | baseline | observed | new (first 8) |\n|---|---:|---:|---|\n");
        for (label, base, obs) in channels(d) {
            let new: Vec<String> = obs.difference(&base).take(8).cloned().collect();
            let _ = writeln!(
                m,
                "| {label} | {} | {} | {} |",
                base.len(),
                obs.len(),
                md(&new.join(", "))
            );
        }
        let (be, oe) = egress(d);
        let _ = writeln!(
            m,
            "| L4 egress (connects/s, max) | {} | {oe} | |",
            be.map_or("?".into(), |x| format!("{x}"))
        );
    }
    m.push_str("\n## Blocks and approvals\n\n");
    if r.decisions.is_empty() {
        m.push_str("None.\n");
    } else {
        m.push_str(
            "| time | record | what | verdict | decided by | reason |\n|---|---|---|---|---|---|\n",
        );
        for x in r.decisions.iter().take(LISTED) {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} | {} |",
                utc(x.ts_ns),
                md(&x.ty),
                md(&x.what),
                md(&x.verdict),
                md(&x.by),
                md(&x.reason)
            );
        }
    }
    m.push_str("\n## Losses\n\n");
    if r.lost.is_empty() {
        m.push_str("No lost events recorded.\n");
    } else {
        for (k, n) in &r.lost {
            let _ = writeln!(m, "- {}: {n}", md(k));
        }
    }
    let _ = writeln!(
        m,
        "\n## Certificates\n\n{} signed certificate(s).\n",
        d.certificates.len() + d.certificates_omitted
    );
    if !d.certificates.is_empty() {
        m.push_str("| file | kind | sha256 |\n|---|---|---|\n");
        for c in d.certificates.iter().take(LISTED) {
            let _ = writeln!(m, "| {} | {} | `{}` |", md(&c.file), md(&c.kind), c.sha256);
        }
    }
    m.push_str("\n## Compliance mapping\n\nWhat this run's evidence can support; not legal advice (docs/compliance.md).\n\n| evidence in this run | |\n|---|---|\n");
    for (k, v) in compliance::evidence_lines(d) {
        let _ = writeln!(m, "| {k} | {} |", md(&v));
    }
    m.push_str("\n| article | supports | not covered |\n|---|---|---|\n");
    for a in compliance::ARTICLES {
        let _ = writeln!(
            m,
            "| {} {} | {} | {} |",
            a.regulation, a.article, a.supports, a.not
        );
    }
    m
}
