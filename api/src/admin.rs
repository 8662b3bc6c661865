//! `aperture admin`: the first tenant and the first admin token, written straight into
//! the data directory before the service starts. Every action is audited like an API
//! call.

use crate::cli::{AdminArgs, AdminCommand, VulndbCommand};
use crate::serve::auth::{new_secret, token_for};
use crate::serve::state::now_ms;
use crate::{EXIT_BAD_INPUT, EXIT_FAILED};
use aperture_storage::access::AuditRecord;
use aperture_storage::policy::Role;
use aperture_storage::{Store, StoreError, TenantId};
use std::process::ExitCode;

pub fn run(args: AdminArgs) -> ExitCode {
    match execute(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, msg)) => {
            eprintln!("aperture: {msg}");
            ExitCode::from(code)
        }
    }
}

fn store_err(e: StoreError) -> (u8, String) {
    match e {
        StoreError::Invalid(_) | StoreError::Conflict(_) | StoreError::NotFound(_) => {
            (EXIT_BAD_INPUT, e.to_string())
        }
        _ => (EXIT_FAILED, e.to_string()),
    }
}

fn role(text: &str) -> Result<Role, (u8, String)> {
    match text {
        "admin" => Ok(Role::Admin),
        "analyst" => Ok(Role::Analyst),
        "remediator" => Ok(Role::Remediator),
        "viewer" => Ok(Role::Viewer),
        _ => Err((
            EXIT_BAD_INPUT,
            format!("role {text:?}: use admin, analyst, remediator or viewer"),
        )),
    }
}

fn execute(args: AdminArgs) -> Result<(), (u8, String)> {
    let dir = args.data.ok_or((
        EXIT_BAD_INPUT,
        "give the data directory: --data DIR (or APERTURE_DATA_DIR)".to_owned(),
    ))?;
    let store = Store::open(&dir).map_err(|e| {
        (
            EXIT_FAILED,
            format!(
                "cannot open {}: {e} (is the service running? then use the API with an admin token)",
                dir.display()
            ),
        )
    })?;
    let who = format!(
        "admin CLI ({})",
        std::env::var("USER").unwrap_or_else(|_| "unknown user".into())
    );
    let audit = |action: String| {
        let _ = store.audit(AuditRecord {
            seq: 0,
            at: now_ms(),
            actor: who.clone(),
            role: Some(Role::Admin),
            tenant: None,
            action,
            status: 0,
            outcome: "ok".into(),
            source: "local".into(),
        });
    };
    match args.command {
        AdminCommand::TenantCreate { id, name } => {
            let id = TenantId::new(&id).map_err(store_err)?;
            let t = store
                .create_tenant(&id, &name, now_ms())
                .map_err(store_err)?;
            audit(format!("admin tenant-create {}", t.id));
            println!("{}", t.id);
        }
        AdminCommand::TenantList => {
            for t in store.tenants().map_err(store_err)? {
                println!("{}\t{}", t.id, t.name);
            }
        }
        AdminCommand::TokenCreate {
            name,
            role: r,
            tenant,
        } => {
            let role = role(&r)?;
            if role == Role::Admin && !tenant.is_empty() {
                return Err((
                    EXIT_BAD_INPUT,
                    "admin tokens act on every tenant: leave --tenant out".into(),
                ));
            }
            let tenants = tenant
                .iter()
                .map(|t| TenantId::new(t))
                .collect::<Result<Vec<_>, _>>()
                .map_err(store_err)?;
            let secret = new_secret().map_err(|e| (EXIT_FAILED, e))?;
            let token =
                token_for(&secret, &name, role, tenants, &who).map_err(|e| (EXIT_BAD_INPUT, e))?;
            store.put_token(&token).map_err(store_err)?;
            audit(format!("admin token-create {} ({r})", token.id));
            eprintln!(
                "token {} created; the secret below is shown only now",
                token.id
            );
            println!("{secret}");
        }
        AdminCommand::TokenList => {
            for t in store.tokens().map_err(store_err)? {
                let tenants: Vec<String> = t.tenants.iter().map(|x| x.to_string()).collect();
                println!(
                    "{}\t{}\t{:?}\t{}\t{}\t{}",
                    t.id,
                    t.prefix,
                    t.role,
                    t.name,
                    tenants.join(","),
                    if t.revoked.is_some() {
                        "revoked"
                    } else {
                        "live"
                    }
                );
            }
        }
        AdminCommand::TokenRevoke { id } => {
            store.revoke_token(&id, now_ms()).map_err(store_err)?;
            audit(format!("admin token-revoke {id}"));
        }
        AdminCommand::Vulndb(VulndbCommand::Import { files }) => {
            let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            let reading = files
                .iter()
                .zip(&names)
                .map(|(f, n)| (n.clone(), std::fs::read(f)));
            let r = store.import_vulndb(reading, now_ms()).map_err(store_err)?;
            audit(format!("admin vulndb import {}", names.join(" ")));
            for f in &r.files {
                let what = if f.format == "kev" {
                    "KEV entries"
                } else {
                    "CVE records"
                };
                println!("{}: {} {what}", f.name, f.records);
            }
            println!(
                "CVEs: {} added, {} updated, {} unchanged; KEV entries: {} added, {} updated, {} unchanged",
                r.cves_added,
                r.cves_updated,
                r.cves_unchanged,
                r.kev_added,
                r.kev_updated,
                r.kev_unchanged
            );
            println!(
                "{} products changed; re-evaluation queued in {} tenants (it runs when the service runs)",
                r.products_changed, r.tenants_queued
            );
        }
        AdminCommand::Vulndb(VulndbCommand::Status) => {
            let s = store.vulndb_status().map_err(store_err)?;
            println!("cves\t{}", s.cves);
            println!("kev_entries\t{}", s.kev_entries);
            println!("imports\t{}", s.imports);
            println!(
                "last_import\t{}",
                s.last_import.map(|t| t.to_string()).unwrap_or_default()
            );
            println!("nvd_timestamp\t{}", s.nvd_timestamp.unwrap_or_default());
            println!(
                "kev_catalog_version\t{}",
                s.kev_catalog_version.unwrap_or_default()
            );
            if s.interrupted {
                println!("interrupted\ttrue (an import stopped before its end: run it again)");
            }
        }
    }
    store.flush().map_err(store_err)?;
    Ok(())
}
