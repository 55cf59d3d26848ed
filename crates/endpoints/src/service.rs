//! The Service helpers and the key type these controllers use come from the shared runtime.

pub use frontdoor_informers::services::*;
pub use frontdoor_informers::ObjectKey;
