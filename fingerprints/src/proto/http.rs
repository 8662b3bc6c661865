//! Plain HTTP/1.1: client-first `GET /`, the response parsed by
//! [`crate::http_facts::parse_response`]. A body delimited by the connection's close never
//! completes, so the facts are refreshed on every call: `banner()` at the driver's
//! deadline or EOF reports the body received so far.
//!
//! Fields: see [`HttpFacts::fields`] (`status`, `server`, `x-powered-by`, `location`,
//! `content-type`, `title`, `realm`, `cookies`, ...). `text` is the status line and headers.

use super::lines::safe_host;
use crate::http_facts::{parse_response, HttpFacts, Parsed};
use crate::session::{Action, Banner, Session};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Done,
    NoMatch,
}

/// HTTP banner grabber.
#[derive(Debug, Clone)]
pub struct HttpSession {
    state: State,
    request: Vec<u8>,
    facts: Option<HttpFacts>,
}

/// The request sent: `host` goes in the Host header (`aperture.invalid` when absent or
/// unusable; pass `ip:port` or `[v6]:port` for an address-only target).
pub fn request(host: Option<&str>) -> Vec<u8> {
    format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nUser-Agent: Aperture\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        safe_host(host)
    )
    .into_bytes()
}

impl HttpSession {
    pub fn new(host: Option<&str>) -> Self {
        Self {
            state: State::Waiting,
            request: request(host),
            facts: None,
        }
    }

    /// Everything learned so far (headers in order, favicon path for a follow-up
    /// fetch, ...); `None` until the response head is complete.
    pub fn facts(&self) -> Option<&HttpFacts> {
        self.facts.as_ref()
    }
}

impl Session for HttpSession {
    fn protocol(&self) -> &'static str {
        "http"
    }

    fn start(&mut self) -> Action {
        Action::Send(self.request.clone())
    }

    fn on_data(&mut self, data: &[u8]) -> Action {
        match self.state {
            State::Done => return Action::Done,
            State::NoMatch => return Action::NoMatch,
            State::Waiting => {}
        }
        match parse_response(data) {
            Err(_) => {
                self.facts = None;
                self.state = State::NoMatch;
                Action::NoMatch
            }
            Ok(Parsed::Incomplete { partial }) => {
                if partial.is_some() {
                    self.facts = partial;
                }
                Action::NeedMore
            }
            Ok(Parsed::Complete { facts, .. }) => {
                self.facts = Some(facts);
                self.state = State::Done;
                Action::Done
            }
        }
    }

    fn banner(&self) -> Banner {
        Banner {
            protocol: "http".into(),
            text: self
                .facts
                .as_ref()
                .map(|f| f.head_text.clone())
                .unwrap_or_default(),
            fields: self
                .facts
                .as_ref()
                .map(HttpFacts::fields)
                .unwrap_or_default(),
            starttls: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::lines::testkit::{converse, first, Step};
    use super::*;
    use proptest::prelude::*;

    const APACHE: &[u8] = b"HTTP/1.1 401 Unauthorized\r\nDate: Mon, 06 May 2024 10:00:00 GMT\r\nServer: Apache/2.4.57 (Debian)\r\nX-Powered-By: PHP/8.2.7\r\nWWW-Authenticate: Basic realm=\"Restricted Area\"\r\nSet-Cookie: PHPSESSID=8c3f0e1d2b; path=/; HttpOnly\r\nSet-Cookie: lang=en; path=/\r\nContent-Length: 456\r\nContent-Type: text/html; charset=iso-8859-1\r\n\r\n<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>401 Unauthorized</title>\n</head><body>\n<h1>Unauthorized</h1>\n<p>This server could not verify that you\nare authorized to access the document\nrequested.  Either you supplied the wrong\ncredentials (e.g., bad password), or your\nbrowser doesn't understand how to supply\nthe credentials required.</p>\n<hr>\n<address>Apache/2.4.57 (Debian) Server at 192.0.2.5 Port 80</address>\n</body></html>\n";

    const NGINX: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx/1.24.0 (Ubuntu)\r\nDate: Mon, 06 May 2024 10:00:00 GMT\r\nContent-Type: text/html; charset=utf-8\r\nTransfer-Encoding: chunked\r\nConnection: close\r\nX-Generator: Drupal 10 (https://www.drupal.org)\r\n\r\n\
1f\r\n<!DOCTYPE html><html><head><tit\r\n\
3e\r\nle>Home | Example</title><link rel=\"icon\" href=\"/favicon.svg\">\r\n\
0\r\n\r\n";

    #[test]
    fn request_bytes() {
        assert_eq!(
            HttpSession::new(Some("www.example.com")).start(),
            Action::Send(
                b"GET / HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: Aperture\r\nAccept: */*\r\nConnection: close\r\n\r\n"
                    .to_vec()
            )
        );
        assert_eq!(
            request(Some("x\r\nEvil: 1")),
            request(None),
            "header injection falls back to the default name"
        );
        assert!(
            String::from_utf8_lossy(&request(Some("[2001:db8::1]:8080")))
                .contains("Host: [2001:db8::1]:8080\r\n")
        );
    }

    #[test]
    fn apache_basic_auth() {
        let start = Action::Send(request(None));
        let s = converse(
            || HttpSession::new(None),
            start,
            &[Step::Data(APACHE, Action::Done)],
        );
        let b = s.banner();
        assert_eq!(b.protocol, "http");
        assert_eq!(b.fields["status"], "401");
        assert_eq!(b.fields["server"], "Apache/2.4.57 (Debian)");
        assert_eq!(b.fields["x-powered-by"], "PHP/8.2.7");
        assert_eq!(b.fields["realm"], "Restricted Area");
        assert_eq!(b.fields["cookies"], "PHPSESSID\nlang");
        assert_eq!(b.fields["title"], "401 Unauthorized");
        assert_eq!(b.fields["content-type"], "text/html; charset=iso-8859-1");
        assert!(
            !b.fields.values().any(|v| v.contains("8c3f0e1d2b")),
            "cookie values never kept"
        );
        assert!(b.text.starts_with("HTTP/1.1 401 Unauthorized\\r\\nDate:"));
        assert!(!b.text.contains("<html>"));
    }

    #[test]
    fn nginx_chunked() {
        let s = converse(
            || HttpSession::new(None),
            Action::Send(request(None)),
            &[Step::Data(NGINX, Action::Done)],
        );
        let b = s.banner();
        assert_eq!(b.fields["server"], "nginx/1.24.0 (Ubuntu)");
        assert_eq!(
            b.fields["x-generator"],
            "Drupal 10 (https://www.drupal.org)"
        );
        assert_eq!(b.fields["title"], "Home | Example");
        assert_eq!(b.fields["favicon_path"], "/favicon.svg");
        assert_eq!(s.facts().map(|f| f.body_length), Some(0x1f + 0x3e));
    }

    #[test]
    fn close_delimited_body_reports_at_deadline() {
        let mut s = HttpSession::new(None);
        s.start();
        let resp = b"HTTP/1.0 302 Found\r\nLocation: /login\r\nServer: lighttpd/1.4.69\r\n\r\n<title>Redirect";
        assert_eq!(s.on_data(&resp[..20]), Action::NeedMore);
        assert!(s.banner().fields.is_empty());
        assert_eq!(s.on_data(resp), Action::NeedMore);
        let b = s.banner();
        assert_eq!(b.fields["location"], "/login");
        assert_eq!(b.fields["server"], "lighttpd/1.4.69");
        assert_eq!(b.fields["title"], "Redirect");
    }

    #[test]
    fn other_protocols_do_not_match() {
        for reply in [
            &b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"[..],
            b"220 (vsFTPd 3.0.3)\r\n",
            b"* OK Dovecot ready.\r\n",
            b"+OK Dovecot ready.\r\n",
            b"-ERR wrong number of arguments\r\n",
            b"\x15\x03\x01\x00\x02\x02\x46",
            b"<html>no status line</html>",
        ] {
            let (a, s) = first(HttpSession::new(None), reply);
            assert_eq!(a, Action::NoMatch, "{reply:?}");
            assert!(s.banner().fields.is_empty());
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let (_, s) = first(HttpSession::new(None), &data);
            let b = s.banner();
            prop_assert!(b.text.len() <= crate::session::BANNER_CAP + 4);
            prop_assert!(b.fields.len() <= 64);
        }

        #[test]
        fn random_heads_never_panic(
            headers in proptest::collection::vec("[A-Za-z-]{1,12}: [ -~]{0,40}", 0..20),
            body in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let mut resp = b"HTTP/1.1 200 OK\r\n".to_vec();
            for h in headers {
                resp.extend_from_slice(h.as_bytes());
                resp.extend_from_slice(b"\r\n");
            }
            resp.extend_from_slice(b"\r\n");
            resp.extend_from_slice(&body);
            let (_, s) = first(HttpSession::new(None), &resp);
            prop_assert!(s.banner().fields.values().all(|v| v.len() <= 4096));
        }
    }
}
