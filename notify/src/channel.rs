//! Channels and their message formats. Each chat service's robot takes its own JSON
//! shape; the generic webhook gets the events themselves, signed.

use crate::event::{clean, Event};
use crate::sign;
use crate::NotifyError;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ChannelKind {
    /// JSON events, HMAC-SHA256 signed (`X-Aperture-Signature`).
    Webhook,
    Slack,
    /// Microsoft Teams (Workflows or incoming webhook): an Adaptive Card.
    Teams,
    DingTalk,
    /// 企业微信 group robot.
    WeCom,
    /// Feishu / Lark custom bot.
    Feishu,
    /// E-mail over SMTP (STARTTLS, optional authentication).
    Email,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 7] = [
        ChannelKind::Webhook,
        ChannelKind::Slack,
        ChannelKind::Teams,
        ChannelKind::DingTalk,
        ChannelKind::WeCom,
        ChannelKind::Feishu,
        ChannelKind::Email,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
            ChannelKind::Teams => "teams",
            ChannelKind::DingTalk => "dingtalk",
            ChannelKind::WeCom => "wecom",
            ChannelKind::Feishu => "feishu",
            ChannelKind::Email => "email",
        }
    }

    pub fn parse(s: &str) -> Result<ChannelKind, NotifyError> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                NotifyError::Invalid(format!(
                    "unknown channel kind {s:?}: use one of {}",
                    Self::ALL.map(|k| k.name()).join(", ")
                ))
            })
    }
}

/// Where an e-mail channel's mail goes, and through which relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmailSettings {
    /// The SMTP relay (submission server).
    pub host: String,
    #[serde(default = "submission")]
    pub port: u16,
    /// Require STARTTLS before anything else is said (on by default; off only for a
    /// relay on the same host).
    #[serde(default = "yes")]
    pub starttls: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Secret: never returned by the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    pub from: String,
    pub to: Vec<String>,
    /// A CA certificate (PEM) to trust besides the system's, for a private relay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

fn submission() -> u16 {
    587
}

fn yes() -> bool {
    true
}

/// A plain address (`soc@example.com`): no display name, nothing a header could be
/// split on (the published pattern, `patterns::ADDRESS`).
pub fn plain_address(a: &str) -> bool {
    crate::patterns::is_address(a)
}

impl EmailSettings {
    pub fn validate(&self) -> Result<(), NotifyError> {
        let host_ok = !self.host.is_empty()
            && self.host.len() <= 253
            && self
                .host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
        if !host_ok {
            return Err(NotifyError::Invalid(format!(
                "email.host {:?}: give the SMTP relay's host name or address",
                clean(&self.host, 80)
            )));
        }
        if self.port == 0 {
            return Err(NotifyError::Invalid(
                "email.port: give the relay's port (587 for submission)".into(),
            ));
        }
        if !plain_address(&self.from) {
            return Err(NotifyError::Invalid(format!(
                "email.from {:?}: give one plain address like alerts@example.com",
                clean(&self.from, 80)
            )));
        }
        if self.to.is_empty() || self.to.len() > 50 {
            return Err(NotifyError::Invalid(
                "email.to: give 1-50 recipient addresses".into(),
            ));
        }
        if let Some(bad) = self.to.iter().find(|a| !plain_address(a)) {
            return Err(NotifyError::Invalid(format!(
                "email.to {:?}: give plain addresses like soc@example.com",
                clean(bad, 80)
            )));
        }
        if self.username.is_some() != self.password.is_some() {
            return Err(NotifyError::Invalid(
                "email: give both username and password, or neither".into(),
            ));
        }
        if self.password.is_some() && !self.starttls {
            return Err(NotifyError::Invalid(
                "email: a password is only sent over STARTTLS; set starttls to true".into(),
            ));
        }
        if let Some(pem) = &self.ca_pem {
            if !pem.contains(crate::patterns::PEM) || pem.chars().count() > 64 * 1024 {
                return Err(NotifyError::Invalid(
                    "email.ca_pem: give a PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
                ));
            }
        }
        Ok(())
    }
}

/// An e-mail's subject and plain-text body for `events`.
pub fn render_email(delivery_id: &str, events: &[Event]) -> (String, String) {
    let subject = match events {
        [one] => format!("[Aperture] {}", clean(&line(one), 150)),
        _ => clean(&headline(events), 150),
    };
    let mut body = format!("{}\n\n", headline(events));
    for e in events.iter().take(500) {
        body.push_str(&format!("- {}\n", line(e)));
        for (k, v) in &e.detail {
            body.push_str(&format!("    {}: {}\n", clean(k, 40), clean(v, 300)));
        }
    }
    if events.len() > 500 {
        body.push_str(&format!("- … and {} more\n", events.len() - 500));
    }
    body.push_str(&format!("\nevent id: {delivery_id}\n"));
    (subject, body)
}

/// A channel as stored. `url`, `secret` and the e-mail password are secrets (a chat
/// robot's URL is its credential): the API never returns them after creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    pub id: String,
    pub name: String,
    pub kind: ChannelKind,
    /// The receiver's URL (not for e-mail).
    #[serde(default)]
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailSettings>,
    pub created: i64,
    pub created_by: String,
    /// Imported without its secrets (an export never carries them): nothing is sent
    /// through it until they are given again (`PUT …/alerts/channels/{id}`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub needs_secret: bool,
}

/// One HTTP request to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What a user may see of a URL: scheme, host and port, never the path or query that
/// carry a robot's key.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = host.rsplit('@').next().unwrap_or_default();
            format!("{scheme}://{host}/…")
        }
        None => "…".into(),
    }
}

/// A URL a channel may post to: http or https, a host, no spaces or controls.
pub fn validate_url(url: &str) -> Result<(), NotifyError> {
    let bad = |why: &str| {
        NotifyError::Invalid(format!(
            "url {:?}: {why}; give the receiver's full http:// or https:// URL",
            clean(url, 80)
        ))
    };
    if url.len() > 2048 {
        return Err(bad("longer than 2048 characters"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains spaces or control characters"));
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| bad("not an http or https URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(bad("credentials in the URL are not supported"));
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if let Some((_, port)) = authority
        .rsplit_once(':')
        .filter(|_| !authority.ends_with(']'))
    {
        if !port.contains(']') && port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(bad("the port is not a number from 1 to 65535"));
        }
    }
    // The published pattern is the rule; the checks above only say more precisely why.
    if !crate::patterns::is_url(url) {
        return Err(bad("not a URL of the form http(s)://host[:port][/path]"));
    }
    Ok(())
}

impl Channel {
    pub fn validate(&self) -> Result<(), NotifyError> {
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            return Err(NotifyError::Invalid(
                "channel name: give 1-200 characters".into(),
            ));
        }
        if self.kind == ChannelKind::Email {
            return match &self.email {
                Some(e) if self.url.is_empty() && self.secret.is_none() => e.validate(),
                Some(_) => Err(NotifyError::Invalid(
                    "an email channel takes 'email' settings, not 'url' or 'secret'".into(),
                )),
                None => Err(NotifyError::Invalid(
                    "an email channel needs 'email': {host, port, from, to, ...}".into(),
                )),
            };
        }
        if self.email.is_some() {
            return Err(NotifyError::Invalid(
                "'email' settings are for channels of kind email".into(),
            ));
        }
        validate_url(&self.url)?;
        if let Some(s) = &self.secret {
            if s.is_empty() || s.chars().count() > 512 {
                return Err(NotifyError::Invalid(
                    "secret: give 1-512 characters, or leave it out".into(),
                ));
            }
        }
        if self.kind == ChannelKind::Webhook && self.secret.is_none() {
            return Err(NotifyError::Invalid(
                "a webhook channel needs a 'secret' to sign its requests with (HMAC-SHA256): give one of at least 16 characters".into(),
            ));
        }
        if self.kind == ChannelKind::Webhook
            && self.secret.as_ref().is_some_and(|s| s.chars().count() < 16)
        {
            return Err(NotifyError::Invalid(
                "secret: give at least 16 characters for a webhook's signing key".into(),
            ));
        }
        Ok(())
    }

    /// The request that delivers `events` (one, or a digest) as message `delivery_id`.
    pub fn render(&self, delivery_id: &str, events: &[Event], now_ms: i64) -> Outgoing {
        let secs = now_ms.div_euclid(1000);
        let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
        let mut url = self.url.clone();
        let body = match self.kind {
            ChannelKind::Webhook | ChannelKind::Email => {
                let body = json!({
                    "id": delivery_id,
                    "sent_at": now_ms,
                    "events": events,
                });
                let bytes = serde_json::to_vec(&body).unwrap_or_default();
                headers.push(("X-Aperture-Event-Id".into(), delivery_id.to_owned()));
                headers.push(("X-Aperture-Timestamp".into(), secs.to_string()));
                if let Some(secret) = &self.secret {
                    headers.push((
                        "X-Aperture-Signature".into(),
                        sign::webhook_signature(secret, secs, &bytes),
                    ));
                }
                return Outgoing {
                    url,
                    headers,
                    body: bytes,
                };
            }
            ChannelKind::Slack => {
                let text = lines(events, slack_escape, 40);
                json!({
                    "text": format!("{} {}", headline(events), slack_escape(&text_one(events))),
                    "blocks": [
                        {"type": "header", "text": {"type": "plain_text", "text": clean(&headline(events), 140)}},
                        {"type": "section", "text": {"type": "mrkdwn", "text": truncate_bytes(&text, 2900)}},
                        {"type": "context", "elements": [{"type": "mrkdwn", "text": format!("event id `{}`", slack_escape(delivery_id))}]}
                    ]
                })
            }
            ChannelKind::Teams => {
                let mut body = vec![
                    json!({"type": "TextBlock", "size": "Medium", "weight": "Bolder", "text": headline(events), "wrap": true}),
                ];
                for e in events.iter().take(40) {
                    body.push(
                        json!({"type": "TextBlock", "text": md_escape(&line(e)), "wrap": true}),
                    );
                }
                body.push(json!({"type": "TextBlock", "isSubtle": true, "size": "Small", "text": format!("event id {delivery_id}")}));
                json!({
                    "type": "message",
                    "attachments": [{
                        "contentType": "application/vnd.microsoft.card.adaptive",
                        "contentUrl": null,
                        "content": {
                            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                            "type": "AdaptiveCard",
                            "version": "1.4",
                            "body": body
                        }
                    }]
                })
            }
            ChannelKind::DingTalk => {
                if let Some(secret) = &self.secret {
                    let sep = if url.contains('?') { '&' } else { '?' };
                    url = format!(
                        "{url}{sep}timestamp={now_ms}&sign={}",
                        sign::dingtalk_sign(secret, now_ms)
                    );
                }
                let text = format!(
                    "### {}\n\n{}\n\n> event id {}",
                    md_escape(&headline(events)),
                    lines(events, md_escape, 40),
                    delivery_id
                );
                json!({
                    "msgtype": "markdown",
                    "markdown": {"title": clean(&headline(events), 60), "text": truncate_bytes(&text, 18_000)}
                })
            }
            ChannelKind::WeCom => {
                let text = format!(
                    "**{}**\n{}\n<font color=\"comment\">event id {}</font>",
                    wecom_escape(&headline(events)),
                    lines(events, wecom_escape, 30),
                    delivery_id
                );
                // The robot refuses markdown content over 4096 bytes.
                json!({"msgtype": "markdown", "markdown": {"content": truncate_bytes(&text, 4000)}})
            }
            ChannelKind::Feishu => {
                let text = format!(
                    "{}\n{}\nevent id {}",
                    headline(events),
                    lines(events, |s| s.to_owned(), 40),
                    delivery_id
                );
                let mut body =
                    json!({"msg_type": "text", "content": {"text": truncate_bytes(&text, 18_000)}});
                if let Some(secret) = &self.secret {
                    body["timestamp"] = json!(secs.to_string());
                    body["sign"] = json!(sign::feishu_sign(secret, secs));
                }
                body
            }
        };
        Outgoing {
            url,
            headers,
            body: serde_json::to_vec(&body).unwrap_or_default(),
        }
    }
}

/// Whether a receiver's answer means it took the message. Chat robots answer HTTP 200
/// to most refusals and put the error in the body (DingTalk and WeCom `errcode`, Feishu
/// `code`): those are failures too, worth retrying or showing.
pub fn accepted(kind: ChannelKind, status: u16, body: &str) -> Result<(), String> {
    let answer = clean(body.trim(), 300);
    if !(200..300).contains(&status) {
        return Err(format!("the receiver answered HTTP {status}: {answer}"));
    }
    let field = match kind {
        ChannelKind::DingTalk | ChannelKind::WeCom => "errcode",
        ChannelKind::Feishu => "code",
        _ => return Ok(()),
    };
    let v: serde_json::Value = serde_json::from_str(body)
        .map_err(|_| format!("the receiver's answer is not the robot's JSON: {answer}"))?;
    match v.get(field).and_then(serde_json::Value::as_i64) {
        Some(0) => Ok(()),
        // Feishu's older bots answer {"StatusCode":0}.
        None if kind == ChannelKind::Feishu
            && v.get("StatusCode").and_then(serde_json::Value::as_i64) == Some(0) =>
        {
            Ok(())
        }
        _ => Err(format!("the robot refused the message: {answer}")),
    }
}

fn headline(events: &[Event]) -> String {
    match events {
        [one] => format!("Aperture alert for {}", clean(&one.tenant, 63)),
        many => format!(
            "Aperture digest for {}: {} events",
            clean(many.first().map_or("", |e| e.tenant.as_str()), 63),
            many.len()
        ),
    }
}

/// One line per event: `[HIGH] finding.opened — title (asset)`.
pub fn line(e: &Event) -> String {
    let sev = e
        .severity
        .map(|s| format!("[{}] ", s.name().to_uppercase()))
        .unwrap_or_default();
    let asset = e
        .asset
        .as_deref()
        .map(|a| format!(" ({})", clean(a, 200)))
        .unwrap_or_default();
    format!("{sev}{} — {}{asset}", e.kind.name(), clean(&e.title, 300))
}

fn text_one(events: &[Event]) -> String {
    match events {
        [one] => line(one),
        _ => String::new(),
    }
}

fn lines(events: &[Event], escape: impl Fn(&str) -> String, max: usize) -> String {
    let mut out: Vec<String> = events
        .iter()
        .take(max)
        .map(|e| format!("- {}", escape(&line(e))))
        .collect();
    if events.len() > max {
        out.push(format!("- … and {} more", events.len() - max));
    }
    out.join("\n")
}

/// Slack's three control characters in text.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Markdown that a scanned host's name or banner could use to forge links or emphasis.
fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '<' | '>' | '|' | '!'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// WeCom's markdown has no escapes: the characters that start markup are replaced by
/// their full-width look-alikes.
fn wecom_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '[' => '［',
            ']' => '］',
            '<' => '＜',
            '>' => '＞',
            '*' => '＊',
            '`' => '｀',
            '#' => '＃',
            c => c,
        })
        .collect()
}

fn truncate_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, Severity};
    use serde_json::Value;
    use std::collections::BTreeMap;

    fn channel(kind: ChannelKind, secret: Option<&str>) -> Channel {
        Channel {
            id: "ch-1".into(),
            name: "ops".into(),
            kind,
            url: "https://robot.example/hook?key=abc".into(),
            secret: secret.map(str::to_owned),
            email: None,
            created: 0,
            created_by: "t".into(),
            needs_secret: false,
        }
    }

    fn event(title: &str) -> Event {
        Event {
            id: "ev-1".into(),
            kind: EventKind::FindingOpened,
            tenant: "acme".into(),
            at: 1_700_000_000_000,
            title: title.into(),
            severity: Some(Severity::High),
            asset: Some("service:198.18.0.7:6379/tcp".into()),
            finding: Some("f-1".into()),
            detail: BTreeMap::new(),
        }
    }

    fn body(o: &Outgoing) -> Value {
        serde_json::from_slice(&o.body).expect("json body")
    }

    #[test]
    fn webhook_carries_the_events_id_and_a_verifiable_signature() {
        let c = channel(ChannelKind::Webhook, Some("0123456789abcdef"));
        c.validate().expect("valid");
        let o = c.render("d-1", &[event("Redis open")], 1_700_000_000_500);
        let b = body(&o);
        assert_eq!(b["id"], "d-1");
        assert_eq!(b["events"][0]["kind"], "finding.opened");
        let header = |n: &str| {
            o.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(header("X-Aperture-Event-Id").as_deref(), Some("d-1"));
        let sig = header("X-Aperture-Signature").expect("signed");
        assert!(sign::verify_webhook(
            "0123456789abcdef",
            &sig,
            &o.body,
            1_700_000_010,
            300
        ));
        assert!(channel(ChannelKind::Webhook, None).validate().is_err());
        assert!(channel(ChannelKind::Webhook, Some("short"))
            .validate()
            .is_err());
    }

    #[test]
    fn chat_bodies_have_their_documented_shapes() {
        let events = [event("Redis *open* <b>")];
        let slack = body(&channel(ChannelKind::Slack, None).render("d", &events, 0));
        assert!(slack["text"].as_str().expect("text").contains("&lt;b&gt;"));
        assert_eq!(slack["blocks"][1]["text"]["type"], "mrkdwn");
        let teams = body(&channel(ChannelKind::Teams, None).render("d", &events, 0));
        assert_eq!(teams["type"], "message");
        assert_eq!(
            teams["attachments"][0]["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(teams["attachments"][0]["content"]["type"], "AdaptiveCard");
        let ding = channel(ChannelKind::DingTalk, Some("SECabc")).render("d", &events, 1_000);
        let d = body(&ding);
        assert_eq!(d["msgtype"], "markdown");
        assert!(d["markdown"]["title"].is_string());
        assert!(d["markdown"]["text"]
            .as_str()
            .expect("text")
            .contains("\\*open\\*"));
        assert!(ding
            .url
            .starts_with("https://robot.example/hook?key=abc&timestamp=1000&sign="));
        let wecom = body(&channel(ChannelKind::WeCom, None).render("d", &events, 0));
        assert_eq!(wecom["msgtype"], "markdown");
        let content = wecom["markdown"]["content"].as_str().expect("content");
        assert!(content.contains("＜b＞") && !content.contains("<b>"));
        let feishu = body(&channel(ChannelKind::Feishu, Some("s")).render("d", &events, 5_000));
        assert_eq!(feishu["msg_type"], "text");
        assert!(feishu["content"]["text"].is_string());
        assert_eq!(feishu["timestamp"], "5");
        assert_eq!(feishu["sign"], sign::feishu_sign("s", 5));
    }

    #[test]
    fn digests_list_events_within_the_receivers_size_limits() {
        let events: Vec<Event> = (0..500)
            .map(|i| event(&format!("finding {i} {}", "x".repeat(200))))
            .collect();
        let w = body(&channel(ChannelKind::WeCom, None).render("d", &events, 0));
        let content = w["markdown"]["content"].as_str().expect("content");
        assert!(content.len() <= 4096, "{}", content.len());
        let s = body(&channel(ChannelKind::Slack, None).render("d", &events, 0));
        assert!(s["blocks"][0]["text"]["text"]
            .as_str()
            .expect("h")
            .contains("500 events"));
    }

    #[test]
    fn email_settings_are_checked_and_mail_lists_the_events() {
        let settings = EmailSettings {
            host: "smtp.example.com".into(),
            port: 587,
            starttls: true,
            username: Some("u".into()),
            password: Some("p".into()),
            from: "alerts@example.com".into(),
            to: vec!["soc@example.com".into()],
            ca_pem: None,
        };
        let mut c = channel(ChannelKind::Email, None);
        c.url = String::new();
        c.email = Some(settings.clone());
        c.validate().expect("valid");
        for (bad, want) in [
            (
                EmailSettings {
                    to: vec!["soc".into()],
                    ..settings.clone()
                },
                "email.to",
            ),
            (
                EmailSettings {
                    from: "a b@x.y".into(),
                    ..settings.clone()
                },
                "email.from",
            ),
            (
                EmailSettings {
                    password: None,
                    ..settings.clone()
                },
                "both",
            ),
            (
                EmailSettings {
                    starttls: false,
                    ..settings.clone()
                },
                "STARTTLS",
            ),
            (
                EmailSettings {
                    host: "".into(),
                    ..settings.clone()
                },
                "email.host",
            ),
        ] {
            c.email = Some(bad);
            let e = c.validate().expect_err(want).to_string();
            assert!(e.contains(want), "{e}");
        }
        let (subject, body) = render_email("d-9", &[event("Redis\r\nBcc: x@evil open")]);
        assert!(subject.starts_with("[Aperture] [HIGH] finding.opened"));
        assert!(!subject.contains('\n') && !subject.contains('\r'));
        assert!(body.contains("event id: d-9") && body.contains("service:198.18.0.7:6379/tcp"));
    }

    #[test]
    fn robot_answers_with_error_codes_are_failures() {
        assert!(accepted(ChannelKind::DingTalk, 200, r#"{"errcode":0,"errmsg":"ok"}"#).is_ok());
        let e = accepted(
            ChannelKind::DingTalk,
            200,
            r#"{"errcode":310000,"errmsg":"sign not match"}"#,
        )
        .expect_err("refused");
        assert!(e.contains("sign not match"));
        assert!(accepted(ChannelKind::WeCom, 200, "<html>").is_err());
        assert!(accepted(ChannelKind::Feishu, 200, r#"{"code":0,"msg":"success"}"#).is_ok());
        assert!(accepted(ChannelKind::Feishu, 200, r#"{"StatusCode":0}"#).is_ok());
        assert!(accepted(ChannelKind::Slack, 200, "ok").is_ok());
        assert!(accepted(ChannelKind::Webhook, 503, "down")
            .expect_err("5xx")
            .contains("503"));
    }

    #[test]
    fn urls_are_checked_and_redacted() {
        for good in [
            "http://127.0.0.1:8080/hook",
            "https://oapi.dingtalk.com/robot/send?access_token=x",
            "http://[::1]:9/x",
        ] {
            validate_url(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in [
            "ftp://x/",
            "http://",
            "http://h:99999/",
            "http://a b/",
            "notaurl",
            "http://u:p@h/",
        ] {
            assert!(validate_url(bad).is_err(), "{bad}");
        }
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T0/B0/XYZ"),
            "https://hooks.slack.com/…"
        );
        assert!(ChannelKind::parse("pager")
            .expect_err("unknown")
            .to_string()
            .contains("webhook, slack"));
    }
}
