//! `aperture scan` end to end on this host: input checking, order, shards, resume,
//! output formats, and real scans of listeners on loopback (127.0.0.0/8 only).

mod common;

use common::*;
use std::collections::BTreeSet;
use std::io::Write;
use std::net::{IpAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Each bad input: exit 2, one line on stderr that names the problem, nothing sent.
#[test]
fn bad_input_is_refused_with_one_clear_line() {
    let missing = "/nonexistent/aperture-targets.txt";
    // Every case carries --dry-run and names only documentation or lab addresses: if a
    // check ever regressed, the test would fail on printed probes, never send a packet.
    let cases: &[(&[&str], &str)] = &[
        (&["scan", "198.51.100.0/33", "-p", "80"], "prefix length"),
        (&["scan", "203.0.113.300", "-p", "80"], "not a valid IPv4"),
        (
            &["scan", "203.0.113.9-203.0.113.1", "-p", "80"],
            "after its end",
        ),
        (&["scan", "203.0.113.4", "-p", "0"], "port 0"),
        (&["scan", "203.0.113.4", "-p", "65536"], "above 65535"),
        (&["scan", "203.0.113.4", "-p", "80-70"], "starts after"),
        (&["scan", "-p", "80"], "no targets"),
        (&["scan", "203.0.113.4"], "no ports"),
        (&["scan", "10.0.0.0/8", "-p", "80"], "--allow-special"),
        (&["scan", "192.168.1.1", "-p", "80"], "192.168.0.0/16"),
        (
            &[
                "scan",
                "198.18.1.0/24",
                "-p",
                "80",
                "--allow-special",
                "--exclude",
                "198.18.0.0/16",
            ],
            "excluded by --exclude",
        ),
        (
            &["scan", "198.18.0.0/15", "-p-", "--allow-special"],
            "--confirm-large",
        ),
        (
            &[
                "scan",
                "198.18.0.4",
                "-p",
                "80",
                "--allow-special",
                "--shard",
                "3/2",
            ],
            "invalid shard",
        ),
        (
            &[
                "scan",
                "198.18.0.4",
                "-p",
                "80",
                "--allow-special",
                "--resume-index",
                "5",
            ],
            "outside this shard",
        ),
        (&["scan", "-iL", missing, "-p", "80"], "cannot read"),
        (
            &[
                "scan",
                "198.18.0.4",
                "-p",
                "80",
                "--allow-special",
                "--rate",
                "0",
            ],
            "--rate",
        ),
        (
            &["scan", "198.18.0.4", "-p", "80", "--exclude", "example.org"],
            "not host names",
        ),
        (
            &["scan", "2001:db8::1", "-p", "80", "--top-ports", "5"],
            "not both",
        ),
        (
            &["scan", "198.18.0.4", "-p", "80", "--no-such-flag"],
            "--no-such-flag",
        ),
        (
            &["scan", "198.18.0.4", "-p", "80", "--format", "xml"],
            "a dry run has none",
        ),
    ];
    for (args, needle) in cases {
        let mut args = args.to_vec();
        args.push("--dry-run");
        let out = aperture(&args);
        let err = stderr(&out);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} should exit 2; stderr: {err}"
        );
        assert_eq!(
            err.trim().lines().count(),
            1,
            "{args:?}: one line expected, got: {err}"
        );
        assert!(
            err.contains(needle),
            "{args:?}: expected {needle:?} in {err:?}"
        );
        assert!(!err.contains("starting:"), "{args:?}: nothing may be sent");
        assert!(stdout(&out).is_empty(), "{args:?}: no results on bad input");
    }
}

fn dry_run(args: &[&str]) -> Vec<(IpAddr, u16)> {
    let mut full = vec!["scan", "--dry-run", "--format", "list"];
    full.extend_from_slice(args);
    let out = aperture(&full);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| {
            let (ip, port) = l.split_once(' ').expect("ip port");
            (ip.parse().expect("ip"), port.parse().expect("port"))
        })
        .collect()
}

#[test]
fn dry_run_lists_every_allowed_probe_once() {
    let probes = dry_run(&[
        "198.18.0.0/28",
        "-p",
        "22,80,443",
        "--allow-special",
        "--exclude",
        "198.18.0.4-198.18.0.7",
        "--seed",
        "3",
    ]);
    assert_eq!(probes.len(), 12 * 3);
    let unique: BTreeSet<_> = probes.iter().copied().collect();
    assert_eq!(unique.len(), probes.len(), "no probe twice");
    for (ip, _) in &probes {
        let last = match ip {
            IpAddr::V4(a) => a.octets()[3],
            IpAddr::V6(_) => panic!("no v6 expected"),
        };
        assert!(!(4..=7).contains(&last), "{ip} is excluded");
    }
    let sorted: Vec<_> = unique.iter().copied().collect();
    assert_ne!(probes, sorted, "order is permuted, not sequential");
    // Same seed, same order; another seed, another order.
    let again = dry_run(&[
        "198.18.0.0/28",
        "-p",
        "22,80,443",
        "--allow-special",
        "--exclude",
        "198.18.0.4-198.18.0.7",
        "--seed",
        "3",
    ]);
    assert_eq!(probes, again);
    let other = dry_run(&[
        "198.18.0.0/28",
        "-p",
        "22,80,443",
        "--allow-special",
        "--exclude",
        "198.18.0.4-198.18.0.7",
        "--seed",
        "4",
    ]);
    assert_ne!(probes, other);
}

#[test]
fn shards_partition_and_resume_continues_exactly() {
    let base = [
        "198.18.0.0/26",
        "-p",
        "1-7",
        "--allow-special",
        "--seed",
        "11",
    ];
    let full = dry_run(&base);
    assert_eq!(full.len(), 64 * 7);
    let mut joined = Vec::new();
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let mut args = base.to_vec();
        args.extend(["--shard", shard.as_str()]);
        joined.extend(dry_run(&args));
    }
    assert_eq!(
        joined, full,
        "shards in order are the whole scan, each probe once"
    );
    let mut args = base.to_vec();
    args.extend(["--resume-index", "100"]);
    assert_eq!(dry_run(&args), full[100..].to_vec());
}

#[test]
fn target_files_stdin_and_port_shorthands() {
    let dir = std::env::temp_dir().join(format!("aperture-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let list = dir.join("targets.txt");
    std::fs::write(
        &list,
        "# lab hosts\n198.18.1.1 198.18.1.2\n198.18.2.0/31 # two more\n",
    )
    .expect("write");
    let probes = dry_run(&[
        "-iL",
        list.to_str().expect("utf8"),
        "-p",
        "80",
        "--allow-special",
    ]);
    assert_eq!(probes.len(), 4);

    let mut child = Command::new(bin())
        .args([
            "scan",
            "--dry-run",
            "--format",
            "list",
            "-iL",
            "-",
            "-p",
            "443",
            "--allow-special",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"198.18.3.3\n")
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(stdout(&out).trim(), "198.18.3.3 443");

    assert_eq!(
        dry_run(&["198.18.0.1", "-p-", "--allow-special"]).len(),
        65535
    );
    let top = dry_run(&["198.18.0.1", "--top-ports", "100", "--allow-special"]);
    assert_eq!(top.len(), 100);
    assert!(top.iter().any(|&(_, p)| p == 443) && top.iter().any(|&(_, p)| p == 22));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Listeners on loopback; returns (listeners kept alive, open ports, closed ports).
fn loopback_ports(
    host: &str,
    open: usize,
    closed: usize,
) -> (Vec<TcpListener>, Vec<u16>, Vec<u16>) {
    let listeners: Vec<TcpListener> = (0..open)
        .map(|_| TcpListener::bind((host, 0)).expect("bind"))
        .collect();
    let open_ports = listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect();
    // Bind and release: these ports are free now, so they answer RST.
    let closed_ports = (0..closed)
        .map(|_| {
            TcpListener::bind((host, 0))
                .expect("bind")
                .local_addr()
                .expect("addr")
                .port()
        })
        .collect();
    for l in &listeners {
        l.set_nonblocking(true).expect("nonblocking");
    }
    (listeners, open_ports, closed_ports)
}

fn port_list(a: &[u16], b: &[u16]) -> String {
    a.iter()
        .chain(b)
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn check_loopback_scan(engine_args: &[&str], expect_ttl: bool) {
    let (_keep, open, closed) = loopback_ports("127.0.0.1", 4, 4);
    let ports = port_list(&open, &closed);
    let mut args = vec![
        "scan",
        "127.0.0.1",
        "-p",
        ports.as_str(),
        "--allow-special",
        "--show-closed",
        "--wait",
        "0.5",
    ];
    args.extend_from_slice(engine_args);
    let out = aperture(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = results(&stdout(&out));
    let got_open: BTreeSet<u16> = rows.iter().filter(|r| r.2 == "open").map(|r| r.1).collect();
    let got_closed: BTreeSet<u16> = rows
        .iter()
        .filter(|r| r.2 == "closed")
        .map(|r| r.1)
        .collect();
    assert_eq!(got_open, open.iter().copied().collect(), "open ports");
    assert_eq!(got_closed, closed.iter().copied().collect(), "closed ports");
    for line in stdout(&out).lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        for field in [
            "ip",
            "port",
            "proto",
            "state",
            "reason",
            "ttl",
            "timestamp",
            "scan_id",
            "probe",
        ] {
            assert!(v.get(field).is_some(), "field {field} missing in {line}");
        }
        assert_eq!(v["ttl"].is_number(), expect_ttl, "{line}");
    }
    let err = stderr(&out);
    assert!(
        err.contains("done:") && err.contains("send_rate="),
        "summary line: {err}"
    );
}

#[test]
fn connect_scan_finds_loopback_listeners() {
    check_loopback_scan(&["--connect"], false);
}

#[test]
fn syn_scan_finds_loopback_listeners() {
    if !is_root() {
        eprintln!("skipped: SYN scanning needs root or CAP_NET_RAW");
        return;
    }
    check_loopback_scan(&[], true);
}

#[test]
fn host_names_and_ipv6_with_connect() {
    let (_keep, open, closed) = loopback_ports("127.0.0.1", 1, 1);
    let ports = port_list(&open, &closed);
    let out = aperture(&[
        "scan",
        "localhost",
        "-p",
        &ports,
        "--allow-special",
        "--connect",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let found = open_set(&stdout(&out));
    assert!(
        found.contains(&("127.0.0.1".parse().expect("ip"), open[0])),
        "{found:?}"
    );
    // Without --allow-special the name's loopback address is refused like any target.
    let out = aperture(&["scan", "localhost", "-p", &ports, "--connect"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped IPv6 part: no ::1 on this host");
        return;
    }
    let (_keep6, open6, closed6) = loopback_ports("::1", 2, 2);
    let ports6 = port_list(&open6, &closed6);
    let out = aperture(&["scan", "::1", "-p", &ports6, "--allow-special", "--connect"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected: BTreeSet<_> = open6
        .iter()
        .map(|&p| ("::1".parse().expect("ip"), p))
        .collect();
    assert_eq!(open_set(&stdout(&out)), expected);
}

#[test]
fn output_formats_and_file() {
    let (_keep, open, _) = loopback_ports("127.0.0.1", 2, 0);
    let ports = port_list(&open, &[]);
    let dir = std::env::temp_dir().join(format!("aperture-fmt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    for (format, check) in [
        (
            "csv",
            "ip,port,proto,state,reason,ttl,timestamp,scan_id,probe",
        ),
        ("grepable", "Ports: "),
        ("list", "open tcp "),
    ] {
        let file = dir.join(format!("out.{format}"));
        let out = aperture(&[
            "scan",
            "127.0.0.1",
            "-p",
            &ports,
            "--allow-special",
            "--connect",
            "--format",
            format,
            "-o",
            file.to_str().expect("utf8"),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).is_empty(), "results go to the file");
        let text = std::fs::read_to_string(&file).expect("output file");
        assert!(text.contains(check), "{format}: {text}");
        for p in &open {
            assert!(
                text.contains(&p.to_string()),
                "{format} lists port {p}: {text}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--format xml` is nmap's XML: valid against nmap's own DTD (Debian's nmap ships it; we
/// read it only here, to check), with the open and closed ports of each host and what
/// the grab identified, as tools that import nmap results read them.
#[test]
fn xml_output_is_nmaps_format_valid_against_its_dtd() {
    let dtd = std::path::Path::new("/usr/share/nmap/nmap.dtd");
    let xmllint = Command::new("xmllint").arg("--version").output().is_ok();
    if !dtd.exists() || !xmllint {
        assert!(
            std::env::var_os("APERTURE_LAB_REQUIRED").is_none(),
            "nmap.dtd or xmllint missing: scripts/deps installs nmap and libxml2-utils"
        );
        eprintln!(
            "skipped: needs {} and xmllint (scripts/deps installs them)",
            dtd.display()
        );
        return;
    }
    let (keep, open, closed) = loopback_ports("127.0.0.1", 2, 2);
    // One open port speaks HTTP with a product and version in its Server header.
    let web = keep[0].try_clone().expect("listener");
    web.set_nonblocking(false).expect("blocking");
    std::thread::spawn(move || {
        for conn in web.incoming().take(8) {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_millis(300)));
            let mut buf = [0u8; 2048];
            let _ = std::io::Read::read(&mut conn, &mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Type: text/html\r\nContent-Length: 24\r\nConnection: close\r\n\r\n<title>lab & co</title>\n",
            );
        }
    });
    let ports = port_list(&open, &closed);
    let dir = std::env::temp_dir().join(format!("aperture-xml-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("out.xml");
    let out = aperture(&[
        "scan",
        "127.0.0.1",
        "-p",
        &ports,
        "--allow-special",
        "--connect",
        "--show-closed",
        "--grab",
        "--format",
        "xml",
        "-o",
        file.to_str().expect("utf8"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lint = Command::new("xmllint")
        .args(["--noout", "--dtdvalid"])
        .arg(dtd)
        .arg(&file)
        .output()
        .expect("xmllint runs");
    assert!(
        lint.status.success(),
        "not valid against nmap.dtd: {}",
        String::from_utf8_lossy(&lint.stderr)
    );
    let text = std::fs::read_to_string(&file).expect("xml");
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(&text, options).expect("well-formed");
    let run = doc.root_element();
    assert_eq!(run.tag_name().name(), "nmaprun");
    assert_eq!(run.attribute("xmloutputversion"), Some("1.05"));
    let info = run
        .children()
        .find(|n| n.has_tag_name("scaninfo"))
        .expect("scaninfo");
    assert_eq!(info.attribute("type"), Some("connect"));
    assert_eq!(info.attribute("numservices"), Some("4"));
    let hosts: Vec<_> = run.children().filter(|n| n.has_tag_name("host")).collect();
    assert_eq!(hosts.len(), 1, "{text}");
    let addr = hosts[0]
        .children()
        .find(|n| n.has_tag_name("address"))
        .and_then(|a| a.attribute("addr"));
    assert_eq!(addr, Some("127.0.0.1"));
    let mut seen_open = BTreeSet::new();
    let mut seen_closed = BTreeSet::new();
    for port in hosts[0].descendants().filter(|n| n.has_tag_name("port")) {
        let id: u16 = port
            .attribute("portid")
            .and_then(|p| p.parse().ok())
            .expect("portid");
        let state = port
            .children()
            .find(|n| n.has_tag_name("state"))
            .and_then(|s| s.attribute("state"))
            .expect("state");
        match state {
            "open" => seen_open.insert(id),
            "closed" => seen_closed.insert(id),
            other => panic!("state {other} on {id}"),
        };
        if id == open[0] {
            let svc = port
                .children()
                .find(|n| n.has_tag_name("service"))
                .unwrap_or_else(|| panic!("no service on the web port: {text}"));
            assert_eq!(svc.attribute("name"), Some("http"), "{text}");
            assert_eq!(svc.attribute("product"), Some("nginx"), "{text}");
            assert_eq!(svc.attribute("version"), Some("1.22.1"), "{text}");
        }
    }
    assert_eq!(seen_open, open.iter().copied().collect::<BTreeSet<_>>());
    assert_eq!(seen_closed, closed.iter().copied().collect::<BTreeSet<_>>());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Ctrl-C prints where to resume, and resuming covers exactly the rest.
#[test]
fn interrupt_prints_the_resume_index() {
    let child = Command::new(bin())
        .args([
            "scan",
            "127.0.0.0/24",
            "-p",
            "1-40",
            "--allow-special",
            "--connect",
            "--rate",
            "400",
            "--seed",
            "5",
            "--timeout",
            "200",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(1500));
    // SIGINT, as Ctrl-C would send; only to the child we started.
    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let out = child.wait_with_output().expect("wait");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    let idx: u64 = err
        .split("--resume-index ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no resume index in {err}"));
    let total = 256 * 40;
    assert!(idx > 0 && idx < total, "resume index {idx} inside the scan");
    let rest = dry_run(&[
        "127.0.0.0/24",
        "-p",
        "1-40",
        "--allow-special",
        "--seed",
        "5",
        "--resume-index",
        &idx.to_string(),
    ]);
    assert_eq!(rest.len() as u64, total - idx);
}

/// Without raw-socket permission the connect engine takes over, with a notice.
#[test]
fn unprivileged_runs_fall_back_to_connect() {
    if !is_root() {
        // Already unprivileged: the fallback is what happens by default.
        let (_keep, open, _) = loopback_ports("127.0.0.1", 1, 0);
        let out = aperture(&[
            "scan",
            "127.0.0.1",
            "-p",
            &open[0].to_string(),
            "--allow-special",
        ]);
        assert!(
            stderr(&out).contains("using connect scan"),
            "{}",
            stderr(&out)
        );
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipped: setpriv (util-linux) not installed");
        return;
    }
    let (_keep, open, _) = loopback_ports("127.0.0.1", 1, 0);
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(bin())
        .args([
            "scan",
            "127.0.0.1",
            "-p",
            &open[0].to_string(),
            "--allow-special",
        ])
        .output()
        .expect("setpriv runs");
    let err = stderr(&out);
    if err.contains("Permission denied") && !err.contains("aperture") {
        eprintln!("skipped: binary not executable by nobody here: {err}");
        return;
    }
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("notice: raw sockets are not permitted"),
        "{err}"
    );
    assert_eq!(open_set(&stdout(&out)).len(), 1);
}

/// Not a terminal: plain status lines at --status-interval, then the summary; and the
/// rate is honoured (640 probes at 400/s cannot finish in much under 1.6 s).
#[test]
fn status_lines_and_pacing_without_a_terminal() {
    let started = std::time::Instant::now();
    let out = aperture(&[
        "scan",
        "127.0.0.0/26",
        "-p",
        "1-10",
        "--allow-special",
        "--connect",
        "--rate",
        "400",
        "--timeout",
        "200",
        "--status-interval",
        "0.2",
    ]);
    let elapsed = started.elapsed().as_secs_f64();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let status = err
        .lines()
        .filter(|l| l.starts_with("status: sent="))
        .count();
    assert!(
        status >= 3,
        "expected periodic status lines, got {status}: {err}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("done:") && l.contains("sent=640")),
        "{err}"
    );
    assert!(
        elapsed >= 1.3,
        "640 probes at 400/s took only {elapsed:.2}s: not paced"
    );
}

/// On a terminal: a progress bar (sent/total, pps, found, ETA) instead of status lines.
#[test]
fn progress_bar_on_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: `script` (util-linux) is needed to give the scan a terminal");
        return;
    }
    let cmd = format!(
        "{} scan 127.0.0.0/26 -p 1-10 --allow-special --connect --rate 400 --timeout 200",
        bin().display()
    );
    let out = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script runs");
    let text = stdout(&out);
    assert!(
        text.contains("probes") && text.contains("pps") && text.contains("eta"),
        "no progress bar: {text:?}"
    );
    assert!(
        !text.contains("status: sent="),
        "status lines are for non-terminals: {text:?}"
    );
}
