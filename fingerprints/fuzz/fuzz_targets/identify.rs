//! Identification of arbitrary banners by the built-in rules, alone and combined with
//! a Recog database (the test fixtures) in both combine modes.
#![no_main]

use aperture_fingerprints::identify::{
    cleartext_auth, protocol_fallback, CombineMode, Identifier, RecogDb,
};
use aperture_fingerprints_fuzz::{assert_identification_bounded, banner_from};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const RECOG: &[(&str, &str)] = &[
    (
        "lab_ftp_banners.xml",
        include_str!("../../tests/fixtures/recog/lab_ftp_banners.xml"),
    ),
    (
        "lab_ssh_banners.xml",
        include_str!("../../tests/fixtures/recog/lab_ssh_banners.xml"),
    ),
    (
        "lab_snmp_sysdescr.xml",
        include_str!("../../tests/fixtures/recog/lab_snmp_sysdescr.xml"),
    ),
];

fn identifiers() -> &'static [Identifier; 3] {
    static IDS: OnceLock<[Identifier; 3]> = OnceLock::new();
    IDS.get_or_init(|| {
        let builtin = Identifier::builtin().expect("built-in rules load");
        let mut db = RecogDb::new();
        for (file, xml) in RECOG {
            db.add_xml(file, xml).expect("fixture loads");
        }
        [
            builtin.clone(),
            builtin
                .clone()
                .with_recog(db.clone(), CombineMode::OursFirst),
            builtin.with_recog(db, CombineMode::BestConfidence),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(banner) = banner_from(data) else {
        return;
    };
    let _ = cleartext_auth(&banner);
    let fallback = protocol_fallback(&banner);
    for id in identifiers() {
        let best = id.identify(&banner);
        let all = id.identify_all(&banner);
        for i in best.iter().chain(&all) {
            assert_identification_bounded(i);
        }
        // The best answer and the full list agree on whether anything was found.
        assert_eq!(
            best.is_some(),
            !all.is_empty(),
            "best {best:?}, all {all:?}"
        );
        if fallback.is_some() {
            assert!(best.is_some(), "a known protocol is always identified");
        }
    }
});
