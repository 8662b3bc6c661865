//! The plaintext server flight (records, ServerHello, Certificate, alerts) and the JARM
//! reader over the same bytes, as the legacy grab and JARM probes receive them.
#![no_main]

use aperture_fingerprints::tls::jarm::jarm_answer_complete;
use aperture_fingerprints::tls::record::partial_server_flight;
use aperture_fingerprints::tls::{jarm_read_server_hello, parse_server_flight, Flight};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let flight = parse_server_flight(data);
    if let Flight::Complete(f) = &flight {
        assert!(f.certificates.len() <= f.certificate_count.max(f.certificates.len()));
        assert!(f.certificates.iter().map(Vec::len).sum::<usize>() <= data.len());
    }
    if let Some(p) = partial_server_flight(data) {
        assert!(p.certificates.iter().map(Vec::len).sum::<usize>() <= data.len());
    }
    // A prefix of a flight that needs more bytes is never complete.
    if flight == Flight::Incomplete {
        for cut in [data.len() / 2, data.len().saturating_sub(1)] {
            assert!(
                !matches!(parse_server_flight(&data[..cut]), Flight::Complete(_)),
                "prefix of {cut} bytes complete, the whole is not"
            );
        }
    }
    let _ = jarm_answer_complete(data);
    let component = jarm_read_server_hello(data);
    // cipher|version|alpn|extensions: the extension list is bounded by the record.
    assert!(
        component.len() <= 64 + 4 * data.len(),
        "{} chars",
        component.len()
    );
});
