//! The one client-side runtime every frontdoor component runs on: how to watch, cache and
//! reconcile Kubernetes objects through `kube::Client`, the same against frontdoor's embedded
//! API server and against a real cluster.
//!
//! # A short tour
//!
//! - An [`InformerFactory`] (client-go's `SharedInformerFactory`) is built once per process
//!   and handed to every component. Asking it for an [`Informer`] of a type (and [`Scope`]:
//!   namespace, field and label selectors) starts one kube-rs reflector the first time and
//!   returns the same one afterwards, so one Services watch serves every component.
//! - An [`Informer`] gives a store (a kube-rs [`Store`](kube::runtime::reflector::Store)), a
//!   [`Subscription`] of [`Change`]s published after the store applied them (objects gone
//!   during a re-list are announced as deleted), and [`Informer::synced`], which any number
//!   of tasks may await.
//! - A [`Controller`] runs a [`Reconciler`] over a [`WorkQueue`] of keys: level-triggered,
//!   one reconcile per key at a time, per-key exponential [`Backoff`], requeue-after, workers
//!   that start only once the caches they read have synced. Changes become keys through
//!   [`on_change`] handlers.
//! - A [`MinInterval`] paces components that rebuild a whole picture (the proxy's rules, the
//!   DNS index): at once after a quiet spell, at most once per period.
//! - One [`Shutdown`] signal is taken and honoured by every long-running task.
//! - Shared vocabulary: [`ObjectKey`], the API error predicates ([`errors`]), typed helpers for
//!   [`pods`] and [`services`], and the well-known [`labels`].
//! - Work-queue metrics use client-go's names (`workqueue_depth`, `workqueue_adds_total`,
//!   `workqueue_queue_duration_seconds`, `workqueue_work_duration_seconds`,
//!   `workqueue_retries_total`) in the process's one registry.
//!
//! This crate must never be bypassed: a component that opens its own watch would see a
//! different cache from everyone else's.
#![forbid(unsafe_code)]

mod controller;
mod decode;
pub mod errors;
pub mod events;
mod factory;
mod informer;
mod key;
pub mod labels;
mod pace;
pub mod pods;
mod queue;
pub mod services;
mod shutdown;

pub use controller::{feed, on_change, Action, Controller, ControllerConfig, Reconciler};
pub use events::EventRecorder;
pub use factory::{InformerFactory, Scope};
pub use informer::{Change, Informer, Subscription, Watched};
pub use key::ObjectKey;
pub use pace::MinInterval;
pub use queue::{Backoff, Done, WorkQueue};
pub use shutdown::{Shutdown, ShutdownTrigger};
