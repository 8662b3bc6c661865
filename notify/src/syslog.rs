//! SIEM events as RFC 5424 syslog messages, framed for a TCP (RFC 6587) or TLS
//! (RFC 5425) stream by octet counting: `<length> <message>`.
//!
//! A message: `<PRI>1 TIMESTAMP HOSTNAME aperture - MSGID [aperture@32473 tenant="…"
//! event="…" class="…"] <OCSF JSON>`. PRI is the destination's facility and a severity
//! from the finding's (critical → 2 critical, high → 3 error, medium → 4 warning, low → 5
//! notice, info and every change → 6 informational); MSGID is `finding` or `change`; the
//! structured data carries the tenant, the stable event id and the OCSF class. 32473 is
//! the enterprise number RFC 5612 sets aside for documentation: Aperture has none
//! registered. The MSG is pure-ASCII JSON, so text from scanned hosts (newlines, `]`,
//! quotes, escape sequences, any script) can neither end the message early nor forge
//! another: it is one JSON string inside one counted frame.

use crate::event::Severity;
use crate::ocsf::{self, SiemBody, SiemEvent};

/// RFC 5424's example enterprise number (RFC 5612).
pub const SD_ID: &str = "aperture@32473";

/// Syslog severity of an event.
pub fn severity(e: &SiemEvent) -> u8 {
    match &e.body {
        SiemBody::Finding(f) => match f.severity {
            Severity::Critical => 2,
            Severity::High => 3,
            Severity::Medium => 4,
            Severity::Low => 5,
            Severity::Info => 6,
        },
        SiemBody::Change(_) => 6,
    }
}

/// A header field as RFC 5424 allows it: 1..=`max` printable US-ASCII characters, no
/// space; anything else becomes `_`, nothing becomes the nil value `-`.
pub fn header_field(text: &str, max: usize) -> String {
    let out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    if out.is_empty() {
        "-".to_owned()
    } else {
        out
    }
}

/// A structured-data parameter value: `"`, `\` and `]` escaped (RFC 5424 6.3.3), control
/// characters dropped so the header stays on one line.
pub fn sd_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().filter(|c| !c.is_control()) {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` of Unix milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil date from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        ms.rem_euclid(1000)
    )
}

/// One RFC 5424 message (without framing).
pub fn message(e: &SiemEvent, facility: u8, hostname: &str, product_version: &str) -> String {
    let pri = u16::from(facility.min(23)) * 8 + u16::from(severity(e));
    let (msgid, class) = match &e.body {
        SiemBody::Finding(_) => ("finding", ocsf::DETECTION_FINDING),
        SiemBody::Change(_) => ("change", ocsf::DEVICE_INVENTORY_INFO),
    };
    format!(
        "<{pri}>1 {} {} aperture - {msgid} [{SD_ID} tenant=\"{}\" event=\"{}\" class=\"{class}\"] {}",
        rfc3339(e.at),
        header_field(hostname, 255),
        sd_value(&e.tenant),
        sd_value(&e.id),
        ocsf::to_json(&ocsf::to_ocsf(e, product_version)),
    )
}

/// A message framed by octet counting, ready for the stream.
pub fn frame(message: &str) -> Vec<u8> {
    let mut out = format!("{} ", message.len()).into_bytes();
    out.extend_from_slice(message.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ocsf::{AssetChange, FindingStep};

    fn hostile() -> SiemEvent {
        SiemEvent {
            id: "acme.f1\"] x=\"y".into(),
            tenant: "acme".into(),
            at: 1_700_000_000_123,
            body: SiemBody::Finding(FindingStep {
                finding: "f1".into(),
                rule: "unsanctioned_service".into(),
                asset: "service:198.18.0.7:80/tcp".into(),
                title: "evil\n<13>1 2026-01-01T00:00:00Z forged - - - -]\"\\\r\u{0}\u{1b}[2J 数据 \u{fffd}"
                    .into(),
                severity: Severity::Critical,
                state: "open".into(),
                from: None,
                actor: "aperture".into(),
                comment: String::new(),
                opened: 1_700_000_000_000,
            }),
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn a_message_has_the_rfc5424_header_and_structured_data() {
        let e = hostile();
        let m = message(&e, 13, "scanner 1", "0.1.0");
        // facility 13 (log audit) * 8 + severity 2 (critical)
        assert!(m.starts_with("<106>1 2023-11-14T22:13:20.123Z scanner_1 aperture - finding [aperture@32473 tenant=\"acme\" event=\"acme.f1\\\"\\] x=\\\"y\" class=\"2004\"] {"), "{m}");
        let change = SiemEvent {
            id: "acme.c0".into(),
            tenant: "acme".into(),
            at: 0,
            body: SiemBody::Change(AssetChange {
                seq: 0,
                asset: "host:198.18.0.7".into(),
                asset_kind: "host".into(),
                ip: Some("198.18.0.7".into()),
                change: "appeared".into(),
                field: None,
                old: None,
                new: None,
                scan: "s".into(),
            }),
        };
        let m = message(&change, 16, "", "0.1.0");
        assert!(m.starts_with("<134>1 1970-01-01T00:00:00.000Z - aperture - change [aperture@32473 tenant=\"acme\" event=\"acme.c0\" class=\"5001\"] {"), "{m}");
    }

    #[test]
    fn hostile_text_stays_inside_one_well_formed_frame() {
        let e = hostile();
        let m = message(&e, 13, "h", "0.1.0");
        assert!(m.is_ascii(), "{m}");
        assert!(!m.contains('\n') && !m.contains('\r') && !m.contains('\0'));
        // The structured data ends where the header says: after it, the JSON.
        let sd_end = m.find("class=\"2004\"] ").expect("sd end") + "class=\"2004\"] ".len();
        let json: serde_json::Value = serde_json::from_str(&m[sd_end..]).expect("MSG is JSON");
        let SiemBody::Finding(f) = &e.body else {
            unreachable!()
        };
        assert_eq!(json["finding_info"]["title"], f.title.as_str());
        let framed = frame(&m);
        let text = String::from_utf8(framed).expect("ascii");
        let (len, rest) = text.split_once(' ').expect("length, space");
        assert_eq!(len.parse::<usize>().expect("number"), rest.len());
    }

    #[test]
    fn header_fields_and_sd_values_escape_what_rfc5424_forbids() {
        assert_eq!(header_field("a b\u{e9}", 255), "a_b_");
        assert_eq!(header_field("", 255), "-");
        assert_eq!(header_field(&"x".repeat(300), 255).len(), 255);
        assert_eq!(sd_value("a\"b\\c]d\ne"), "a\\\"b\\\\c\\]de");
    }
}
