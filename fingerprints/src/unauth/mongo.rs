//! MongoDB: `buildInfo` (answered without authentication by design) for the version,
//! then `listDatabases` with `nameOnly` — the read an unauthenticated client must be
//! refused (`Unauthorized`, code 13) when access control is on. `OP_MSG` for 3.6+
//! (`maxWireVersion` >= 6, from the grab's handshake), `OP_QUERY` before.

use super::{value, verdict, Check, Step};
use crate::proto::mongodb::{document, op_msg, op_query, read_reply, Arg, Bson};
use crate::session::Banner;

const CHECK: &str = "mongodb";
/// Database names quoted in the evidence.
const NAMES: usize = 3;

pub(super) fn plan(banner: &Banner) -> Option<Box<dyn Check>> {
    let wire: i64 = banner.fields.get("max_wire_version")?.parse().ok()?;
    Some(Box::new(Mongo {
        op_msg: wire >= 6,
        request: 0,
        version: None,
    }))
}

#[derive(Debug)]
struct Mongo {
    op_msg: bool,
    /// Id of the request in flight: 1 buildInfo, 2 listDatabases.
    request: i32,
    version: Option<String>,
}

impl Mongo {
    fn command(&mut self, id: i32, name: &str) -> Vec<u8> {
        self.request = id;
        if self.op_msg {
            let mut items = vec![(name, Arg::Int(1)), ("$db", Arg::Str("admin"))];
            if name == "listDatabases" {
                items.push(("nameOnly", Arg::Bool(true)));
            }
            op_msg(id, &document(&items))
        } else {
            op_query(id, &document(&[(name, Arg::Int(1))]))
        }
    }
}

impl Check for Mongo {
    fn name(&self) -> &'static str {
        CHECK
    }
    fn first(&mut self) -> Step {
        Step::Connect(self.command(1, "buildInfo"))
    }
    fn complete(&self, reply: &[u8]) -> bool {
        !matches!(read_reply(reply, self.request), Ok(None))
    }
    fn on_reply(&mut self, reply: &[u8]) -> Step {
        let Ok(Some(doc)) = read_reply(reply, self.request) else {
            return Step::Done(None);
        };
        if self.request == 1 {
            self.version = doc.get("version").and_then(Bson::str).map(value);
            return Step::Send(self.command(2, "listDatabases"));
        }
        let head = match &self.version {
            Some(v) => format!("mongodb {v}"),
            None => "mongodb".to_owned(),
        };
        let ok = doc.get("ok").is_some_and(Bson::truthy);
        match doc.get("databases") {
            Some(Bson::Array(dbs)) if ok => {
                let names: Vec<String> = dbs
                    .iter()
                    .filter_map(|d| d.get("name").and_then(Bson::str))
                    .take(NAMES)
                    .map(value)
                    .collect();
                let more = if dbs.len() > NAMES { ", ..." } else { "" };
                verdict(
                    CHECK,
                    true,
                    format!(
                        "{head}, listDatabases lists {} databases ({}{more})",
                        dbs.len(),
                        names.join(", ")
                    ),
                    false,
                )
            }
            _ => {
                let why = doc
                    .get("errmsg")
                    .and_then(Bson::str)
                    .map(value)
                    .unwrap_or_else(|| "no database list".into());
                verdict(
                    CHECK,
                    false,
                    format!("{head}, listDatabases refused: {why}"),
                    false,
                )
            }
        }
    }
}
