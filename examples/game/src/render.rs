//! A small software renderer for [`Arena`]: the native window and the browser example both
//! draw a frame with [`draw`] into a buffer of `0x00RRGGBB` pixels (the format of `softbuffer`
//! and, byte-swapped, of a canvas `ImageData`).
//!
//! Pure Rust with no I/O and no allocation: it writes only into the caller's buffer, so it
//! builds for `wasm32-unknown-unknown` like the rest of the game. The arena keeps its aspect
//! ratio, centered in the buffer; players are filled circles in [`PLAYER_COLORS`] with an aim
//! line, the local player is ringed, bullets are small dots in their shooter's color, scores
//! are written along the top edge, and the caller's overlay lines go on a translucent panel in
//! the bottom-left corner, in an 8x8 bitmap font.

use font8x8::legacy::BASIC_LEGACY;

use crate::{Arena, BULLET_RADIUS, HEIGHT, MAX_PLAYERS, ONE, PLAYER_RADIUS, WIDTH};

/// Player colors by player index (`0x00RRGGBB`): red, blue, green, yellow.
pub const PLAYER_COLORS: [u32; MAX_PLAYERS] = [0x00E8_4A5F, 0x003C_9DFF, 0x004C_D46A, 0x00FF_C83C];
/// Color of the buffer outside the arena.
pub const BACKGROUND: u32 = 0x000C_0C12;
/// Color of the arena's floor.
pub const FLOOR: u32 = 0x001E_2230;
/// Color of the floor's grid lines.
pub const GRID: u32 = 0x0026_2B3B;
/// Color of the arena's walls.
pub const WALL: u32 = 0x0078_8096;
/// Color of overlay text and of the ring around the local player.
pub const TEXT: u32 = 0x00F2_F2F2;
/// Opacity of the overlay panel, out of 255.
pub const PANEL_ALPHA: u32 = 170;
/// Side of one font glyph in pixels at text scale 1.
pub const GLYPH: usize = 8;
/// Height of one overlay line in pixels at text scale 1 (glyph plus spacing).
pub const LINE_HEIGHT: usize = 10;
/// Spacing of the floor grid, in arena pixels.
const GRID_STEP: i32 = 80;
/// Buffers at least this wide get text at twice the size.
const LARGE_TEXT_WIDTH: usize = 1200;

/// Draws `arena` into `buf`, a `width` x `height` image of `0x00RRGGBB` pixels in rows, with
/// `overlay` lines of text on a panel and player `me` (if any) ringed.
///
/// Never panics: any size works, including zero, and a buffer shorter than
/// `width * height` gets only the rows it holds. Characters outside ASCII are drawn as `?`.
pub fn draw(
    arena: &Arena,
    overlay: &[String],
    me: Option<usize>,
    buf: &mut [u32],
    width: usize,
    height: usize,
) {
    if width == 0 {
        return;
    }
    let height = height.min(buf.len() / width);
    if height == 0 {
        return;
    }
    let mut canvas = Canvas {
        buf: &mut buf[..width * height],
        width,
        height,
    };
    canvas.buf.fill(BACKGROUND);
    let view = View::fit(width, height);
    let text_scale = if width >= LARGE_TEXT_WIDTH { 2 } else { 1 };

    // Floor, grid and walls.
    let (x0, y0) = view.point(0, 0);
    let (x1, y1) = view.point(WIDTH * ONE, HEIGHT * ONE);
    canvas.fill_rect(
        x0 as i64,
        y0 as i64,
        x1.ceil() as i64,
        y1.ceil() as i64,
        FLOOR,
    );
    for gx in (GRID_STEP..WIDTH).step_by(GRID_STEP as usize) {
        let (x, _) = view.point(gx * ONE, 0);
        canvas.fill_rect(x as i64, y0 as i64, x as i64 + 1, y1 as i64, GRID);
    }
    for gy in (GRID_STEP..HEIGHT).step_by(GRID_STEP as usize) {
        let (_, y) = view.point(0, gy * ONE);
        canvas.fill_rect(x0 as i64, y as i64, x1 as i64, y as i64 + 1, GRID);
    }
    let wall = (2.0 * view.scale).max(1.0) as i64;
    let (ax0, ay0, ax1, ay1) = (x0 as i64, y0 as i64, x1.ceil() as i64, y1.ceil() as i64);
    canvas.fill_rect(ax0, ay0, ax1, ay0 + wall, WALL);
    canvas.fill_rect(ax0, ay1 - wall, ax1, ay1, WALL);
    canvas.fill_rect(ax0, ay0, ax0 + wall, ay1, WALL);
    canvas.fill_rect(ax1 - wall, ay0, ax1, ay1, WALL);

    // Bullets under the players.
    let bullet_radius = (BULLET_RADIUS as f32 * view.scale).max(1.0);
    for bullet in &arena.bullets {
        let (x, y) = view.point(bullet.x, bullet.y);
        canvas.fill_circle(x, y, bullet_radius, bullet_color(bullet.owner as usize));
    }

    // Players: body, aim line, ring for the local player.
    let radius = (PLAYER_RADIUS as f32 * view.scale).max(1.5);
    for (i, player) in arena.players.iter().enumerate() {
        let (x, y) = view.point(player.x, player.y);
        let mut color = player_color(i);
        if player.disconnected {
            color = dim(color);
        }
        canvas.fill_circle(x, y, radius, color);
        let angle = f32::from(player.aim % 16) * core::f32::consts::PI / 8.0;
        let reach = radius + 8.0 * view.scale;
        let (dx, dy) = (angle.cos(), -angle.sin());
        let thickness = (2.0 * view.scale).max(1.0);
        canvas.line(
            x + dx * radius * 0.4,
            y + dy * radius * 0.4,
            x + dx * reach,
            y + dy * reach,
            thickness,
            TEXT,
        );
        if me == Some(i) {
            let gap = (2.0 * view.scale).max(1.0);
            let ring = (2.0 * view.scale).max(1.0);
            canvas.ring(x, y, radius + gap, radius + gap + ring, TEXT);
        }
    }

    // Scores along the top edge, each in its player's color.
    let glyph = (GLYPH * text_scale) as i64;
    let mut tx = ax0 + wall + glyph / 2;
    let ty = ay0 + wall + glyph / 2;
    for (i, player) in arena.players.iter().enumerate() {
        let color = player_color(i);
        tx = canvas.text(tx, ty, "P", text_scale, color);
        tx = canvas.number(tx, ty, i as u64 + 1, text_scale, color);
        tx = canvas.text(tx, ty, ":", text_scale, color);
        tx = canvas.number(tx, ty, u64::from(player.score), text_scale, color);
        tx += glyph * 2;
    }

    // Overlay panel in the bottom-left corner.
    if !overlay.is_empty() {
        let pad = (4 * text_scale) as i64;
        let line = (LINE_HEIGHT * text_scale) as i64;
        let longest = overlay.iter().map(|l| l.chars().count()).max().unwrap_or(0) as i64;
        let panel_w = longest.saturating_mul(glyph).saturating_add(2 * pad);
        let panel_h = (overlay.len() as i64)
            .saturating_mul(line)
            .saturating_add(2 * pad);
        let (px, py) = (pad, height as i64 - pad - panel_h);
        canvas.blend_rect(px, py, px + panel_w, py + panel_h, 0, PANEL_ALPHA);
        for (n, text) in overlay.iter().enumerate() {
            let y = py + pad + n as i64 * line;
            if y >= height as i64 {
                break;
            }
            canvas.text(px + pad, y, text, text_scale, TEXT);
        }
    }
}

/// The color of player `index` (any index: colors repeat).
pub fn player_color(index: usize) -> u32 {
    PLAYER_COLORS[index % PLAYER_COLORS.len()]
}

/// The color of the bullets player `index` fires: theirs, lighter.
pub fn bullet_color(index: usize) -> u32 {
    lighten(player_color(index))
}

/// Where the fixed-point arena position (`x`, `y`) appears in a `width` x `height` buffer drawn
/// by [`draw`], in pixels (for pointing at the arena with a mouse).
pub fn screen_position(x: i32, y: i32, width: usize, height: usize) -> (f32, f32) {
    View::fit(width, height).point(x, y)
}

/// The aim direction (0..16, counter-clockwise from east, as in [`crate::Input::aim`]) closest
/// to the screen-space vector (`dx`, `dy`), y growing downwards; east for a zero vector.
pub fn aim_towards(dx: f32, dy: f32) -> u8 {
    if dx == 0.0 && dy == 0.0 || !dx.is_finite() || !dy.is_finite() {
        return 0;
    }
    let angle = (-dy).atan2(dx);
    let step = (angle / (core::f32::consts::PI / 8.0)).round() as i32;
    step.rem_euclid(16) as u8
}

/// Where the arena lands in the buffer: a uniform scale and an offset that centers it.
#[derive(Debug, Clone, Copy)]
struct View {
    scale: f32,
    x: f32,
    y: f32,
}

impl View {
    fn fit(width: usize, height: usize) -> View {
        let scale = (width as f32 / WIDTH as f32).min(height as f32 / HEIGHT as f32);
        View {
            scale,
            x: (width as f32 - WIDTH as f32 * scale) / 2.0,
            y: (height as f32 - HEIGHT as f32 * scale) / 2.0,
        }
    }

    /// The buffer position of a fixed-point arena position.
    fn point(&self, x: i32, y: i32) -> (f32, f32) {
        (
            self.x + x as f32 / ONE as f32 * self.scale,
            self.y + y as f32 / ONE as f32 * self.scale,
        )
    }
}

/// The buffer with clipped drawing primitives.
struct Canvas<'a> {
    buf: &'a mut [u32],
    width: usize,
    height: usize,
}

impl Canvas<'_> {
    /// Clips a half-open rectangle to the buffer.
    fn clip(&self, x0: i64, y0: i64, x1: i64, y1: i64) -> Option<(usize, usize, usize, usize)> {
        let x0 = x0.clamp(0, self.width as i64) as usize;
        let x1 = x1.clamp(0, self.width as i64) as usize;
        let y0 = y0.clamp(0, self.height as i64) as usize;
        let y1 = y1.clamp(0, self.height as i64) as usize;
        (x0 < x1 && y0 < y1).then_some((x0, y0, x1, y1))
    }

    fn fill_rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, color: u32) {
        if let Some((x0, y0, x1, y1)) = self.clip(x0, y0, x1, y1) {
            for y in y0..y1 {
                self.buf[y * self.width + x0..y * self.width + x1].fill(color);
            }
        }
    }

    /// Mixes `color` over the rectangle with opacity `alpha` out of 255.
    fn blend_rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, color: u32, alpha: u32) {
        if let Some((x0, y0, x1, y1)) = self.clip(x0, y0, x1, y1) {
            for y in y0..y1 {
                for pixel in &mut self.buf[y * self.width + x0..y * self.width + x1] {
                    *pixel = mix(*pixel, color, alpha);
                }
            }
        }
    }

    fn put(&mut self, x: i64, y: i64, color: u32) {
        if (0..self.width as i64).contains(&x) && (0..self.height as i64).contains(&y) {
            self.buf[y as usize * self.width + x as usize] = color;
        }
    }

    /// Pixels whose centers are between `inner` and `outer` from (`cx`, `cy`).
    fn ring(&mut self, cx: f32, cy: f32, inner: f32, outer: f32, color: u32) {
        let (x0, x1) = ((cx - outer).floor() as i64, (cx + outer).ceil() as i64 + 1);
        let (y0, y1) = ((cy - outer).floor() as i64, (cy + outer).ceil() as i64 + 1);
        let Some((x0, y0, x1, y1)) = self.clip(x0, y0, x1, y1) else {
            return;
        };
        let (inner2, outer2) = (inner * inner, outer * outer);
        for y in y0..y1 {
            let dy = y as f32 + 0.5 - cy;
            for x in x0..x1 {
                let dx = x as f32 + 0.5 - cx;
                let d2 = dx * dx + dy * dy;
                if d2 <= outer2 && d2 >= inner2 {
                    self.buf[y * self.width + x] = color;
                }
            }
        }
    }

    fn fill_circle(&mut self, cx: f32, cy: f32, radius: f32, color: u32) {
        self.ring(cx, cy, 0.0, radius, color);
    }

    /// A line of squares `thickness` wide from (`x0`, `y0`) to (`x1`, `y1`).
    fn line(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, thickness: f32, color: u32) {
        let steps = (x1 - x0)
            .abs()
            .max((y1 - y0).abs())
            .ceil()
            .clamp(1.0, 4096.0) as u32;
        let t = thickness.max(1.0) as i64;
        for s in 0..=steps {
            let f = s as f32 / steps as f32;
            let x = (x0 + (x1 - x0) * f - thickness / 2.0).round() as i64;
            let y = (y0 + (y1 - y0) * f - thickness / 2.0).round() as i64;
            self.fill_rect(x, y, x + t, y + t, color);
        }
    }

    /// Writes `text` with its top-left corner at (`x`, `y`); returns the x after it.
    fn text(&mut self, x: i64, y: i64, text: &str, scale: usize, color: u32) -> i64 {
        let mut x = x;
        for c in text.chars() {
            if x >= self.width as i64 {
                break;
            }
            self.glyph(x, y, c, scale, color);
            x += (GLYPH * scale) as i64;
        }
        x
    }

    /// Writes the decimal digits of `n` (no allocation); returns the x after them.
    fn number(&mut self, x: i64, y: i64, n: u64, scale: usize, color: u32) -> i64 {
        let mut digits = [0u8; 20];
        let mut len = 0;
        let mut n = n;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let mut x = x;
        for &d in digits[..len].iter().rev() {
            self.glyph(x, y, char::from(d), scale, color);
            x += (GLYPH * scale) as i64;
        }
        x
    }

    fn glyph(&mut self, x: i64, y: i64, c: char, scale: usize, color: u32) {
        let code = if c.is_ascii() {
            c as usize
        } else {
            '?' as usize
        };
        let scale = scale as i64;
        for (row, bits) in BASIC_LEGACY[code].iter().enumerate() {
            for col in 0..GLYPH {
                // Bit 0 is the leftmost pixel of the row.
                if bits >> col & 1 == 1 {
                    let (px, py) = (x + col as i64 * scale, y + row as i64 * scale);
                    if scale == 1 {
                        self.put(px, py, color);
                    } else {
                        self.fill_rect(px, py, px + scale, py + scale, color);
                    }
                }
            }
        }
    }
}

/// `over` mixed onto `under` with opacity `alpha` out of 255, per channel.
fn mix(under: u32, over: u32, alpha: u32) -> u32 {
    let alpha = alpha.min(255);
    let channel = |shift: u32| {
        let (u, o) = (under >> shift & 0xff, over >> shift & 0xff);
        ((o * alpha + u * (255 - alpha)) / 255) << shift
    };
    channel(16) | channel(8) | channel(0)
}

/// Halfway to white: bullets stand out from their shooter.
fn lighten(color: u32) -> u32 {
    mix(color, 0x00FF_FFFF, 110)
}

/// Halfway to black: a player who left.
fn dim(color: u32) -> u32 {
    mix(color, 0, 140)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Bullet;

    fn render(
        arena: &Arena,
        overlay: &[String],
        me: Option<usize>,
        w: usize,
        h: usize,
    ) -> Vec<u32> {
        let mut buf = vec![0xdead_beef; w * h];
        draw(arena, overlay, me, &mut buf, w, h);
        buf
    }

    fn at(buf: &[u32], w: usize, x: usize, y: usize) -> u32 {
        buf[y * w + x]
    }

    fn is_floor(color: u32) -> bool {
        color == FLOOR || color == GRID
    }

    fn count(buf: &[u32], color: u32) -> usize {
        buf.iter().filter(|&&p| p == color).count()
    }

    #[test]
    fn players_land_where_they_are_at_any_scale() {
        let arena = Arena::new(4);
        for (w, h) in [(640, 480), (1280, 960), (800, 600), (1000, 480), (320, 700)] {
            let buf = render(&arena, &[], None, w, h);
            let view = View::fit(w, h);
            for (i, p) in arena.players.iter().enumerate() {
                let (x, y) = view.point(p.x, p.y);
                assert_eq!(
                    at(&buf, w, x as usize, y as usize),
                    PLAYER_COLORS[i],
                    "player {i} center in {w}x{h}"
                );
            }
            // The player's own color appears nowhere far from it: at arena center there is
            // floor.
            let (cx, cy) = view.point(WIDTH * ONE / 2 + 7 * ONE, HEIGHT * ONE / 2 + 7 * ONE);
            assert!(is_floor(at(&buf, w, cx as usize, cy as usize)), "{w}x{h}");
        }
    }

    #[test]
    fn a_moved_player_is_drawn_at_its_new_place() {
        let mut arena = Arena::new(2);
        arena.players[1].x = 300 * ONE;
        arena.players[1].y = 200 * ONE;
        let buf = render(&arena, &[], None, 640, 480);
        assert_eq!(at(&buf, 640, 300, 200), PLAYER_COLORS[1]);
        // Below the aim line (player 1 aims west-ish), still inside the circle.
        assert_eq!(
            at(&buf, 640, 300, 200 + PLAYER_RADIUS as usize - 2),
            PLAYER_COLORS[1]
        );
        assert!(is_floor(at(
            &buf,
            640,
            300,
            200 + PLAYER_RADIUS as usize + 6
        )));
        // Nothing left at the spawn point.
        assert!(is_floor(at(&buf, 640, 560, 400)));
    }

    #[test]
    fn local_player_is_ringed() {
        let arena = Arena::new(2);
        let ring = |buf: &[u32], p: usize| {
            let (x, y) = (arena.players[p].x / ONE, arena.players[p].y / ONE);
            // Straight down from the center, past the body (aims point elsewhere).
            at(buf, 640, x as usize, (y + PLAYER_RADIUS + 3) as usize)
        };
        let mine = render(&arena, &[], Some(0), 640, 480);
        assert_eq!(ring(&mine, 0), TEXT);
        assert!(is_floor(ring(&mine, 1)));
        let theirs = render(&arena, &[], Some(1), 640, 480);
        assert!(is_floor(ring(&theirs, 0)));
        assert_eq!(ring(&theirs, 1), TEXT);
        // An index past the players rings nobody.
        assert_eq!(
            render(&arena, &[], Some(9), 640, 480),
            render(&arena, &[], None, 640, 480)
        );
    }

    #[test]
    fn bullets_are_drawn_in_their_shooters_color() {
        let mut arena = Arena::new(2);
        arena.bullets.push(Bullet {
            x: 320 * ONE,
            y: 100 * ONE,
            owner: 1,
            ttl: 10,
            ..Bullet::default()
        });
        let buf = render(&arena, &[], None, 640, 480);
        assert_eq!(at(&buf, 640, 320, 100), bullet_color(1));
        assert!(is_floor(at(
            &buf,
            640,
            320,
            100 + BULLET_RADIUS as usize + 3
        )));
    }

    #[test]
    fn overlay_text_sits_on_a_panel() {
        let arena = Arena::new(2);
        let lines = ["peer 1 relay 40 ms".to_string(), "rollback 2".to_string()];
        let with = render(&arena, &lines, None, 640, 480);
        let without = render(&arena, &[], None, 640, 480);
        // The panel's rows at the bottom-left, where the overlay goes.
        let panel_top = 480 - 4 - (2 * LINE_HEIGHT + 8);
        let region = |buf: &[u32]| -> Vec<u32> {
            (panel_top..476)
                .flat_map(|y| buf[y * 640 + 4..y * 640 + 4 + 18 * GLYPH + 8].to_vec())
                .collect()
        };
        let (r_with, r_without) = (region(&with), region(&without));
        assert_eq!(count(&r_without, TEXT), 0);
        let text = count(&r_with, TEXT);
        assert!(text > 100, "{text} text pixels");
        // The rest of the panel is darker than the floor under it, not replaced by it.
        let panel = mix(FLOOR, 0, PANEL_ALPHA);
        assert!(count(&r_with, panel) > r_with.len() / 2);
        // The first glyph is an 'p': its pixels match the font.
        let p = BASIC_LEGACY['p' as usize];
        let (gx, gy) = (8, panel_top + 4);
        for (row, bits) in p.iter().enumerate() {
            for col in 0..8 {
                let lit = at(&with, 640, gx + col, gy + row) == TEXT;
                assert_eq!(lit, bits >> col & 1 == 1, "row {row} col {col}");
            }
        }
    }

    #[test]
    fn scores_are_written() {
        let mut arena = Arena::new(2);
        let before = render(&arena, &[], None, 640, 480);
        arena.players[0].score = 1234;
        let after = render(&arena, &[], None, 640, 480);
        let top = |buf: &[u32]| count(&buf[..640 * 20], PLAYER_COLORS[0]);
        assert!(top(&after) > top(&before), "more digits, more pixels");
    }

    #[test]
    fn any_buffer_size_draws_without_panicking() {
        let mut arena = Arena::new(4);
        arena.players[2].x = 0;
        arena.players[3].y = i32::MAX;
        arena.players[1].aim = 200;
        arena.players[0].disconnected = true;
        arena.bullets.push(Bullet {
            x: -5 * ONE,
            y: i32::MIN,
            owner: 200,
            ..Bullet::default()
        });
        let lines = ["x".repeat(300), "ünïcödé ✓".to_string(), String::new()];
        for w in 0..24 {
            for h in 0..24 {
                let _ = render(&arena, &lines, Some(3), w, h);
            }
        }
        for (w, h) in [(1, 5000), (5000, 1), (3000, 2000)] {
            let _ = render(&arena, &lines, Some(0), w, h);
        }
        // A buffer shorter than width * height: only the rows it holds are drawn.
        let mut short = vec![1u32; 100];
        draw(&arena, &lines, None, &mut short, 10, 480);
        assert!(short.iter().all(|&p| p != 1));
        let mut empty: [u32; 0] = [];
        draw(&arena, &lines, None, &mut empty, 640, 480);
    }

    #[test]
    fn aim_follows_the_direction_table() {
        assert_eq!(aim_towards(1.0, 0.0), 0);
        assert_eq!(aim_towards(1.0, -1.0), 2);
        assert_eq!(aim_towards(0.0, -5.0), 4);
        assert_eq!(aim_towards(-3.0, 0.0), 8);
        assert_eq!(aim_towards(0.0, 2.0), 12);
        assert_eq!(aim_towards(1.0, 0.4), 15);
        assert_eq!(aim_towards(0.0, 0.0), 0);
        assert_eq!(aim_towards(f32::NAN, 1.0), 0);
        // A bullet fired with that aim goes that way.
        let mut arena = Arena::new(1);
        let (px, py) = (arena.players[0].x, arena.players[0].y);
        let fire = crate::Input {
            buttons: crate::buttons::FIRE,
            aim: aim_towards(-1.0, 1.0),
        };
        arena.step(&[(fire, ricochet::InputStatus::Confirmed)]);
        let b = arena.bullets[0];
        assert!(b.x < px && b.y > py, "south-west: {b:?}");
    }

    #[test]
    fn screen_position_matches_the_drawing() {
        let arena = Arena::new(2);
        let (x, y) = screen_position(arena.players[1].x, arena.players[1].y, 1000, 600);
        let buf = render(&arena, &[], None, 1000, 600);
        assert_eq!(at(&buf, 1000, x as usize, y as usize), PLAYER_COLORS[1]);
    }
}
