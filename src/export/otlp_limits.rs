//! New Relic's limits on metric data, which its OTLP endpoint applies (New Relic documentation:
//! "Metric API limits and restricted attributes" and "OpenTelemetry attributes best
//! practices"). Where the two pages differ, the smaller number is used. A point beyond them is
//! dropped by the platform, so the agent never sends one:
//!
//! * Metric names and attribute keys: at most [`MAX_NAME_CHARS`]. The agent's own are fixed (a
//!   test checks them); keys from `OTEL_RESOURCE_ATTRIBUTES` are checked at start-up.
//! * Attribute values: at most [`MAX_VALUE_CHARS`]. Values from configuration — resource
//!   attributes — are checked at start-up with the `newrelic` preset (refused: exit 2 naming
//!   the variable). Values from data are bounded where they enter, far below: operation types
//!   are cut at [`OPERATION_TYPE_LIMIT`] bytes by the operations-log reader, probe names are at
//!   most [`MAX_PROBE_NAME_CHARS`] characters (configuration), the other labels are the agent's
//!   own words.
//! * Attributes per data point, the resource's included (New Relic copies them onto every
//!   point): at most [`MAX_ATTRIBUTES`], checked at start-up against the metric with the most
//!   labels.

use crate::catalog::CATALOG;
#[cfg(doc)]
use crate::{config::MAX_PROBE_NAME_CHARS, sources::oplog::tail::OPERATION_TYPE_LIMIT};

/// Longest metric name and attribute key, in characters.
pub const MAX_NAME_CHARS: usize = 255;
/// Longest attribute value, in characters (4096 in the Metric API table, 4095 on the
/// OpenTelemetry page).
pub const MAX_VALUE_CHARS: usize = 4095;
/// Most attributes on one data point, the resource's included (150 in the current Metric API
/// table, 100 in earlier ones).
pub const MAX_ATTRIBUTES: usize = 100;

// Attribute values from data are bounded where they enter, within the limit (checked by the
// compiler).
const _: () = assert!(crate::sources::oplog::tail::OPERATION_TYPE_LIMIT <= MAX_VALUE_CHARS);
const _: () = assert!(crate::config::MAX_PROBE_NAME_CHARS <= MAX_VALUE_CHARS);

/// Checks the resource attributes against New Relic's limits: the first problem, in words.
pub fn check_resource(resource: &[(String, String)]) -> Result<(), String> {
    for (key, value) in resource {
        if key.chars().count() > MAX_NAME_CHARS {
            return Err(format!(
                "the key {:?}… is longer than New Relic's {MAX_NAME_CHARS} characters",
                key.chars().take(40).collect::<String>()
            ));
        }
        if value.chars().count() > MAX_VALUE_CHARS {
            return Err(format!(
                "the value of {key} is longer than New Relic's {MAX_VALUE_CHARS} characters"
            ));
        }
    }
    let labels = CATALOG.iter().map(|d| d.labels.len()).max().unwrap_or(0);
    if resource.len() + labels > MAX_ATTRIBUTES {
        return Err(format!(
            "{} resource attributes plus up to {labels} on a data point exceed New Relic's {MAX_ATTRIBUTES} attributes per data point",
            resource.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::semconv::SEMCONV_TWINS;

    #[test]
    fn every_name_the_agent_sends_fits() {
        for def in CATALOG {
            assert!(def.name.len() <= MAX_NAME_CHARS, "{}", def.name);
            for label in def.labels {
                assert!(label.len() <= MAX_NAME_CHARS, "{label}");
            }
        }
        for twin in SEMCONV_TWINS {
            assert!(twin.name.len() <= MAX_NAME_CHARS, "{}", twin.name);
        }
    }

    #[test]
    fn resource_attributes_beyond_the_limits_are_refused() {
        let ok = vec![("service.name".to_string(), "svc".to_string())];
        assert!(check_resource(&ok).is_ok());
        let long_key = vec![("k".repeat(256), "v".to_string())];
        assert!(check_resource(&long_key).unwrap_err().contains("255"));
        let long_value = vec![("team".to_string(), "v".repeat(4096))];
        assert!(check_resource(&long_value).unwrap_err().contains("4095"));
        let many: Vec<_> = (0..MAX_ATTRIBUTES)
            .map(|i| (format!("a{i}"), "v".to_string()))
            .collect();
        assert!(check_resource(&many)
            .unwrap_err()
            .contains("per data point"));
    }
}
