//! Sessions: a token is exchanged once for a random session id in an HttpOnly,
//! SameSite=Strict cookie. The session keeps the token's hash, never the secret, and the
//! token is looked up again on every request, so revoking it ends its sessions at once.
//! Every state-changing form carries the session's CSRF token, and a request whose
//! Origin (or Fetch Metadata) names another site is refused before that.

use axum::http::{header, HeaderMap, HeaderValue};
use base64::Engine;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const SESSION_COOKIE: &str = "ap_session";
pub const LANG_COOKIE: &str = "ap_lang";
/// Double-submit value of the sign-in form, which has no session yet.
pub const PRE_COOKIE: &str = "ap_pre";
/// A session ends this long after sign-in, whatever it does.
pub const SESSION_MAX: Duration = Duration::from_secs(12 * 3600);
/// ... or this long after its last request.
pub const SESSION_IDLE: Duration = Duration::from_secs(2 * 3600);
/// Memory bound: past this, the oldest sessions go first.
const MAX_SESSIONS: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Session {
    pub token_sha256: String,
    pub csrf: String,
    pub created: Instant,
    pub last: Instant,
}

#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    /// The change count the dashboard last showed, per `token id/tenant`: "new since
    /// your last visit" spans sign-outs (not restarts of the service).
    seen: Mutex<HashMap<String, u64>>,
}

pub fn random_id() -> Result<String, String> {
    let mut bytes = [0u8; 24];
    getrandom::getrandom(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Constant-time comparison of two secrets of public length.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    /// A new session for a token: (session id, CSRF token).
    pub fn create(&self, token_sha256: &str) -> Result<(String, String), String> {
        let id = random_id()?;
        let csrf = random_id()?;
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| alive(s, now));
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.last)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            id.clone(),
            Session {
                token_sha256: token_sha256.to_owned(),
                csrf: csrf.clone(),
                created: now,
                last: now,
            },
        );
        Ok((id, csrf))
    }

    /// The live session of `id`, touched; expired ones are removed.
    pub fn get(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(id) {
            Some(s) if alive(s, now) => {
                s.last = now;
                Some(s.clone())
            }
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    pub fn remove(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Records the change count shown to a token for a tenant; returns the one before.
    pub fn saw_changes(&self, token_id: &str, tenant: &str, count: u64) -> Option<u64> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_SESSIONS {
            seen.clear();
        }
        seen.insert(format!("{token_id}/{tenant}"), count)
    }
}

fn alive(s: &Session, now: Instant) -> bool {
    now.duration_since(s.created) < SESSION_MAX && now.duration_since(s.last) < SESSION_IDLE
}

/// The value of cookie `name` in the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
}

/// Whether the request came over TLS (directly, or through a proxy that says so): the
/// cookie is then `Secure`.
pub fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value; `max_age` None is a session cookie, Some(0) deletes it.
pub fn set_cookie(
    name: &str,
    value: &str,
    max_age: Option<u64>,
    http_only: bool,
    secure: bool,
) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; SameSite=Strict");
    if http_only {
        c.push_str("; HttpOnly");
    }
    if secure {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

/// Whether a state-changing request may come from where it says it comes from: an
/// Origin header, when sent, must be this very site; Fetch Metadata must not say
/// cross-site. The CSRF token is checked besides this.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site") {
            return false;
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let origin = origin.to_str().unwrap_or("");
    origin == format!("http://{host}") || origin == format!("https://{host}")
}

/// A path of this site to go back to after sign-in or a language switch; anything else
/// (another host, `//evil`, `/\evil`) becomes `/`.
pub fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.starts_with("/\\")
                && !p.chars().any(|c| c.is_control()) =>
        {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_random_and_end_on_sign_out() {
        let s = Sessions::default();
        let (a, csrf_a) = s.create("h1").expect("session");
        let (b, csrf_b) = s.create("h1").expect("session");
        assert_ne!(a, b);
        assert_ne!(csrf_a, csrf_b);
        assert!(a.len() >= 32);
        assert_eq!(s.get(&a).map(|x| x.token_sha256), Some("h1".into()));
        s.remove(&a);
        assert!(s.get(&a).is_none());
        assert!(s.get(&b).is_some());
        assert!(s.get("forged").is_none());
    }

    #[test]
    fn cross_site_requests_and_foreign_paths_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(
            same_origin(&h),
            "no Origin: a same-origin form or a non-browser"
        );
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:9999"),
        );
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h));
        assert_eq!(local_path(Some("/t/acme")), "/t/acme");
        assert_eq!(local_path(Some("//evil.example")), "/");
        assert_eq!(local_path(Some("/\\evil.example")), "/");
        assert_eq!(local_path(Some("https://evil.example")), "/");
        assert_eq!(local_path(None), "/");
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }

    #[test]
    fn cookies_are_read_and_written_strictly() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; ap_session=xyz; ap_lang=zh"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, LANG_COOKIE).as_deref(), Some("zh"));
        assert_eq!(cookie(&h, "nope"), None);
        let c = set_cookie(SESSION_COOKIE, "v", None, true, true);
        let c = c.to_str().expect("ascii");
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
        let c = set_cookie(SESSION_COOKIE, "v", None, true, false);
        assert!(!c.to_str().expect("ascii").contains("Secure"));
    }
}
