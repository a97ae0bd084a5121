//! One WebSocket client connection for the signaller and the relay client, on each target:
//! tokio-tungstenite on native, the browser's `WebSocket` (through `ws_stream_wasm`, as
//! matchbox uses it) on wasm32.
//!
//! Both are a [`Stream`] of [`Incoming`] messages, ending after [`Incoming::Closed`], and a
//! [`Sink`] of [`Outgoing`] ones; everything above this module is shared between targets.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{Sink, Stream};

/// A message from the server, or the end of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
    /// The connection ended: the close frame's code and reason (1005: closed without a code,
    /// 1006: lost without a close frame). Always the last item.
    Closed {
        /// WebSocket close code.
        code: u16,
        /// Close reason text.
        reason: String,
    },
    /// A transport error; the connection is unusable after it (native only: the browser
    /// reports every end as a close).
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    Error(String),
}

/// A message to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outgoing {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

/// Why a WebSocket could not be opened or written to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct WsError(pub String);

/// The close code of a connection that ended without a close frame.
const LOST: u16 = 1006;

/// One client WebSocket connection.
pub(crate) struct WebSocket {
    #[cfg(not(target_arch = "wasm32"))]
    inner: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    #[cfg(target_arch = "wasm32")]
    inner: ws_stream_wasm::WsStream,
    /// The browser's close events (the stream itself only ends).
    #[cfg(target_arch = "wasm32")]
    closes: pharos::Events<ws_stream_wasm::WsEvent>,
    /// `Closed` has been yielded; the stream is over.
    done: bool,
}

impl WebSocket {
    /// Opens a connection to `url` (`ws://` or `wss://`). `read_buffer` is the native read
    /// buffer size in bytes (tungstenite's default when `None`; the browser manages its own).
    pub(crate) async fn connect(url: &str, read_buffer: Option<usize>) -> Result<Self, WsError> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let mut config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
            if let Some(size) = read_buffer {
                config = config.read_buffer_size(size);
            }
            let (inner, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
                .await
                .map_err(WsError::from_inner)?;
            Ok(WebSocket { inner, done: false })
        }
        #[cfg(target_arch = "wasm32")]
        {
            use pharos::{Filter, Observable as _};
            use ws_stream_wasm::{WsEvent, WsMeta};
            let _ = read_buffer;
            let (mut meta, inner) = WsMeta::connect(url, None)
                .await
                .map_err(WsError::from_inner)?;
            let closes = meta
                .observe(Filter::Pointer(WsEvent::is_closed).into())
                .await
                .map_err(WsError::from_inner)?;
            Ok(WebSocket {
                inner,
                closes,
                done: false,
            })
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Stream for WebSocket {
    type Item = Incoming;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Incoming>> {
        use tokio_tungstenite::tungstenite::Message;
        if self.done {
            return Poll::Ready(None);
        }
        loop {
            let item = match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(item) => item,
            };
            let incoming = match item {
                Some(Ok(Message::Text(text))) => Incoming::Text(text.to_string()),
                Some(Ok(Message::Binary(bytes))) => Incoming::Binary(bytes.into()),
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|c| (u16::from(c.code), c.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    Incoming::Closed { code, reason }
                }
                Some(Ok(_)) => continue, // ping, pong: tungstenite answers pings itself
                Some(Err(e)) => Incoming::Error(e.to_string()),
                None => Incoming::Closed {
                    code: LOST,
                    reason: "connection lost".into(),
                },
            };
            if matches!(incoming, Incoming::Closed { .. } | Incoming::Error(_)) {
                self.done = true;
            }
            return Poll::Ready(Some(incoming));
        }
    }
}

#[cfg(target_arch = "wasm32")]
impl Stream for WebSocket {
    type Item = Incoming;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Incoming>> {
        use ws_stream_wasm::{WsEvent, WsMessage};
        if self.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(WsMessage::Text(text))) => {
                return Poll::Ready(Some(Incoming::Text(text)))
            }
            Poll::Ready(Some(WsMessage::Binary(bytes))) => {
                return Poll::Ready(Some(Incoming::Binary(bytes)))
            }
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => {}
        }
        // The stream ended: the browser's close event says how.
        let closed = match Pin::new(&mut self.closes).poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(WsEvent::Closed(event))) => Incoming::Closed {
                code: event.code,
                reason: event.reason,
            },
            Poll::Ready(_) => Incoming::Closed {
                code: LOST,
                reason: "connection lost".into(),
            },
        };
        self.done = true;
        Poll::Ready(Some(closed))
    }
}

/// Dropping a native connection that is still open sends a close frame (1000) if the socket
/// takes it at once, without waiting: a server then sees a leave, not a dropped connection
/// (which `ricochet-signaling` keeps the member's place for, for a rejoin). The browser's
/// WebSocket closes itself when dropped.
#[cfg(not(target_arch = "wasm32"))]
impl Drop for WebSocket {
    fn drop(&mut self) {
        use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
        use tokio_tungstenite::tungstenite::protocol::CloseFrame;
        use tokio_tungstenite::tungstenite::Message;
        if self.done {
            return;
        }
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut inner = Pin::new(&mut self.inner);
        if let Poll::Ready(Ok(())) = inner.as_mut().poll_ready(&mut cx) {
            let close = Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }));
            if inner.as_mut().start_send(close).is_ok() {
                let _ = inner.as_mut().poll_flush(&mut cx);
            }
        }
    }
}

impl WsError {
    /// The error of the underlying WebSocket, whichever target's it is.
    fn from_inner(e: impl std::fmt::Display) -> Self {
        WsError(e.to_string())
    }
}

/// The native WebSocket's message for `item`.
#[cfg(not(target_arch = "wasm32"))]
fn message(item: Outgoing) -> tokio_tungstenite::tungstenite::Message {
    use tokio_tungstenite::tungstenite::Message;
    match item {
        Outgoing::Text(text) => Message::Text(text.into()),
        Outgoing::Binary(bytes) => Message::Binary(bytes.into()),
    }
}

/// The browser WebSocket's message for `item`.
#[cfg(target_arch = "wasm32")]
fn message(item: Outgoing) -> ws_stream_wasm::WsMessage {
    use ws_stream_wasm::WsMessage;
    match item {
        Outgoing::Text(text) => WsMessage::Text(text),
        Outgoing::Binary(bytes) => WsMessage::Binary(bytes),
    }
}

impl Sink<Outgoing> for WebSocket {
    type Error = WsError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Pin::new(&mut self.inner)
            .poll_ready(cx)
            .map_err(WsError::from_inner)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Outgoing) -> Result<(), WsError> {
        Pin::new(&mut self.inner)
            .start_send(message(item))
            .map_err(WsError::from_inner)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Pin::new(&mut self.inner)
            .poll_flush(cx)
            .map_err(WsError::from_inner)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Pin::new(&mut self.inner)
            .poll_close(cx)
            .map_err(WsError::from_inner)
    }
}
