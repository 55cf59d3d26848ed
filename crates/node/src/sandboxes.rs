//! Making pod sandboxes: one at a time, on a thread of their own, in the order they are asked
//! for. Making one is almost all kernel work under the kernel's network configuration lock, so
//! two at once only spin on it; and a dedicated thread goes straight from one to the next,
//! where tasks taking turns on a busy runtime would wait to be polled in between. In a burst the
//! first pods run while the last wait, rather than all of them finishing together at the end.

use std::sync::mpsc;

use frontdoor_netns::{PodSandbox, SandboxConfig, SandboxFactory};
use tokio::sync::oneshot;

type Request = (SandboxConfig, oneshot::Sender<Result<PodSandbox, String>>);

#[derive(Debug)]
pub struct SandboxMaker {
    requests: mpsc::Sender<Request>,
}

impl SandboxMaker {
    /// Starts the maker thread. Sandboxes attach to the bridge in the calling thread's network
    /// namespace (the node's); the thread ends when the maker is dropped.
    pub fn start() -> std::io::Result<SandboxMaker> {
        let (requests, pending) = mpsc::channel::<Request>();
        std::thread::Builder::new().name("sandbox-maker".into()).spawn(move || {
            let mut factory = SandboxFactory::for_this_thread().map_err(|error| error.to_string());
            for (config, reply) in pending {
                let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &mut factory {
                    Ok(factory) => factory.create(&config).map_err(|error| error.to_string()),
                    Err(error) => Err(format!("the sandbox maker cannot make sandboxes: {error}")),
                }));
                let made = made.unwrap_or_else(|_| {
                    // It may have stopped anywhere, even inside a pod's namespaces.
                    factory = Err("a sandbox creation panicked".into());
                    Err("sandbox creation panicked".into())
                });
                let _ = reply.send(made);
            }
        })?;
        Ok(SandboxMaker { requests })
    }

    /// Makes a sandbox after those asked for earlier.
    pub async fn make(&self, config: SandboxConfig) -> Result<PodSandbox, String> {
        let (reply, made) = oneshot::channel();
        self.requests.send((config, reply)).map_err(|_| "the sandbox maker has stopped".to_string())?;
        made.await.map_err(|_| "the sandbox maker has stopped".to_string())?
    }
}
