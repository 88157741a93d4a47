//! Reading a recorded `audit.jsonl` for replay: one JSON object per line, observation records
//! decoded into [`Record`]s, everything else (sensor_start, alert, checkpoint, ...) passed on as
//! "other", and malformed lines reported with their line number instead of stopping the replay.

use proctor_model::Record;
use std::io::BufRead;

/// Record types the detectors observe.
pub const OBSERVATION_TYPES: &[&str] = &[
    "exec",
    "fork",
    "exit",
    "file_open",
    "connect",
    "send",
    "dns",
    "ptrace",
    "sched",
    "lost",
];

/// One line of an audit log.
#[derive(Debug)]
pub enum Line {
    Record(Box<Record>),
    /// A valid JSON object of another type (its `type`, and the object).
    Other {
        ty: String,
        value: serde_json::Value,
    },
    /// Not JSON, not an object, or an observation record that does not decode.
    Malformed {
        error: String,
    },
    Blank,
}

/// Iterates over `(line_number, Line)`; I/O errors end the iteration with `Err`.
pub struct AuditReader<R> {
    inner: R,
    line: usize,
    buf: Vec<u8>,
}

impl<R: BufRead> AuditReader<R> {
    pub fn new(inner: R) -> Self {
        AuditReader {
            inner,
            line: 0,
            buf: Vec::new(),
        }
    }
}

/// Decode one line.
pub fn parse_line(bytes: &[u8]) -> Line {
    let trimmed = bytes.trim_ascii();
    if trimmed.is_empty() {
        return Line::Blank;
    }
    let value: serde_json::Value = match serde_json::from_slice(trimmed) {
        Ok(v) => v,
        Err(e) => {
            return Line::Malformed {
                error: e.to_string(),
            }
        }
    };
    let Some(ty) = value
        .get("type")
        .and_then(|t| t.as_str())
        .map(str::to_string)
    else {
        return Line::Malformed {
            error: "not an object with a string `type`".into(),
        };
    };
    if !OBSERVATION_TYPES.contains(&ty.as_str()) {
        return Line::Other { ty, value };
    }
    match serde_json::from_value::<Record>(value) {
        Ok(r) => Line::Record(Box::new(r)),
        Err(e) => Line::Malformed {
            error: format!("{ty} record: {e}"),
        },
    }
}

impl<R: BufRead> Iterator for AuditReader<R> {
    type Item = std::io::Result<(usize, Line)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.buf.clear();
        match self.inner.read_until(b'\n', &mut self.buf) {
            Ok(0) => None,
            Ok(_) => {
                self.line += 1;
                Some(Ok((self.line, parse_line(&self.buf))))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_classified_and_numbered() {
        let text = b"{\"type\":\"fork\",\"child_pid\":2,\"ts_ns\":1,\"agent_id\":\"a\",\"pid\":1,\"ppid\":0,\"comm\":\"x\",\"exec_id\":\"e\"}\n\
\n\
{\"type\":\"sensor_start\",\"mode\":\"audit\"}\n\
not json\n\
{\"type\":\"exec\",\"ts_ns\":1}\n\
\xff\xfe\n";
        let lines: Vec<(usize, Line)> = AuditReader::new(&text[..]).map(|l| l.unwrap()).collect();
        assert_eq!(lines.len(), 6);
        assert!(matches!(lines[0], (1, Line::Record(_))), "{:?}", lines[0]);
        assert!(matches!(lines[1], (2, Line::Blank)));
        assert!(matches!(&lines[2], (3, Line::Other { ty, .. }) if ty == "sensor_start"));
        assert!(matches!(lines[3], (4, Line::Malformed { .. })));
        match &lines[4] {
            (5, Line::Malformed { error }) => assert!(error.starts_with("exec record"), "{error}"),
            other => panic!("line 5 should be a malformed exec: {other:?}"),
        }
        assert!(matches!(lines[5], (6, Line::Malformed { .. })));
    }
}
