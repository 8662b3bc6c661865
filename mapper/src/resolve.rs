//! Host-name targets, resolved with hickory-resolver using the system configuration
//! (and its hosts file). Never a public resolver as a fallback: a machine with no
//! resolver configured gets an error, not traffic to a third party.

use crate::error::SpecError;
use hickory_resolver::TokioAsyncResolver;
use std::net::IpAddr;
use std::time::Duration;

pub async fn resolve_hosts(names: &[String]) -> Result<Vec<(String, Vec<IpAddr>)>, SpecError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let (config, mut opts) =
        hickory_resolver::system_conf::read_system_conf().map_err(|e| SpecError::Resolve {
            name: names.join(", "),
            reason: format!(
                "no usable system resolver configuration ({e}); give addresses instead"
            ),
        })?;
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 2;
    let resolver = TokioAsyncResolver::tokio(config, opts);
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let ips = resolver
            .lookup_ip(name.as_str())
            .await
            .map_err(|e| SpecError::Resolve {
                name: name.clone(),
                reason: e.to_string(),
            })?;
        let mut ips: Vec<IpAddr> = ips.iter().collect();
        ips.sort();
        ips.dedup();
        if ips.is_empty() {
            return Err(SpecError::Resolve {
                name: name.clone(),
                reason: "no addresses".into(),
            });
        }
        out.push((name.clone(), ips));
    }
    Ok(out)
}
