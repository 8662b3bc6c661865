//! A generated report by e-mail: a short summary (plain text and HTML, in the report's
//! language) with the PDF and the HTML page attached, sent through one of the tenant's
//! e-mail alert channels (its relay, STARTTLS and login, its sender address) to the
//! recipients of the tenant's report settings.
//!
//! The mail is a delivery of the alert outbox: the sender calls [`send`] when it is due
//! and retries it like any alert. Its Message-ID is the report's event id, so a mail
//! sent again after a crash is recognisably the same mail.

use super::{html::esc, Lang, Period, ReportData, ReportMeta};
use crate::portal::i18n::Lang as PortalLang;
use aperture_notify::event::clean;
use aperture_notify::{Channel, Event};
use aperture_storage::TenantId;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart};
use lettre::{Message, Transport};
use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

struct Words {
    daily: &'static str,
    weekly: &'static str,
    monthly: &'static str,
    report: &'static str,
    window: &'static str,
    exposed_hosts: &'static str,
    exposed_services: &'static str,
    overdue: &'static str,
    opened: &'static str,
    closed: &'static str,
    verified: &'static str,
    mttr: &'static str,
    hours: &'static str,
    none_closed: &'static str,
    candidates: &'static str,
    top_risks: &'static str,
    unassigned: &'static str,
    attached: &'static str,
    no_pdf: &'static str,
    report_id: &'static str,
}

const EN: Words = Words {
    daily: "Daily",
    weekly: "Weekly",
    monthly: "Monthly",
    report: "exposure operations report",
    window: "Period",
    exposed_hosts: "Exposed hosts",
    exposed_services: "Exposed services",
    overdue: "Findings overdue now",
    opened: "Findings opened in the period",
    closed: "Findings closed in the period",
    verified: "verified by a rescan",
    mttr: "Mean time to remediate (verified)",
    hours: "hours",
    none_closed: "no verified closure yet",
    candidates: "Candidates awaiting review",
    top_risks: "Top risks",
    unassigned: "unassigned",
    attached: "The full report is attached as PDF and as an HTML page.",
    no_pdf: "The PDF could not be printed; the full report is attached as an HTML page.",
    report_id: "Report",
};

const ZH: Words = Words {
    daily: "日报",
    weekly: "周报",
    monthly: "月报",
    report: "暴露面运营报告",
    window: "统计周期",
    exposed_hosts: "暴露主机",
    exposed_services: "暴露服务",
    overdue: "当前逾期问题",
    opened: "本期新发现问题",
    closed: "本期已关闭问题",
    verified: "其中经复扫验证",
    mttr: "平均修复时间（已验证）",
    hours: "小时",
    none_closed: "尚无验证关闭的问题",
    candidates: "待审核的候选资产",
    top_risks: "主要风险",
    unassigned: "未指派",
    attached: "完整报告见附件（PDF 及 HTML 页面）。",
    no_pdf: "PDF 未能生成；完整报告见附件 HTML 页面。",
    report_id: "报告编号",
};

fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::En => &EN,
        Lang::ZhCn => &ZH,
    }
}

fn portal(lang: Lang) -> PortalLang {
    match lang {
        Lang::En => PortalLang::En,
        Lang::ZhCn => PortalLang::Zh,
    }
}

fn day(at: i64) -> String {
    aperture_fingerprints::cert::rfc3339(at.div_euclid(1000))
        .get(0..10)
        .unwrap_or_default()
        .to_owned()
}

/// The subject: what, whose, which period. The tenant's name is the tenant's own text:
/// no control characters, bounded.
pub fn subject(d: &ReportData) -> String {
    let w = words(d.lang);
    let period = period_word(w, d.period);
    let name = clean(&d.tenant_name, 80);
    match d.lang {
        Lang::En => format!(
            "[Aperture] {period} {} for {name}: {} to {}",
            w.report,
            day(d.from),
            day(d.to)
        ),
        Lang::ZhCn => format!(
            "[Aperture] {name} 暴露面运营{period}（{} 至 {}）",
            day(d.from),
            day(d.to)
        ),
    }
}

fn severity_word(lang: Lang, s: &str) -> String {
    match (lang, s) {
        (Lang::ZhCn, "critical") => "严重".into(),
        (Lang::ZhCn, "high") => "高危".into(),
        (Lang::ZhCn, "medium") => "中危".into(),
        (Lang::ZhCn, "low") => "低危".into(),
        (Lang::ZhCn, "info") => "信息".into(),
        _ => s.to_uppercase(),
    }
}

fn period_word(w: &Words, p: Period) -> &'static str {
    match p {
        Period::Daily => w.daily,
        Period::Weekly => w.weekly,
        Period::Monthly => w.monthly,
    }
}

/// The figures as (label, value) lines, in the report's language.
fn figures(d: &ReportData) -> Vec<(&'static str, String)> {
    let w = words(d.lang);
    let s = &d.summary;
    let n = |v: u64| PortalLang::En.number(v);
    vec![
        (w.exposed_hosts, n(s.exposed_hosts)),
        (w.exposed_services, n(s.exposed_services)),
        (w.overdue, n(s.overdue)),
        (w.opened, n(d.opened_in_period)),
        (
            w.closed,
            match d.lang {
                Lang::En => format!(
                    "{} ({}: {})",
                    n(d.closed_in_period),
                    w.verified,
                    n(d.verified_in_period)
                ),
                Lang::ZhCn => format!(
                    "{}（{}：{}）",
                    n(d.closed_in_period),
                    w.verified,
                    n(d.verified_in_period)
                ),
            },
        ),
        (
            w.mttr,
            match s.mean_time_to_remediate_hours {
                Some(h) => format!("{h:.1} {}", w.hours),
                None => w.none_closed.to_owned(),
            },
        ),
        (w.candidates, n(d.candidates_awaiting)),
    ]
}

/// The plain-text body and the HTML body.
pub fn bodies(d: &ReportData, meta: &ReportMeta) -> (String, String) {
    let w = words(d.lang);
    let p = portal(d.lang);
    let heading = match d.lang {
        Lang::En => format!(
            "{} · {} {}",
            clean(&d.tenant_name, 120),
            period_word(w, d.period),
            w.report
        ),
        Lang::ZhCn => format!(
            "{} · 暴露面运营{}",
            clean(&d.tenant_name, 120),
            period_word(w, d.period)
        ),
    };
    let window = format!(
        "{}: {} — {}",
        w.window,
        p.datetime(d.from),
        p.datetime(d.to)
    );
    let figures = figures(d);
    let risks: Vec<String> = d
        .top_risks
        .iter()
        .take(3)
        .map(|r| {
            // Most titles name their asset already.
            let asset = if r.title.contains(&r.asset) {
                String::new()
            } else {
                format!(" — {}", clean(&r.asset, 200))
            };
            format!(
                "[{}] {}{asset} ({})",
                severity_word(d.lang, &r.severity),
                clean(&r.title, 200),
                r.owner
                    .as_deref()
                    .map_or_else(|| w.unassigned.to_owned(), |o| clean(o, 80))
            )
        })
        .collect();
    let attached = if meta.pdf_bytes.is_some() {
        w.attached
    } else {
        w.no_pdf
    };
    let mut text = format!("{heading}\n{window}\n\n");
    for (label, value) in &figures {
        let _ = writeln!(text, "{label}: {value}");
    }
    if !risks.is_empty() {
        let _ = writeln!(text, "\n{}:", w.top_risks);
        for r in &risks {
            let _ = writeln!(text, "- {r}");
        }
    }
    let _ = write!(
        text,
        "\n{attached}\n{}: {} ({})\n",
        w.report_id, meta.id, d.tenant
    );
    let mut html = format!(
        "<!DOCTYPE html><html lang=\"{}\"><head><meta charset=\"utf-8\"></head>\
<body style=\"font-family:sans-serif;color:#1d2430\"><h2 style=\"margin:0 0 4px\">{}</h2>\
<p style=\"color:#5b6573;margin:0 0 12px\">{}</p><table style=\"border-collapse:collapse\">",
        p.html_lang(),
        esc(&heading),
        esc(&window)
    );
    for (label, value) in &figures {
        let _ = write!(
            html,
            "<tr><td style=\"padding:3px 12px 3px 0\">{}</td><td style=\"text-align:right;font-weight:bold\">{}</td></tr>",
            esc(label),
            esc(value)
        );
    }
    html.push_str("</table>");
    if !risks.is_empty() {
        let _ = write!(html, "<h3>{}</h3><ul>", esc(w.top_risks));
        for r in &risks {
            let _ = write!(html, "<li>{}</li>", esc(r));
        }
        html.push_str("</ul>");
    }
    let _ = write!(
        html,
        "<p>{}</p><p style=\"color:#5b6573;font-size:12px\">{}: {} ({})</p></body></html>",
        esc(attached),
        esc(w.report_id),
        esc(&meta.id),
        esc(&d.tenant)
    );
    (text, html)
}

/// Builds the mail of the report that `event` names.
pub fn message(data_dir: &Path, channel: &Channel, event: &Event) -> Result<Message, String> {
    let settings = channel
        .email
        .as_ref()
        .ok_or_else(|| format!("channel {} is not an e-mail channel", channel.id))?;
    let t = TenantId::new(&event.tenant).map_err(|e| format!("tenant {}: {e}", event.tenant))?;
    let id = event
        .detail
        .get("report")
        .ok_or("the delivery names no report")?;
    let (meta, data) = super::record(data_dir, &t, id).ok_or_else(|| {
        format!("report {id} is not kept (it was pruned, or the service stopped while making it)")
    })?;
    let recipients: Vec<&str> = event
        .detail
        .get("to")
        .map(|to| to.split(", ").filter(|a| !a.is_empty()).collect())
        .unwrap_or_default();
    if recipients.is_empty() {
        return Err("the report mail has no recipients".into());
    }
    let from: Mailbox = settings
        .from
        .parse()
        .map_err(|e| format!("email.from: {e}"))?;
    let mut builder = Message::builder()
        .from(from)
        .subject(subject(&data))
        .message_id(Some(format!("<{}@aperture.invalid>", event.id)))
        .date_now()
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Aperture-Event-Id"),
            event.id.clone(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Aperture-Report"),
            meta.id.clone(),
        ));
    for to in recipients {
        builder = builder.to(to.parse().map_err(|e| format!("recipient {to}: {e}"))?);
    }
    let (text, html) = bodies(&data, &meta);
    let dir = super::dir(data_dir, &t);
    // Short enough to stay a plain `filename="…"` (longer ones are split the RFC 2231
    // way, which some mail programs show badly).
    let name = format!("report-{}-{}", meta.period.name(), day(meta.to));
    let read = |ext: &str| {
        let path = dir.join(format!("{}.{ext}", meta.id));
        std::fs::read(&path).map_err(|e| format!("report file {}: {e}", path.display()))
    };
    let html_type =
        ContentType::parse("text/html; charset=utf-8").map_err(|e| format!("content type: {e}"))?;
    let mut parts = MultiPart::mixed().multipart(MultiPart::alternative_plain_html(text, html));
    if meta.pdf_bytes.is_some() {
        let pdf_type =
            ContentType::parse("application/pdf").map_err(|e| format!("content type: {e}"))?;
        parts =
            parts.singlepart(Attachment::new(format!("{name}.pdf")).body(read("pdf")?, pdf_type));
    }
    parts =
        parts.singlepart(Attachment::new(format!("{name}.html")).body(read("html")?, html_type));
    builder
        .multipart(parts)
        .map_err(|e| format!("cannot build the mail: {e}"))
}

/// Sends the report mail `event` names; the relay's reply when it accepted it.
pub fn send(
    data_dir: &Path,
    channel: &Channel,
    event: &Event,
    timeout: Duration,
) -> Result<(u16, String), String> {
    if let Some(why) = channel.unusable() {
        return Err(why);
    }
    let settings = channel
        .email
        .as_ref()
        .ok_or_else(|| format!("channel {} is not an e-mail channel", channel.id))?;
    let message = message(data_dir, channel, event)?;
    let response = crate::serve::mail::transport(settings, timeout)?
        .send(&message)
        .map_err(|e| {
            format!(
                "cannot deliver to the SMTP relay {}:{}: {e}",
                settings.host, settings.port
            )
        })?;
    let code = response.code().to_string().parse::<u16>().unwrap_or(250);
    Ok((code, response.message().collect::<Vec<_>>().join(" ")))
}

#[cfg(test)]
mod tests {
    use super::super::summary::Summary;
    use super::*;
    use aperture_notify::{ChannelKind, EmailSettings};
    use aperture_storage::reporting::report_event;

    fn data(lang: Lang, name: &str) -> ReportData {
        ReportData {
            tenant: "acme".into(),
            tenant_name: name.into(),
            period: Period::Monthly,
            lang,
            from: 1_793_000_000_000,
            to: 1_795_592_000_000,
            opened_in_period: 7,
            closed_in_period: 3,
            verified_in_period: 2,
            summary: Summary {
                exposed_services: 1234,
                ..Summary::default()
            },
            top_risks: Vec::new(),
            candidates_awaiting: 0,
            candidates: Vec::new(),
        }
    }

    fn channel() -> Channel {
        Channel {
            id: "mail".into(),
            name: "mail".into(),
            kind: ChannelKind::Email,
            url: String::new(),
            secret: None,
            email: Some(EmailSettings {
                host: "smtp.example.com".into(),
                port: 587,
                starttls: true,
                username: None,
                password: None,
                from: "reports@example.com".into(),
                to: vec!["soc@example.com".into()],
                ca_pem: None,
            }),
            created: 0,
            created_by: "t".into(),
            needs_secret: false,
        }
    }

    #[test]
    fn the_mail_carries_the_figures_the_attachments_and_no_injected_header() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = TenantId::new("acme").expect("tenant");
        for (lang, name, want_subject) in [
            (
                Lang::En,
                "Acme\r\nBcc: x@evil.example",
                "Monthly exposure operations report",
            ),
            (Lang::ZhCn, "华东\r\nBcc: x@evil.example", ""),
        ] {
            let d = data(lang, name);
            let meta = super::super::generate(
                dir.path(),
                Path::new("/nonexistent/chromium"),
                &d,
                "t",
                d.to,
                0,
                None,
            )
            .expect("generated");
            assert!(meta.pdf_bytes.is_none(), "no browser here: no PDF");
            let ev = report_event(
                &t,
                &meta.id,
                "monthly",
                &["a@x.example".into(), "b@y.example".into()],
                0,
            );
            let m = message(dir.path(), &channel(), &ev).expect("a mail");
            let raw = String::from_utf8(m.formatted()).expect("utf-8");
            let (head, body) = raw.split_once("\r\n\r\n").expect("head");
            assert!(head.is_ascii(), "{head}");
            assert!(!head.contains("\r\nBcc:"), "{head}");
            assert!(head.contains(&format!(
                "Message-ID: <acme.report-{}@aperture.invalid>",
                meta.id
            )));
            assert!(head.contains("To: a@x.example, b@y.example"), "{head}");
            assert!(head.contains("Date: "), "{head}");
            assert!(subject(&d).contains(want_subject));
            assert!(!subject(&d).contains('\n'));
            let (text, _) = bodies(&d, &meta);
            let services = match lang {
                Lang::En => "Exposed services: 1,234",
                Lang::ZhCn => "暴露服务: 1,234",
            };
            assert!(text.contains(services), "{text}");
            // Without a PDF the page is attached and the body says why.
            assert!(body.contains("filename=\"report-monthly-"), "{body}");
            assert!(!body.contains("application/pdf"));
            assert!(text.contains(match lang {
                Lang::En => "could not be printed",
                Lang::ZhCn => "PDF 未能生成",
            }));
        }
        // A report that is not kept any more is an error the outbox retries and shows.
        let ev = report_event(&t, "r1-daily-en", "x", &["a@x.example".into()], 0);
        let e = message(dir.path(), &channel(), &ev).expect_err("missing");
        assert!(e.contains("not kept"), "{e}");
    }
}
