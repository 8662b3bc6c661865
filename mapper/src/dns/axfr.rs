//! Zone transfer (AXFR over TCP, RFC 5936), bounded in time, bytes and records. An
//! allowed transfer is itself a finding: the whole zone is public.

use hickory_resolver::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, Record, RecordType};
use hickory_resolver::proto::serialize::binary::BinDecodable;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Upper bounds of one transfer.
const MAX_RECORDS: usize = 200_000;
const MAX_BYTES: usize = 64 << 20;

#[derive(Debug)]
pub enum Transfer {
    Allowed(Vec<Record>),
    Refused(String),
    Failed(String),
}

pub async fn axfr(server: SocketAddr, zone: &Name, deadline: Duration) -> Transfer {
    match timeout(deadline, run(server, zone)).await {
        Ok(t) => t,
        Err(_) => Transfer::Failed("timed out".into()),
    }
}

async fn run(server: SocketAddr, zone: &Name) -> Transfer {
    let mut query = Message::new();
    query
        .set_id(0x4150)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(false)
        .add_query(Query::query(zone.clone(), RecordType::AXFR));
    let Ok(bytes) = query.to_vec() else {
        return Transfer::Failed("cannot encode query".into());
    };
    let Ok(mut tcp) = TcpStream::connect(server).await else {
        return Transfer::Failed("connection refused or unreachable".into());
    };
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    if tcp.write_all(&framed).await.is_err() {
        return Transfer::Failed("write failed".into());
    }
    let mut records: Vec<Record> = Vec::new();
    let mut soa_seen = 0;
    let mut total = 0usize;
    loop {
        let mut len = [0u8; 2];
        if tcp.read_exact(&mut len).await.is_err() {
            return if records.is_empty() {
                Transfer::Refused("closed without data".into())
            } else {
                Transfer::Failed(format!("connection closed after {} records", records.len()))
            };
        }
        let n = usize::from(u16::from_be_bytes(len));
        total += n + 2;
        if total > MAX_BYTES {
            return Transfer::Failed("transfer over the byte limit".into());
        }
        let mut buf = vec![0u8; n];
        if tcp.read_exact(&mut buf).await.is_err() {
            return Transfer::Failed("truncated message".into());
        }
        let Ok(msg) = Message::from_bytes(&buf) else {
            return Transfer::Failed("malformed message".into());
        };
        if msg.response_code() != ResponseCode::NoError {
            return Transfer::Refused(msg.response_code().to_string());
        }
        if msg.answers().is_empty() && records.is_empty() {
            return Transfer::Refused("empty answer".into());
        }
        for r in msg.answers() {
            if r.record_type() == RecordType::SOA {
                soa_seen += 1;
            }
            records.push(r.clone());
            if records.len() > MAX_RECORDS {
                return Transfer::Failed("transfer over the record limit".into());
            }
        }
        // A transfer starts and ends with the SOA.
        if soa_seen >= 2 {
            return Transfer::Allowed(records);
        }
    }
}
