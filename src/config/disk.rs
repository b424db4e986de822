//! `diskUsage`: how the operations-log and audit directories are measured, and the size limits
//! (`operationsLog.sizeLimit`, `auditLog.sizeLimit`) they are judged against.
//!
//! A size limit is the volume's, passed in by whoever made the volume (the chart passes each
//! emptyDir's `sizeLimit`): `statvfs` on an emptyDir reports the node's whole disk, so the agent
//! cannot learn the limit from the filesystem.

use serde::{Deserialize, Deserializer, Serialize};

use super::Check;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DiskUsageConfig {
    /// Walk the directories at all.
    pub enabled: bool,
    /// ms between two walks.
    pub sample_interval: u64,
    /// ms of samples the growth rate is computed over.
    pub growth_window: u64,
    /// Entries (files and directories) one walk reads at most: bounded work per sample. A
    /// directory with more is reported as a lower bound (`truncated`).
    pub max_entries: u64,
}

impl Default for DiskUsageConfig {
    fn default() -> Self {
        DiskUsageConfig {
            enabled: true,
            sample_interval: 60_000,
            growth_window: 3_600_000,
            max_entries: 10_000,
        }
    }
}

impl DiskUsageConfig {
    /// Checks serde cannot express; every problem names its key and source.
    pub(crate) fn validate(&self, c: &Check) {
        for (key, v) in [
            ("diskUsage.sampleInterval", self.sample_interval),
            ("diskUsage.growthWindow", self.growth_window),
            ("diskUsage.maxEntries", self.max_entries),
        ] {
            if v == 0 {
                c.bad(key, "0".into(), "must be > 0");
            }
        }
        if self.growth_window < 2 * self.sample_interval {
            c.bad(
                "diskUsage.growthWindow",
                self.growth_window.to_string(),
                "must hold at least two samples (>= 2 x diskUsage.sampleInterval)",
            );
        }
    }
}

/// Parses a size as Kubernetes writes quantities: bytes (`268435456`), binary suffixes (`Ki`,
/// `Mi`, `Gi`, `Ti`) or decimal ones (`k`, `M`, `G`, `T`), so the chart can pass a volume's
/// `sizeLimit` through unchanged.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, suffix) = t.split_at(split);
    let factor: u64 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => {
            return Err(format!(
                "unknown suffix {suffix:?} (use Ki, Mi, Gi, Ti, k, M, G, T or bytes)"
            ))
        }
    };
    let n: f64 = number
        .parse()
        .map_err(|_| "not a size (e.g. 256Mi or 268435456)".to_string())?;
    let bytes = n * factor as f64;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err("must be at least 1 byte".into());
    }
    Ok(bytes.round() as u64)
}

/// Deserializes an optional size limit from a number of bytes or a quantity string.
pub fn deserialize_size_limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bytes(u64),
        Text(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Bytes(0)) => Err(serde::de::Error::custom("must be at least 1 byte")),
        Some(Raw::Bytes(n)) => Ok(Some(n)),
        Some(Raw::Text(t)) if t.trim().is_empty() => Ok(None),
        Some(Raw::Text(t)) => parse_size(&t)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("{t:?}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_kubernetes_writes_them() {
        assert_eq!(parse_size("256Mi"), Ok(256 << 20));
        assert_eq!(parse_size("32Mi"), Ok(33_554_432));
        assert_eq!(parse_size("1Gi"), Ok(1 << 30));
        assert_eq!(parse_size("500M"), Ok(500_000_000));
        assert_eq!(parse_size("1.5Ki"), Ok(1536));
        assert_eq!(parse_size("268435456"), Ok(268_435_456));
        assert!(parse_size("12MB").unwrap_err().contains("unknown suffix"));
        assert!(parse_size("Mi").is_err());
        assert!(parse_size("0").is_err());
    }
}
