//! One shutdown signal for every long-running task of a process.
//!
//! [`Shutdown::new`] gives a [`ShutdownTrigger`] (kept by whoever decides when to stop) and a
//! [`Shutdown`] that is cloned into every task. A task either selects on
//! [`Shutdown::triggered`] or checks [`Shutdown::is_triggered`] between units of work. Dropping
//! the trigger counts as triggering it, so a task can never be left running by a forgotten
//! sender.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

/// The receiving side: cheap to clone, one per task.
#[derive(Clone, Debug)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
    /// Held by [`Shutdown::never`] so that its trigger is never dropped.
    _keep: Option<Arc<watch::Sender<bool>>>,
}

/// The sending side: [`ShutdownTrigger::trigger`] (or dropping it) stops every task.
#[derive(Debug)]
pub struct ShutdownTrigger {
    sender: watch::Sender<bool>,
}

impl Shutdown {
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (sender, receiver) = watch::channel(false);
        (ShutdownTrigger { sender }, Shutdown { receiver, _keep: None })
    }

    /// A signal that never fires (tools and tests that run until the process ends).
    pub fn never() -> Shutdown {
        let (sender, receiver) = watch::channel(false);
        Shutdown { receiver, _keep: Some(Arc::new(sender)) }
    }

    /// Resolves once shutdown has been triggered (at once if it already was). Cancel-safe.
    pub fn triggered(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut receiver = self.receiver.clone();
        async move {
            // An error means the trigger is gone: that is a shutdown too.
            let _ = receiver.wait_for(|stop| *stop).await;
        }
    }

    pub fn is_triggered(&self) -> bool {
        *self.receiver.borrow() || self.receiver.has_changed().is_err()
    }
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// Another receiver of this trigger's signal.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown { receiver: self.sender.subscribe(), _keep: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn every_clone_sees_the_trigger_and_a_dropped_trigger_counts() {
        let (trigger, shutdown) = Shutdown::new();
        let other = shutdown.clone();
        assert!(!shutdown.is_triggered());
        let waiter = tokio::spawn(other.triggered());
        trigger.trigger();
        tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap();
        assert!(shutdown.is_triggered());

        let (trigger, shutdown) = Shutdown::new();
        drop(trigger);
        assert!(shutdown.is_triggered());
        tokio::time::timeout(Duration::from_secs(5), shutdown.triggered()).await.unwrap();

        let never = Shutdown::never();
        assert!(!never.clone().is_triggered());
    }
}
