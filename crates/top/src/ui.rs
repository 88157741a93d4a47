//! Drawing the state: sessions on top, incidents and alerts (newest first, coloured by severity)
//! on the left, record rates and losses on the right, a status line at the bottom.

use crate::model::{State, RATE_WINDOW_S};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, Paragraph, Row, Table};
use ratatui::Frame;

/// Everything the agent controls (argv in summaries, agent ids, paths) is hostile: a terminal
/// escape sequence in it must not reach the operator's terminal, so control characters are shown
/// as U+FFFD.
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

fn severity_style(sev: &str) -> Style {
    match sev {
        "critical" => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        "high" => Style::new().fg(Color::LightRed),
        "medium" => Style::new().fg(Color::Yellow),
        "low" => Style::new().fg(Color::Cyan),
        "info" => Style::new().fg(Color::Gray),
        _ => Style::new(),
    }
}

/// `HH:MM:SS` UTC of a wall-clock timestamp in ns.
fn hms(ts_ns: u64) -> String {
    let s = ts_ns / 1_000_000_000 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Draw the whole view. `source` names what is watched, `now_ns` is the wall clock.
pub fn render(frame: &mut Frame, state: &State, source: &str, now_ns: u64) {
    let sessions_h = (state.sessions.len() as u16).clamp(1, 8) + 3;
    let [top, middle, status] = Layout::vertical([
        Constraint::Length(sessions_h),
        Constraint::Min(6),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(65), Constraint::Percentage(35)]).areas(middle);

    let rows = state.sessions.iter().map(|(name, s)| {
        let st = match &s.stopped {
            Some(r) => format!("stopped ({})", clean(r)),
            None => "live".into(),
        };
        Row::new(vec![
            clean(name),
            clean(&s.agent_id),
            clean(&s.mode),
            st,
            format!("{:.1}", s.rate(now_ns)),
            s.records.to_string(),
            s.alerts.to_string(),
            s.lost_total().to_string(),
        ])
    });
    let sessions = Table::new(
        rows,
        [
            Constraint::Fill(2),
            Constraint::Fill(1),
            Constraint::Length(8),
            Constraint::Length(22),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(7),
            Constraint::Length(7),
        ],
    )
    .header(
        Row::new([
            "session", "agent", "mode", "state", "rec/s", "records", "alerts", "lost",
        ])
        .style(Style::new().add_modifier(Modifier::BOLD)),
    )
    .block(
        Block::default()
            .borders(Borders::ALL)
            .title(format!(" proctor top: {} (q quits) ", clean(source))),
    );
    frame.render_widget(sessions, top);

    let incidents = state.incidents_newest_first();
    let inc_h = (incidents.len() as u16).clamp(1, 6) + 2;
    let [inc_area, alert_area] =
        Layout::vertical([Constraint::Length(inc_h), Constraint::Min(3)]).areas(left);
    let items: Vec<ListItem> = incidents
        .iter()
        .map(|i| {
            ListItem::new(Line::from(vec![
                Span::raw(format!("{} ", hms(i.updated_ns))),
                Span::styled(format!("{:<8} ", i.severity), severity_style(&i.severity)),
                Span::raw(format!(
                    "{} ({} alerts) {}",
                    clean(&i.title),
                    i.alerts,
                    clean(&i.id)
                )),
            ]))
        })
        .collect();
    frame.render_widget(
        List::new(items).block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!(" incidents ({}) ", incidents.len())),
        ),
        inc_area,
    );
    let items: Vec<ListItem> = state
        .alerts
        .iter()
        .map(|a| {
            let sev = if a.severity.is_empty() {
                "-"
            } else {
                &a.severity
            };
            ListItem::new(Line::from(vec![
                Span::raw(format!("{} ", hms(a.ts_ns))),
                Span::styled(format!("{:<8} ", clean(sev)), severity_style(&a.severity)),
                Span::styled(
                    format!("{} {} ", clean(&a.channel), clean(&a.kind)),
                    severity_style(&a.severity),
                ),
                Span::raw(format!(
                    "{}{}: {}",
                    clean(&a.agent_id),
                    if a.action == "BLOCKED" {
                        " BLOCKED"
                    } else {
                        ""
                    },
                    clean(&a.summary)
                )),
            ]))
        })
        .collect();
    frame.render_widget(
        List::new(items).block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!(" alerts ({}, newest first) ", state.alerts_total)),
        ),
        alert_area,
    );

    let lost: Vec<(String, u64)> = {
        let mut m = std::collections::BTreeMap::<String, u64>::new();
        for s in state.sessions.values() {
            for (k, n) in &s.lost {
                *m.entry(k.clone()).or_default() += n;
            }
        }
        m.into_iter().collect()
    };
    let lost_h = (lost.len() as u16).clamp(1, 8) + 2;
    let [rate_area, lost_area] =
        Layout::vertical([Constraint::Min(4), Constraint::Length(lost_h)]).areas(right);
    let rows = state.kinds.iter().map(|(k, st)| {
        Row::new(vec![
            clean(k),
            format!("{:.1}/s", st.rate(now_ns)),
            st.total.to_string(),
        ])
    });
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Fill(1),
                Constraint::Length(9),
                Constraint::Length(9),
            ],
        )
        .header(
            Row::new(["record", "rate", "total"]).style(Style::new().add_modifier(Modifier::BOLD)),
        )
        .block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!(" rates (last {RATE_WINDOW_S}s) ")),
        ),
        rate_area,
    );
    let lost_lines: Vec<Line> = if lost.is_empty() {
        vec![Line::from("none")]
    } else {
        lost.iter()
            .map(|(k, n)| Line::styled(format!("{} {n}", clean(k)), Style::new().fg(Color::Yellow)))
            .collect()
    };
    frame.render_widget(
        Paragraph::new(lost_lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!(" lost ({}) ", state.lost_total())),
        ),
        lost_area,
    );

    let mut line = format!(
        "{} UTC  {} sessions  {} record types",
        hms(now_ns),
        state.sessions.len(),
        state.kinds.len()
    );
    if state.unparsed > 0 {
        line.push_str(&format!("  {} lines not JSON records", state.unparsed));
    }
    frame.render_widget(Paragraph::new(line), status);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    const T0: u64 = 1_795_000_000_000_000_000;

    fn screen(state: &State, now: u64) -> (String, ratatui::buffer::Buffer) {
        let mut term = Terminal::new(TestBackend::new(120, 30)).unwrap();
        term.draw(|f| render(f, state, "runs", now)).unwrap();
        let buf = term.backend().buffer().clone();
        let mut text = String::new();
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                text.push_str(buf[(x, y)].symbol());
            }
            text.push('\n');
        }
        (text, buf)
    }

    #[test]
    fn renders_sessions_alerts_rates_and_losses() {
        let mut st = State::default();
        let line = |s: &str| s.as_bytes().to_vec();
        st.apply("agent/1", &line(&format!(r#"{{"type":"sensor_start","ts_ns":{T0},"agent_id":"sh","mode":"audit","host":"h"}}"#)));
        for i in 0..30 {
            st.apply(
                "agent/1",
                &line(&format!(
                    r#"{{"type":"exec","ts_ns":{},"agent_id":"sh"}}"#,
                    T0 + i * 300_000_000
                )),
            );
        }
        st.apply("agent/1", &line(&format!(r#"{{"type":"alert","ts_ns":{},"agent_id":"sh","channel":"L2","kind":"LLM_AGENT_HIJACK","severity":"critical","summary":"ran bash"}}"#, T0 + 1)));
        st.apply("agent/1", &line(&format!(r#"{{"type":"alert","ts_ns":{},"agent_id":"sh","channel":"L4","kind":"UNKNOWN_DESTINATION","severity":"medium","summary":"tcp to 10.0.0.1:9"}}"#, T0 + 2)));
        st.apply(
            "agent/1",
            &line(&format!(
                r#"{{"type":"lost","ts_ns":{},"agent_id":"sh","what":"file_open","count":7}}"#,
                T0 + 3
            )),
        );
        let (text, buf) = screen(&st, T0 + 9_000_000_000);
        for want in [
            "agent/1",
            "live",
            "LLM_AGENT_HIJACK",
            "UNKNOWN_DESTINATION",
            "exec",
            "3.0/s",
            "file_open 7",
            "lost (7)",
            "alerts (2, newest first)",
        ] {
            assert!(text.contains(want), "{want:?} not on screen:\n{text}");
        }
        // Newest first: the L4 alert (later) is above the L2 one.
        assert!(text.find("UNKNOWN_DESTINATION").unwrap() < text.find("LLM_AGENT_HIJACK").unwrap());
        // Severity colour: the critical alert's kind is drawn red.
        let (y, x) = text
            .lines()
            .enumerate()
            .find_map(|(y, l)| {
                l.find("LLM_AGENT_HIJACK")
                    .map(|x| (y, l[..x].chars().count()))
            })
            .unwrap();
        assert_eq!(buf[(x as u16, y as u16)].fg, Color::Red);
    }

    #[test]
    fn terminal_escapes_from_the_agent_never_reach_the_screen() {
        let mut st = State::default();
        // An agent's argv in a summary: an OSC title change and a colour sequence.
        let hostile = r#"{"type":"alert","ts_ns":1795000000000000000,"agent_id":"a\u001b]0;pwned\u0007","kind":"K","summary":"x\u001b[2J\u001b[31my\r\n"}"#;
        st.apply("s", hostile.as_bytes());
        assert_eq!(st.alerts.len(), 1);
        let (text, _) = screen(&st, T0);
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "control character on screen:\n{text:?}"
        );
        assert!(
            text.contains("]0;pwned"),
            "the text itself is still shown:\n{text}"
        );
    }
}
