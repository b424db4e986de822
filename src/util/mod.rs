//! Small shared helpers at the bottom of the layers: they import nothing from the crate.

pub(crate) mod http;
pub mod time;

pub use http::install_tls_provider;

pub use time::now_ms;
