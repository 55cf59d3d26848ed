//! The one thread that talks to the kernel: nf_tables batches and conntrack flushes, in the
//! network namespace the proxy runs in. (netlink sockets are blocking; one thread keeps them off
//! the async workers and keeps writes in order.)

use std::sync::mpsc;

use frontdoor_netfilter::conntrack::{delete_udp_flows, FlowFilter};
use frontdoor_netfilter::{ApplyError, Batch, Socket};
use tokio::sync::oneshot;

enum Job {
    Apply(Batch, oneshot::Sender<Result<(), ApplyError>>),
    FlushUdp(Vec<FlowFilter>),
}

#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the thread; fails if no netfilter socket can be opened (not root, no nf_tables).
    pub fn start() -> std::io::Result<Writer> {
        let mut socket = Socket::open()?;
        let (jobs, receiver) = mpsc::channel::<Job>();
        std::thread::Builder::new().name("nftables".into()).spawn(move || {
            for job in receiver {
                match job {
                    Job::Apply(batch, reply) => {
                        let _ = reply.send(socket.apply(&batch));
                    }
                    Job::FlushUdp(filters) => {
                        for filter in &filters {
                            if let Err(error) = delete_udp_flows(filter) {
                                tracing::warn!(%error, ?filter, "flushing stale UDP conntrack entries");
                            }
                        }
                    }
                }
            }
        })?;
        Ok(Writer { jobs })
    }

    pub async fn apply(&self, batch: Batch) -> Result<(), ApplyError> {
        let (reply, answer) = oneshot::channel();
        if self.jobs.send(Job::Apply(batch, reply)).is_err() {
            return Err(ApplyError::Io(std::io::Error::other("the nftables thread stopped")));
        }
        answer.await.unwrap_or_else(|_| Err(ApplyError::Io(std::io::Error::other("the nftables thread stopped"))))
    }

    pub fn flush_udp(&self, filters: Vec<FlowFilter>) {
        if !filters.is_empty() {
            let _ = self.jobs.send(Job::FlushUdp(filters));
        }
    }
}
