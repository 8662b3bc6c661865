//! A paced DNS client over UDP (TCP when truncated), with hickory's message types. It
//! returns whole answers — rcode, CNAME chain and all — which the resolver API folds
//! away (an NXDOMAIN after a CNAME is exactly a dangling CNAME, the thing to report).

use crate::pace::Pacer;
use hickory_resolver::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RecordType};
use hickory_resolver::proto::serialize::binary::BinDecodable;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{oneshot, Semaphore};

type Waiters = Arc<Mutex<HashMap<u16, oneshot::Sender<Message>>>>;

/// The answer to one question.
#[derive(Debug, Clone)]
pub enum Reply {
    /// NOERROR or NXDOMAIN; or any other response code whose answer section still carries
    /// records (a CNAME loop BIND answers SERVFAIL, a CNAME whose target failed), when no
    /// attempt got a better one. The caller reads it for what it contains.
    Answer(Message),
    /// Nothing usable: time-out, SERVFAIL or REFUSED with an empty answer, malformed.
    /// Never "the name is gone".
    Unknown(String),
}

#[derive(Debug, Default)]
pub struct QueryStats {
    pub sent: AtomicU64,
    pub answered: AtomicU64,
    pub timeouts: AtomicU64,
}

#[derive(Debug)]
struct Upstream {
    addr: SocketAddr,
    socket: Arc<UdpSocket>,
    waiters: Waiters,
}

#[derive(Debug)]
pub struct Querier {
    upstreams: Vec<Upstream>,
    next_id: AtomicU16,
    next_server: AtomicU64,
    pacer: Pacer,
    slots: Semaphore,
    timeout: Duration,
    attempts: usize,
    pub stats: QueryStats,
}

impl Querier {
    /// One UDP socket per resolver, each with a task that routes answers by query id.
    pub async fn new(
        resolvers: &[SocketAddr],
        qps: u64,
        concurrency: usize,
        timeout: Duration,
        attempts: usize,
    ) -> std::io::Result<Arc<Self>> {
        let mut upstreams = Vec::new();
        // Two sockets per resolver: each has its own answer-routing task, so receiving
        // spreads over the runtime's threads.
        for &addr in resolvers.iter().flat_map(|a| [a, a]) {
            let bind: SocketAddr = if addr.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            }
            .parse()
            .map_err(std::io::Error::other)?;
            // Answers arrive in bursts at tens of thousands a second: a large receive
            // buffer keeps them from being dropped while the router task catches up.
            let raw = socket2::Socket::new(
                socket2::Domain::for_address(bind),
                socket2::Type::DGRAM,
                None,
            )?;
            let _ = raw.set_recv_buffer_size(8 << 20);
            let _ = raw.set_send_buffer_size(4 << 20);
            raw.set_nonblocking(true)?;
            raw.bind(&bind.into())?;
            let socket = Arc::new(UdpSocket::from_std(raw.into())?);
            socket.connect(addr).await?;
            let waiters: Waiters = Arc::default();
            let (sock, w) = (socket.clone(), waiters.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    let n = match sock.recv(&mut buf).await {
                        Ok(n) => n,
                        // A connected UDP socket reports an earlier ICMP "unreachable" on
                        // the next receive: that query times out, the socket lives on.
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                        Err(_) => break,
                    };
                    let Ok(msg) = Message::from_bytes(&buf[..n]) else {
                        continue;
                    };
                    let waiter = w.lock().ok().and_then(|mut m| m.remove(&msg.id()));
                    if let Some(tx) = waiter {
                        let _ = tx.send(msg);
                    }
                }
            });
            upstreams.push(Upstream {
                addr,
                socket,
                waiters,
            });
        }
        if upstreams.is_empty() {
            return Err(std::io::Error::other("no resolver to ask"));
        }

        Ok(Arc::new(Self {
            upstreams,
            next_id: AtomicU16::new(crate::entropy::random_u64() as u16),
            next_server: AtomicU64::new(0),
            pacer: Pacer::new(qps.max(1)),
            slots: Semaphore::new(concurrency.max(1)),
            timeout,
            attempts: attempts.max(1),
            stats: QueryStats::default(),
        }))
    }

    /// Asks `name` `rtype`, pacing and bounding concurrency, with retries across resolvers.
    pub async fn ask(&self, name: &Name, rtype: RecordType) -> Reply {
        let Ok(_permit) = self.slots.acquire().await else {
            return Reply::Unknown("shutting down".into());
        };
        let mut last = String::from("no answer");
        // A partial answer (records under an error code) is kept in case no try does better.
        let mut partial: Option<Message> = None;
        for attempt in 0..self.attempts {
            // Backoff: the first try waits a fraction of the timeout, the last the whole
            // of it, so one lost packet costs a short wait, not the full timeout.
            let shift = (self.attempts - 1 - attempt).min(4) as u32;
            let wait = (self.timeout / 2u32.pow(shift)).max(Duration::from_millis(50));
            self.pacer.ready().await;
            let up = &self.upstreams
                [(self.next_server.fetch_add(1, Relaxed) as usize) % self.upstreams.len()];
            let msg = match self.once(up, name, rtype, wait).await {
                Ok(msg) if msg.truncated() => match self.over_tcp(up.addr, name, rtype).await {
                    Ok(full) => full,
                    Err(e) => {
                        // The truncated part is still what the server said.
                        if !msg.answers().is_empty() {
                            partial = Some(msg);
                        }
                        last = e;
                        continue;
                    }
                },
                Ok(msg) => msg,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            match classify(msg) {
                Classified::Final(m) => return Reply::Answer(m),
                // SERVFAIL/REFUSED may be one bad server: try again, maybe another.
                Classified::Partial(m) => {
                    last = m.response_code().to_string();
                    partial = Some(m);
                }
                Classified::Nothing(e) => last = e,
            }
        }
        match partial {
            Some(m) => Reply::Answer(m),
            None => Reply::Unknown(last),
        }
    }

    fn query(&self, name: &Name, rtype: RecordType) -> (u16, Result<Vec<u8>, String>) {
        let id = self.next_id.fetch_add(1, Relaxed);
        let mut m = Message::new();
        m.set_id(id)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true)
            .add_query(Query::query(name.clone(), rtype));
        (id, m.to_vec().map_err(|e| e.to_string()))
    }

    async fn once(
        &self,
        up: &Upstream,
        name: &Name,
        rtype: RecordType,
        wait: Duration,
    ) -> Result<Message, String> {
        let (id, bytes) = self.query(name, rtype);
        let bytes = bytes?;
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = up.waiters.lock() {
            w.insert(id, tx);
        }
        self.stats.sent.fetch_add(1, Relaxed);
        let result = match up.socket.send(&bytes).await {
            Err(e) => Err(e.to_string()),
            Ok(_) => match tokio::time::timeout(wait, rx).await {
                Ok(Ok(msg)) => {
                    self.stats.answered.fetch_add(1, Relaxed);
                    // An answer to another question with our id is not an answer.
                    let same = msg
                        .queries()
                        .first()
                        .is_some_and(|q| q.name() == name && q.query_type() == rtype);
                    if same {
                        Ok(msg)
                    } else {
                        Err("mismatched answer".into())
                    }
                }
                _ => {
                    self.stats.timeouts.fetch_add(1, Relaxed);
                    Err("timed out".into())
                }
            },
        };
        if let Ok(mut w) = up.waiters.lock() {
            w.remove(&id);
        }
        result
    }

    async fn over_tcp(
        &self,
        server: SocketAddr,
        name: &Name,
        rtype: RecordType,
    ) -> Result<Message, String> {
        let (_, bytes) = self.query(name, rtype);
        let bytes = bytes?;
        let exchange = async {
            let mut tcp = TcpStream::connect(server)
                .await
                .map_err(|e| e.to_string())?;
            let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&bytes);
            tcp.write_all(&framed).await.map_err(|e| e.to_string())?;
            let mut len = [0u8; 2];
            tcp.read_exact(&mut len).await.map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
            tcp.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
            Message::from_bytes(&buf).map_err(|e| e.to_string())
        };
        tokio::time::timeout(self.timeout * 2, exchange)
            .await
            .map_err(|_| "timed out over TCP".to_string())?
    }
}

enum Classified {
    Final(Message),
    Partial(Message),
    Nothing(String),
}

fn classify(msg: Message) -> Classified {
    match msg.response_code() {
        ResponseCode::NoError | ResponseCode::NXDomain => Classified::Final(msg),
        _ if !msg.answers().is_empty() => Classified::Partial(msg),
        other => Classified::Nothing(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::rr::rdata::CNAME;
    use hickory_resolver::proto::rr::{RData, Record};
    use hickory_resolver::proto::serialize::binary::BinEncodable;

    /// A server on loopback answering every question with `rcode` and `answers`.
    async fn server(rcode: ResponseCode, answers: Vec<Record>) -> SocketAddr {
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = sock.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                let Ok(q) = Message::from_bytes(&buf[..n]) else {
                    continue;
                };
                let mut m = Message::new();
                m.set_id(q.id())
                    .set_message_type(MessageType::Response)
                    .set_response_code(rcode)
                    .add_queries(q.queries().to_vec())
                    .add_answers(answers.clone());
                if let Ok(bytes) = m.to_bytes() {
                    let _ = sock.send_to(&bytes, from).await;
                }
            }
        });
        addr
    }

    fn name(s: &str) -> Name {
        Name::from_ascii(s).expect("name")
    }

    #[tokio::test]
    async fn records_under_an_error_code_are_an_answer_and_an_empty_error_is_unknown() {
        let looping = vec![
            Record::from_rdata(
                name("l1.x.test."),
                60,
                RData::CNAME(CNAME(name("l2.x.test."))),
            ),
            Record::from_rdata(
                name("l2.x.test."),
                60,
                RData::CNAME(CNAME(name("l1.x.test."))),
            ),
        ];
        let with_records = server(ResponseCode::ServFail, looping).await;
        let empty = server(ResponseCode::Refused, Vec::new()).await;
        let ms = Duration::from_millis(300);
        let q = Querier::new(&[with_records], 100, 4, ms, 2)
            .await
            .expect("q");
        match q.ask(&name("l1.x.test."), RecordType::A).await {
            Reply::Answer(m) => {
                assert_eq!(m.response_code(), ResponseCode::ServFail);
                assert_eq!(m.answers().len(), 2);
            }
            Reply::Unknown(why) => panic!("the CNAMEs were dropped: {why}"),
        }
        let q = Querier::new(&[empty], 100, 4, ms, 2).await.expect("q");
        match q.ask(&name("www.x.test."), RecordType::A).await {
            Reply::Unknown(why) => assert!(why.contains("Refused"), "{why}"),
            Reply::Answer(m) => panic!("nothing usable, yet an answer: {m:?}"),
        }
    }
}
