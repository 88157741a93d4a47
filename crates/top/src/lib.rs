//! `proctor top`: a live terminal view of proctor sessions. A [`Source`] delivers the records of
//! one or more sessions (today: the run directories under a directory, followed as their audit
//! logs grow); the [`model::State`] folds them into what is shown; [`ui::render`] draws it.

pub mod model;
pub mod source;
pub mod tail;
pub mod ui;

pub use source::{ListedSource, Lister, RunDirSource, Source};

use anyhow::Context;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Run the view until the user presses q (or Esc, or Ctrl-C). Needs a terminal.
pub fn run(mut source: Box<dyn Source>) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        anyhow::bail!("top needs a terminal on stdin and stdout");
    }
    let mut state = model::State::default();
    let mut terminal = ratatui::try_init().context("cannot set up the terminal")?;
    let result = (|| -> anyhow::Result<()> {
        loop {
            // Read what the source has (bounded per poll), draw, then wait for a key or the tick.
            source.poll(&mut |session, line| state.apply(session, line))?;
            terminal.draw(|f| ui::render(f, &state, &source.describe(), now_ns()))?;
            if event::poll(Duration::from_millis(500))? {
                if let Event::Key(k) = event::read()? {
                    let ctrl_c =
                        k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                    if k.kind == KeyEventKind::Press
                        && (matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) || ctrl_c)
                    {
                        return Ok(());
                    }
                }
            }
        }
    })();
    ratatui::try_restore().context("cannot restore the terminal")?;
    result
}
