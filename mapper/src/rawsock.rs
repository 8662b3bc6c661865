//! Raw IPv4 sockets: the only module with `unsafe`, confined to the batch syscalls.
//!
//! Sending: an `IPPROTO_RAW` socket with `IP_HDRINCL` (we write the whole IP header
//! from the template) and `sendmmsg`, up to [`MAX_BATCH`] packets a syscall.
//! Receiving: an `IPPROTO_TCP` raw socket, which gets a copy of every inbound TCP
//! segment, drained with `recvmmsg`. The kernel still processes the SYN-ACKs itself and,
//! having no socket for our source port, answers them with an RST; that costs us no
//! result (the SYN-ACK is already copied to us) and tells the target to drop its
//! half-open connection, so we let it be. Source ports default to 61000+, outside
//! Linux's ephemeral range, so they never collide with the host's own connections.

use crate::error::EngineError;
use crate::packet_io::{
    FrameReceiver, FrameSender, RecvBatch, SendBatch, MAX_BATCH, RECV_SLOT, RECV_SLOT_UDP,
};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::mem;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

fn open_raw(protocol: i32) -> Result<Socket, EngineError> {
    Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(protocol))).map_err(|e| {
        match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => EngineError::NotPermitted(e),
            _ => EngineError::Io(e),
        }
    })
}

/// True when this process may open raw sockets (root or CAP_NET_RAW).
pub fn raw_sockets_permitted() -> bool {
    open_raw(libc::IPPROTO_RAW).is_ok()
}

/// The local address the kernel would use towards `dst`. A UDP `connect` only consults
/// the routing table; no packet leaves the host.
pub fn source_for(dst: Ipv4Addr) -> Option<Ipv4Addr> {
    let sock = UdpSocket::bind("0.0.0.0:0").ok()?;
    sock.connect(SocketAddr::from((dst, 9))).ok()?;
    match sock.local_addr().ok()?.ip() {
        std::net::IpAddr::V4(a) if !a.is_unspecified() => Some(a),
        _ => None,
    }
}

#[derive(Debug)]
pub struct RawSender {
    sock: Socket,
    /// Times the kernel said its buffers were full and we backed off.
    pub backoffs: u64,
}

impl RawSender {
    pub fn open() -> Result<Self, EngineError> {
        let sock = open_raw(libc::IPPROTO_RAW)?;
        sock.set_header_included_v4(true)?;
        let _ = sock.set_send_buffer_size(8 << 20);
        Ok(Self { sock, backoffs: 0 })
    }
}

impl FrameSender for RawSender {
    fn send(&mut self, batch: &SendBatch) -> io::Result<usize> {
        let n = batch.len().min(MAX_BATCH);
        // SAFETY: sockaddr_in, iovec and mmsghdr are plain C structs for which all-zero
        // bytes are a valid (empty) value.
        let mut addrs: [libc::sockaddr_in; MAX_BATCH] = unsafe { mem::zeroed() };
        // SAFETY: as above.
        let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { mem::zeroed() };
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { mem::zeroed() };
        for i in 0..n {
            addrs[i].sin_family = libc::AF_INET as libc::sa_family_t;
            addrs[i].sin_addr.s_addr = batch.destination(i).to_be();
            let pkt = batch.packet(i);
            iovs[i].iov_base = pkt.as_ptr() as *mut libc::c_void;
            iovs[i].iov_len = pkt.len();
            hdrs[i].msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_in).cast();
            hdrs[i].msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        let mut done = 0;
        let mut spins = 0u32;
        while done < n {
            // SAFETY: hdrs[done..n] are initialised above and point at addrs/iovs, which
            // live until this function returns; the iovecs point into `batch`, borrowed
            // for the same span, and the kernel only reads from them.
            let r = unsafe {
                libc::sendmmsg(
                    self.sock.as_raw_fd(),
                    hdrs.as_mut_ptr().add(done),
                    (n - done) as libc::c_uint,
                    0,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EINTR)
                        if spins < 10_000 =>
                    {
                        self.backoffs += 1;
                        spins += 1;
                        std::thread::sleep(Duration::from_micros(50));
                        continue;
                    }
                    _ => return Err(e),
                }
            }
            done += r as usize;
        }
        Ok(done)
    }
}

#[derive(Debug)]
pub struct RawReceiver {
    /// One raw socket per protocol listened to (TCP; or UDP and ICMP).
    socks: Vec<Socket>,
    slot: usize,
}

fn open_receiving(protocol: i32) -> Result<Socket, EngineError> {
    let sock = open_raw(protocol)?;
    // A large buffer absorbs reply bursts while the receive thread is descheduled.
    let want: libc::c_int = 64 << 20;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live c_int.
    let forced = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&want as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if forced != 0 {
        let _ = sock.set_recv_buffer_size(want as usize);
    }
    sock.set_read_timeout(Some(Duration::from_millis(20)))?;
    Ok(sock)
}

impl RawReceiver {
    pub fn open() -> Result<Self, EngineError> {
        Ok(Self {
            socks: vec![open_receiving(libc::IPPROTO_TCP)?],
            slot: RECV_SLOT,
        })
    }

    /// For UDP probes: every inbound UDP datagram (replies) and ICMP message (port
    /// unreachable, administratively prohibited), with room for the payloads.
    pub fn open_udp() -> Result<Self, EngineError> {
        Ok(Self {
            socks: vec![
                open_receiving(libc::IPPROTO_UDP)?,
                open_receiving(libc::IPPROTO_ICMP)?,
            ],
            slot: RECV_SLOT_UDP,
        })
    }
}

/// One `recvmmsg` on `fd` into the slots from `first` on; returns how many arrived.
fn recv_into(
    fd: libc::c_int,
    batch: &mut RecvBatch,
    first: usize,
    flags: libc::c_int,
) -> io::Result<usize> {
    let slot_len = batch.slot();
    let (data, lens) = batch.slots_mut();
    let room = MAX_BATCH.saturating_sub(first);
    if room == 0 {
        return Ok(0);
    }
    // SAFETY: all-zero iovec/mmsghdr are valid empty values.
    let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { mem::zeroed() };
    // SAFETY: as above.
    let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { mem::zeroed() };
    for (i, slot) in data.chunks_mut(slot_len).skip(first).take(room).enumerate() {
        iovs[i].iov_base = slot.as_mut_ptr().cast();
        iovs[i].iov_len = slot.len();
        hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
        hdrs[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: the first `room` iovecs point into `data`, exclusively borrowed for this
    // call, each `slot_len` bytes; the kernel writes at most iov_len bytes into each
    // and fills at most `room` headers.
    let r = unsafe {
        libc::recvmmsg(
            fd,
            hdrs.as_mut_ptr(),
            room as libc::c_uint,
            flags,
            std::ptr::null_mut(),
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted => {
                Ok(0)
            }
            _ => Err(e),
        };
    }
    let n = r as usize;
    for (len, h) in lens.iter_mut().skip(first).zip(hdrs.iter()).take(n) {
        *len = h.msg_len as usize;
    }
    Ok(n)
}

impl FrameReceiver for RawReceiver {
    fn recv(&mut self, batch: &mut RecvBatch) -> io::Result<usize> {
        if let [sock] = self.socks.as_slice() {
            let n = recv_into(sock.as_raw_fd(), batch, 0, libc::MSG_WAITFORONE)?;
            batch.set_len(n);
            return Ok(n);
        }
        // Several sockets: wait (bounded) until one is readable, then drain each
        // without blocking.
        let mut fds: Vec<libc::pollfd> = self
            .socks
            .iter()
            .map(|s| libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a live array of `fds.len()` pollfd structs for the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 20) };
        if ready <= 0 {
            batch.set_len(0);
            return Ok(0);
        }
        let mut n = 0;
        for fd in &fds {
            if fd.revents & libc::POLLIN != 0 {
                n += recv_into(fd.fd, batch, n, libc::MSG_DONTWAIT)?;
            }
        }
        batch.set_len(n);
        Ok(n)
    }

    fn slot(&self) -> usize {
        self.slot
    }
}
