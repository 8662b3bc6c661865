//! Protocol sessions and the registry the grabber walks: which protocols speak first,
//! which port suggests which protocol, and in what order to try hellos on a silent port.

pub mod dns_tcp;
pub mod ftp;
pub mod http;
pub mod imap;
pub mod ldap;
pub(crate) mod lines;
pub mod memcached;
pub mod mongodb;
pub mod mqtt;
pub mod mysql;
pub mod nats;
pub mod pop3;
pub mod postgres;
pub mod rdp;
pub mod redis;
pub mod smb;
pub mod smtp;
pub mod ssh;

use crate::session::Session;

/// A protocol the grabber can try.
#[derive(Debug, Clone, Copy)]
pub struct Protocol {
    pub name: &'static str,
    /// Server speaks first (SSH, FTP, SMTP, …): identified from the sniffed greeting.
    pub server_first: bool,
    /// Ports where this protocol is the first guess.
    pub ports: &'static [u16],
    pub make: fn(Option<&str>) -> Box<dyn Session>,
}

/// One thing to try on a port that sent nothing.
#[derive(Debug, Clone, Copy)]
pub enum Candidate {
    /// A TLS handshake (then the protocol inside is identified the same way).
    Tls,
    Session(&'static Protocol),
}

/// Ports where TLS is the first guess.
pub const TLS_PORTS: &[u16] = &[
    443, 465, 636, 853, 989, 990, 992, 993, 995, 2376, 4443, 5061, 5986, 6443, 8443, 8883, 9443,
    10443,
];

static PROTOCOLS: &[Protocol] = &[
    Protocol {
        name: "ssh",
        server_first: true,
        ports: &[22, 2222, 22222],
        make: |h| Box::new(ssh::SshSession::new(h)),
    },
    Protocol {
        name: "ftp",
        server_first: true,
        ports: &[21, 2121],
        make: |h| Box::new(ftp::FtpSession::new(h)),
    },
    Protocol {
        name: "smtp",
        server_first: true,
        ports: &[25, 465, 587, 2525],
        make: |h| Box::new(smtp::SmtpSession::new(h)),
    },
    Protocol {
        name: "imap",
        server_first: true,
        ports: &[143, 993],
        make: |h| Box::new(imap::ImapSession::new(h)),
    },
    Protocol {
        name: "pop3",
        server_first: true,
        ports: &[110, 995],
        make: |h| Box::new(pop3::Pop3Session::new(h)),
    },
    Protocol {
        name: "nats",
        server_first: true,
        ports: &[4222],
        make: |h| Box::new(nats::NatsSession::new(h)),
    },
    Protocol {
        name: "http",
        server_first: false,
        ports: &[
            80, 81, 443, 591, 2375, 2379, 3000, 5000, 5984, 8000, 8008, 8080, 8081, 8088, 8443,
            8888, 9000, 9090, 9200,
        ],
        make: |h| Box::new(http::HttpSession::new(h)),
    },
    Protocol {
        name: "redis",
        server_first: false,
        ports: &[6379, 6380, 16379, 26379],
        make: |h| Box::new(redis::RedisSession::new(h)),
    },
    Protocol {
        name: "memcached",
        server_first: false,
        ports: &[11211],
        make: |h| Box::new(memcached::MemcachedSession::new(h)),
    },
    Protocol {
        name: "mongodb",
        server_first: false,
        ports: &[27017, 27018, 27019],
        make: |h| Box::new(mongodb::MongoSession::new(h)),
    },
    Protocol {
        name: "mysql",
        server_first: true,
        ports: &[3306, 3307],
        make: |h| Box::new(mysql::MysqlSession::new(h)),
    },
    Protocol {
        name: "postgres",
        server_first: false,
        ports: &[5432, 5433],
        make: |h| Box::new(postgres::PostgresSession::new(h)),
    },
    Protocol {
        name: "mqtt",
        server_first: false,
        ports: &[1883],
        make: |h| Box::new(mqtt::MqttSession::new(h)),
    },
    Protocol {
        name: "dns",
        server_first: false,
        ports: &[53, 5353],
        make: |h| Box::new(dns_tcp::DnsTcpSession::new(h)),
    },
    Protocol {
        name: "rdp",
        server_first: false,
        ports: &[3389],
        make: |h| Box::new(rdp::RdpSession::new(h)),
    },
    Protocol {
        name: "smb",
        server_first: false,
        ports: &[445],
        make: |h| Box::new(smb::SmbSession::new(h)),
    },
    Protocol {
        name: "ldap",
        server_first: false,
        ports: &[389, 3268],
        make: |h| Box::new(ldap::LdapSession::new(h)),
    },
];

/// Whether the port's first guess is a client-first protocol or TLS (so a long wait
/// for a greeting would be wasted).
pub fn client_first_hinted(port: u16) -> bool {
    TLS_PORTS.contains(&port)
        || PROTOCOLS
            .iter()
            .any(|p| !p.server_first && p.ports.contains(&port))
}

pub fn protocols() -> &'static [Protocol] {
    PROTOCOLS
}

pub fn by_name(name: &str) -> Option<&'static Protocol> {
    PROTOCOLS.iter().find(|p| p.name == name)
}

/// Server-first protocols, tried against a sniffed greeting: the port's own guess first.
pub fn server_first(port: u16) -> Vec<&'static Protocol> {
    let mut list: Vec<&'static Protocol> = PROTOCOLS.iter().filter(|p| p.server_first).collect();
    list.sort_by_key(|p| !p.ports.contains(&port));
    list
}

/// Client-first hellos for a silent port: the port's guesses, then TLS and HTTP (the
/// most common services on odd ports), then the rest.
pub fn client_first(port: u16) -> Vec<Candidate> {
    let mut out = Vec::new();
    let hinted: Vec<&'static Protocol> = PROTOCOLS
        .iter()
        .filter(|p| !p.server_first && p.ports.contains(&port))
        .collect();
    if TLS_PORTS.contains(&port) {
        out.push(Candidate::Tls);
    }
    out.extend(hinted.iter().map(|&p| Candidate::Session(p)));
    if !TLS_PORTS.contains(&port) {
        out.push(Candidate::Tls);
    }
    if let Some(http) = by_name("http") {
        if !hinted.iter().any(|p| p.name == "http") {
            out.push(Candidate::Session(http));
        }
    }
    for p in PROTOCOLS
        .iter()
        .filter(|p| !p.server_first && p.name != "http" && !p.ports.contains(&port))
    {
        out.push(Candidate::Session(p));
    }
    out
}
