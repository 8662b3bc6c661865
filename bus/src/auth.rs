//! Credentials and connections: one nkey per process (the coordinator's, each worker's),
//! and the nats-server config that lists them with the least each may do.
//!
//! A worker may pull and acknowledge shards, publish under its own name, and read its own
//! inbox — nothing else: it cannot read another worker's results, publish as the
//! coordinator (or as another worker), or read any tenant's data (which never crosses
//! the bus). The coordinator may do everything on its server.

use crate::{
    inbox_prefix, valid_name, BusError, COORDINATOR_CONSUMER, RESULTS_STREAM, SHARDS_STREAM,
    WORKERS_CONSUMER,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How a process proves who it is to the server.
#[derive(Debug, Clone, Default)]
pub struct BusAuth {
    /// A file holding an nkey user seed (`SU…`), as `aperture bus init` writes them.
    pub nkey_file: Option<PathBuf>,
    /// Or a user and password, when the server's config lists users that way.
    pub user: Option<String>,
    pub password: Option<String>,
    /// A CA bundle: the server's certificate is checked against it (TLS required).
    pub ca_file: Option<PathBuf>,
}

/// Reads an nkey seed file; says what is wrong with it if it is not one.
pub fn read_seed(path: &Path) -> Result<String, BusError> {
    let cred = |why: String| BusError::Credential {
        path: path.display().to_string(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| cred(e.to_string()))?;
    let seed = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("SU"))
        .ok_or_else(|| {
            cred(
                "no nkey user seed (a line starting SU) in it; make one with `aperture bus init`"
                    .into(),
            )
        })?;
    nkeys::KeyPair::from_seed(seed).map_err(|e| cred(format!("not a valid nkey seed: {e}")))?;
    Ok(seed.to_owned())
}

/// Connects as `name` (the connection name the server logs). A worker passes its inbox
/// prefix: its credential may subscribe there only.
pub async fn connect(
    url: &str,
    auth: &BusAuth,
    name: &str,
    inbox: Option<&str>,
) -> Result<async_nats::Client, BusError> {
    let mut opts = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        // Reconnect forever: a restarted server is the normal case, not an error.
        .max_reconnects(None)
        .retry_on_initial_connect();
    if let Some(prefix) = inbox {
        opts = opts.custom_inbox_prefix(prefix);
    }
    if let Some(path) = &auth.nkey_file {
        opts = opts.nkey(read_seed(path)?);
    } else if let (Some(u), Some(p)) = (&auth.user, &auth.password) {
        opts = opts.user_and_password(u.clone(), p.clone());
    }
    if let Some(ca) = &auth.ca_file {
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    }
    // A refused credential is final: say so at once instead of retrying for ever.
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = refused.clone();
    let who = name.to_owned();
    opts = opts.event_callback(move |event| {
        let seen = seen.clone();
        let who = who.clone();
        async move {
            // The client reports a refused credential as a client error on connect.
            let refusal = match &event {
                async_nats::Event::ServerError(async_nats::ServerError::AuthorizationViolation) => {
                    true
                }
                async_nats::Event::ClientError(e) => {
                    e.to_string().contains("authorization violation")
                }
                _ => false,
            };
            if refusal {
                seen.store(true, std::sync::atomic::Ordering::SeqCst);
            } else if !matches!(event, async_nats::Event::Connected) {
                eprintln!("aperture {who}: bus: {event}");
            }
        }
    });
    // retry_on_initial_connect returns at once; a wrong credential or an absent server
    // shows as no connection: wait a bounded time for the first one.
    let client = opts.connect(url).await.map_err(|e| BusError::Connect {
        url: url.to_owned(),
        why: e.to_string(),
    })?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while client.connection_state() != async_nats::connection::State::Connected {
        if refused.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(BusError::Connect {
                url: url.to_owned(),
                why: "the server refused the credential (authorization violation): use the key `aperture bus init` wrote for this name, and reload nats-server after adding a worker".into(),
            });
        }
        if tokio::time::Instant::now() > deadline {
            return Err(BusError::Connect {
                url: url.to_owned(),
                why:
                    "no connection within 10 s (server down, wrong address, or credential refused)"
                        .into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(client)
}

/// What `aperture bus init` makes.
#[derive(Debug)]
pub struct ServerFiles {
    pub config: PathBuf,
    pub coordinator_seed: PathBuf,
    pub worker_seeds: Vec<(String, PathBuf)>,
}

/// Writes (or rewrites) `dir/nats-server.conf` for a coordinator and `workers`, with one
/// nkey each (`dir/coordinator.nk`, `dir/worker-<name>.nk`, mode 0600). Seeds already
/// there are kept, so adding a worker and running it again does not lock anybody out.
pub fn write_server_config(
    dir: &Path,
    listen: &str,
    store_dir: &Path,
    workers: &[String],
) -> Result<ServerFiles, BusError> {
    for w in workers {
        if !valid_name(w) {
            return Err(BusError::Invalid(format!(
                "worker name {w:?}: use letters, digits, '-' and '_' (at most 64)"
            )));
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| BusError::Io {
        what: format!("creating {}", dir.display()),
        source,
    })?;
    // nats-server resolves a relative store directory against its own working directory.
    let store_dir = std::path::absolute(store_dir).map_err(|source| BusError::Io {
        what: format!("resolving {}", store_dir.display()),
        source,
    })?;
    let coordinator_seed = dir.join("coordinator.nk");
    let coordinator = ensure_seed(&coordinator_seed)?;
    let mut users = vec![format!(
        "    {{ nkey: {coordinator}, permissions: {{ publish: \">\", subscribe: \">\" }} }}"
    )];
    let mut worker_seeds = Vec::new();
    for w in workers {
        let path = dir.join(format!("worker-{w}.nk"));
        let public = ensure_seed(&path)?;
        users.push(worker_user(&public, w));
        worker_seeds.push((w.clone(), path));
    }
    let config = format!(
        "# Written by `aperture bus init`: the bus of one Aperture coordinator and its workers.\n\
         # Rerun it to add workers (existing keys are kept), then reload nats-server.\n\
         listen: {listen}\n\
         max_payload: 1MB\n\
         jetstream {{\n    store_dir: \"{store}\"\n}}\n\
         authorization {{\n  users: [\n{users}\n  ]\n}}\n",
        store = store_dir.display(),
        users = users.join("\n"),
    );
    let path = dir.join("nats-server.conf");
    std::fs::write(&path, config).map_err(|source| BusError::Io {
        what: format!("writing {}", path.display()),
        source,
    })?;
    Ok(ServerFiles {
        config: path,
        coordinator_seed,
        worker_seeds,
    })
}

/// The least a worker needs: its pulls, acks and progress on the shared consumer, its
/// own results and heartbeats, and replies in its own inbox.
fn worker_user(public: &str, name: &str) -> String {
    let allow_pub = [
        format!("$JS.API.CONSUMER.INFO.{SHARDS_STREAM}.{WORKERS_CONSUMER}"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{SHARDS_STREAM}.{WORKERS_CONSUMER}"),
        format!("$JS.ACK.{SHARDS_STREAM}.{WORKERS_CONSUMER}.>"),
        format!("aperture.res.{name}.>"),
    ];
    let quoted: Vec<String> = allow_pub.iter().map(|s| format!("\"{s}\"")).collect();
    // The results stream's consumer is the coordinator's alone: named here so a reader
    // of the config sees what a worker may not do.
    format!(
        "    # worker {name}: may not read {RESULTS_STREAM}/{COORDINATOR_CONSUMER} or other workers' subjects\n    \
         {{ nkey: {public}, permissions: {{\n        \
         publish: {{ allow: [{pubs}] }}\n        \
         subscribe: {{ allow: [\"{inbox}.>\"] }}\n    }} }}",
        pubs = quoted.join(", "),
        inbox = inbox_prefix(name),
    )
}

/// The public key of the seed in `path`, making the seed first when there is none.
fn ensure_seed(path: &Path) -> Result<String, BusError> {
    if path.exists() {
        let seed = read_seed(path)?;
        let kp = nkeys::KeyPair::from_seed(&seed).map_err(|e| BusError::Credential {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        return Ok(kp.public_key());
    }
    let kp = nkeys::KeyPair::new_user();
    let seed = kp.seed().map_err(|e| BusError::Credential {
        path: path.display().to_string(),
        why: e.to_string(),
    })?;
    write_private(path, &format!("{seed}\n"))?;
    Ok(kp.public_key())
}

fn write_private(path: &Path, text: &str) -> Result<(), BusError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| BusError::Io {
        what: format!("writing {}", path.display()),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_twice_keeps_the_keys_and_refuses_bad_names() {
        let dir = tempfile::tempdir().expect("tmp");
        let workers = vec!["w1".to_string(), "w2".to_string()];
        let a = write_server_config(
            dir.path(),
            "127.0.0.1:4222",
            &dir.path().join("js"),
            &workers,
        )
        .expect("init");
        let first = std::fs::read_to_string(&a.config).expect("conf");
        let b = write_server_config(
            dir.path(),
            "127.0.0.1:4222",
            &dir.path().join("js"),
            &workers,
        )
        .expect("again");
        assert_eq!(first, std::fs::read_to_string(&b.config).expect("conf"));
        assert!(first.contains("\"aperture.res.w2.>\"") && first.contains("_INBOX_w1.>"));
        assert!(read_seed(&a.worker_seeds[0].1)
            .expect("seed")
            .starts_with("SU"));
        let bad = write_server_config(dir.path(), "x", dir.path(), &["a.b".to_string()]);
        assert!(matches!(bad, Err(BusError::Invalid(_))));
        let not_seed = dir.path().join("junk");
        std::fs::write(&not_seed, "hello").expect("write");
        let e = read_seed(&not_seed).expect_err("not a seed").to_string();
        assert!(e.contains("aperture bus init"), "{e}");
    }
}
