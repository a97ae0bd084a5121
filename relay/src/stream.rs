//! A match's spectator stream, as the relay follows it: which [`Opcode::STREAM`] records it
//! forwards to the spectators, and which it keeps for a spectator that arrives later.
//!
//! No I/O here: [`StreamState`] sits in the match's state, behind the match lock, and is fed
//! one record at a time with the frame the spectators would receive; it says whether to
//! forward it ([`Verdict`]) and remembers the latest key and the inputs since
//! ([`StreamState::backlog`]).
//!
//! The rules (`docs/PROTOCOL.md`, §2.9):
//! - The stream is followed with one number, `next`, the frame it expects (none at first).
//! - An inputs record is forwarded iff its frame is `next`; then `next` = its end.
//! - A key is forwarded iff there is no `next` yet, or its frame is after `next`, or its frame
//!   is `next` and the record forwarded last is not already a key at that frame (a second
//!   streaming player's copy); then `next` = its frame.
//! - Everything else is dropped (a second streaming player's copies, a gap not yet bridged by a
//!   key).
//! - Kept: a forwarded key becomes the kept key and the kept inputs are cleared; a forwarded
//!   inputs record is appended to the kept inputs. A key that is not forwarded but is later
//!   than the kept key and starts exactly where a kept inputs record starts replaces the kept
//!   key, and the kept inputs before it are let go. The kept inputs cost
//!   [`KEPT_RECORD_OVERHEAD`] plus their frame length each; past the backlog bound the kept key
//!   and inputs are let go until the next forwarded key. So what is kept is always a key and
//!   the inputs that follow it without a hole, ending at `next`.
//!
//! [`Opcode::STREAM`]: ricochet_protocol::relay::Opcode::STREAM

use bytes::Bytes;
use ricochet_protocol::relay::{StreamKind, StreamRecord, RELAY_HEADER_LEN, STREAM_HEADER_LEN};

/// What keeping one inputs record costs on top of its frame's length, in bytes, when it is
/// counted against the backlog bound (its handle and allocation): a stream of tiny records
/// cannot make the relay keep many more records than the bound suggests.
pub(crate) const KEPT_RECORD_OVERHEAD: usize = 64;

/// The smallest STREAM frame a spectator can receive: a relay header and a bare record header.
pub(crate) const MIN_STREAM_FRAME_LEN: usize = RELAY_HEADER_LEN + STREAM_HEADER_LEN;

/// Most inputs records a backlog of `bound` bytes can keep.
pub(crate) const fn max_kept_inputs(bound: usize) -> usize {
    bound / (MIN_STREAM_FRAME_LEN + KEPT_RECORD_OVERHEAD)
}

/// What to do with one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Send it to every spectator that has a key (a key: to every spectator).
    Forward(StreamKind),
    /// It does not continue the stream: send it to no one.
    Drop,
}

/// The latest key the relay keeps, and the inputs after it.
#[derive(Debug)]
struct Kept {
    /// The key's frame.
    frame: u64,
    /// The key, as spectators receive it.
    key: Bytes,
    /// The inputs after it, in order, without a hole: (first frame, frame as sent).
    inputs: Vec<(u64, Bytes)>,
    /// What the inputs cost against the bound.
    cost: usize,
}

/// One match's stream: what has been forwarded so far, and what is kept for late spectators.
#[derive(Debug)]
pub(crate) struct StreamState {
    /// The frame the stream expects next; `None` until the first key.
    next: Option<u64>,
    /// The record forwarded last is a key (at `next`).
    key_at_next: bool,
    kept: Option<Kept>,
    /// Most the kept inputs may cost, in bytes.
    max_backlog: usize,
}

impl StreamState {
    /// A stream nothing has been sent on yet, keeping inputs up to `max_backlog` bytes.
    pub(crate) fn new(max_backlog: usize) -> Self {
        StreamState {
            next: None,
            key_at_next: false,
            kept: None,
            max_backlog,
        }
    }

    /// Takes one record, `frame` being the STREAM frame spectators would receive for it, and
    /// says whether to forward it; keeps it if it belongs to the backlog.
    pub(crate) fn accept(&mut self, record: &StreamRecord<'_>, frame: &Bytes) -> Verdict {
        let start = u64::from(record.frame);
        match record.kind {
            StreamKind::Inputs => {
                if self.next != Some(start) {
                    return Verdict::Drop;
                }
                self.next = Some(record.end());
                self.key_at_next = false;
                if let Some(kept) = &mut self.kept {
                    kept.cost = kept
                        .cost
                        .saturating_add(frame.len().saturating_add(KEPT_RECORD_OVERHEAD));
                    if kept.cost > self.max_backlog {
                        // Too much to replay: wait for the next key.
                        self.kept = None;
                    } else {
                        kept.inputs.push((start, frame.clone()));
                    }
                }
                Verdict::Forward(StreamKind::Inputs)
            }
            StreamKind::Key => {
                let forward = match self.next {
                    None => true,
                    Some(next) => start > next || (start == next && !self.key_at_next),
                };
                if forward {
                    self.next = Some(start);
                    self.key_at_next = true;
                    self.kept = Some(Kept {
                        frame: start,
                        key: frame.clone(),
                        inputs: Vec::new(),
                        cost: 0,
                    });
                    return Verdict::Forward(StreamKind::Key);
                }
                // A key behind the stream: it can still shorten the backlog if the kept inputs
                // pick up exactly where it starts.
                if let Some(kept) = &mut self.kept {
                    if start > kept.frame {
                        if let Some(i) = kept.inputs.iter().position(|(s, _)| *s == start) {
                            kept.inputs.drain(..i);
                            kept.frame = start;
                            kept.key = frame.clone();
                            kept.cost = kept
                                .inputs
                                .iter()
                                .map(|(_, b)| b.len() + KEPT_RECORD_OVERHEAD)
                                .sum();
                        }
                    }
                }
                Verdict::Drop
            }
        }
    }

    /// What a spectator arriving now receives first: the kept key, then the kept inputs, in
    /// order (nothing if no key is kept).
    pub(crate) fn backlog(&self) -> impl Iterator<Item = &Bytes> {
        self.kept
            .iter()
            .flat_map(|k| std::iter::once(&k.key).chain(k.inputs.iter().map(|(_, b)| b)))
    }

    /// Whether a key is kept (a spectator arriving now starts at once).
    pub(crate) fn has_key(&self) -> bool {
        self.kept.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ricochet_protocol::relay::{relay_header, Opcode};

    /// The record and the frame a spectator gets for it, from `sender`.
    fn rec(kind: StreamKind, frame: u32, count: u8, sender: u16) -> (Vec<u8>, Bytes) {
        let record = StreamRecord {
            kind,
            frame,
            count,
            body: &[sender as u8; 3],
        }
        .to_vec();
        let mut wire = relay_header(Opcode::STREAM, false, sender).to_vec();
        wire.extend_from_slice(&record);
        (record, Bytes::from(wire))
    }

    /// Feeds one record; returns the verdict.
    fn feed(s: &mut StreamState, kind: StreamKind, frame: u32, count: u8, sender: u16) -> Verdict {
        let (record, wire) = rec(kind, frame, count, sender);
        s.accept(&StreamRecord::parse(&record).unwrap(), &wire)
    }

    fn key(s: &mut StreamState, frame: u32, sender: u16) -> Verdict {
        feed(s, StreamKind::Key, frame, 0, sender)
    }

    fn inputs(s: &mut StreamState, frame: u32, count: u8, sender: u16) -> Verdict {
        feed(s, StreamKind::Inputs, frame, count, sender)
    }

    /// The backlog as (kind, frame, sender).
    fn backlog(s: &StreamState) -> Vec<(StreamKind, u32, u16)> {
        s.backlog()
            .map(|b| {
                let r = StreamRecord::parse(&b[RELAY_HEADER_LEN..]).unwrap();
                (r.kind, r.frame, u16::from_be_bytes([b[2], b[3]]))
            })
            .collect()
    }

    const FWD_KEY: Verdict = Verdict::Forward(StreamKind::Key);
    const FWD_INPUTS: Verdict = Verdict::Forward(StreamKind::Inputs);

    #[test]
    fn nothing_goes_before_a_key_then_inputs_must_continue_it() {
        let mut s = StreamState::new(1 << 20);
        assert_eq!(inputs(&mut s, 0, 1, 0), Verdict::Drop);
        assert!(!s.has_key());
        assert_eq!(key(&mut s, 10, 0), FWD_KEY);
        assert_eq!(inputs(&mut s, 9, 1, 0), Verdict::Drop);
        assert_eq!(inputs(&mut s, 11, 1, 0), Verdict::Drop);
        assert_eq!(inputs(&mut s, 10, 3, 0), FWD_INPUTS);
        assert_eq!(inputs(&mut s, 13, 1, 0), FWD_INPUTS);
        assert_eq!(
            backlog(&s),
            [
                (StreamKind::Key, 10, 0),
                (StreamKind::Inputs, 10, 0),
                (StreamKind::Inputs, 13, 0)
            ]
        );
    }

    #[test]
    fn two_players_streaming_the_same_match_make_one_stream() {
        let mut s = StreamState::new(1 << 20);
        // Player 0 is ahead of player 1; both send the same records, interleaved.
        assert_eq!(key(&mut s, 0, 0), FWD_KEY);
        assert_eq!(key(&mut s, 0, 1), Verdict::Drop, "the same key twice");
        assert_eq!(inputs(&mut s, 0, 2, 0), FWD_INPUTS);
        assert_eq!(inputs(&mut s, 2, 2, 0), FWD_INPUTS);
        assert_eq!(inputs(&mut s, 0, 2, 1), Verdict::Drop);
        assert_eq!(inputs(&mut s, 4, 2, 0), FWD_INPUTS);
        assert_eq!(inputs(&mut s, 2, 2, 1), Verdict::Drop);
        assert_eq!(inputs(&mut s, 4, 2, 1), Verdict::Drop);
        // Player 0 leaves; player 1 catches up and goes on from where the stream is.
        assert_eq!(inputs(&mut s, 6, 2, 1), FWD_INPUTS);
        assert_eq!(key(&mut s, 8, 1), FWD_KEY);
        assert_eq!(key(&mut s, 8, 0), Verdict::Drop, "the same key twice");
        assert_eq!(inputs(&mut s, 8, 1, 1), FWD_INPUTS);
        assert_eq!(
            backlog(&s),
            [(StreamKind::Key, 8, 1), (StreamKind::Inputs, 8, 1)]
        );
        // A key at `next` after inputs is forwarded (a checkpoint), once.
        assert_eq!(key(&mut s, 9, 1), FWD_KEY);
        assert_eq!(key(&mut s, 9, 0), Verdict::Drop);
    }

    #[test]
    fn a_gap_waits_for_a_key() {
        let mut s = StreamState::new(1 << 20);
        key(&mut s, 0, 0);
        inputs(&mut s, 0, 5, 0);
        // Frames 5..7 never arrive; the records after the gap do not continue the stream.
        assert_eq!(inputs(&mut s, 7, 1, 0), Verdict::Drop);
        assert_eq!(inputs(&mut s, 8, 1, 0), Verdict::Drop);
        // An old key does not restart it either.
        assert_eq!(key(&mut s, 3, 0), Verdict::Drop);
        // A key at or after the gap does.
        assert_eq!(key(&mut s, 9, 0), FWD_KEY);
        assert_eq!(inputs(&mut s, 9, 1, 0), FWD_INPUTS);
        assert_eq!(
            backlog(&s),
            [(StreamKind::Key, 9, 0), (StreamKind::Inputs, 9, 0)]
        );
    }

    #[test]
    fn a_late_key_shortens_the_backlog_only_where_it_fits_without_a_hole() {
        let mut s = StreamState::new(1 << 20);
        key(&mut s, 0, 0);
        inputs(&mut s, 0, 4, 0);
        inputs(&mut s, 4, 4, 0);
        inputs(&mut s, 8, 4, 0);
        // Player 1's key at 6 is behind the stream and no kept record starts there: ignored.
        assert_eq!(key(&mut s, 6, 1), Verdict::Drop);
        assert_eq!(backlog(&s).len(), 4);
        // Its key at 4 is behind the stream too, but the kept inputs go on from 4.
        assert_eq!(key(&mut s, 4, 1), Verdict::Drop);
        assert_eq!(
            backlog(&s),
            [
                (StreamKind::Key, 4, 1),
                (StreamKind::Inputs, 4, 0),
                (StreamKind::Inputs, 8, 0)
            ]
        );
        // An older key than the kept one changes nothing.
        assert_eq!(key(&mut s, 0, 1), Verdict::Drop);
        assert_eq!(backlog(&s)[0], (StreamKind::Key, 4, 1));
        assert_eq!(inputs(&mut s, 12, 1, 0), FWD_INPUTS);
        assert_eq!(backlog(&s).len(), 4);
    }

    #[test]
    fn past_the_bound_nothing_is_kept_until_the_next_key() {
        // Each inputs frame here is 4 + 6 + 3 = 13 bytes, costing 77: three fit in 240.
        let mut s = StreamState::new(240);
        key(&mut s, 0, 0);
        for f in 0..3 {
            assert_eq!(inputs(&mut s, f, 1, 0), FWD_INPUTS);
        }
        assert_eq!(backlog(&s).len(), 4);
        // The fourth would pass the bound: it is still forwarded, but the backlog is let go.
        assert_eq!(inputs(&mut s, 3, 1, 0), FWD_INPUTS);
        assert!(!s.has_key());
        assert_eq!(backlog(&s), []);
        // Later inputs are not kept (they would have no key before them).
        assert_eq!(inputs(&mut s, 4, 1, 0), FWD_INPUTS);
        assert_eq!(backlog(&s), []);
        // A late key cannot bring it back (the inputs after it are gone).
        assert_eq!(key(&mut s, 4, 1), Verdict::Drop);
        assert_eq!(backlog(&s), []);
        // The next key starts a new backlog.
        assert_eq!(key(&mut s, 5, 0), FWD_KEY);
        assert_eq!(inputs(&mut s, 5, 1, 0), FWD_INPUTS);
        assert_eq!(
            backlog(&s),
            [(StreamKind::Key, 5, 0), (StreamKind::Inputs, 5, 0)]
        );
        // A bound of 0 keeps keys alone.
        let mut s = StreamState::new(0);
        key(&mut s, 0, 0);
        assert_eq!(backlog(&s).len(), 1);
        inputs(&mut s, 0, 1, 0);
        assert!(!s.has_key());
    }

    #[test]
    fn frames_at_the_top_of_the_range_do_not_overflow() {
        let mut s = StreamState::new(1 << 20);
        assert_eq!(key(&mut s, u32::MAX, 0), FWD_KEY);
        assert_eq!(inputs(&mut s, u32::MAX, 255, 0), FWD_INPUTS);
        // `next` is now past every frame a record can name: only keys can follow.
        assert_eq!(inputs(&mut s, u32::MAX, 1, 0), Verdict::Drop);
        assert_eq!(key(&mut s, u32::MAX, 0), Verdict::Drop);
        assert_eq!(max_kept_inputs(74 * 3), 3);
    }
}
