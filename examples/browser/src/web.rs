//! The browser glue (wasm32 only): joins the match, runs the game loop on animation frames,
//! draws into the canvas, reads the keyboard and mouse, and exposes the state to the page.

use std::cell::RefCell;
use std::rc::Rc;

use ricochet::link::{PathConfig, PathMode};
use ricochet::net::connect::{JoinOptions, Match, TakeError};
use ricochet::net::watch::{watch, Spectating, WatchOptions};
use ricochet::net::IceServer;
use ricochet::session::stream::Watcher;
use ricochet_demo_client::{ChatLine, Play};
use ricochet_demo_game::{render, Arena, Input, InputScript};
use wasm_bindgen::prelude::*;
use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, ImageData, KeyboardEvent, MouseEvent};
use web_time::Instant;

use crate::controls::{self, Controls};
use crate::{to_rgba, PageOptions};

/// How often the match is stepped besides animation frames, in milliseconds: browsers stop
/// animation frames in hidden tabs, and a player who stops sending inputs stalls the others.
const TICK_INTERVAL_MS: i32 = 8;
/// How long a spectator page keeps trying to watch a match that is not there (yet), and how
/// long it waits between tries.
const WATCH_WAIT: std::time::Duration = std::time::Duration::from_secs(60);
const WATCH_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Where the task connecting a spectator page leaves its result.
type Connecting = Rc<RefCell<Option<Result<Spectating, String>>>>;

/// A spectator page's match: the stream's connection, and the game it replays.
struct Watch {
    spectating: Spectating,
    watcher: Watcher<Input>,
    game: Arena,
    /// Whether the page said the stream ended.
    ended_shown: bool,
}

enum Phase {
    /// The match's handle, while its driver (a `spawn_local` task) joins.
    Joining(Match),
    Playing(Box<Play>),
    Failed(String),
    /// The player left ([`Client::leave`]): every connection is closed.
    Left,
    /// A spectator page (`spectate=1`), while it connects.
    Connecting(Connecting),
    /// A spectator page watching.
    Watching(Box<Watch>),
}

struct App {
    options: PageOptions,
    phase: Phase,
    controls: Controls,
    script: Option<InputScript>,
    /// The checksum of frame `frames - 1`, once confirmed.
    checksum: Option<u64>,
    /// Disconnected players already named in the page's status line.
    lost_shown: usize,
    /// Returns of players (this one included) already named in the page's status line.
    back_shown: usize,
    /// This tab is taking back a seat it had before a reload (its rejoin token was in the
    /// tab's session storage).
    rejoining: bool,
    /// Whether this player's rejoin token is in the tab's session storage.
    seat_saved: bool,
    /// Chat lines already in the page's list (the next line's number).
    chat_shown: u64,
    canvas: HtmlCanvasElement,
    ctx: CanvasRenderingContext2d,
    pixels: Vec<u32>,
    rgba: Vec<u8>,
}

impl App {
    fn fail(&mut self, message: String) {
        web_sys::console::error_1(&JsValue::from_str(&message));
        set_status(&message);
        self.phase = Phase::Failed(message);
    }

    /// A spectator page's step: takes the connection once made, then replays what the stream
    /// brought.
    fn watch_tick(&mut self) {
        let room = self.options.room.clone().unwrap_or_default();
        if let Phase::Connecting(slot) = &self.phase {
            let taken = slot.borrow_mut().take();
            match taken {
                None => return,
                Some(Err(e)) => return self.fail(format!("could not watch match {room}: {e}")),
                Some(Ok(spectating)) => {
                    set_status(&format!(
                        "Watching match {room} as a spectator: the players do not see you."
                    ));
                    self.phase = Phase::Watching(Box::new(Watch {
                        spectating,
                        watcher: Watcher::new(1),
                        game: Arena::new(1),
                        ended_shown: false,
                    }));
                }
            }
        }
        let Phase::Watching(w) = &mut self.phase else {
            return;
        };
        for record in w.spectating.take_stream() {
            if let Err(e) = w.watcher.receive(&mut w.game, &record) {
                web_sys::console::warn_1(&JsValue::from_str(&format!("stream: {e}")));
            }
        }
        while w.watcher.step(&mut w.game).is_some() {}
        if let (Some(reason), false) = (w.spectating.closed(), w.ended_shown) {
            w.ended_shown = true;
            set_status(&format!("The match's stream ended: {reason}"));
        }
        if let (None, Some(frames)) = (self.checksum, self.options.frames) {
            self.checksum = w.watcher.checksum_at(frames - 1);
        }
    }

    /// Steps the match: the frames due now, with this player's input. While joining, starts
    /// the game once the match is ready.
    fn tick(&mut self) {
        if self.options.spectate {
            return self.watch_tick();
        }
        if let Phase::Joining(handle) = &mut self.phase {
            let room = self.options.room.clone().unwrap_or_default();
            let builder = ricochet::SessionBuilder::new()
                .with_input_delay(ricochet::session::DEFAULT_INPUT_DELAY)
                .and_then(|b| b.with_desync_detection(Some(self.options.desync_interval)));
            let rejoining = self.rejoining;
            let start = |joined| {
                if rejoining {
                    Play::rejoin_with(joined, builder?, ricochet::session::DEFAULT_INPUT_DELAY)
                } else {
                    Play::start_with(joined, builder?, ricochet::session::DEFAULT_INPUT_DELAY)
                }
            };
            let refused = |e: &dyn std::fmt::Display| {
                if rejoining {
                    // The seat is gone (the grace ran out, or the match ended): a reload joins
                    // anew.
                    forget_seat(&room);
                    format!(
                        "could not take your seat back in match {room}: {e} (reload to join again)"
                    )
                } else {
                    format!("could not join match {room}: {e}")
                }
            };
            match handle.take_joined() {
                Ok(joined) => match start(joined) {
                    Ok(play) => {
                        set_status(&format!(
                            "Match {room}: you are player {} (arrows/WASD move, space fires, mouse or Q/E aims, Enter chats)",
                            play.handle() + 1
                        ));
                        if let Some(chat) = element("chat") {
                            let _ = chat.remove_attribute("hidden");
                        }
                        self.phase = Phase::Playing(Box::new(play));
                    }
                    Err(e) => return self.fail(refused(&e)),
                },
                Err(TakeError::NotReady(_)) => return,
                Err(e) => return self.fail(refused(&e)),
            }
        }
        let Phase::Playing(play) = &mut self.phase else {
            return;
        };
        let input = match &self.script {
            Some(script) => script.clone().next_input(),
            None => self.controls.input(
                play.arena(),
                play.handle(),
                self.canvas.width() as usize,
                self.canvas.height() as usize,
            ),
        };
        let before = play.frame();
        if let Err(e) = play.tick(Instant::now(), input) {
            self.fail(format!("the match stopped: {e}"));
            return;
        }
        if let Some(script) = &mut self.script {
            for _ in before..play.frame() {
                script.next_input();
            }
        }
        if !self.seat_saved {
            if let (Some(token), Some(room)) = (play.rejoin_token(), &self.options.room) {
                // A reload of this tab takes the seat back (see `start`).
                self.seat_saved = save_seat(room, &token);
            }
        }
        let back = play.rejoined();
        if back.len() > self.back_shown {
            self.back_shown = back.len();
            let names: Vec<String> = back
                .iter()
                .map(|(peer, frame)| match peer {
                    None => format!("you are back in your seat (frame {frame})"),
                    Some(peer) => {
                        let who = play
                            .players()
                            .iter()
                            .position(|p| p == peer)
                            .map_or_else(|| peer.to_string(), |h| format!("player {}", h + 1));
                        format!("{who} is back (frame {frame})")
                    }
                })
                .collect();
            set_status(&format!("Match: {}.", names.join(", ")));
        }
        // Never a silent split: a player the match went on without is named on the page.
        let lost = play.disconnected();
        // A player who came back is no longer among them.
        self.lost_shown = self.lost_shown.min(lost.len());
        if lost.len() > self.lost_shown {
            self.lost_shown = lost.len();
            let names: Vec<String> = lost
                .iter()
                .map(|(peer, frame)| {
                    let who = play
                        .players()
                        .iter()
                        .position(|p| p == peer)
                        .map_or_else(|| peer.to_string(), |h| format!("player {}", h + 1));
                    format!("{who} (frame {frame})")
                })
                .collect();
            let message = format!(
                "The match goes on without {}: disconnected.",
                names.join(", ")
            );
            web_sys::console::warn_1(&JsValue::from_str(&message));
            set_status(&message);
        }
        if let (None, Some(frames)) = (self.checksum, self.options.frames) {
            self.checksum = play.checksum_at(frames - 1);
        }
        self.show_chat();
    }

    /// Adds the chat lines not shown yet to the page's list, each after its sender's player
    /// number in the player's colour, and scrolls to the newest.
    fn show_chat(&mut self) {
        let Phase::Playing(play) = &self.phase else {
            return;
        };
        let Some(list) = element("chat-log") else {
            return;
        };
        let me = play.handle();
        let mut added = false;
        let shown = self.chat_shown;
        for line in play.chat().filter(|l| l.number >= shown) {
            self.chat_shown = line.number + 1;
            if let Err(e) = append_chat_line(&list, line, me) {
                web_sys::console::error_2(&"showing a chat line failed".into(), &e);
            }
            added = true;
        }
        if added {
            // The list keeps what the status keeps.
            while list.child_element_count() as usize > ricochet_demo_client::CHAT_KEPT {
                match list.first_element_child() {
                    Some(oldest) => oldest.remove(),
                    None => break,
                }
            }
            list.set_scroll_top(list.scroll_height());
        }
    }

    /// Draws the arena and the overlay.
    fn draw(&mut self) {
        let (w, h) = (self.canvas.width() as usize, self.canvas.height() as usize);
        self.pixels.resize(w * h, 0);
        match &self.phase {
            Phase::Playing(play) => render::draw(
                play.arena(),
                &play.overlay(),
                Some(play.handle()),
                &mut self.pixels,
                w,
                h,
            ),
            Phase::Watching(watch) => {
                let overlay = match watch.watcher.frame() {
                    Some(frame) => vec![format!("spectating  frame {frame}")],
                    None => vec!["spectating  waiting for the stream".to_string()],
                };
                render::draw(&watch.game, &overlay, None, &mut self.pixels, w, h)
            }
            _ => return,
        }
        to_rgba(&self.pixels, &mut self.rgba);
        match ImageData::new_with_u8_clamped_array_and_sh(Clamped(&self.rgba), w as u32, h as u32) {
            Ok(image) => {
                if let Err(e) = self.ctx.put_image_data(&image, 0.0, 0.0) {
                    web_sys::console::error_2(&"drawing failed".into(), &e);
                }
            }
            Err(e) => web_sys::console::error_2(&"drawing failed".into(), &e),
        }
    }

    fn status(&self) -> serde_json::Value {
        let mut status = match &self.phase {
            Phase::Joining(_) => serde_json::json!({ "state": "joining" }),
            Phase::Left => serde_json::json!({ "state": "left" }),
            Phase::Failed(e) => serde_json::json!({ "state": "failed", "error": e }),
            Phase::Playing(play) => {
                let mut s = play.status();
                s["state"] = "playing".into();
                s
            }
            Phase::Connecting(_) => serde_json::json!({ "state": "joining", "spectator": true }),
            Phase::Watching(w) => {
                let stats = w.watcher.stats();
                let mut checksums = serde_json::Map::new();
                let last = w.watcher.frame().unwrap_or(0) - 1;
                let every = ricochet_demo_client::STATUS_CHECKSUM_EVERY;
                for f in (0..=last).filter(|f| f % every == 0) {
                    if let Some(c) = w.watcher.checksum_at(f) {
                        checksums.insert(f.to_string(), format!("{c:016x}").into());
                    }
                }
                serde_json::json!({
                    "state": "watching",
                    "spectator": true,
                    "peer": w.spectating.id().to_string(),
                    "frame": last,
                    "confirmed": last,
                    "checksums": checksums,
                    "last_checksum": w.watcher.last_checksum().map(|(f, c)| (f, format!("{c:016x}"))),
                    "watched_players": w.watcher.players(),
                    "keys_loaded": stats.keys_loaded,
                    "keys_checked": stats.keys_checked,
                    "key_mismatches": stats.key_mismatches,
                    "gaps": stats.gaps,
                    "stream_received": w.spectating.stats().stream_received,
                    "closed": w.spectating.closed(),
                })
            }
        };
        if let Some(room) = &self.options.room {
            status["match"] = room.as_str().into();
        }
        status["players"] = self.options.players.into();
        // The game buttons the keyboard and mouse hold now (none while typing in the chat).
        status["keys"] = self.controls.buttons().into();
        status["force_relay"] = self.options.force_relay.into();
        if let Some(frames) = self.options.frames {
            status["frames"] = frames.into();
            status["checksum"] = self.checksum.map(|c| format!("{c:016x}")).into();
        }
        status
    }
}

/// The page's element with the ID `id`.
fn element(id: &str) -> Option<web_sys::Element> {
    web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(id))
}

fn set_status(text: &str) {
    if let Some(el) = element("status") {
        el.set_text_content(Some(text));
    }
}

/// `<li><span class="who" style="color: ...">P2</span> the line</li>` (`P1 (you)` for this
/// player's own lines).
fn append_chat_line(list: &web_sys::Element, line: &ChatLine, me: usize) -> Result<(), JsValue> {
    let document = list
        .owner_document()
        .ok_or_else(|| JsValue::from_str("no document"))?;
    let item = document.create_element("li")?;
    let who = document.create_element("span")?;
    who.set_class_name("who");
    let color = render::PLAYER_COLORS
        .get(line.from)
        .copied()
        .unwrap_or(render::WALL);
    who.set_attribute("style", &format!("color: #{color:06x}"))?;
    let you = if line.from == me { " (you)" } else { "" };
    who.set_text_content(Some(&format!("P{}{you}", line.from + 1)));
    item.append_child(&who)?;
    // As text, never as markup.
    item.append_with_str_1(&format!(" {}", line.text))?;
    list.append_child(&item)?;
    Ok(())
}

/// A running page: what `start` returns to JavaScript, which keeps it as `window.ricochet`.
#[wasm_bindgen]
pub struct Client {
    app: Rc<RefCell<App>>,
}

#[wasm_bindgen]
impl Client {
    /// The state as JSON: `state` (`joining`, `playing`, `failed` with `error`), the page's
    /// options, `keys` (the game buttons the keyboard and mouse hold now), and while playing
    /// everything `Play::status` reports (the chat lines as `chat`); with `frames=N` also
    /// `checksum`, the checksum of frame `N - 1` once confirmed (else `null`).
    pub fn status(&self) -> String {
        self.app.borrow().status().to_string()
    }

    /// Leaves the match, as a player quitting through the game would: every connection is
    /// closed cleanly (signaling tells the others at once that this player left) and the tab
    /// forgets its seat, so a reload joins afresh. A page that is just closed or reloaded
    /// keeps its place for the server's rejoin grace instead (its WebSocket closes with 1001).
    pub fn leave(&self) {
        let mut app = self.app.borrow_mut();
        if let Some(room) = &app.options.room {
            forget_seat(room);
        }
        // Dropping the match closes its connections.
        app.phase = Phase::Left;
        set_status("You left the match.");
    }

    /// The checksum of confirmed frame `frame` as 16 hex digits, while the session remembers it.
    pub fn checksum(&self, frame: i32) -> Option<String> {
        match &self.app.borrow().phase {
            Phase::Playing(play) => play.checksum_at(frame).map(|c| format!("{c:016x}")),
            Phase::Watching(w) => w.watcher.checksum_at(frame).map(|c| format!("{c:016x}")),
            _ => None,
        }
    }

    /// The desync forensics bundles so far, each as the JSON text `ricochet-desync` reads (the
    /// page offers each as a download, as is).
    pub fn forensics(&self) -> Vec<String> {
        match &self.app.borrow().phase {
            Phase::Playing(play) => play.forensics().iter().map(|b| b.to_json()).collect(),
            _ => Vec::new(),
        }
    }

    /// Sends `text` to every other player as a chat line (op
    /// [`CHAT_OP`](ricochet_demo_client::CHAT_OP), UTF-8, at most
    /// [`MAX_CHAT_CHARS`](ricochet_demo_client::MAX_CHAT_CHARS) characters) and adds it to the
    /// page's list. Throws if it was not sent: empty, too long, not playing, or refused.
    pub fn chat(&self, text: &str) -> Result<(), JsError> {
        let mut app = self.app.borrow_mut();
        let Phase::Playing(play) = &mut app.phase else {
            return Err(JsError::new(
                "not playing: the chat opens once the match starts",
            ));
        };
        play.send_chat(text)
            .map_err(|e| JsError::new(&e.to_string()))?;
        app.show_chat();
        Ok(())
    }

    /// The current frame (-1 before the match starts).
    pub fn frame(&self) -> i32 {
        match &self.app.borrow().phase {
            Phase::Playing(play) => play.frame(),
            Phase::Watching(w) => w.watcher.frame().map_or(-1, |f| f - 1),
            _ => -1,
        }
    }
}

/// The session-storage key of the rejoin token for match `room`.
fn seat_key(room: &str) -> String {
    format!("ricochet-seat:{room}")
}

fn session_storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok().flatten()
}

/// The rejoin token this tab saved for `room` before a reload, if any.
fn saved_seat(room: &str) -> Option<String> {
    session_storage()?
        .get_item(&seat_key(room))
        .ok()
        .flatten()
        .filter(|t| !t.is_empty())
}

/// Saves this player's rejoin token for `room`; whether it could.
fn save_seat(room: &str, token: &str) -> bool {
    session_storage().is_some_and(|s| s.set_item(&seat_key(room), token).is_ok())
}

fn forget_seat(room: &str) {
    if let Some(s) = session_storage() {
        let _ = s.remove_item(&seat_key(room));
    }
}

/// Starts the game on `canvas` with the options in `query` (`location.search`), joining
/// through the signaling server at `signaling_url` (`ws://HOST:PORT`). Errors in the options
/// are thrown; errors while joining or playing show in the page and in `status()`.
#[wasm_bindgen]
pub fn start(
    canvas: HtmlCanvasElement,
    query: &str,
    signaling_url: &str,
) -> Result<Client, JsError> {
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&JsValue::from_str(&info.to_string()));
    }));
    let options = PageOptions::parse(query).map_err(|e| JsError::new(&e))?;
    let room = options
        .room
        .clone()
        .ok_or_else(|| JsError::new("no match given: add ?match=NAME to the address"))?;
    let ctx = canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into::<CanvasRenderingContext2d>().ok())
        .ok_or_else(|| JsError::new("this browser gives no 2D canvas"))?;
    if options.spectate {
        set_status(&format!("Watching match {room}: connecting..."));
        let phase = Phase::Connecting(connect_spectator(signaling_url, &room));
        return run(canvas, ctx, options, phase, false);
    }
    let mut join_options = JoinOptions::new(signaling_url, room.clone(), options.players);
    join_options.path = PathConfig {
        mode: if options.force_relay {
            PathMode::ForceRelay
        } else {
            PathMode::Automatic
        },
        ..PathConfig::default()
    };
    join_options.ice_servers = options.stun.iter().map(IceServer::stun).collect();
    set_status(&format!(
        "Joining match {room}: waiting for {} players...",
        options.players
    ));
    // The match's connections run on the page's event loop; the game loop takes the match
    // from the handle once it is ready.
    // A reloaded tab takes its seat back with the token it saved (the tab's session storage
    // outlives a reload, not the tab).
    join_options.rejoin = saved_seat(&room);
    let rejoining = join_options.rejoin.is_some();
    if rejoining {
        set_status(&format!("Taking your seat back in match {room}..."));
    }
    let (joining, driver) = Match::new(join_options).map_err(|e| JsError::new(&e.to_string()))?;
    wasm_bindgen_futures::spawn_local(async move {
        // A failure is also in the handle, which the game loop reports.
        let _ = driver.await;
    });
    run(canvas, ctx, options, Phase::Joining(joining), rejoining)
}

/// Watches `room` from a spectator page: connects in a `spawn_local` task, trying again every
/// [`WATCH_RETRY`] for [`WATCH_WAIT`] while the match is not there (a link opened before the
/// players are in).
fn connect_spectator(signaling_url: &str, room: &str) -> Connecting {
    let slot: Connecting = Rc::default();
    let fill = slot.clone();
    let options = WatchOptions::new(signaling_url, room);
    wasm_bindgen_futures::spawn_local(async move {
        let started = Instant::now();
        let result = loop {
            match watch(options.clone()).await {
                Ok(spectating) => break Ok(spectating),
                Err(e) if started.elapsed() < WATCH_WAIT => {
                    set_status(&format!(
                        "Watching match {}: not yet ({e}); trying again...",
                        options.room
                    ));
                    ricochet::net::rt::sleep(WATCH_RETRY).await;
                }
                Err(e) => break Err(e.to_string()),
            }
        };
        *fill.borrow_mut() = Some(result);
    });
    slot
}

/// Runs the page: the game loop on animation frames and a timer, the keyboard and mouse.
fn run(
    canvas: HtmlCanvasElement,
    ctx: CanvasRenderingContext2d,
    options: PageOptions,
    phase: Phase,
    rejoining: bool,
) -> Result<Client, JsError> {
    let app = Rc::new(RefCell::new(App {
        script: options.autoplay.map(InputScript::new),
        options,
        phase,
        controls: Controls::default(),
        checksum: None,
        lost_shown: 0,
        back_shown: 0,
        rejoining,
        seat_saved: false,
        chat_shown: 0,
        canvas: canvas.clone(),
        ctx,
        pixels: Vec::new(),
        rgba: Vec::new(),
    }));

    let window = web_sys::window().ok_or_else(|| JsError::new("no window"))?;
    listen(&window, app.clone()).map_err(|_| JsError::new("could not listen to the keyboard"))?;
    animate(app.clone());
    let ticker = app.clone();
    let tick = Closure::<dyn FnMut()>::new(move || ticker.borrow_mut().tick());
    window
        .set_interval_with_callback_and_timeout_and_arguments_0(
            tick.as_ref().unchecked_ref(),
            TICK_INTERVAL_MS,
        )
        .map_err(|_| JsError::new("could not start the game loop"))?;
    tick.forget(); // runs for the page's lifetime
    Ok(Client { app })
}

/// Steps and draws on every animation frame, for the page's lifetime.
fn animate(app: Rc<RefCell<App>>) {
    type Frame = Closure<dyn FnMut(f64)>;
    let next: Rc<RefCell<Option<Frame>>> = Rc::new(RefCell::new(None));
    let again = next.clone();
    *next.borrow_mut() = Some(Closure::new(move |_time: f64| {
        {
            let mut app = app.borrow_mut();
            app.tick();
            app.draw();
        }
        if let (Some(window), Some(f)) = (web_sys::window(), again.borrow().as_ref()) {
            let _ = window.request_animation_frame(f.as_ref().unchecked_ref());
        }
    }));
    let first = next.borrow();
    if let (Some(window), Some(f)) = (web_sys::window(), first.as_ref()) {
        let _ = window.request_animation_frame(f.as_ref().unchecked_ref());
    }
}

/// Whether `e` happened in a text box (`<input>`, `<textarea>`, editable content).
fn is_input(e: &web_sys::Event) -> bool {
    e.target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlElement>().ok())
        .is_some_and(|el| {
            matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA") || el.is_content_editable()
        })
}

/// Keyboard on the window (not while typing in a text box), mouse on the canvas.
fn listen(window: &web_sys::Window, app: Rc<RefCell<App>>) -> Result<(), JsValue> {
    for (event, pressed) in [("keydown", true), ("keyup", false)] {
        let app = app.clone();
        let f = Closure::<dyn FnMut(KeyboardEvent)>::new(move |e: KeyboardEvent| {
            // Keys typed into the chat (or the join form) are not the game's.
            if is_input(&e) {
                return;
            }
            if let Some(action) = controls::action(&e.code()) {
                app.borrow_mut().controls.set(action, pressed);
                e.prevent_default();
            }
        });
        window.add_event_listener_with_callback(event, f.as_ref().unchecked_ref())?;
        f.forget();
    }
    let blur_app = app.clone();
    let blur = Closure::<dyn FnMut()>::new(move || blur_app.borrow_mut().controls.release_all());
    window.add_event_listener_with_callback("blur", blur.as_ref().unchecked_ref())?;
    blur.forget();
    // Typing in a text box (the chat): the keys held when it took the focus will go up there,
    // unseen by the game, so let go of them now.
    let focus_app = app.clone();
    let focus = Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| {
        if is_input(&e) {
            focus_app.borrow_mut().controls.release_all();
        }
    });
    window.add_event_listener_with_callback("focusin", focus.as_ref().unchecked_ref())?;
    focus.forget();

    let canvas = app.borrow().canvas.clone();
    let move_app = app.clone();
    let moved = Closure::<dyn FnMut(MouseEvent)>::new(move |e: MouseEvent| {
        let mut app = move_app.borrow_mut();
        // Canvas pixels, whatever size CSS shows it at.
        let rect = app.canvas.get_bounding_client_rect();
        if rect.width() > 0.0 && rect.height() > 0.0 {
            let x = (f64::from(e.client_x()) - rect.left()) * f64::from(app.canvas.width())
                / rect.width();
            let y = (f64::from(e.client_y()) - rect.top()) * f64::from(app.canvas.height())
                / rect.height();
            app.controls.pointer(x as f32, y as f32);
        }
    });
    canvas.add_event_listener_with_callback("mousemove", moved.as_ref().unchecked_ref())?;
    moved.forget();
    for (event, pressed) in [("mousedown", true), ("mouseup", false)] {
        let app = app.clone();
        let f = Closure::<dyn FnMut(MouseEvent)>::new(move |e: MouseEvent| {
            if e.button() == 0 {
                app.borrow_mut().controls.mouse_fire(pressed);
            }
        });
        canvas.add_event_listener_with_callback(event, f.as_ref().unchecked_ref())?;
        f.forget();
    }
    Ok(())
}
