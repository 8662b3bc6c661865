//! The legacy-hello TLS grab as a [`Session`]: send our hello, read the plaintext
//! flight, report version, suite and the leaf certificate's identity.
//!
//! This is what the driver runs when rustls cannot (TLS 1.0/1.1, old suites) or to
//! learn what an old client would be offered; for TLS 1.3 the flight says `tls13` and
//! the certificate has to come from a real handshake.

use super::hello::legacy_hello;
use super::record::{alert_name, parse, Flight, ServerFlight};
use crate::session::{Action, Banner, Session};
use sha2::{Digest, Sha256};

/// One legacy-hello grab on one connection.
#[derive(Debug, Clone)]
pub struct LegacyTlsSession {
    hello: Vec<u8>,
    outcome: Option<Flight>,
    /// What was parsed before the flight ended or broke (kept for `banner`).
    partial: Option<ServerFlight>,
}

impl LegacyTlsSession {
    /// `random` is the ClientHello random: pass fresh random bytes.
    pub fn new(sni: Option<&str>, random: [u8; 32]) -> Self {
        LegacyTlsSession {
            hello: legacy_hello(sni, random),
            outcome: None,
            partial: None,
        }
    }

    /// The complete flight, once `on_data` returned `Done` with one.
    pub fn flight(&self) -> Option<&ServerFlight> {
        match &self.outcome {
            Some(Flight::Complete(f)) => Some(f),
            _ => self.partial.as_ref(),
        }
    }

    /// How the exchange ended (None while it is still going).
    pub fn outcome(&self) -> Option<&Flight> {
        self.outcome.as_ref()
    }
}

impl Session for LegacyTlsSession {
    fn protocol(&self) -> &'static str {
        "tls"
    }

    fn start(&mut self) -> Action {
        Action::Send(self.hello.clone())
    }

    fn on_data(&mut self, data: &[u8]) -> Action {
        let (flight, partial) = parse(data);
        self.partial = partial;
        match flight {
            Flight::Incomplete => Action::NeedMore,
            Flight::NotTls => {
                self.outcome = Some(Flight::NotTls);
                Action::NoMatch
            }
            other => {
                self.outcome = Some(other);
                Action::Done
            }
        }
    }

    fn banner(&self) -> Banner {
        let mut banner = Banner {
            protocol: "tls".to_string(),
            ..Banner::default()
        };
        if let Some(Flight::Alert { level, description }) = &self.outcome {
            let name = alert_name(*description)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("alert_{description}"));
            banner.text = format!("alert {name}");
            banner.fields.insert("alert".into(), name);
            banner
                .fields
                .insert("alert_level".into(), level.to_string());
        }
        if let Some(Flight::Malformed(e)) = &self.outcome {
            banner.fields.insert("error".into(), e.to_string());
        }
        if let Some(f) = self.flight() {
            let version = f
                .version_name
                .map(str::to_owned)
                .unwrap_or_else(|| format!("0x{:04x}", f.version));
            let cipher = f
                .cipher_name
                .map(str::to_owned)
                .unwrap_or_else(|| format!("0x{:04x}", f.cipher_suite));
            banner.text = format!("{version} {cipher}");
            banner.fields.insert("version".into(), version);
            banner.fields.insert("cipher".into(), cipher);
            banner
                .fields
                .insert("cipher_id".into(), format!("0x{:04x}", f.cipher_suite));
            if let Some(alpn) = &f.alpn {
                banner.fields.insert("alpn".into(), alpn.clone());
            }
            if let Some(weak) = super::suites::weakness(f.cipher_suite) {
                banner.fields.insert("cipher_weakness".into(), weak.into());
            }
            banner.fields.insert("tls13".into(), f.tls13.to_string());
            banner
                .fields
                .insert("certificates".into(), f.certificate_count.to_string());
            if let Some(leaf) = f.certificates.first() {
                banner
                    .fields
                    .insert("cert_sha256".into(), super::hex(&Sha256::digest(leaf)));
            }
        }
        banner
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::record::tests::{message, record, server_hello_body, tls12_flight};

    #[test]
    fn full_exchange() {
        let mut s = LegacyTlsSession::new(Some("old.example"), [5; 32]);
        let Action::Send(hello) = s.start() else {
            panic!("hello expected");
        };
        assert_eq!(hello, legacy_hello(Some("old.example"), [5; 32]));
        let flight = tls12_flight();
        assert_eq!(s.on_data(&flight[..20]), Action::NeedMore);
        assert_eq!(s.on_data(&flight), Action::Done);
        let f = s.flight().expect("flight");
        assert_eq!(f.certificates.len(), 2);
        let b = s.banner();
        assert_eq!(b.protocol, "tls");
        assert_eq!(b.text, "TLSv1.2 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
        assert_eq!(b.fields["alpn"], "h2");
        assert_eq!(b.fields["certificates"], "2");
        assert_eq!(
            b.fields["cert_sha256"],
            crate::tls::hex(&Sha256::digest(b"leaf-der-bytes"))
        );
    }

    #[test]
    fn alert_and_not_tls() {
        let mut s = LegacyTlsSession::new(None, [0; 32]);
        assert_eq!(s.on_data(&record(21, 0x0301, &[2, 40])), Action::Done);
        assert_eq!(s.banner().text, "alert handshake_failure");
        let mut s = LegacyTlsSession::new(None, [0; 32]);
        assert_eq!(s.on_data(b"220 smtp.example ESMTP\r\n"), Action::NoMatch);
    }

    #[test]
    fn partial_flight_is_reported() {
        let mut s = LegacyTlsSession::new(None, [0; 32]);
        let bytes = record(
            22,
            0x0301,
            &message(2, &server_hello_body(0x0301, 0x0005, None)),
        );
        assert_eq!(s.on_data(&bytes), Action::NeedMore);
        // The driver gives up here (cap or timeout) and still reads the banner.
        let b = s.banner();
        assert_eq!(b.fields["version"], "TLSv1.0");
        assert_eq!(b.fields["cipher_weakness"], "rc4");
    }
}
