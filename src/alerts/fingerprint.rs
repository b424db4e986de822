//! The identity of one alert: a fingerprint that depends only on what the alert is about — the
//! rule id and its subject (the probe or metric of a per-subject rule) — never on state, time,
//! severity or the agent's instance. The same condition gets the same fingerprint after an
//! escalation, after a restart, after the state file was lost, and on every sink, so a
//! receiver can match a resolved notification to the firing one.
//!
//! It is not a notification key: one alert has many notifications (firing, escalated,
//! resolved), each with its own idempotency key; the fingerprint says which alert they are
//! about.

/// `<rule>` or `<rule>:<subject>`, as [`super::rules::Finding::key`] spells a series.
pub fn series_key(rule: &str, subject: Option<&str>) -> String {
    match subject {
        Some(s) => format!("{rule}:{s}"),
        None => rule.to_string(),
    }
}

/// 16 lowercase hex digits: FNV-1a (64 bit) of the series key. FNV-1a is specified by its
/// constants, so the value is the same on every build, platform and Rust version (std's
/// `DefaultHasher` promises none of that).
pub fn fingerprint(series_key: &str) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for byte in series_key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_fnv1a_and_fixed() {
        // FNV-1a's published test vectors.
        assert_eq!(fingerprint(""), "cbf29ce484222325");
        assert_eq!(fingerprint("a"), "af63dc4c8601ec8c");
        assert_eq!(fingerprint("memory-usage"), fingerprint("memory-usage"));
        assert_ne!(
            fingerprint(&series_key("probe-failing", Some("codex-login"))),
            fingerprint(&series_key("probe-failing", Some("codex-exec")))
        );
        assert_eq!(series_key("probe-failing", Some("x")), "probe-failing:x");
    }
}
