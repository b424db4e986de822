//! Sources observe and send; they never touch shared state.

pub mod probe;
pub mod scheduler;
