//! Subdomain candidates: our own built-in list, or a user's file read line by line so a
//! list of millions never sits in memory.

use crate::error::SpecError;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

/// Aperture's own list (mapper/data/subdomains.txt), most common labels first.
pub const BUILTIN: &str = include_str!("../../data/subdomains.txt");

fn clean(line: &str) -> Option<String> {
    let l = line.trim();
    (!l.is_empty() && !l.starts_with('#')).then(|| l.to_ascii_lowercase())
}

/// Labels of the built-in list.
pub fn builtin() -> impl Iterator<Item = String> {
    BUILTIN.lines().filter_map(clean)
}

/// Streams a user's wordlist. Unreadable lines end the stream (counted by the caller).
pub fn from_file(path: &Path) -> Result<impl Iterator<Item = String>, SpecError> {
    let f = File::open(path).map_err(|source| SpecError::File {
        path: path.display().to_string(),
        source,
    })?;
    Ok(BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| clean(&l)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_list_is_ours_and_large_enough() {
        let labels: Vec<String> = builtin().collect();
        assert!(labels.len() >= 2000, "only {} labels", labels.len());
        let unique: std::collections::BTreeSet<&String> = labels.iter().collect();
        assert_eq!(unique.len(), labels.len(), "no duplicates");
        for l in &labels {
            assert!(
                aperture_fingerprints::dns::DomainName::parse(&format!("{l}.example")).is_ok(),
                "{l:?} is not a valid label"
            );
        }
        assert_eq!(labels.first().map(String::as_str), Some("www"));
    }
}
