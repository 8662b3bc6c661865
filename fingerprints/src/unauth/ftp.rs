//! FTP anonymous login (opt-in: it logs in). RFC 959 / RFC 1635: `USER anonymous`,
//! `PASS` with a mail-like address, then `PWD` and `STAT .` — a directory listing sent
//! over the control connection, so no data connection is opened — and `QUIT`.

use super::{value, verdict, Check, Step};
use crate::proto::lines::{final_numeric_reply, Numeric};

const CHECK: &str = "ftp-anonymous";
/// The password anonymous FTP asks for by convention: an address (RFC 1635); ours names
/// no real mailbox.
const PASSWORD: &str = "aperture@example.invalid";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Greeting,
    User,
    Pass,
    Pwd,
    Stat,
}

#[derive(Debug)]
pub(super) struct FtpAnonymous {
    stage: Stage,
    login_code: u16,
    pwd: Option<String>,
}

impl FtpAnonymous {
    pub(super) fn new() -> Self {
        Self {
            stage: Stage::Greeting,
            login_code: 0,
            pwd: None,
        }
    }

    fn refused(&self, code: u16, text: &str) -> Step {
        verdict(
            CHECK,
            false,
            format!("ftp anonymous login refused: {code} {}", value(text)),
            true,
        )
    }
}

/// The first line of text of a reply.
fn first_text(lines: &[&[u8]]) -> String {
    lines
        .first()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .unwrap_or_default()
}

/// The quoted directory of a 257 reply (`257 "/" is the current directory`).
fn quoted(text: &str) -> Option<&str> {
    let start = text.find('"')? + 1;
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

impl Check for FtpAnonymous {
    fn name(&self) -> &'static str {
        CHECK
    }
    fn first(&mut self) -> Step {
        Step::Connect(Vec::new())
    }
    fn complete(&self, reply: &[u8]) -> bool {
        !matches!(final_numeric_reply(reply), Numeric::Incomplete)
    }
    fn on_reply(&mut self, reply: &[u8]) -> Step {
        let Numeric::Complete { code, lines, .. } = final_numeric_reply(reply) else {
            // Not FTP after all, or cut short: no verdict.
            return match self.stage {
                Stage::Pwd | Stage::Stat => self.logged_in(None),
                _ => Step::Done(None),
            };
        };
        let text = first_text(&lines);
        match self.stage {
            Stage::Greeting if code == 220 => {
                self.stage = Stage::User;
                Step::Send(b"USER anonymous\r\n".to_vec())
            }
            Stage::Greeting => Step::Done(None),
            Stage::User if code == 331 => {
                self.stage = Stage::Pass;
                Step::Send(format!("PASS {PASSWORD}\r\n").into_bytes())
            }
            Stage::User | Stage::Pass if code == 230 => {
                self.login_code = code;
                self.stage = Stage::Pwd;
                Step::Send(b"PWD\r\n".to_vec())
            }
            Stage::User | Stage::Pass => self.refused(code, &text),
            Stage::Pwd => {
                if code == 257 {
                    self.pwd = quoted(&text).map(value);
                }
                self.stage = Stage::Stat;
                Step::Send(b"STAT .\r\n".to_vec())
            }
            Stage::Stat => {
                // 211/212/213: the listing, between the opening and closing lines.
                let entries = (matches!(code, 211..=213) && lines.len() >= 2).then(|| {
                    lines[1..lines.len() - 1]
                        .iter()
                        .filter(|l| {
                            let name = String::from_utf8_lossy(l);
                            let name = name.split_whitespace().last().unwrap_or("");
                            !name.is_empty() && name != "." && name != ".."
                        })
                        .count()
                });
                self.logged_in(entries)
            }
        }
    }
}

impl FtpAnonymous {
    fn logged_in(&self, entries: Option<usize>) -> Step {
        let mut ev = format!("ftp anonymous login accepted ({})", self.login_code);
        if let Some(p) = &self.pwd {
            ev.push_str(&format!(", PWD \"{p}\""));
        }
        if let Some(n) = entries {
            ev.push_str(&format!(", STAT . lists {n} entries"));
        }
        verdict(CHECK, true, ev, true)
    }
}
