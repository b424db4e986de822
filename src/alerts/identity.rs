//! Identity of notifications (the per-alert fingerprint is [`super::fingerprint`]).
//!
//! - **A notification** (one message to the sinks) is identified by
//!   [`notification_key`]: `codex-sentinel-<host>-<instance>-<id>`. `<instance>` is this agent's
//!   id, kept in `<stateDir>/alerts/instance-id` (two agents on one host differ); `<id>` is
//!   time-ordered ([`next_id`]: epoch ms × 1000 plus a sequence), so a restart after a lost,
//!   corrupt or deleted state never reuses a key a receiver has already seen. Sinks send it as
//!   `Idempotency-Key` and in the email `Message-ID`; a re-send of the same notification after
//!   a restart keeps it (it is stored with the notification).
//! - **An alert** (one rule's series, firing then resolved) is identified by
//!   [`super::fingerprint::fingerprint`] of its series key: a hash of the rule id and subject
//!   only, so a resolve matches its firing even when every state file was lost in between.

use std::hash::{BuildHasher, Hasher};
use std::path::Path;

use super::Notification;

/// File, in the alert state directory, holding this agent's instance id.
pub const INSTANCE_FILE: &str = "instance-id";

/// This agent's instance id: read from `dir/instance-id`, or made and saved there. When it
/// cannot be saved, the id made for this run is used (and a restart gets another one, which
/// keeps keys unique all the same).
pub fn instance_id(dir: &Path) -> String {
    let path = dir.join(INSTANCE_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let id = text.trim();
        if id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return id.to_string();
        }
    }
    let id = format!("{:016x}", random_u64());
    if let Err(e) = crate::statefile::write_atomically(&path, id.as_bytes()) {
        tracing::warn!(file = %path.display(), error = %e, "cannot save the agent's instance id; using one for this run only");
    }
    id
}

/// A fresh random id for state kept in memory only.
pub fn ephemeral_instance_id() -> String {
    format!("{:016x}", random_u64())
}

/// The id after `last` at `now_ms`: `now_ms × 1000` or, if that is not above `last`, `last + 1`.
/// Strictly increasing in one agent, and above any id issued before a restart as long as the
/// clock does not go back (1,000 ids per ms before borrowing from the next ms).
pub fn next_id(last: u64, now_ms: u64) -> u64 {
    now_ms.saturating_mul(1000).max(last.saturating_add(1))
}

/// `codex-sentinel-<host>-<instance>-<id>`: unique per notification across agents and restarts.
pub fn notification_key(n: &Notification) -> String {
    format!(
        "codex-sentinel-{}-{}-{}",
        super::hostname(),
        n.instance,
        n.id
    )
}

fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(crate::util::now_ms());
    h.write_u32(std::process::id());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_stay_ahead_of_those_issued_before_a_restart_that_lost_its_state() {
        // Before the restart: ids issued at t, counter lost afterwards (state deleted).
        let before = next_id(next_id(0, 1_000), 1_000);
        assert_eq!(before, 1_000_001);
        // After the restart the counter starts from 0 again but the clock moved on.
        let after = next_id(0, 1_001);
        assert!(after > before);
        // Within one ms, ids still increase.
        assert_eq!(next_id(after, 1_001), after + 1);
    }

    #[test]
    fn instance_ids_persist_and_differ_between_state_directories() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let first = instance_id(a.path());
        assert_eq!(instance_id(a.path()), first, "persisted");
        assert_ne!(instance_id(b.path()), first, "two agents on one host");
        std::fs::remove_dir_all(a.path()).unwrap();
        assert_ne!(
            instance_id(a.path()),
            first,
            "state directory deleted: a new instance"
        );
        assert!(a.path().join(INSTANCE_FILE).exists(), "directory recreated");
    }

    #[test]
    fn keys_are_unique_per_instance_and_id() {
        let n = |instance: &str, id| Notification {
            id,
            instance: instance.into(),
            created: 0,
            events: Vec::new(),
        };
        assert_ne!(notification_key(&n("a", 1)), notification_key(&n("b", 1)));
        assert_ne!(notification_key(&n("a", 1)), notification_key(&n("a", 2)));
    }
}
