//! HTTP/1.x response facts (status, headers, title, favicon link, chunked bodies) from
//! arbitrary bytes, as the HTTP session and the HTTPS grabber receive them.
#![no_main]

use aperture_fingerprints::http_facts::{
    favicon_hash, parse_response, HttpFacts, Parsed, BODY_CAP, HEADER_NAME_CAP, HEADER_VALUE_CAP,
    KEPT_HEADERS, TITLE_CAP, URL_CAP,
};
use libfuzzer_sys::fuzz_target;

fn check(f: &HttpFacts) {
    assert!(
        f.headers.len() <= KEPT_HEADERS,
        "{} headers",
        f.headers.len()
    );
    for (k, v) in &f.headers {
        assert!(k.chars().count() <= HEADER_NAME_CAP, "header name {k:?}");
        assert!(v.chars().count() <= HEADER_VALUE_CAP, "header value of {k}");
    }
    if let Some(t) = &f.title {
        assert!(
            t.chars().count() <= TITLE_CAP,
            "title of {} chars",
            t.chars().count()
        );
    }
    for url in f.redirect.iter().chain(&f.favicon_path) {
        assert!(
            url.chars().count() <= URL_CAP,
            "url of {} chars",
            url.chars().count()
        );
    }
    assert!(f.body_length <= BODY_CAP, "body {}", f.body_length);
    assert!(
        f.reason.len() <= 4 * 1024,
        "reason {} bytes",
        f.reason.len()
    );
    assert!(
        f.head_text.len() <= 64 * 1024,
        "head text {} bytes",
        f.head_text.len()
    );
    let fields = f.fields();
    assert!(fields.len() <= 64, "{} fields", fields.len());
    for (k, v) in &fields {
        assert!(v.len() <= 8192, "field {k}: {} bytes", v.len());
    }
}

fuzz_target!(|data: &[u8]| {
    match parse_response(data) {
        Ok(Parsed::Complete { facts, consumed }) => {
            assert!(
                consumed <= data.len(),
                "consumed {consumed} of {}",
                data.len()
            );
            check(&facts);
        }
        Ok(Parsed::Incomplete { partial }) => {
            if let Some(f) = &partial {
                check(f);
            }
        }
        Err(_) => {}
    }
    let _ = favicon_hash(data);
});
