//! I/O-free pieces of DNS enumeration: domain names as users and zones write them, and
//! the TXT records (SPF, DMARC) that say how a domain's mail may be spoofed.
//!
//! The resolver itself lives in `mapper`; everything here takes strings or bytes that
//! came off the wire or out of a form, and never trusts them.

pub mod name;
pub mod observation;
pub mod txt;

pub use name::{random_label, DomainName, NameError};
pub use txt::{join_txt_strings, parse_dmarc, parse_spf, Dmarc, Spf};
