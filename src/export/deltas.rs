//! Counter increases between two exports, for StatsD (`|c` sends increments; the snapshot holds
//! cumulative totals). Histograms need no such bookkeeping: push exporters receive every
//! observed value itself ([`crate::monitor::observed`]).

use std::collections::HashMap;

use crate::monitor::snapshot::{Sample, SampleValue};

/// Identity of one series: the metric's name and its label values. (Not the definition's
/// address: catalog entries are consts, each use may have its own.)
type SeriesKey = (&'static str, Vec<String>);

/// Remembers the last cumulative value of every counter series, so each export sends only what
/// is new. A value that went down (a reset) is taken whole.
#[derive(Debug, Default)]
pub struct Deltas {
    counters: HashMap<SeriesKey, f64>,
}

impl Deltas {
    /// The increase of a counter sample since the previous call; `None` for other kinds.
    pub fn of(&mut self, sample: &Sample) -> Option<f64> {
        let SampleValue::Counter(v) = sample.value else {
            return None;
        };
        let last = self
            .counters
            .insert((sample.def.name, sample.labels.clone()), v)
            .unwrap_or(0.0);
        Some(if v >= last { v - last } else { v })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_send_only_what_is_new_and_take_a_reset_whole() {
        use crate::catalog::PROBE_RUNS;
        let mut d = Deltas::default();
        let c = |v| Sample {
            def: &PROBE_RUNS,
            labels: vec!["availability".into(), "success".into()],
            value: SampleValue::Counter(v),
        };
        assert_eq!(d.of(&c(3.0)), Some(3.0));
        assert_eq!(d.of(&c(5.0)), Some(2.0));
        assert_eq!(d.of(&c(1.0)), Some(1.0));
    }
}
