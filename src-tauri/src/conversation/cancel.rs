//! `Cancel`: a Stop button, cloned into a running reply or summary and pressed from anywhere
//! (the window's Stop, Ctrl+C in the CLI, a message that makes a summary wait).

use std::sync::Arc;

use tokio::sync::watch;

/// A Stop button: cloned into the running turn, pressed from anywhere.
#[derive(Clone, Debug)]
pub struct Cancel(Arc<watch::Sender<bool>>);

impl Cancel {
    pub fn new() -> Cancel {
        Cancel(Arc::new(watch::channel(false).0))
    }
    pub fn cancel(&self) {
        self.0.send_replace(true);
    }
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }
    pub(crate) async fn cancelled(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }
}

impl Default for Cancel {
    fn default() -> Self {
        Cancel::new()
    }
}
