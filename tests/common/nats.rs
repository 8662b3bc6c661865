//! A real nats-server (Debian's) for tests: JetStream on file storage under a temporary
//! directory, the authorisation config `aperture bus init` writes, started and killed by
//! PID (kill -9 on purpose in the crash tests), restartable on the same port and store.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct NatsServer {
    pub config: PathBuf,
    pub port: u16,
    /// The network namespace it runs in, if any (the lab's scanner namespace).
    pub ns: Option<String>,
    pub log: PathBuf,
    child: Option<Child>,
}

/// Why nats-server tests cannot run here, if they cannot.
pub fn nats_unavailable() -> Option<String> {
    match Command::new("nats-server").arg("--version").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("nats-server is not installed (scripts/deps installs it)".into()),
    }
}

/// A free TCP port on the loopback (bind, read, release: the server takes it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl NatsServer {
    /// Starts nats-server with `config` (its `listen` line is replaced by `host:port`).
    pub fn start(config: &Path, host: &str, port: u16, ns: Option<&str>) -> NatsServer {
        let text = std::fs::read_to_string(config).expect("nats config");
        let text: String = text
            .lines()
            .map(|l| {
                if l.starts_with("listen:") {
                    format!("listen: {host}:{port}")
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(config, text).expect("write nats config");
        let log = config.with_extension("log");
        let mut s = NatsServer {
            config: config.to_owned(),
            port,
            ns: ns.map(str::to_owned),
            log,
            child: None,
        };
        s.restart();
        s
    }

    pub fn url(&self, host: &str) -> String {
        format!("nats://{host}:{}", self.port)
    }

    /// (Re)starts it on the same port and store; waits until it accepts connections.
    pub fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("nats log");
        let mut cmd = match &self.ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "nats-server"]);
                c
            }
            None => Command::new("nats-server"),
        };
        let child = cmd
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let ready = text.matches("Server is ready").count();
            let started = text.matches("Starting nats-server").count();
            if ready >= started && started > 0 {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "nats-server did not become ready:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// kill -9, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
