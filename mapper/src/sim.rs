//! An in-memory network that answers SYN probes like a host would: SYN-ACK from open
//! ports, RST from the rest, optionally dropping packets. It lets the SYN engine be
//! tested without privileges; the end-to-end tests still use the real lab.

use crate::packet_io::{FrameReceiver, FrameSender, RecvBatch, SendBatch};
use etherparse::{Ipv4HeaderSlice, PacketBuilder, TcpHeaderSlice};
use std::collections::{HashSet, VecDeque};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<Vec<u8>>,
    sent: u64,
}

#[derive(Debug, Clone)]
pub struct SimNet {
    inner: Arc<Mutex<Inner>>,
    open: Arc<HashSet<(u32, u16)>>,
    /// Drop every n-th probe (0 = never), to exercise retries.
    drop_every: u64,
    /// Extra junk packets injected per probe (forged replies with bad cookies).
    junk: bool,
}

impl SimNet {
    pub fn new(open: HashSet<(u32, u16)>, drop_every: u64, junk: bool) -> Self {
        Self {
            inner: Arc::default(),
            open: Arc::new(open),
            drop_every,
            junk,
        }
    }

    pub fn sent(&self) -> u64 {
        self.inner.lock().map(|g| g.sent).unwrap_or(0)
    }

    fn answer(&self, pkt: &[u8], inner: &mut Inner) {
        let (Ok(ip), Some(rest)) = (Ipv4HeaderSlice::from_slice(pkt), pkt.get(20..)) else {
            return;
        };
        let Ok(tcp) = TcpHeaderSlice::from_slice(rest) else {
            return;
        };
        let key = (u32::from(ip.destination_addr()), tcp.destination_port());
        let open = self.open.contains(&key);
        let mut b = PacketBuilder::ipv4(ip.destination(), ip.source(), 61)
            .tcp(tcp.destination_port(), tcp.source_port(), 1, 1024)
            .ack(tcp.sequence_number().wrapping_add(1));
        b = if open { b.syn() } else { b.rst() };
        let mut out = Vec::with_capacity(40);
        if b.write(&mut out, &[]).is_ok() {
            inner.queue.push_back(out.clone());
            if self.junk {
                // Same flow, wrong acknowledgement: a forged or stale reply.
                if let Some(b) = out.get_mut(28) {
                    *b ^= 0x5a;
                }
                inner.queue.push_back(out);
            }
        }
    }
}

impl FrameSender for SimNet {
    fn send(&mut self, batch: &SendBatch) -> io::Result<usize> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| io::Error::other("simulated network poisoned"))?;
        for i in 0..batch.len() {
            inner.sent += 1;
            if self.drop_every != 0 && inner.sent % self.drop_every == 0 {
                continue;
            }
            self.answer(batch.packet(i), &mut inner);
        }
        Ok(batch.len())
    }
}

impl FrameReceiver for SimNet {
    fn recv(&mut self, batch: &mut RecvBatch) -> io::Result<usize> {
        batch.set_len(0);
        {
            let mut inner = self
                .inner
                .lock()
                .map_err(|_| io::Error::other("simulated network poisoned"))?;
            while let Some(p) = inner.queue.front() {
                if !batch.push(p) {
                    break;
                }
                inner.queue.pop_front();
            }
        }
        if batch.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(batch.len())
    }
}
