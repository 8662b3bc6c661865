//! Signatures: ours on generic webhooks, and the ones DingTalk and Feishu robots demand.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; 32],
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `X-Aperture-Signature` of a generic webhook: `t=<unix seconds>,v1=<hex>` where
/// the MAC covers `"<t>.<body>"`. The timestamp is signed with the body, so a receiver
/// that refuses old timestamps cannot be fed a recorded request again.
pub fn webhook_signature(secret: &str, unix_secs: i64, body: &[u8]) -> String {
    let mut message = format!("{unix_secs}.").into_bytes();
    message.extend_from_slice(body);
    format!(
        "t={unix_secs},v1={}",
        hex(&hmac_sha256(secret.as_bytes(), &message))
    )
}

/// Checks a webhook signature as a receiver would: right MAC (compared in constant
/// time) and a timestamp within `tolerance_secs` of `now_secs`.
pub fn verify_webhook(
    secret: &str,
    header: &str,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = Some(v),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    if (now_secs - t).abs() > tolerance_secs {
        return false;
    }
    let want = webhook_signature(secret, t, body);
    let want = want.rsplit("v1=").next().unwrap_or_default();
    want.len() == v1.len()
        && want
            .bytes()
            .zip(v1.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// DingTalk robot "加签": `sign = urlencode(base64(HmacSHA256(secret, "<ms>\n<secret>")))`,
/// sent as the `timestamp` and `sign` query parameters.
pub fn dingtalk_sign(secret: &str, unix_ms: i64) -> String {
    let mac = hmac_sha256(secret.as_bytes(), format!("{unix_ms}\n{secret}").as_bytes());
    percent_encode(&base64::engine::general_purpose::STANDARD.encode(mac))
}

/// Feishu/Lark custom bot signature: base64 of HmacSHA256 keyed with
/// `"<seconds>\n<secret>"` over an empty message, sent in the body with `timestamp`.
pub fn feishu_sign(secret: &str, unix_secs: i64) -> String {
    let mac = hmac_sha256(format!("{unix_secs}\n{secret}").as_bytes(), b"");
    base64::engine::general_purpose::STANDARD.encode(mac)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn webhook_signatures_verify_only_with_the_secret_body_and_a_fresh_time() {
        let body = br#"{"id":"x"}"#;
        let sig = webhook_signature("s3cret", 1_700_000_000, body);
        assert!(sig.starts_with("t=1700000000,v1="));
        assert!(verify_webhook("s3cret", &sig, body, 1_700_000_100, 300));
        assert!(!verify_webhook("other", &sig, body, 1_700_000_100, 300));
        assert!(!verify_webhook(
            "s3cret",
            &sig,
            br#"{"id":"y"}"#,
            1_700_000_100,
            300
        ));
        // A replay an hour later is refused.
        assert!(!verify_webhook("s3cret", &sig, body, 1_700_003_600, 300));
        assert!(!verify_webhook(
            "s3cret",
            "v1=abc",
            body,
            1_700_000_000,
            300
        ));
    }

    #[test]
    fn dingtalk_and_feishu_signatures_are_url_safe_base64_of_32_bytes() {
        let d = dingtalk_sign("SEC123", 1_700_000_000_000);
        assert!(d
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"%-_.~".contains(&b)));
        let f = feishu_sign("abc", 1_700_000_000);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&f)
            .expect("base64");
        assert_eq!(raw.len(), 32);
        assert_eq!(
            raw.as_slice(),
            hmac_sha256(b"1700000000\nabc", b"").as_slice()
        );
    }
}
