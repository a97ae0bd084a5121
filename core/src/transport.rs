//! Moving packets between peers.
//!
//! A path to other peers is anything that implements [`PacketSocket`]: it sends and receives
//! unreliable, unordered datagrams addressed by a peer address. The seeded simulator
//! ([`crate::sim`]) is one; the direct WebRTC and relay paths are others.
//!
//! [`GgrsSocket`] turns a [`PacketSocket`] into the [`ggrs::NonBlockingSocket`] a session needs,
//! with Ricochet's own compact encoding ([`crate::wire`]). Unlike `matchbox_socket`'s own ggrs
//! socket, which panics (`expect`) on a packet it cannot decode, it counts and drops
//! undecodable packets, so nothing a remote peer sends can crash the game. It also carries
//! Ricochet's control messages (desync reports) beside ggrs's traffic, which is why the session
//! keeps a second handle to it.

use std::collections::VecDeque;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::wire::{self, Control, Packet};

/// Most control messages held for the session between two frames; a peer flooding them
/// cannot grow memory past this.
pub const MAX_QUEUED_CONTROL: usize = 256;

/// An unreliable, unordered datagram path to peers addressed by `A`.
pub trait PacketSocket<A> {
    /// Sends one datagram to `to`. Delivery is not guaranteed.
    fn send_packet(&mut self, to: &A, packet: &[u8]);
    /// Appends every datagram received since the last call to `out`, with its sender.
    fn receive_packets(&mut self, out: &mut Vec<(A, Vec<u8>)>);
}

impl<A, T: PacketSocket<A> + ?Sized> PacketSocket<A> for Box<T> {
    fn send_packet(&mut self, to: &A, packet: &[u8]) {
        (**self).send_packet(to, packet)
    }
    fn receive_packets(&mut self, out: &mut Vec<(A, Vec<u8>)>) {
        (**self).receive_packets(out)
    }
}

/// Packet counters of a [`GgrsSocket`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketStats {
    /// Packets sent.
    pub packets_sent: u64,
    /// Bytes sent (payload of the datagrams, without lower-layer headers).
    pub bytes_sent: u64,
    /// Packets received and decoded.
    pub packets_received: u64,
    /// Bytes received (including malformed packets).
    pub bytes_received: u64,
    /// Packets dropped because they could not be decoded.
    pub malformed_packets: u64,
    /// Ricochet control messages received (also counted in `packets_received`).
    pub control_packets_received: u64,
    /// Control messages dropped because the session had not collected earlier ones yet.
    pub control_overflow: u64,
}

struct Inner<A, S> {
    socket: S,
    scratch: Vec<u8>,
    received: Vec<(A, Vec<u8>)>,
    control: VecDeque<(A, Control)>,
    stats: SocketStats,
}

/// A [`PacketSocket`] made into a [`ggrs::NonBlockingSocket`], shareable between ggrs and the
/// Ricochet session (cloning gives another handle to the same socket).
pub struct GgrsSocket<A, S> {
    inner: Arc<Mutex<Inner<A, S>>>,
}

impl<A, S> Clone for GgrsSocket<A, S> {
    fn clone(&self) -> Self {
        GgrsSocket {
            inner: self.inner.clone(),
        }
    }
}

impl<A: Clone, S: PacketSocket<A>> GgrsSocket<A, S> {
    /// Wraps `socket`.
    pub fn new(socket: S) -> Self {
        GgrsSocket {
            inner: Arc::new(Mutex::new(Inner {
                socket,
                scratch: Vec::with_capacity(256),
                received: Vec::new(),
                control: VecDeque::new(),
                stats: SocketStats::default(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<A, S>> {
        // A panic while holding the lock cannot leave the queues inconsistent in a way that
        // matters (they are plain buffers), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counters so far.
    pub fn stats(&self) -> SocketStats {
        self.lock().stats
    }

    /// Sends a control message to `to`.
    pub fn send_control(&self, to: &A, msg: &Control) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        wire::encode_control(msg, &mut inner.scratch);
        inner.stats.packets_sent += 1;
        inner.stats.bytes_sent += inner.scratch.len() as u64;
        inner.socket.send_packet(to, &inner.scratch);
    }

    /// Takes the control messages received so far.
    pub fn take_control(&self) -> Vec<(A, Control)> {
        self.lock().control.drain(..).collect()
    }

    /// Runs `f` on the wrapped socket (for path statistics and the like).
    pub fn with_socket<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        f(&mut self.lock().socket)
    }
}

impl<A, S> ggrs::NonBlockingSocket<A> for GgrsSocket<A, S>
where
    A: Clone + PartialEq + Eq + Hash,
    S: PacketSocket<A>,
{
    fn send_to(&mut self, msg: &ggrs::Message, addr: &A) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        match wire::encode_ggrs(msg, &mut inner.scratch) {
            Ok(()) => {
                inner.stats.packets_sent += 1;
                inner.stats.bytes_sent += inner.scratch.len() as u64;
                inner.socket.send_packet(addr, &inner.scratch);
            }
            Err(err) => tracing::error!(%err, "could not encode a ggrs message; dropped"),
        }
    }

    fn receive_all_messages(&mut self) -> Vec<(A, ggrs::Message)> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        inner.received.clear();
        inner.socket.receive_packets(&mut inner.received);
        let mut messages = Vec::with_capacity(inner.received.len());
        for (from, bytes) in inner.received.drain(..) {
            inner.stats.bytes_received += bytes.len() as u64;
            match wire::decode(&bytes) {
                Ok(Packet::Ggrs(msg)) => {
                    inner.stats.packets_received += 1;
                    messages.push((from, msg));
                }
                Ok(Packet::Control(msg)) => {
                    inner.stats.packets_received += 1;
                    inner.stats.control_packets_received += 1;
                    if inner.control.len() < MAX_QUEUED_CONTROL {
                        inner.control.push_back((from, msg));
                    } else {
                        inner.stats.control_overflow += 1;
                    }
                }
                Err(err) => {
                    inner.stats.malformed_packets += 1;
                    tracing::debug!(%err, len = bytes.len(), "dropped an undecodable packet");
                }
            }
        }
        messages
    }
}
