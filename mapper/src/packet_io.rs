//! The packet I/O seam: the SYN engine talks to these traits, so it runs unprivileged
//! against [`crate::sim::SimNet`] in tests and against raw sockets for real.

use crate::probe::ProbeModule;
use std::io;

/// Largest batch handed to one `sendmmsg`/`recvmmsg`.
pub const MAX_BATCH: usize = 256;
/// Receive slot size: enough for the largest IPv4 + TCP headers; payload is not needed.
pub const RECV_SLOT: usize = 128;
/// Receive slot size for UDP: replies are parsed, so most of a datagram is kept.
pub const RECV_SLOT_UDP: usize = 2048;

/// A fixed set of packet slots prepared from a probe template once; per probe only the
/// per-target fields are written, so the send loop allocates nothing.
#[derive(Debug)]
pub struct SendBatch {
    stride: usize,
    data: Vec<u8>,
    dsts: Vec<u32>,
    /// Bytes of each slot's probe (UDP payloads differ per port).
    lens: Vec<usize>,
    len: usize,
}

impl SendBatch {
    pub fn new(probe: &dyn ProbeModule, capacity: usize) -> Self {
        let capacity = capacity.clamp(1, MAX_BATCH);
        let stride = probe.packet_len();
        let mut data = vec![0u8; stride * capacity];
        for slot in data.chunks_mut(stride) {
            probe.prepare(slot);
        }
        Self {
            stride,
            data,
            dsts: vec![0; capacity],
            lens: vec![stride; capacity],
            len: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.dsts.len()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == self.dsts.len()
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Fills the next slot with a probe to `dst:dport`. Caller checks `is_full` first.
    #[inline]
    pub fn push(&mut self, probe: &dyn ProbeModule, dst: u32, dport: u16) {
        let i = self.len;
        let slot = &mut self.data[i * self.stride..(i + 1) * self.stride];
        probe.make(slot, dst, dport);
        self.dsts[i] = dst;
        self.lens[i] = probe.len_for(dport).min(self.stride);
        self.len += 1;
    }

    pub fn packet(&self, i: usize) -> &[u8] {
        &self.data[i * self.stride..i * self.stride + self.lens[i]]
    }

    pub fn destination(&self, i: usize) -> u32 {
        self.dsts[i]
    }
}

/// Received packets, each starting at its IPv4 header (possibly truncated to RECV_SLOT).
#[derive(Debug)]
pub struct RecvBatch {
    data: Vec<u8>,
    lens: Vec<usize>,
    len: usize,
    slot: usize,
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::with_slot(RECV_SLOT)
    }
}

impl RecvBatch {
    /// Slots of `slot` bytes (packets are truncated to it).
    pub fn with_slot(slot: usize) -> Self {
        let slot = slot.max(64);
        Self {
            data: vec![0; slot * MAX_BATCH],
            lens: vec![0; MAX_BATCH],
            len: 0,
            slot,
        }
    }

    pub fn slot(&self) -> usize {
        self.slot
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn packet(&self, i: usize) -> &[u8] {
        let n = self.lens[i].min(self.slot);
        &self.data[i * self.slot..i * self.slot + n]
    }

    /// For receivers: the slots to fill, and where to put lengths.
    pub fn slots_mut(&mut self) -> (&mut [u8], &mut [usize]) {
        (&mut self.data, &mut self.lens)
    }

    pub fn set_len(&mut self, n: usize) {
        self.len = n.min(MAX_BATCH);
    }

    /// Copies one packet in (used by simulated receivers).
    pub fn push(&mut self, packet: &[u8]) -> bool {
        if self.len >= MAX_BATCH {
            return false;
        }
        let n = packet.len().min(self.slot);
        let start = self.len * self.slot;
        self.data[start..start + n].copy_from_slice(&packet[..n]);
        self.lens[self.len] = packet.len();
        self.len += 1;
        true
    }
}

pub trait FrameSender {
    /// Sends every packet of the batch (retrying transient buffer exhaustion). Returns
    /// how many the kernel accepted.
    fn send(&mut self, batch: &SendBatch) -> io::Result<usize>;
}

pub trait FrameReceiver: Send {
    /// Waits a short, bounded time (tens of ms) for packets; 0 means none arrived.
    fn recv(&mut self, batch: &mut RecvBatch) -> io::Result<usize>;
    /// Bytes kept of each packet: UDP replies are parsed, TCP ones only need headers.
    fn slot(&self) -> usize {
        RECV_SLOT
    }
}
