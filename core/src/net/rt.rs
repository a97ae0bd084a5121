//! The few runtime services the network clients need, for each target: spawning a task,
//! sleeping and timeouts.
//!
//! Native code runs on tokio (call these inside a tokio runtime); in the browser (wasm32) tasks
//! run on the page's event loop through `wasm_bindgen_futures::spawn_local` and timers are the
//! browser's. Futures spawned here must be `Send` on native and need not be on wasm, which
//! [`MaybeSend`] expresses.

use std::future::Future;
use std::time::Duration;

/// `Send` on native targets, where tasks may move between threads; nothing on wasm32, where
/// everything runs on the page's one thread and browser handles are `!Send`.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSend: Send {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send> MaybeSend for T {}

/// `Send` on native targets, where tasks may move between threads; nothing on wasm32, where
/// everything runs on the page's one thread and browser handles are `!Send`.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSend {}
#[cfg(target_arch = "wasm32")]
impl<T> MaybeSend for T {}

/// A boxed future: `Send` on native, not necessarily on wasm32 (see [`MaybeSend`]).
#[cfg(not(target_arch = "wasm32"))]
pub type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'static>>;
/// A boxed future: `Send` on native, not necessarily on wasm32 (see [`MaybeSend`]).
#[cfg(target_arch = "wasm32")]
pub type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + 'static>>;

/// Boxes `future` as a [`BoxFuture`].
pub fn boxed<F>(future: F) -> BoxFuture<F::Output>
where
    F: Future + MaybeSend + 'static,
{
    Box::pin(future)
}

/// Runs `task` in the background: a tokio task on native (inside a tokio runtime), a
/// `spawn_local` task in the browser. Its output is dropped.
pub fn spawn<F>(task: F)
where
    F: Future + MaybeSend + 'static,
    F::Output: MaybeSend + 'static,
{
    #[cfg(not(target_arch = "wasm32"))]
    drop(tokio::spawn(task));
    #[cfg(target_arch = "wasm32")]
    wasm_bindgen_futures::spawn_local(async move {
        task.await;
    });
}

/// Waits for `duration`.
pub async fn sleep(duration: Duration) {
    #[cfg(not(target_arch = "wasm32"))]
    tokio::time::sleep(duration).await;
    #[cfg(target_arch = "wasm32")]
    futures_timer::Delay::new(duration).await;
}

/// A version number with the wakers of those waiting for it to change: shared state that a
/// connection's driver updates keeps one, so that a future waiting on that state is woken by
/// the change instead of looking every few milliseconds.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    version: u64,
    wakers: Vec<std::task::Waker>,
}

impl Watch {
    /// Something changed: every waiter is woken.
    pub(crate) fn bump(&mut self) {
        self.version += 1;
        for waker in self.wakers.drain(..) {
            waker.wake();
        }
    }

    /// The current version.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// Ready if the version moved past `seen`; otherwise registers `cx`'s waker.
    pub(crate) fn poll_changed(
        &mut self,
        seen: u64,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.version != seen {
            return std::task::Poll::Ready(());
        }
        if !self.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            self.wakers.push(cx.waker().clone());
        }
        std::task::Poll::Pending
    }
}

/// Waits until the [`Watch`] that `watch` reaches (under `mutex`) moves past `seen`.
pub(crate) async fn changed<T>(
    mutex: &std::sync::Mutex<T>,
    watch: impl Fn(&mut T) -> &mut Watch,
    seen: u64,
) {
    futures_util::future::poll_fn(|cx| watch(&mut crate::lock(mutex)).poll_changed(seen, cx)).await
}

/// `future` did not finish within the time given to [`timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out after {0:?}")]
pub struct Elapsed(pub Duration);

/// Runs `future` for at most `duration`.
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, Elapsed> {
    let future = std::pin::pin!(future);
    let sleep = std::pin::pin!(sleep(duration));
    match futures_util::future::select(future, sleep).await {
        futures_util::future::Either::Left((output, _)) => Ok(output),
        futures_util::future::Either::Right(((), _)) => Err(Elapsed(duration)),
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn timeout_returns_the_output_or_elapsed() {
        assert_eq!(timeout(Duration::from_secs(5), async { 7 }).await, Ok(7));
        let slow = timeout(Duration::from_millis(20), sleep(Duration::from_secs(5))).await;
        assert_eq!(slow, Err(Elapsed(Duration::from_millis(20))));
    }

    #[tokio::test]
    async fn a_watch_wakes_its_waiters() {
        let shared = std::sync::Arc::new(std::sync::Mutex::new(Watch::default()));
        let seen = crate::lock(&shared).version();
        let bumper = shared.clone();
        spawn(async move {
            sleep(Duration::from_millis(20)).await;
            crate::lock(&bumper).bump();
        });
        let waited = timeout(Duration::from_secs(5), changed(&shared, |w| w, seen)).await;
        assert_eq!(waited, Ok(()));
        assert_eq!(crate::lock(&shared).version(), seen + 1);
    }

    #[tokio::test]
    async fn spawned_tasks_run() {
        let (tx, rx) = futures_channel::oneshot::channel();
        spawn(async move { tx.send(3).ok() });
        assert_eq!(timeout(Duration::from_secs(5), rx).await, Ok(Ok(3)));
    }
}
