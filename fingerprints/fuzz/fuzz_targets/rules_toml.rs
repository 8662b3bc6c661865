//! The rules file format (what `--rules FILE` loads) from arbitrary text; whatever
//! loads then identifies banners without panicking, within bounds.
#![no_main]

use aperture_fingerprints::identify::Identifier;
use aperture_fingerprints::session::Banner;
use aperture_fingerprints_fuzz::{assert_identification_bounded, PROTOCOLS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(id) = Identifier::from_toml_str(text) else {
        return;
    };
    for rule in id.rules() {
        let _ = (rule.id(), rule.pattern(), rule.service(), rule.risk());
    }
    // Each rule's own example, and the text itself, under each protocol a rule names.
    let mut protocols: Vec<&str> = id.rules().iter().map(|r| r.protocol()).collect();
    protocols.sort_unstable();
    protocols.dedup();
    for protocol in protocols
        .iter()
        .copied()
        .chain(PROTOCOLS.iter().copied().take(3))
    {
        let examples = id.rules().iter().filter_map(|r| r.example()).take(8);
        for text in examples.chain([text]) {
            let banner = Banner {
                protocol: protocol.to_string(),
                text: text.to_string(),
                ..Banner::default()
            };
            for i in id.identify(&banner).iter().chain(&id.identify_all(&banner)) {
                assert_identification_bounded(i);
            }
        }
    }
    // The built-in set extended by these rules (what a user's extra file does).
    if let Ok(mut builtin) = Identifier::builtin() {
        let _ = builtin.extend_from_toml_str(text);
    }
});
