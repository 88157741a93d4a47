//! What proctor's evidence supports for DORA, NIS2 and the EU AI Act, article by article. The
//! same text is in `docs/compliance.md`; this is the short form the report prints beside the
//! run's own numbers. It describes evidence, not legal advice: whether an obligation applies
//! and is met is for the organisation and its advisers.

use crate::Data;

/// One article and what proctor's records bring to it.
pub struct Article {
    pub regulation: &'static str,
    pub article: &'static str,
    /// What the article asks, paraphrased.
    pub asks: &'static str,
    /// What proctor's evidence supports, and from which records and fields.
    pub supports: &'static str,
    /// What proctor does not provide.
    pub not: &'static str,
}

pub const ARTICLES: &[Article] = &[
    Article {
        regulation: "DORA (EU) 2022/2554",
        article: "Art. 17 ICT-related incident management",
        asks: "a process to detect, manage, log, classify and follow up ICT-related incidents, with early-warning indicators and root-cause work",
        supports: "detection and logging of what the agent did: alert records and signed certificates (channel, kind, ts_ns, summary, trigger, syscall_trace), incidents with severity, the process tree for root cause, the hash-chained audit.jsonl as the incident record",
        not: "the management process, roles and communication, and classification by the criteria of Art. 18 (clients, duration, data, economic impact)",
    },
    Article {
        regulation: "DORA (EU) 2022/2554",
        article: "Art. 19 reporting of major ICT-related incidents",
        asks: "initial notification, intermediate and final reports of major incidents to the competent authority",
        supports: "facts for the reports: when it was detected (alert ts_ns, ideally with a trusted timestamp), what ran and where it connected, what was blocked (decision records), and evidence the recipient can verify offline (proctor verify)",
        not: "deciding whether an incident is major, the report templates and deadlines, and submitting them",
    },
    Article {
        regulation: "NIS2 (EU) 2022/2555",
        article: "Art. 21 cybersecurity risk-management measures",
        asks: "appropriate measures including incident handling (2b), access control (2i), assessment of their effectiveness (2f) and cryptography (2h)",
        supports: "incident handling (alerts, incidents, this report); enforced access rules and human approval for risky actions (decision and approval records with who decided); measurement of the controls (blocks, losses, baseline against observed); Ed25519 signatures and a hash chain over the evidence",
        not: "risk analysis, business continuity, supply-chain and HR measures, training; proctor covers one host's agents",
    },
    Article {
        regulation: "NIS2 (EU) 2022/2555",
        article: "Art. 23 reporting obligations",
        asks: "an early warning (24 h), an incident notification (72 h) and a final report (one month) of significant incidents to the CSIRT or authority",
        supports: "the time of detection, the severity proctor assigned, indicators (destinations, files, binaries) and the causal chain, with verifiable evidence to attach",
        not: "the judgement of significance (Art. 23(3)), cross-border impact, and the notification itself",
    },
    Article {
        regulation: "EU AI Act (EU) 2024/1689",
        article: "Art. 12 record-keeping",
        asks: "high-risk AI systems allow the automatic recording of events (logs) over their lifetime, for identifying risks, post-market monitoring and monitoring of operation",
        supports: "automatic, tamper-evident recording of the agent's actions on the host (execs, files, connects, DNS, ptrace), and of the model's tool calls when TLS capture is on (llm_request, llm_response), each with ts_ns",
        not: "logging built into the AI system by its provider, which the article addresses; proctor records from outside and sees only what reaches the host",
    },
    Article {
        regulation: "EU AI Act (EU) 2024/1689",
        article: "Art. 26 obligations of deployers",
        asks: "human oversight (26(2)), monitoring of operation and informing the provider of risks (26(5)), keeping the automatically generated logs for at least six months (26(6))",
        supports: "human oversight as approval records (verdict, decided_by, approver, reason, latency); monitoring through alerts and this report; logs in a form whose integrity can be shown later",
        not: "retention: keeping the files for six months or more is the deployer's storage policy; instructions for use and staff competence",
    },
    Article {
        regulation: "EU AI Act (EU) 2024/1689",
        article: "Art. 73 reporting of serious incidents",
        asks: "providers report serious incidents to market surveillance authorities (within 15 days at the latest, shorter for the gravest); deployers inform the provider",
        supports: "the facts and times for the report, the causal chain (process tree, tool call that caused it), and signed evidence for the investigation the article requires",
        not: "whether the event is a serious incident in the sense of Art. 3(49), and the report itself",
    },
];

/// The run's evidence in one line per kind, for the report's compliance section.
pub fn evidence_lines(d: &Data) -> Vec<(String, String)> {
    let r = &d.run;
    let count = |t: &str| r.by_type.get(t).copied().unwrap_or(0);
    vec![
        (
            "Detection and incident record".into(),
            format!(
                "{} alert(s), {} incident(s), {} signed certificate(s); audit log of {} record(s) in {} segment(s) with {} signed checkpoint(s)",
                r.alerts_total,
                r.incidents.len(),
                d.certificates.len() + d.certificates_omitted,
                r.records,
                r.segments,
                r.checkpoints
            ),
        ),
        (
            "Integrity".into(),
            format!(
                "proctor verify: {}{}",
                crate::render::status_word(d.verdict.status),
                if d.pinned {
                    " against a pinned key"
                } else {
                    " against the key found next to the data (not pinned)"
                }
            ),
        ),
        (
            "Time".into(),
            if d.verdict.trusted_time.verified > 0 {
                format!(
                    "{} RFC 3161 timestamp token(s) verified against the TSA certificate",
                    d.verdict.trusted_time.verified
                )
            } else if d.tokens > 0 {
                format!("{} RFC 3161 timestamp token(s), not verified", d.tokens)
            } else {
                "host clock only (no trusted timestamps)".into()
            },
        ),
        (
            "Access control and oversight".into(),
            format!(
                "{} kernel decision(s), {} approval(s), {} refused tampering attempt(s)",
                count("decision"),
                count("approval"),
                count("tamper")
            ),
        ),
        (
            "Completeness".into(),
            if r.lost.is_empty() {
                "no lost events recorded".into()
            } else {
                format!(
                    "lost events recorded: {}",
                    r.lost.values().sum::<u64>()
                )
            },
        ),
        (
            "AI tool calls".into(),
            if r.llm_requests + r.tool_turns.len() as u64 == 0 {
                "not captured in this run (TLS capture off or no LLM traffic)".into()
            } else {
                format!(
                    "{} LLM request(s), {} response(s) with tool calls",
                    r.llm_requests,
                    r.tool_turns.len()
                )
            },
        ),
    ]
}
