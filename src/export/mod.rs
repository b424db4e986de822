//! Exporters and the one metric catalog they all derive names from.

pub mod catalog;
pub mod prometheus;
