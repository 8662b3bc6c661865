//! What of a channel leaves the store in a tenant's export: everything but its secrets.

use crate::channel::{redact_url, Channel, ChannelKind};

impl Channel {
    /// The channel as an export carries it: no signing secret, no e-mail password, and
    /// of a URL (a chat robot's URL is its key) only the scheme and host. Marked
    /// `needs_secret` when anything was left out.
    pub fn without_secrets(&self) -> Channel {
        let mut c = self.clone();
        let mut left_out = c.secret.take().is_some();
        if let Some(e) = &mut c.email {
            left_out |= e.password.take().is_some();
        }
        if c.kind != ChannelKind::Email && !c.url.is_empty() {
            c.url = redact_url(&c.url);
            left_out = true;
        }
        c.needs_secret |= left_out;
        c
    }

    /// Why nothing can be sent through it yet, if so.
    pub fn unusable(&self) -> Option<String> {
        self.needs_secret.then(|| {
            format!(
                "channel {} was imported without its secrets (URL, signing secret or password): give them again with PUT …/alerts/channels/{}",
                self.id, self.id
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::channel::{Channel, ChannelKind, EmailSettings};

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

    #[test]
    fn exports_leave_secrets_out_and_say_so() {
        let ding = channel(ChannelKind::DingTalk, Some("SECabc"));
        let out = ding.without_secrets();
        assert_eq!(out.secret, None);
        assert_eq!(out.url, "https://robot.example/…");
        assert!(out.needs_secret && out.unusable().is_some_and(|w| w.contains("PUT")));
        let json = serde_json::to_string(&out).expect("json");
        assert!(
            !json.contains("SECabc") && !json.contains("key=abc"),
            "{json}"
        );
        let mut mail = channel(ChannelKind::Email, None);
        mail.url = String::new();
        mail.email = Some(EmailSettings {
            host: "smtp.example.com".into(),
            port: 587,
            starttls: true,
            username: Some("u".into()),
            password: Some("hunter2".into()),
            from: "a@example.com".into(),
            to: vec!["b@example.com".into()],
            ca_pem: None,
        });
        let out = mail.without_secrets();
        assert!(out.needs_secret);
        assert!(!serde_json::to_string(&out)
            .expect("json")
            .contains("hunter2"));
        // A relay without a login has nothing secret: it works as imported.
        if let Some(e) = &mut mail.email {
            e.username = None;
            e.password = None;
        }
        assert!(!mail.without_secrets().needs_secret);
        assert!(mail.without_secrets().unusable().is_none());
    }
}
