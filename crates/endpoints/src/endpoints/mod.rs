//! The Endpoints controller: the legacy v1 Endpoints object, named like its Service, for
//! every Service with a selector.

mod controller;
mod desired;

pub use controller::EndpointsController;
