//! Desync detection: comparing checksums of confirmed frames between peers, without I/O.
//!
//! Each peer feeds [`DesyncDetector::confirm`] the checksum of every confirmed frame, in
//! order; the detector keeps those on the check interval, sends them to the other peers in
//! batches (each checksum is repeated in [`REPEATS`] consecutive batches, so a lost packet
//! rarely loses one), and compares what the peers report. The first frame whose checksums
//! differ is reported once per peer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;

use crate::wire::Control;

/// Frames of confirmed progress between two checksum batches.
pub const BATCH_FRAMES: i32 = 10;
/// How many consecutive batches repeat each checksum.
pub const REPEATS: i32 = 3;
/// Most checksums in one batch (3,840 bytes): a batch packet stays under the relay's default
/// 4 KiB frame limit with its headers (a larger frame would make the relay close the
/// connection with 1009).
pub const MAX_BATCH: usize = 480;
/// Checked frames kept for comparison with late reports (per peer, and locally).
pub const HISTORY: usize = 4096;

/// Two peers computed different states for the same confirmed frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesyncReport<A> {
    /// The first checked frame whose checksums differ. With a check interval of 1 this is
    /// the first frame that differs; with interval `k`, the divergence happened in the `k`
    /// frames up to and including this one.
    pub frame: i32,
    /// Our checksum of that frame.
    pub local_checksum: u64,
    /// The peer's checksum of that frame.
    pub remote_checksum: u64,
    /// The peer that disagrees.
    pub peer: A,
}

/// The sans-IO desync detector of one session.
#[derive(Debug)]
pub struct DesyncDetector<A> {
    interval: u32,
    local: BTreeMap<i32, u64>,
    remote: HashMap<A, BTreeMap<i32, u64>>,
    reported: HashSet<A>,
    last_confirmed: i32,
    last_batch_frame: i32,
    /// Frames of the last [`REPEATS`] batches, oldest first: a batch carries every checked
    /// frame after the oldest, so each checksum goes out in `REPEATS` batches however far
    /// the confirmed frame jumps between batches.
    batches: std::collections::VecDeque<i32>,
    found: Vec<DesyncReport<A>>,
    /// Per peer, the first frame whose checksums from it count (see
    /// [`DesyncDetector::ignore_before`]).
    floors: HashMap<A, i32>,
}

impl<A: Clone + Eq + Hash> DesyncDetector<A> {
    /// A detector comparing every `interval`-th frame (frames `interval - 1`, `2*interval - 1`,
    /// ... counting from 0, so interval 1 compares every frame). `interval` must be >= 1.
    pub fn new(interval: u32) -> Self {
        DesyncDetector {
            interval: interval.max(1),
            local: BTreeMap::new(),
            remote: HashMap::new(),
            reported: HashSet::new(),
            last_confirmed: -1,
            last_batch_frame: -1,
            batches: std::collections::VecDeque::new(),
            found: Vec::new(),
            floors: HashMap::new(),
        }
    }

    /// From now on, `peer`'s checksums of frames before `frame` are ignored (and those held
    /// are dropped): after `peer` was disconnected (`i32::MAX`), what it computed alone is not
    /// the match's; once it is back in a new epoch from `frame`, its checksums count again from
    /// there.
    pub fn ignore_before(&mut self, peer: &A, frame: i32) {
        self.floors.insert(peer.clone(), frame);
        if let Some(entries) = self.remote.get_mut(peer) {
            entries.retain(|f, _| *f >= frame);
        }
    }

    fn checked(&self, frame: i32) -> bool {
        (frame as i64 + 1) % self.interval as i64 == 0
    }

    /// Records that `frame` is confirmed, with its checksum if it was computed (frames must
    /// come in increasing order; a checked frame needs its checksum).
    pub fn confirm(&mut self, frame: i32, checksum: Option<u64>) {
        self.last_confirmed = frame;
        let Some(checksum) = checksum.filter(|_| self.checked(frame)) else {
            return;
        };
        self.local.insert(frame, checksum);
        while self.local.len() > HISTORY {
            self.local.pop_first();
        }
        let peers: Vec<A> = self.remote.keys().cloned().collect();
        for peer in peers {
            self.compare(&peer);
        }
    }

    /// Handles a checksum report from `peer` (other messages are ignored).
    pub fn receive(&mut self, peer: &A, msg: &Control) {
        let Control::Checksums {
            first_frame,
            interval,
            checksums,
        } = msg
        else {
            return;
        };
        let floor = self.floors.get(peer).copied().unwrap_or(i32::MIN);
        let entries = self.remote.entry(peer.clone()).or_default();
        for (i, checksum) in checksums.iter().enumerate() {
            let Some(frame) = (i as i64)
                .checked_mul(*interval as i64)
                .and_then(|o| o.checked_add(*first_frame as i64))
                .and_then(|f| i32::try_from(f).ok())
            else {
                break;
            };
            if frame >= floor {
                entries.insert(frame, *checksum);
            }
        }
        while entries.len() > HISTORY {
            entries.pop_first();
        }
        self.compare(peer);
    }

    fn compare(&mut self, peer: &A) {
        let Some(entries) = self.remote.get_mut(peer) else {
            return;
        };
        let mut first_mismatch = None;
        // Compare every remote entry we have a local checksum for, in frame order.
        let comparable: Vec<i32> = entries
            .range(..=self.last_confirmed)
            .map(|(f, _)| *f)
            .collect();
        for frame in comparable {
            let remote = entries.remove(&frame).unwrap_or_default();
            if let Some(&local) = self.local.get(&frame) {
                if local != remote && first_mismatch.is_none() {
                    first_mismatch = Some(DesyncReport {
                        frame,
                        local_checksum: local,
                        remote_checksum: remote,
                        peer: peer.clone(),
                    });
                }
            }
        }
        if let Some(report) = first_mismatch {
            if self.reported.insert(peer.clone()) {
                self.found.push(report);
            }
        }
    }

    /// The batch to send to every peer now, if one is due.
    pub fn poll_transmit(&mut self) -> Option<Control> {
        if self.last_confirmed < self.last_batch_frame + BATCH_FRAMES {
            return None;
        }
        let from = if self.batches.len() < REPEATS as usize {
            -1
        } else {
            self.batches.pop_front().unwrap_or(-1)
        };
        self.batches.push_back(self.last_confirmed);
        self.last_batch_frame = self.last_confirmed;
        // At most MAX_BATCH of the newest (a packet fits a relay frame); after a
        // long stall the oldest of a huge backlog are not compared.
        let mut checksums: Vec<(i32, u64)> = self
            .local
            .range(from + 1..)
            .rev()
            .take(MAX_BATCH)
            .map(|(f, c)| (*f, *c))
            .collect();
        checksums.reverse();
        let first_frame = checksums.first()?.0;
        Some(Control::Checksums {
            first_frame,
            interval: self.interval,
            checksums: checksums.into_iter().map(|(_, c)| c).collect(),
        })
    }

    /// Desyncs found since the last call.
    pub fn poll_report(&mut self) -> Option<DesyncReport<A>> {
        if self.found.is_empty() {
            None
        } else {
            Some(self.found.remove(0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(interval: u32, diverge_at: i32) -> Vec<DesyncReport<u8>> {
        let mut a = DesyncDetector::<u8>::new(interval);
        let mut b = DesyncDetector::<u8>::new(interval);
        let mut found = Vec::new();
        for frame in 0..300 {
            let sum = frame as u64 * 31;
            a.confirm(frame, Some(sum));
            b.confirm(frame, Some(if frame >= diverge_at { sum + 1 } else { sum }));
            if let Some(m) = a.poll_transmit() {
                b.receive(&0, &m);
            }
            if let Some(m) = b.poll_transmit() {
                a.receive(&1, &m);
            }
            while let Some(r) = a.poll_report() {
                found.push(r);
            }
        }
        found
    }

    #[test]
    fn names_first_differing_frame_once() {
        let found = run(1, 137);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].frame, 137);
        assert_eq!(found[0].peer, 1);
        assert_eq!(found[0].local_checksum, 137 * 31);
        assert_eq!(found[0].remote_checksum, 137 * 31 + 1);
    }

    #[test]
    fn interval_rounds_up_to_next_checked_frame() {
        let found = run(10, 137);
        assert_eq!(found[0].frame, 139);
    }

    #[test]
    fn every_checksum_is_sent_repeats_times_even_across_jumps() {
        for (interval, step) in [(1, 1), (30, 1), (1, 45), (10, 7)] {
            let mut a = DesyncDetector::<u8>::new(interval);
            let mut sent = std::collections::HashMap::<i32, i32>::new();
            let mut frame = 0;
            while frame < 600 {
                // Confirmations arrive `step` frames at a time, as after a stall.
                for f in frame..frame + step {
                    a.confirm(f, Some(f as u64));
                }
                frame += step;
                if let Some(Control::Checksums {
                    first_frame,
                    interval,
                    checksums,
                }) = a.poll_transmit()
                {
                    for i in 0..checksums.len() as i32 {
                        *sent.entry(first_frame + i * interval as i32).or_default() += 1;
                    }
                }
            }
            for f in (0..500).filter(|f| (f + 1) % interval as i32 == 0) {
                assert_eq!(
                    sent.get(&f),
                    Some(&REPEATS),
                    "interval {interval} step {step} frame {f}"
                );
            }
        }
    }

    #[test]
    fn equal_peers_report_nothing() {
        assert!(run(1, i32::MAX).is_empty());
    }

    #[test]
    fn hostile_reports_are_bounded() {
        let mut a = DesyncDetector::<u8>::new(1);
        a.receive(
            &9,
            &Control::Checksums {
                first_frame: i32::MAX - 1,
                interval: u32::MAX,
                checksums: vec![1; 100],
            },
        );
        a.receive(
            &9,
            &Control::Checksums {
                first_frame: 0,
                interval: 1,
                checksums: vec![1; HISTORY * 2],
            },
        );
        assert!(a.remote[&9].len() <= HISTORY);
    }
}
