//! What each server binary does around its `run`: logging, renamed environment variables, and
//! the signal that stops it.

/// Sends `tracing` events to stderr (with colours when it is a terminal), filtered by
/// `RUST_LOG`, or by `default_filter` when `RUST_LOG` is unset or invalid. Call once, first
/// thing in `main`.
pub fn init_logging(default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .init();
}

/// Logs a warning for each `(old, new)` pair whose `old` environment variable is set: the
/// binary no longer reads it, and `new` is what it reads instead. The old value is not used,
/// so a variable meant for the other server can never configure this one.
pub fn warn_renamed_env_vars(renamed: &[(&str, &str)]) {
    for (old, new) in renamed {
        if std::env::var_os(old).is_some() {
            tracing::warn!("{old} is set but no longer read: this binary reads {new}");
        }
    }
}

/// Completes when the process is asked to stop: Ctrl-C (SIGINT) or, on Unix, SIGTERM (what
/// `kill`, systemd and container runtimes send). If a handler cannot be installed, that signal
/// is logged and ignored rather than taken as a request to stop.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}
