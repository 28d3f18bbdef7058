//! `increase(value, ts)` and `rate(value, ts)`: how much a monotonic counter grew, with resets.
//!
//! Samples are ordered by time; a sample below its predecessor is a counter reset, and counts
//! from zero (as Prometheus does). `increase` is the sum of those steps; `rate` divides it by
//! the seconds between the first and the last sample. Fewer than two samples give NULL. No
//! extrapolation to the edges of a window: group by `time_bucket` and the result is what the
//! samples in the bucket show.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{Accumulator, AggregateUDF, Volatility, create_udaf};

use crate::time::time_values;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Increase,
    Rate,
}

/// The `increase` aggregate.
pub fn increase() -> AggregateUDF {
    counter_udaf("increase", Kind::Increase)
}

/// The `rate` aggregate (per second).
pub fn rate() -> AggregateUDF {
    counter_udaf("rate", Kind::Rate)
}

fn counter_udaf(name: &str, kind: Kind) -> AggregateUDF {
    let ts = DataType::Timestamp(arrow::datatypes::TimeUnit::Nanosecond, Some("UTC".into()));
    create_udaf(
        name,
        vec![DataType::Float64, ts],
        Arc::new(DataType::Float64),
        Volatility::Immutable,
        Arc::new(move |_| {
            Ok(Box::new(CounterAccumulator {
                kind,
                samples: vec![],
            }))
        }),
        Arc::new(vec![
            DataType::List(Arc::new(arrow::datatypes::Field::new_list_field(
                DataType::Int64,
                true,
            ))),
            DataType::List(Arc::new(arrow::datatypes::Field::new_list_field(
                DataType::Float64,
                true,
            ))),
        ]),
    )
}

#[derive(Debug)]
struct CounterAccumulator {
    kind: Kind,
    /// (time in ns, value)
    samples: Vec<(i64, f64)>,
}

impl CounterAccumulator {
    fn add(&mut self, times: &Int64Array, values: &Float64Array) {
        for i in 0..times.len().min(values.len()) {
            if times.is_valid(i) && values.is_valid(i) {
                self.samples.push((times.value(i), values.value(i)));
            }
        }
    }
}

/// Sum of the counter's steps over time-ordered samples; a drop is a reset from zero.
pub fn counter_increase(samples: &mut [(i64, f64)]) -> Option<(f64, i64)> {
    if samples.len() < 2 {
        return None;
    }
    samples.sort_by_key(|s| s.0);
    let mut total = 0.0;
    for w in samples.windows(2) {
        let (prev, cur) = (w[0].1, w[1].1);
        total += if cur >= prev { cur - prev } else { cur };
    }
    Some((total, samples[samples.len() - 1].0 - samples[0].0))
}

impl Accumulator for CounterAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let v = values[0].as_primitive::<Float64Type>().clone();
        let t = time_values(&values[1])?;
        self.add(&t, &v);
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let value =
            counter_increase(&mut self.samples).and_then(|(increase, span_ns)| match self.kind {
                Kind::Increase => Some(increase),
                Kind::Rate if span_ns > 0 => Some(increase / (span_ns as f64 / 1e9)),
                Kind::Rate => None,
            });
        Ok(ScalarValue::Float64(value))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.samples.capacity() * std::mem::size_of::<(i64, f64)>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let times: Vec<ScalarValue> = self
            .samples
            .iter()
            .map(|s| ScalarValue::Int64(Some(s.0)))
            .collect();
        let values: Vec<ScalarValue> = self
            .samples
            .iter()
            .map(|s| ScalarValue::Float64(Some(s.1)))
            .collect();
        Ok(vec![
            ScalarValue::List(ScalarValue::new_list_nullable(&times, &DataType::Int64)),
            ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Float64)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let times = states[0].as_list::<i32>();
        let values = states[1].as_list::<i32>();
        for row in 0..times.len() {
            if times.is_null(row) || values.is_null(row) {
                continue;
            }
            let t = times.value(row);
            let v = values.value(row);
            self.add(
                t.as_primitive::<Int64Type>(),
                v.as_primitive::<Float64Type>(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::counter_increase;

    #[test]
    fn resets_count_from_zero_and_order_is_by_time() {
        let mut s = vec![(30, 5.0), (10, 1.0), (20, 4.0), (40, 2.0)];
        // 1 -> 4 (+3) -> 5 (+1) -> reset to 2 (+2)
        assert_eq!(counter_increase(&mut s), Some((6.0, 30)));
        assert_eq!(counter_increase(&mut [(1, 3.0)]), None);
    }
}
