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

/// Checks a binary's command line against the environment convention: every flag (help and
/// version apart) is read from an environment variable, each variable carries `prefix` (the
/// shared ticket secret, `RICOCHET_SECRET`, apart), and the new name of each renamed variable
/// is read by a flag. For the binaries' tests; the error says what is wrong.
pub fn check_env_vars(
    command: &clap::Command,
    prefix: &str,
    renamed: &[(&str, &str)],
) -> Result<(), String> {
    let mut without = Vec::new();
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "help" || id == "version" {
            continue;
        }
        let Some(env) = arg.get_env() else {
            without.push(id.to_string());
            continue;
        };
        let env = env.to_string_lossy();
        if env != "RICOCHET_SECRET" && !env.starts_with(prefix) {
            return Err(format!("--{id} reads {env}"));
        }
    }
    if !without.is_empty() {
        return Err(format!("flags without a variable: {without:?}"));
    }
    for (old, new) in renamed {
        let read = command
            .get_arguments()
            .any(|a| a.get_env().and_then(|e| e.to_str()) == Some(*new));
        if !read {
            return Err(format!("{old} -> {new}: no flag reads {new}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Arg;

    fn command(envs: &[&'static str]) -> clap::Command {
        const FLAGS: [&str; 2] = ["flag0", "flag1"];
        envs.iter()
            .zip(FLAGS)
            .fold(clap::Command::new("x"), |c, (env, flag)| {
                c.arg(Arg::new(flag).long(flag).env(env))
            })
    }

    #[test]
    fn env_var_names_are_checked() {
        let good = command(&["RICOCHET_SECRET", "RICOCHET_X_ADDR"]);
        assert_eq!(
            check_env_vars(&good, "RICOCHET_X_", &[("OLD", "RICOCHET_X_ADDR")]),
            Ok(())
        );
        let other = command(&["RICOCHET_Y_ADDR"]);
        assert_eq!(
            check_env_vars(&other, "RICOCHET_X_", &[]),
            Err("--flag0 reads RICOCHET_Y_ADDR".into())
        );
        let bare = good.clone().arg(Arg::new("bare").long("bare"));
        assert!(check_env_vars(&bare, "RICOCHET_X_", &[]).is_err());
        assert!(check_env_vars(&good, "RICOCHET_X_", &[("OLD", "RICOCHET_X_PORT")]).is_err());
    }
}
