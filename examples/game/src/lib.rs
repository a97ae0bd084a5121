//! Ricochet Arena: the demo game of the Ricochet examples, tests and benchmarks.
//!
//! Two to four players move in a walled arena and fire bullets that ricochet off the walls;
//! a hit knocks the target back and scores for the shooter. Everything is integer math on
//! fixed-point numbers ([`ONE`] = one pixel), so every machine computes the same frames, and
//! the state is small enough to save every frame.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use ricochet::{Game, InputStatus};

pub mod render;

/// Fixed-point scale: positions and speeds are in 1/256 pixel.
pub const ONE: i32 = 256;
/// Arena width in pixels.
pub const WIDTH: i32 = 640;
/// Arena height in pixels.
pub const HEIGHT: i32 = 480;
/// Most players in one match.
pub const MAX_PLAYERS: usize = 4;
/// Player radius in pixels.
pub const PLAYER_RADIUS: i32 = 12;
/// Bullet radius in pixels.
pub const BULLET_RADIUS: i32 = 3;
/// Most bullets alive at once; firing when full does nothing.
pub const MAX_BULLETS: usize = 32;
/// Frames a bullet lives.
pub const BULLET_TTL: u16 = 180;
/// Frames between two shots of one player.
pub const FIRE_COOLDOWN: u16 = 20;
/// Wall bounces before a bullet disappears.
pub const MAX_BOUNCES: u8 = 3;

const ACCEL: i32 = 40;
const FRICTION_NUM: i32 = 7;
const FRICTION_DEN: i32 = 8;
const MAX_SPEED: i32 = 5 * ONE;
const BULLET_SPEED: i32 = 7 * ONE;
const KNOCKBACK: i32 = 6 * ONE;

/// Unit vectors (scaled by 256) for the 16 aim directions, starting east, counter-clockwise
/// in screen terms (y grows downwards).
const DIRECTIONS: [(i32, i32); 16] = [
    (256, 0),
    (237, -98),
    (181, -181),
    (98, -237),
    (0, -256),
    (-98, -237),
    (-181, -181),
    (-237, -98),
    (-256, 0),
    (-237, 98),
    (-181, 181),
    (-98, 237),
    (0, 256),
    (98, 237),
    (181, 181),
    (237, 98),
];

/// Button bits of [`Input::buttons`].
pub mod buttons {
    /// Move up.
    pub const UP: u8 = 1;
    /// Move down.
    pub const DOWN: u8 = 2;
    /// Move left.
    pub const LEFT: u8 = 4;
    /// Move right.
    pub const RIGHT: u8 = 8;
    /// Fire in the aim direction.
    pub const FIRE: u8 = 16;
}

/// One player's input for one frame: two bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct Input {
    /// A set of [`buttons`] bits.
    pub buttons: u8,
    /// Aim direction, 0..16 (see the direction table; values are taken modulo 16).
    pub aim: u8,
}

impl Player {
    /// Player `handle` as it enters the arena: in its corner, aiming inwards.
    pub fn spawned(handle: usize) -> Player {
        let spawn = [
            (80, 80, 15u8),
            (WIDTH - 80, HEIGHT - 80, 7),
            (WIDTH - 80, 80, 9),
            (80, HEIGHT - 80, 1),
        ];
        let (x, y, aim) = spawn[handle % spawn.len()];
        Player {
            x: x * ONE,
            y: y * ONE,
            aim,
            ..Player::default()
        }
    }
}

/// A player.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Player {
    /// Position, fixed-point.
    pub x: i32,
    /// Position, fixed-point.
    pub y: i32,
    /// Velocity, fixed-point per frame.
    pub vx: i32,
    /// Velocity, fixed-point per frame.
    pub vy: i32,
    /// Last aim direction, 0..16.
    pub aim: u8,
    /// Frames until the next shot is allowed.
    pub cooldown: u16,
    /// Hits scored.
    pub score: u32,
    /// Times hit.
    pub hits_taken: u32,
    /// Whether the player is disconnected (its input is zero while it is; a player who
    /// rejoins its seat plays again).
    pub disconnected: bool,
}

/// A bullet in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bullet {
    /// Position, fixed-point.
    pub x: i32,
    /// Position, fixed-point.
    pub y: i32,
    /// Velocity, fixed-point per frame.
    pub vx: i32,
    /// Velocity, fixed-point per frame.
    pub vy: i32,
    /// Player who fired it.
    pub owner: u8,
    /// Frames left.
    pub ttl: u16,
    /// Wall bounces so far.
    pub bounces: u8,
}

/// The whole game state; also its own save state. Its serde JSON is what desync forensics
/// exchange ([`Game::encode_state`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Arena {
    /// Frames simulated.
    pub frame: u32,
    /// The players (only the first `players` are in the match).
    pub players: Vec<Player>,
    /// Bullets in flight, oldest first.
    pub bullets: Vec<Bullet>,
    /// Fault injection for desync forensics tests (`ricochet-bot --plant-desync F`): after
    /// simulating frame `F` (counted from 0, as sessions count), player 1 scores 1,000 more on
    /// this machine only, on every (re-)simulation. Not part of the state's JSON.
    #[serde(skip)]
    pub planted_desync: Option<u32>,
}

impl Arena {
    /// A new match for `players` players (clamped to 1..=[`MAX_PLAYERS`]), each in a corner.
    pub fn new(players: usize) -> Self {
        let n = players.clamp(1, MAX_PLAYERS);
        Arena {
            frame: 0,
            players: (0..n).map(Player::spawned).collect(),
            bullets: Vec::with_capacity(MAX_BULLETS),
            planted_desync: None,
        }
    }

    /// Advances one frame with one input per player (missing inputs count as none).
    pub fn step(&mut self, inputs: &[(Input, InputStatus)]) {
        self.frame = self.frame.wrapping_add(1);
        for (i, p) in self.players.iter_mut().enumerate() {
            let (input, status) = inputs
                .get(i)
                .copied()
                .unwrap_or((Input::default(), InputStatus::Disconnected));
            // Not for good: a player who rejoins its seat plays again.
            p.disconnected = status == InputStatus::Disconnected;
            let b = input.buttons;
            let ax = axis(b & buttons::RIGHT != 0, b & buttons::LEFT != 0);
            let ay = axis(b & buttons::DOWN != 0, b & buttons::UP != 0);
            p.vx = ((p.vx + ax * ACCEL) * FRICTION_NUM / FRICTION_DEN).clamp(-MAX_SPEED, MAX_SPEED);
            p.vy = ((p.vy + ay * ACCEL) * FRICTION_NUM / FRICTION_DEN).clamp(-MAX_SPEED, MAX_SPEED);
            p.x = (p.x + p.vx).clamp(PLAYER_RADIUS * ONE, (WIDTH - PLAYER_RADIUS) * ONE);
            p.y = (p.y + p.vy).clamp(PLAYER_RADIUS * ONE, (HEIGHT - PLAYER_RADIUS) * ONE);
            p.aim = input.aim % 16;
            p.cooldown = p.cooldown.saturating_sub(1);
            if b & buttons::FIRE != 0 && p.cooldown == 0 && self.bullets.len() < MAX_BULLETS {
                let (dx, dy) = DIRECTIONS[p.aim as usize];
                let reach = (PLAYER_RADIUS + BULLET_RADIUS + 2) * ONE;
                self.bullets.push(Bullet {
                    x: p.x + dx * reach / 256,
                    y: p.y + dy * reach / 256,
                    vx: dx * BULLET_SPEED / 256,
                    vy: dy * BULLET_SPEED / 256,
                    owner: i as u8,
                    ttl: BULLET_TTL,
                    bounces: 0,
                });
                p.cooldown = FIRE_COOLDOWN;
            }
        }
        self.move_bullets();
    }

    fn move_bullets(&mut self) {
        let lo = BULLET_RADIUS * ONE;
        let (hx, hy) = (
            (WIDTH - BULLET_RADIUS) * ONE,
            (HEIGHT - BULLET_RADIUS) * ONE,
        );
        let hit_dist = i64::from((PLAYER_RADIUS + BULLET_RADIUS) * ONE);
        let players = &mut self.players;
        self.bullets.retain_mut(|bullet| {
            bullet.x += bullet.vx;
            bullet.y += bullet.vy;
            if bullet.x < lo || bullet.x > hx {
                bullet.vx = -bullet.vx;
                bullet.x = bullet.x.clamp(lo, hx);
                bullet.bounces += 1;
            }
            if bullet.y < lo || bullet.y > hy {
                bullet.vy = -bullet.vy;
                bullet.y = bullet.y.clamp(lo, hy);
                bullet.bounces += 1;
            }
            bullet.ttl = bullet.ttl.saturating_sub(1);
            let owner = bullet.owner as usize;
            // A bullet cannot hit its shooter before its first bounce.
            let target = players.iter().enumerate().position(|(i, p)| {
                let (dx, dy) = (i64::from(p.x - bullet.x), i64::from(p.y - bullet.y));
                !(i == owner && bullet.bounces == 0) && dx * dx + dy * dy <= hit_dist * hit_dist
            });
            if let Some(i) = target {
                let speed = (bullet.vx.abs() + bullet.vy.abs()).max(1);
                let p = &mut players[i];
                p.vx += bullet.vx * KNOCKBACK / speed;
                p.vy += bullet.vy * KNOCKBACK / speed;
                p.hits_taken += 1;
                if i != owner {
                    if let Some(shooter) = players.get_mut(owner) {
                        shooter.score += 1;
                    }
                }
                return false;
            }
            bullet.ttl > 0 && bullet.bounces <= MAX_BOUNCES
        });
        if self.planted_desync == Some(self.frame.wrapping_sub(1)) {
            if let Some(p) = self.players.get_mut(1) {
                p.score += 1000;
            }
        }
    }

    /// FNV-1a over every field of the state, in a fixed order.
    pub fn state_checksum(&self) -> u64 {
        let mut h = Fnv::new();
        h.word(self.frame as u64);
        for p in &self.players {
            for v in [p.x, p.y, p.vx, p.vy] {
                h.word(v as u32 as u64);
            }
            h.word(u64::from(p.aim) | u64::from(p.cooldown) << 8 | u64::from(p.disconnected) << 24);
            h.word(u64::from(p.score) << 32 | u64::from(p.hits_taken));
        }
        for b in &self.bullets {
            for v in [b.x, b.y, b.vx, b.vy] {
                h.word(v as u32 as u64);
            }
            h.word(u64::from(b.owner) | u64::from(b.ttl) << 8 | u64::from(b.bounces) << 24);
        }
        h.0
    }
}

fn axis(positive: bool, negative: bool) -> i32 {
    i32::from(positive) - i32::from(negative)
}

struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn word(&mut self, w: u64) {
        for byte in w.to_le_bytes() {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl Game for Arena {
    type Input = Input;
    type State = Arena;

    fn advance(&mut self, inputs: &[(Input, InputStatus)]) {
        self.step(inputs);
    }
    fn save(&self) -> Arena {
        self.clone()
    }
    fn load(&mut self, state: &Arena) {
        self.clone_from(state);
    }
    fn checksum(&self) -> u64 {
        self.state_checksum()
    }
    fn encode_state(&self) -> Option<ricochet::EncodedState> {
        serde_json::to_vec(self)
            .ok()
            .map(ricochet::EncodedState::json)
    }
    fn player_joined(&mut self, handle: usize) {
        // A late joiner enters in its corner (a fifth would have none: the arena holds four).
        if handle == self.players.len() && handle < MAX_PLAYERS {
            self.players.push(Player::spawned(handle));
        }
    }
    fn decode_state(&mut self, state: &ricochet::EncodedState) -> Result<(), String> {
        if state.format != ricochet::StateFormat::Json {
            return Err("the arena's states are JSON".into());
        }
        let mut arena: Arena =
            serde_json::from_slice(&state.bytes).map_err(|e| format!("not an arena state: {e}"))?;
        if !(1..=MAX_PLAYERS).contains(&arena.players.len()) {
            return Err(format!("an arena has 1..={MAX_PLAYERS} players"));
        }
        // The fault injection is this machine's, not the state's.
        arena.planted_desync = self.planted_desync;
        *self = arena;
        Ok(())
    }
}

/// Seeded pseudo-random inputs that look like play: held directions that change now and
/// then, aim that turns, and bursts of fire. Used by bots, tests and benchmarks.
#[derive(Debug, Clone)]
pub struct InputScript {
    state: u64,
    current: Input,
}

impl InputScript {
    /// A script seeded with `seed` (the same seed gives the same inputs).
    pub fn new(seed: u64) -> Self {
        InputScript {
            state: seed ^ 0x9e37_79b9_7f4a_7c15 | 1,
            current: Input::default(),
        }
    }

    fn next_u64(&mut self) -> u64 {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// The input for the next frame.
    pub fn next_input(&mut self) -> Input {
        let r = self.next_u64();
        if r.is_multiple_of(12) {
            self.current.buttons =
                ((r >> 8) as u8) & (buttons::UP | buttons::DOWN | buttons::LEFT | buttons::RIGHT);
        }
        if (r >> 16).is_multiple_of(5) {
            self.current.aim = (self.current.aim + 1 + ((r >> 24) % 3) as u8) % 16;
        }
        let fire = (r >> 32).is_multiple_of(4);
        let mut input = self.current;
        if fire {
            input.buttons |= buttons::FIRE;
        }
        input
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn play(frames: usize, seed: u64) -> Arena {
        let mut arena = Arena::new(4);
        let mut scripts: Vec<_> = (0..4).map(|i| InputScript::new(seed + i)).collect();
        for _ in 0..frames {
            let inputs: Vec<_> = scripts
                .iter_mut()
                .map(|s| (s.next_input(), InputStatus::Confirmed))
                .collect();
            arena.step(&inputs);
        }
        arena
    }

    #[test]
    fn deterministic_and_eventful() {
        let a = play(3000, 1);
        assert_eq!(a, play(3000, 1));
        assert_eq!(a.state_checksum(), play(3000, 1).state_checksum());
        assert_ne!(a.state_checksum(), play(3000, 2).state_checksum());
        let hits: u32 = a.players.iter().map(|p| p.hits_taken).sum();
        assert!(hits > 0, "bots should hit each other in 3000 frames");
        for p in &a.players {
            assert!((PLAYER_RADIUS * ONE..=(WIDTH - PLAYER_RADIUS) * ONE).contains(&p.x));
            assert!((PLAYER_RADIUS * ONE..=(HEIGHT - PLAYER_RADIUS) * ONE).contains(&p.y));
        }
    }

    #[test]
    fn input_is_two_bytes() {
        assert_eq!(std::mem::size_of::<Input>(), 2);
    }
}
