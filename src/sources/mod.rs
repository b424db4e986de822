//! Sources observe and send; they never touch shared state.

pub mod application_root;
pub mod disk;
pub mod oplog;
pub mod probe;
pub mod processes;
pub mod scheduler;
