//! Recog XML fingerprint files (what `--recog DIR` loads) from arbitrary text; whatever
//! loads then identifies banners and checks its own examples within bounds.
#![no_main]

use aperture_fingerprints::identify::RecogDb;
use aperture_fingerprints::session::Banner;
use aperture_fingerprints_fuzz::{assert_identification_bounded, PROTOCOLS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    let mut db = RecogDb::new();
    if db.add_xml("fuzz.xml", xml).is_err() {
        return;
    }
    let _ = db.stats();
    let failures = db.verify_examples();
    assert!(failures.len() <= 50_000 * 64);
    for protocol in PROTOCOLS {
        let banner = Banner {
            protocol: protocol.to_string(),
            text: xml.chars().take(512).collect(),
            ..Banner::default()
        };
        if let Some(i) = db.identify(&banner) {
            assert_identification_bounded(&i);
        }
    }
});
