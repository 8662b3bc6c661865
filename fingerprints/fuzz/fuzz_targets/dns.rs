//! DNS from hostile servers and zones: compressed names in a DNS message (the TCP
//! `version.bind` answer), domain names as zones and users give them (IDNA), and TXT
//! records read as SPF and DMARC. Each input goes through all three.
#![no_main]

use aperture_fingerprints::dns::txt::{
    join_txt_strings, parse_dmarc, parse_spf, MAX_TERMS, MAX_TXT_LEN,
};
use aperture_fingerprints::dns::DomainName;
use aperture_fingerprints::proto::dns_tcp::read_name;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&start, msg)) = data.split_first() else {
        return;
    };
    // Names in a message: the start is anywhere, pointers may loop.
    if let Some((name, next)) = read_name(msg, usize::from(start) % (msg.len() + 1)) {
        assert!(next <= msg.len(), "next {next} past {}", msg.len());
        assert!(name.len() <= 4 * 255 + 255, "name of {} bytes", name.len());
    }

    // TXT character-strings as they come off the wire (length-prefixed).
    let mut parts = Vec::new();
    let mut rest = msg;
    while let Some((&len, tail)) = rest.split_first() {
        let (part, tail) = tail.split_at(usize::from(len).min(tail.len()));
        parts.push(part.to_vec());
        rest = tail;
    }
    let txt = join_txt_strings(&parts);
    assert!(txt.len() <= MAX_TXT_LEN);
    for record in [txt.as_str(), &String::from_utf8_lossy(msg)] {
        if let Some(spf) = parse_spf(record) {
            assert!(
                spf.terms.len() <= MAX_TERMS,
                "{} SPF terms",
                spf.terms.len()
            );
        }
        if let Some(dmarc) = parse_dmarc(record) {
            assert!(
                dmarc.unknown.len() <= MAX_TERMS,
                "{} DMARC tags",
                dmarc.unknown.len()
            );
        }
    }

    // Domain names: whatever is accepted is canonical and stable.
    let text = String::from_utf8_lossy(msg);
    if let Ok(name) = DomainName::parse(&text) {
        let again = DomainName::parse(name.ascii()).expect("the stored form parses");
        assert_eq!(again, name, "the stored form is canonical");
        let _ = name.unicode();
        assert_eq!(name.labels().count(), name.label_count());
        let mut parent = name.parent();
        let mut steps = 0;
        while let Some(p) = parent {
            assert!(
                name.is_subdomain_of(&p),
                "{} under {}",
                name.ascii(),
                p.ascii()
            );
            // `parent` skips validation on the grounds that a suffix stays valid.
            assert_eq!(
                DomainName::parse(p.ascii()).as_ref(),
                Ok(&p),
                "parent of {}",
                name.ascii()
            );
            steps += 1;
            assert!(
                steps < name.label_count(),
                "parent chain longer than the labels"
            );
            parent = p.parent();
        }
        let _ = name.child("www");
        let _ = name.child(&text);
        let _ = name.is_hostname();
        let zones = [name.clone()];
        assert!(name.zone_apex_of(&zones).is_some());
    }
});
