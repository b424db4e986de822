//! Turning the snapshot's cumulative histograms and counters into what push exporters send.
//!
//! The monitor publishes histograms as per-bucket counts and a sum, cumulative since start. OTLP
//! instruments and StatsD both want individual observations. [`representatives`] picks, for the
//! observations that arrived since the last export, one value per bucket such that every value
//! lies in its true bucket and the values add up to the true sum: bucket counts, count and sum
//! come out exact; only the position of a value inside its bucket is an estimate.

use std::collections::HashMap;

use crate::catalog::MetricDef;
use crate::monitor::snapshot::{Sample, SampleValue};

/// `count` observations of `value`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Representative {
    pub value: f64,
    pub count: u64,
}

/// Values for per-bucket `counts` (one per bound, then +Inf) whose total is `sum`.
/// The first bucket's lower edge is 0 when its bound is positive (durations, sizes).
pub fn representatives(bounds: &[f64], counts: &[u64], sum: f64) -> Vec<Representative> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return Vec::new();
    }
    let n = counts.len();
    let lower = |i: usize| -> f64 {
        if i == 0 {
            match bounds.first() {
                Some(b) if *b > 0.0 => 0.0,
                _ => f64::NEG_INFINITY,
            }
        } else {
            // A value equal to the previous bound belongs to the previous bucket.
            bounds[i - 1].next_up()
        }
    };
    let upper = |i: usize| -> f64 { bounds.get(i).copied().unwrap_or(f64::INFINITY) };
    // Start from the middle of each bucket (the open-ended one from its lower edge), then
    // move values within their buckets until they add up to the sum.
    let mut values: Vec<f64> = (0..n)
        .map(|i| match (lower(i).is_finite(), upper(i).is_finite()) {
            (true, true) => (lower(i) + upper(i)) / 2.0,
            (true, false) => lower(i),
            (false, _) => upper(i),
        })
        .collect();
    if counts.iter().filter(|&&c| c > 0).count() == 1 {
        // One bucket: every observation gets the exact mean (when the bucket allows it).
        let i = counts.iter().position(|&c| c > 0).expect("one bucket");
        values[i] = (sum / total as f64).clamp(lower(i), upper(i));
    }
    let placed: f64 = (0..n).map(|i| values[i] * counts[i] as f64).sum();
    let mut diff = sum - placed;
    if diff.is_finite() && diff != 0.0 {
        // Room each bucket has to move in the needed direction (count × distance to its edge).
        let up = diff > 0.0;
        let sign = if up { 1.0 } else { -1.0 };
        let room = |i: usize, v: f64| -> f64 {
            let edge = if up { upper(i) } else { lower(i) };
            counts[i] as f64 * (edge - v).abs()
        };
        let finite_room: f64 = (0..n)
            .filter(|&i| counts[i] > 0 && room(i, values[i]).is_finite())
            .map(|i| room(i, values[i]))
            .sum();
        let unbounded = (0..n).find(|&i| counts[i] > 0 && !room(i, values[i]).is_finite());
        if finite_room >= diff.abs() || unbounded.is_none() {
            let share = if finite_room > 0.0 {
                (diff.abs() / finite_room).min(1.0)
            } else {
                0.0
            };
            for i in 0..n {
                if counts[i] == 0 || !room(i, values[i]).is_finite() {
                    continue;
                }
                let step = room(i, values[i]) * share / counts[i] as f64;
                values[i] += step * sign;
            }
        } else if let Some(u) = unbounded {
            // Fill the bounded buckets to their edges; the rest goes to the open-ended bucket.
            for i in 0..n {
                if counts[i] == 0 || i == u {
                    continue;
                }
                let r = room(i, values[i]);
                values[i] += r / counts[i] as f64 * sign;
                diff -= r * sign;
            }
            values[u] += diff / counts[u] as f64;
        }
    }
    (0..n)
        .filter(|&i| counts[i] > 0)
        .map(|i| Representative {
            value: values[i].clamp(lower(i), upper(i)),
            count: counts[i],
        })
        .collect()
}

/// Identity of one series: the metric's name and its label values. (Not the definition's
/// address: catalog entries are consts, each use may have its own.)
type SeriesKey = (&'static str, Vec<String>);

fn key(def: &'static MetricDef, labels: &[String]) -> SeriesKey {
    (def.name, labels.to_vec())
}

/// Remembers the last cumulative value of every counter and histogram series, so each export
/// sends only what is new. A value that went down (a reset) is taken whole.
#[derive(Debug, Default)]
pub struct Deltas {
    counters: HashMap<SeriesKey, f64>,
    histograms: HashMap<SeriesKey, (Vec<u64>, f64)>,
}

/// What one sample contributed since the previous call.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    Counter(f64),
    /// Per-bucket counts and sum of the new observations.
    Histogram {
        counts: Vec<u64>,
        sum: f64,
    },
}

impl Deltas {
    /// The increase of a counter or histogram sample; `None` for gauges.
    pub fn of(&mut self, sample: &Sample) -> Option<Delta> {
        match &sample.value {
            SampleValue::Gauge(_) => None,
            SampleValue::Counter(v) => {
                let last = self
                    .counters
                    .insert(key(sample.def, &sample.labels), *v)
                    .unwrap_or(0.0);
                Some(Delta::Counter(if *v >= last { *v - last } else { *v }))
            }
            SampleValue::Histogram { counts, sum, .. } => {
                let k = key(sample.def, &sample.labels);
                let delta = match self.histograms.get(&k) {
                    Some((old, old_sum))
                        if old.len() == counts.len()
                            && old.iter().zip(counts).all(|(o, n)| n >= o) =>
                    {
                        Delta::Histogram {
                            counts: counts.iter().zip(old).map(|(n, o)| n - o).collect(),
                            sum: (sum - old_sum).max(0.0),
                        }
                    }
                    _ => Delta::Histogram {
                        counts: counts.clone(),
                        sum: *sum,
                    },
                };
                self.histograms.insert(k, (counts.clone(), *sum));
                Some(delta)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bounds: &[f64], counts: &[u64], sum: f64) -> Vec<Representative> {
        let reps = representatives(bounds, counts, sum);
        let total: f64 = reps.iter().map(|r| r.value * r.count as f64).sum();
        assert!(
            (total - sum).abs() <= 1e-9 * sum.abs().max(1.0),
            "sum {total} != {sum}: {reps:?}"
        );
        // Every value must land in its own bucket under "first bound >= value".
        let mut landed = vec![0u64; counts.len()];
        for r in &reps {
            let i = bounds
                .iter()
                .position(|b| r.value <= *b)
                .unwrap_or(bounds.len());
            landed[i] += r.count;
        }
        assert_eq!(landed, counts, "{reps:?}");
        reps
    }

    #[test]
    fn values_stay_in_their_buckets_and_sum_exactly() {
        let b = &[1.0, 5.0, 10.0, 30.0, 60.0];
        check(b, &[1, 0, 0, 0, 0, 0], 0.4);
        check(b, &[0, 2, 0, 0, 0, 0], 7.0);
        check(b, &[3, 1, 0, 1, 0, 0], 2.0 + 4.0 + 20.0);
        check(b, &[0, 0, 0, 0, 0, 2], 200.0);
        check(b, &[1, 0, 0, 0, 0, 1], 0.5 + 500.0);
        check(
            b,
            &[10, 10, 10, 10, 10, 10],
            10.0 * (0.9 + 4.0 + 9.0 + 29.0 + 59.0 + 61.0),
        );
        // Mean far below the upper buckets: lower buckets must give way.
        check(b, &[5, 0, 0, 0, 1, 0], 5.0 * 0.01 + 31.0);
    }

    #[test]
    fn single_bucket_gets_the_exact_mean() {
        let reps = check(&[1.0, 5.0], &[0, 4, 0], 10.0);
        assert_eq!(
            reps,
            vec![Representative {
                value: 2.5,
                count: 4
            }]
        );
    }

    #[test]
    fn deltas_send_only_what_is_new() {
        use crate::catalog::{EXECUTION_TIME, PROBE_RUNS};
        let mut d = Deltas::default();
        let c = |v| Sample {
            def: &PROBE_RUNS,
            labels: vec!["availability".into(), "success".into()],
            value: SampleValue::Counter(v),
        };
        assert_eq!(d.of(&c(3.0)), Some(Delta::Counter(3.0)));
        assert_eq!(d.of(&c(5.0)), Some(Delta::Counter(2.0)));
        assert_eq!(d.of(&c(1.0)), Some(Delta::Counter(1.0)));
        let h = |counts: Vec<u64>, sum| Sample {
            def: &EXECUTION_TIME,
            labels: vec!["all".into()],
            value: SampleValue::Histogram {
                count: counts.iter().sum(),
                counts,
                sum,
            },
        };
        d.of(&h(vec![1, 0, 0, 0, 0, 0], 0.5));
        assert_eq!(
            d.of(&h(vec![1, 2, 0, 0, 0, 0], 6.5)),
            Some(Delta::Histogram {
                counts: vec![0, 2, 0, 0, 0, 0],
                sum: 6.0
            })
        );
    }
}
