//! NATS (server-first): the server greets every client with one `INFO {json}` line
//! before anything is sent, whether or not it then requires credentials.
//!
//! Fields: `version`, `auth_required` (`true`/`false`), `tls_required`, when present in
//! the JSON. `text` is the INFO line as received (escaped, capped).

use super::lines::{prefix_compatible, split_line, MAX_LINE};
use crate::session::{printable, settle, Action, Banner, Session};

/// NATS banner grabber.
#[derive(Debug, Clone)]
pub struct NatsSession {
    outcome: Option<Action>,
    banner: Banner,
}

impl NatsSession {
    /// `host` is unused (NATS sends nothing before INFO).
    pub fn new(_host: Option<&str>) -> Self {
        Self {
            outcome: None,
            banner: Banner {
                protocol: "nats".into(),
                ..Banner::default()
            },
        }
    }

    fn parse(&mut self, data: &[u8]) -> Action {
        const PREFIX: &[u8] = b"INFO {";
        if !prefix_compatible(data, PREFIX) {
            return Action::NoMatch;
        }
        let Some((line, _)) = split_line(data) else {
            return if data.len() > MAX_LINE {
                Action::NoMatch
            } else {
                Action::NeedMore
            };
        };
        // The line is one JSON object: it must close, and parse.
        let Some(json) = line.get(PREFIX.len() - 1..) else {
            return Action::NoMatch;
        };
        let Ok(serde_json::Value::Object(info)) = serde_json::from_slice::<serde_json::Value>(json)
        else {
            return Action::NoMatch;
        };
        for key in ["version", "auth_required", "tls_required"] {
            if let Some(v) = info.get(key) {
                let v = match v {
                    serde_json::Value::String(s) => s.chars().take(64).collect(),
                    other => other.to_string().chars().take(64).collect(),
                };
                self.banner.fields.insert(key.into(), v);
            }
        }
        self.banner.text = printable(line);
        Action::Done
    }
}

impl Session for NatsSession {
    fn protocol(&self) -> &'static str {
        "nats"
    }

    fn start(&mut self) -> Action {
        Action::NeedMore
    }

    fn on_data(&mut self, data: &[u8]) -> Action {
        let mut outcome = self.outcome.take();
        let action = settle(&mut outcome, || self.parse(data));
        self.outcome = outcome;
        action
    }

    fn banner(&self) -> Banner {
        self.banner.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &[u8] = b"INFO {\"server_id\":\"NDHV\",\"version\":\"2.9.10\",\"proto\":1,\"auth_required\":true,\"max_payload\":1048576}\r\n";

    #[test]
    fn the_info_line_in_fragments() {
        let mut s = NatsSession::new(None);
        assert_eq!(s.start(), Action::NeedMore);
        for n in 1..INFO.len() {
            assert_eq!(s.on_data(&INFO[..n]), Action::NeedMore, "{n}");
        }
        assert_eq!(s.on_data(INFO), Action::Done);
        let b = s.banner();
        assert_eq!(b.fields.get("version").map(String::as_str), Some("2.9.10"));
        assert_eq!(
            b.fields.get("auth_required").map(String::as_str),
            Some("true")
        );
        assert!(s.recognised());
    }

    #[test]
    fn other_greetings_and_broken_json_are_not_nats() {
        for data in [
            &b"SSH-2.0-x\r\n"[..],
            b"INFO server\r\n",
            b"INFO {\"version\":\r\n",
            b"220 ready\r\n",
        ] {
            let mut s = NatsSession::new(None);
            assert_eq!(s.on_data(data), Action::NoMatch, "{data:?}");
            assert!(!s.recognised());
        }
    }
}
