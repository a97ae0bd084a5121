//! What a game supplies to Ricochet.

use std::marker::PhantomData;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use ggrs::InputStatus;

/// A deterministic game simulation, as Ricochet drives it.
///
/// Everything that affects the simulation must come from the inputs: same state plus same
/// inputs must give the same next state on every machine (integer or fixed-point math, no
/// wall clock, no unseeded randomness, no iteration over hash maps).
///
/// ```
/// use ricochet::{Game, InputStatus};
///
/// #[derive(Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
/// #[repr(C)]
/// struct Buttons { bits: u8 }
///
/// #[derive(Clone, Default)]
/// struct Counter { frame: u32, total: u64 }
///
/// impl Game for Counter {
///     type Input = Buttons;
///     type State = Counter;
///     fn advance(&mut self, inputs: &[(Buttons, InputStatus)]) {
///         self.frame += 1;
///         for (i, (b, _)) in inputs.iter().enumerate() {
///             self.total += u64::from(b.bits) * (i as u64 + 1);
///         }
///     }
///     fn save(&self) -> Counter { self.clone() }
///     fn load(&mut self, state: &Counter) { *self = state.clone() }
///     fn checksum(&self) -> u64 { self.total ^ u64::from(self.frame) << 40 }
/// }
/// ```
pub trait Game: 'static {
    /// One player's input for one frame: plain old data, the only game data that crosses the
    /// network. All-zero bytes mean "no input" (used before a player's first input arrives
    /// and for disconnected players).
    type Input: bytemuck::Pod + PartialEq + Send + Sync;
    /// A snapshot of the simulation, taken before frames that may be rolled back.
    type State: Clone + Send + Sync;

    /// Advances the simulation by one frame with one input per player, in player order.
    /// `InputStatus::Predicted` inputs are guesses that may be corrected by a rollback;
    /// `InputStatus::Disconnected` marks a player who left (their input is all zeros).
    fn advance(&mut self, inputs: &[(Self::Input, InputStatus)]);
    /// Returns a snapshot of the current state.
    fn save(&self) -> Self::State;
    /// Restores a snapshot taken by [`Game::save`].
    fn load(&mut self, state: &Self::State);
    /// A checksum of the current state; equal states must give equal checksums on every
    /// machine. Used for desync detection, sync tests and replays.
    fn checksum(&self) -> u64;
    /// The current state as bytes, for desync forensics: on a desync the peers swap their
    /// states at the first frame that differs, and `ricochet-desync` compares them. Return
    /// the state's serde JSON ([`EncodedState::json`]) so the tool can name the fields that
    /// differ, or any bytes ([`EncodedState::binary`]) for a byte comparison. `None` (the
    /// default): the peers still find and report the exact frame, without states.
    fn encode_state(&self) -> Option<EncodedState> {
        None
    }
    /// Replaces the current state with one that [`Game::encode_state`] produced, on this or
    /// another machine: how a player who rejoins a match (or joins it late) gets the state
    /// the others have (see [`crate::session::rejoin`]). Ricochet checks the result with
    /// [`Game::checksum`]. `Err` (the default: the game cannot do it) says why, and the
    /// rejoin fails with that reason.
    fn decode_state(&mut self, state: &EncodedState) -> Result<(), String> {
        let _ = state;
        Err("this game does not implement Game::decode_state".into())
    }
    /// A player joins the running match as player `handle` (the next handle: the inputs
    /// passed to [`Game::advance`] have one more entry from now on). Called on every machine at
    /// the same frame, before the newcomer gets the state (see
    /// [`SessionSettings::with_late_join`](crate::SessionSettings::with_late_join)). The
    /// default does nothing.
    fn player_joined(&mut self, handle: usize) {
        let _ = handle;
    }
}

pub use crate::session::forensics::{EncodedState, StateFormat};

/// A game input as ggrs carries it: the raw bytes of a [`bytemuck::Pod`] value, serialized as
/// a fixed-size tuple (no length prefix, so a 2-byte input costs 2 bytes).
#[derive(Clone, Copy, PartialEq)]
pub struct PodInput<I>(pub I);

impl<I: bytemuck::Pod> Default for PodInput<I> {
    fn default() -> Self {
        PodInput(I::zeroed())
    }
}

impl<I: bytemuck::Pod> Serialize for PodInput<I> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bytes = bytemuck::bytes_of(&self.0);
        let mut tuple = serializer.serialize_tuple(bytes.len())?;
        for b in bytes {
            tuple.serialize_element(b)?;
        }
        tuple.end()
    }
}

impl<'de, I: bytemuck::Pod> Deserialize<'de> for PodInput<I> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor<I>(PhantomData<I>);
        impl<'de, I: bytemuck::Pod> Visitor<'de> for BytesVisitor<I> {
            type Value = PodInput<I>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{} input bytes", std::mem::size_of::<I>())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut value = I::zeroed();
                let bytes = bytemuck::bytes_of_mut(&mut value);
                for (i, slot) in bytes.iter_mut().enumerate() {
                    *slot = seq
                        .next_element()?
                        .ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                Ok(PodInput(value))
            }
        }
        deserializer.deserialize_tuple(std::mem::size_of::<I>(), BytesVisitor(PhantomData))
    }
}

/// The ggrs configuration for a game `G` talking to peers addressed by `A`.
pub struct GgrsConfig<G, A>(PhantomData<fn() -> (G, A)>);

impl<G: Game, A> ggrs::Config for GgrsConfig<G, A>
where
    A: Clone + PartialEq + Eq + std::hash::Hash + std::fmt::Debug + Send + Sync + 'static,
{
    type Input = PodInput<G::Input>;
    type InputPredictor = ggrs::PredictRepeatLast;
    type State = G::State;
    type Address = A;
}
