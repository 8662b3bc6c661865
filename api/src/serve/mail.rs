//! Alert e-mail over SMTP: STARTTLS required (unless the channel turned it off for a
//! relay on the same host), authentication when the channel has a user, one plain-text
//! message per delivery whose Message-ID is the event id, so a mail sent twice after a
//! crash is recognisably the same mail.

use aperture_notify::channel::render_email;
use aperture_notify::{EmailSettings, Event};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use std::time::Duration;

/// Sends the mail; the relay's last reply code and text when it accepted it.
pub fn send(
    settings: &EmailSettings,
    id: &str,
    events: &[Event],
    timeout: Duration,
) -> Result<(u16, String), String> {
    let (subject, body) = render_email(id, events);
    let from: Mailbox = settings
        .from
        .parse()
        .map_err(|e| format!("email.from: {e}"))?;
    let mut builder = Message::builder()
        .from(from)
        .subject(subject)
        .message_id(Some(format!("<{id}@aperture.invalid>")))
        .header(ContentType::TEXT_PLAIN)
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Aperture-Event-Id"),
            id.to_owned(),
        ));
    for to in &settings.to {
        builder = builder.to(to.parse().map_err(|e| format!("email.to {to}: {e}"))?);
    }
    let message = builder
        .body(body)
        .map_err(|e| format!("cannot build the mail: {e}"))?;
    let response = transport(settings, timeout)?.send(&message).map_err(|e| {
        format!(
            "cannot deliver to the SMTP relay {}:{}: {e}",
            settings.host, settings.port
        )
    })?;
    let code = response.code().to_string().parse::<u16>().unwrap_or(250);
    Ok((code, response.message().collect::<Vec<_>>().join(" ")))
}

/// The channel's relay: STARTTLS (with its own CA when it has one) and its login.
pub fn transport(settings: &EmailSettings, timeout: Duration) -> Result<SmtpTransport, String> {
    let tls = if settings.starttls {
        let mut params = TlsParameters::builder(settings.host.clone());
        if let Some(pem) = &settings.ca_pem {
            let cert =
                Certificate::from_pem(pem.as_bytes()).map_err(|e| format!("email.ca_pem: {e}"))?;
            params = params.add_root_certificate(cert);
        }
        Tls::Required(
            params
                .build()
                .map_err(|e| format!("TLS settings for {}: {e}", settings.host))?,
        )
    } else {
        Tls::None
    };
    let mut transport = SmtpTransport::builder_dangerous(&settings.host)
        .port(settings.port)
        .tls(tls)
        .timeout(Some(timeout));
    if let (Some(user), Some(password)) = (&settings.username, &settings.password) {
        transport = transport.credentials(Credentials::new(user.clone(), password.clone()));
    }
    Ok(transport.build())
}
