//! `ricochet-native`: the Ricochet demo game in a native window.
//!
//! Joins the match named by `--match` through `ricochet-signaling` (the relay at once, a direct
//! WebRTC channel once ICE succeeds) and plays it in a window drawn in software
//! (`winit` + `softbuffer`, so it runs without a GPU, also under Xvfb) with the demo game's
//! renderer. Arrows or WASD move, space (or the left mouse button) fires, the mouse or Q/E
//! aims, Esc quits. The overlay shows each player's path (direct or relay), RTT and loss, the
//! rollback depth, the input delay and the frame.
//!
//! For tests and demos: `--autoplay SEED` plays the seeded inputs `ricochet-bot` plays, and
//! `--frames F` prints one JSON line (the client's status plus `checksum`, the checksum of
//! confirmed frame F-1, like `ricochet-bot`) and exits once that frame is confirmed.
//!
//! Exits non-zero with a message when it cannot open a window or join the match.

mod controls;

use std::num::NonZeroU32;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use clap::Parser;
use ricochet::net::connect::{Match, TakeError};
use ricochet_demo_client::cli::JoinArgs;
use ricochet_demo_client::Play;
use ricochet_demo_game::{render, Arena, InputScript, MAX_PLAYERS};
use winit::application::ApplicationHandler;
use winit::dpi::LogicalSize;
use winit::event::{ElementState, KeyEvent, MouseButton, WindowEvent};
use winit::event_loop::{ActiveEventLoop, ControlFlow, EventLoop};
use winit::keyboard::{KeyCode, PhysicalKey};
use winit::window::{Window, WindowId};

use crate::controls::Controls;

/// The window's initial size in logical pixels.
const DEFAULT_WINDOW_SIZE: (u32, u32) = (800, 600);
/// How often the window is redrawn (and the match ticked): 60 Hz.
const REDRAW_EVERY: Duration = Duration::from_micros(16_667);
/// How long to keep playing after frame F-1 is confirmed with `--frames F`, so the other
/// players confirm it with our inputs too.
const LINGER: Duration = Duration::from_secs(2);

/// The Ricochet demo game in a native window.
#[derive(Parser, Debug)]
#[command(
    version,
    about,
    after_help = "Controls: arrows or WASD move, space or the left mouse button fires, the \
                  mouse or Q/E aims, Esc quits."
)]
struct Args {
    #[command(flatten)]
    join: JoinArgs,
    /// How long to wait for the servers and the other players, in seconds.
    #[arg(long, default_value_t = 120)]
    join_timeout_secs: u64,
    /// Play seeded inputs (the ones `ricochet-bot --seed SEED` plays) instead of the keyboard.
    #[arg(long, value_name = "SEED")]
    autoplay: Option<u64>,
    /// Print one JSON line and exit once frame F-1 is confirmed.
    #[arg(long, value_name = "F")]
    frames: Option<i32>,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args) {
        Ok(Some(report)) => println!("{report}"),
        Ok(None) => {}
        Err(e) => {
            eprintln!("ricochet-native: {e:#}");
            std::process::exit(1);
        }
    }
}

fn run(args: Args) -> anyhow::Result<Option<serde_json::Value>> {
    if !(2..=MAX_PLAYERS).contains(&args.join.players) {
        bail!("--players must be 2..={MAX_PLAYERS} (the demo game's arena holds {MAX_PLAYERS})");
    }
    if args.frames.is_some_and(|f| f < 1) {
        bail!("--frames must be at least 1");
    }
    check_display()?;
    // The connection drivers (signaling, relay, WebRTC) are tokio tasks on worker threads; the
    // window's event loop owns the main thread and ticks the match from there.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("could not start the tokio runtime")?;
    let _runtime_context = runtime.enter();
    let event_loop =
        EventLoop::new().map_err(|e| anyhow!("could not open a window: {e}{}", display_hint()))?;

    let mut options = args.join.join_options();
    options.timeout = Duration::from_secs(args.join_timeout_secs);
    let room = options.room_url();
    // The match's connections run on the runtime; the handle tells the window how it goes.
    let (joining, driver) = Match::new(options)?;
    runtime.spawn(driver);

    // While joining, the players wait at their spawn points, dimmed.
    let mut waiting = Arena::new(args.join.players);
    waiting
        .players
        .iter_mut()
        .for_each(|p| p.disconnected = true);
    let mut app = App {
        stage: Stage::Joining {
            handle: joining,
            room,
        },
        waiting,
        script: args.autoplay.map(InputScript::new),
        args,
        graphics: None,
        controls: Controls::default(),
        next_redraw: Instant::now(),
        outcome: None,
    };
    event_loop
        .run_app(&mut app)
        .map_err(|e| anyhow!("the window's event loop failed: {e}"))?;
    app.outcome.unwrap_or(Ok(None))
}

/// On Linux the window needs an X display (Wayland desktops provide one through XWayland).
fn check_display() -> anyhow::Result<()> {
    if cfg!(target_os = "linux") && std::env::var_os("DISPLAY").is_none_or(|d| d.is_empty()) {
        bail!("no X display: DISPLAY is not set{}", display_hint());
    }
    Ok(())
}

/// What to do without a display, for the errors about one.
fn display_hint() -> String {
    if !cfg!(target_os = "linux") {
        return String::new();
    }
    let display = match std::env::var("DISPLAY") {
        Ok(d) if !d.is_empty() => format!(" (DISPLAY={d})"),
        _ => String::new(),
    };
    format!(
        "{display}; on a machine without a desktop run it under Xvfb: \
         `Xvfb :99 -screen 0 800x600x24 & DISPLAY=:99 ricochet-native ...`"
    )
}

/// Where the match is.
enum Stage {
    /// Waiting for the servers and the other players.
    Joining { handle: Match, room: String },
    /// Playing.
    Playing(Box<Playing>),
}

struct Playing {
    play: Play,
    /// With `--frames`: when frame F-1 was confirmed, and the report printed at exit.
    finished: Option<(Instant, serde_json::Value)>,
}

/// The window and the surface drawn into.
struct Graphics {
    window: Rc<Window>,
    surface: softbuffer::Surface<Rc<Window>, Rc<Window>>,
}

impl Graphics {
    fn open(event_loop: &ActiveEventLoop) -> anyhow::Result<Graphics> {
        let (w, h) = DEFAULT_WINDOW_SIZE;
        let attributes = Window::default_attributes()
            .with_title("Ricochet")
            .with_inner_size(LogicalSize::new(w, h));
        let window = Rc::new(
            event_loop
                .create_window(attributes)
                .map_err(|e| anyhow!("could not open a window: {e}{}", display_hint()))?,
        );
        let context = softbuffer::Context::new(window.clone())
            .map_err(|e| anyhow!("could not draw to the display: {e}"))?;
        let surface = softbuffer::Surface::new(&context, window.clone())
            .map_err(|e| anyhow!("could not draw in the window: {e}"))?;
        Ok(Graphics { window, surface })
    }

    fn draw(&mut self, arena: &Arena, overlay: &[String], me: Option<usize>) -> anyhow::Result<()> {
        let size = self.window.inner_size();
        let (Some(w), Some(h)) = (NonZeroU32::new(size.width), NonZeroU32::new(size.height)) else {
            return Ok(()); // minimized
        };
        self.surface
            .resize(w, h)
            .map_err(|e| anyhow!("could not resize the surface: {e}"))?;
        let mut buffer = self
            .surface
            .buffer_mut()
            .map_err(|e| anyhow!("could not get the surface's buffer: {e}"))?;
        render::draw(
            arena,
            overlay,
            me,
            &mut buffer,
            w.get() as usize,
            h.get() as usize,
        );
        buffer
            .present()
            .map_err(|e| anyhow!("could not show the frame: {e}"))
    }
}

struct App {
    args: Args,
    stage: Stage,
    /// What is drawn while joining: the players at their spawn points, dimmed.
    waiting: Arena,
    /// `--autoplay`: the seeded inputs.
    script: Option<InputScript>,
    graphics: Option<Graphics>,
    controls: Controls,
    next_redraw: Instant,
    /// What `run` returns once the event loop exits.
    outcome: Option<anyhow::Result<Option<serde_json::Value>>>,
}

impl App {
    fn exit(
        &mut self,
        event_loop: &ActiveEventLoop,
        outcome: anyhow::Result<Option<serde_json::Value>>,
    ) {
        self.outcome.get_or_insert(outcome);
        event_loop.exit();
    }

    /// One animation frame: advance the match, then draw it.
    fn frame(&mut self, event_loop: &ActiveEventLoop) {
        match self.advance() {
            Ok(None) => {}
            Ok(Some(report)) => return self.exit(event_loop, Ok(Some(report))),
            Err(e) => return self.exit(event_loop, Err(e)),
        }
        let Some(graphics) = self.graphics.as_mut() else {
            return;
        };
        let drawn = match &self.stage {
            Stage::Playing(p) => {
                graphics.draw(p.play.arena(), &p.play.overlay(), Some(p.play.handle()))
            }
            Stage::Joining { room, handle } => {
                let overlay = [
                    format!("joining {room}"),
                    format!(
                        "waiting for {} players ({}s)",
                        self.args.join.players,
                        handle.elapsed().as_secs()
                    ),
                ];
                graphics.draw(&self.waiting, &overlay, None)
            }
        };
        if let Err(e) = drawn {
            self.exit(event_loop, Err(e));
        }
    }

    /// Advances the match; with `--frames`, returns the report once it is done.
    fn advance(&mut self) -> anyhow::Result<Option<serde_json::Value>> {
        match &mut self.stage {
            Stage::Joining { handle, .. } => match handle.take_joined() {
                Ok(joined) => {
                    let play = Play::start(joined).context("could not start the match")?;
                    self.stage = Stage::Playing(Box::new(Playing {
                        play,
                        finished: None,
                    }));
                }
                Err(TakeError::NotReady(_)) => {}
                Err(e) => return Err(e.into()),
            },
            Stage::Playing(playing) => {
                let play = &mut playing.play;
                let before = play.frame();
                let input = match &self.script {
                    // The bot's way: this frame's scripted input, consumed once it is played.
                    Some(script) => script.clone().next_input(),
                    None => {
                        let size = self.graphics.as_ref().map(|g| g.window.inner_size());
                        let (w, h) = size.map_or((1, 1), |s| (s.width as usize, s.height as usize));
                        self.controls.input(play.arena(), play.handle(), w, h)
                    }
                };
                play.tick(web_time::Instant::now(), input)?;
                if let Some(script) = &mut self.script {
                    for _ in before..play.frame() {
                        script.next_input();
                    }
                }
                if let Some(frames) = self.args.frames {
                    let now = Instant::now();
                    match &playing.finished {
                        None => {
                            if let Some(checksum) = play.checksum_at(frames - 1) {
                                let mut status = play.status();
                                status["frames"] = frames.into();
                                status["checksum"] = format!("{checksum:016x}").into();
                                playing.finished = Some((now, status));
                            }
                        }
                        Some((at, report)) if now - *at > LINGER => {
                            let mut report = report.clone();
                            // Desyncs found while lingering count too.
                            report["desyncs"] = play.desyncs().len().into();
                            return Ok(Some(report));
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        Ok(None)
    }
}

impl ApplicationHandler for App {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.graphics.is_none() {
            match Graphics::open(event_loop) {
                Ok(g) => self.graphics = Some(g),
                Err(e) => self.exit(event_loop, Err(e)),
            }
        }
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _id: WindowId, event: WindowEvent) {
        match event {
            WindowEvent::CloseRequested => self.exit(event_loop, Ok(None)),
            WindowEvent::KeyboardInput {
                event:
                    KeyEvent {
                        physical_key: PhysicalKey::Code(code),
                        state,
                        ..
                    },
                ..
            } => {
                if code == KeyCode::Escape {
                    return self.exit(event_loop, Ok(None));
                }
                if let Some(action) = controls::action(code) {
                    self.controls.set(action, state == ElementState::Pressed);
                }
            }
            WindowEvent::CursorMoved { position, .. } => {
                self.controls.pointer(position.x as f32, position.y as f32)
            }
            WindowEvent::MouseInput {
                state,
                button: MouseButton::Left,
                ..
            } => self.controls.mouse_fire(state == ElementState::Pressed),
            WindowEvent::Focused(false) => self.controls.release_all(),
            WindowEvent::RedrawRequested => self.frame(event_loop),
            _ => {}
        }
    }

    fn about_to_wait(&mut self, event_loop: &ActiveEventLoop) {
        let now = Instant::now();
        if now >= self.next_redraw {
            // Catch up at most one frame late; the match's frame clock makes up for jitter.
            self.next_redraw = (self.next_redraw + REDRAW_EVERY).max(now);
            if let Some(g) = &self.graphics {
                g.window.request_redraw();
            }
        }
        event_loop.set_control_flow(ControlFlow::WaitUntil(self.next_redraw));
    }
}
