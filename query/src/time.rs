//! Time columns and durations as one comparable number: nanoseconds since the epoch for
//! timestamps and dates, the value itself for integer columns.

use arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use arrow::compute::kernels::cast::cast;
use arrow::compute::kernels::numeric::mul;
use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};

/// True when `data_type` can order rows in time for the temporal operators.
pub fn is_time_type(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Timestamp(_, _)
            | DataType::Date32
            | DataType::Date64
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
    )
}

fn nanos_per_unit(data_type: &DataType) -> i64 {
    match data_type {
        DataType::Timestamp(TimeUnit::Second, _) => 1_000_000_000,
        DataType::Timestamp(TimeUnit::Millisecond, _) | DataType::Date64 => 1_000_000,
        DataType::Timestamp(TimeUnit::Microsecond, _) => 1_000,
        DataType::Date32 => 86_400_000_000_000,
        _ => 1,
    }
}

/// `array` as `Int64` on the common scale (nanoseconds for timestamps and dates); nulls stay.
pub fn time_values(array: &ArrayRef) -> Result<Int64Array> {
    let data_type = array.data_type();
    if !is_time_type(data_type) {
        return exec_err!("{data_type} is not a time type (need a timestamp, date or integer)");
    }
    let raw = match data_type {
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => {
            // Reinterpret, then scale: casting a timestamp to Int64 keeps its raw value.
            let as_int = match data_type {
                DataType::Date32 => cast(&cast(array, &DataType::Int32)?, &DataType::Int64)?,
                _ => cast(array, &DataType::Int64)?,
            };
            let factor = nanos_per_unit(data_type);
            if factor == 1 {
                as_int
            } else {
                mul(&as_int, &Int64Array::new_scalar(factor))?
            }
        }
        _ => cast(array, &DataType::Int64)?,
    };
    Ok(raw.as_primitive::<arrow::datatypes::Int64Type>().clone())
}

/// A constant duration (`INTERVAL '30 seconds'`, an integer for integer time columns) on the
/// scale of [`time_values`] for a column of `time_type`.
pub fn duration_value(value: &ScalarValue, time_type: &DataType, what: &str) -> Result<i64> {
    let is_clock = matches!(
        time_type,
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64
    );
    let nanos = match value {
        ScalarValue::IntervalMonthDayNano(Some(v)) if is_clock => {
            if v.months != 0 {
                return plan_err!("{what} cannot be given in months (months have no fixed length)");
            }
            i64::from(v.days) * 86_400_000_000_000 + v.nanoseconds
        }
        ScalarValue::IntervalDayTime(Some(v)) if is_clock => {
            i64::from(v.days) * 86_400_000_000_000 + i64::from(v.milliseconds) * 1_000_000
        }
        ScalarValue::IntervalYearMonth(Some(_)) if is_clock => {
            return plan_err!("{what} cannot be given in months or years");
        }
        ScalarValue::DurationSecond(Some(v)) if is_clock => v * 1_000_000_000,
        ScalarValue::DurationMillisecond(Some(v)) if is_clock => v * 1_000_000,
        ScalarValue::DurationMicrosecond(Some(v)) if is_clock => v * 1_000,
        ScalarValue::DurationNanosecond(Some(v)) if is_clock => *v,
        v if !is_clock && v.data_type().is_integer() && !v.is_null() => {
            match v.cast_to(&DataType::Int64)? {
                ScalarValue::Int64(Some(n)) => n,
                _ => return plan_err!("{what} must be an integer"),
            }
        }
        v => {
            return plan_err!(
                "{what} must be a constant {} for a {time_type} time column, got {v:?}",
                if is_clock { "interval" } else { "integer" }
            );
        }
    };
    if nanos < 0 {
        return plan_err!("{what} must not be negative");
    }
    Ok(nanos)
}

/// Checks that two time columns can be compared (both clocks, or both integers).
pub fn check_comparable(left: &DataType, right: &DataType) -> Result<()> {
    let clock = |t: &DataType| {
        matches!(
            t,
            DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64
        )
    };
    if !is_time_type(left) || !is_time_type(right) || clock(left) != clock(right) {
        return plan_err!(
            "cannot compare time columns of types {left} and {right} (need timestamps or dates on both sides, or integers on both sides)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Date32Array, TimestampMillisecondArray};
    use std::sync::Arc;

    #[test]
    fn timestamps_and_dates_become_nanoseconds() {
        let ms: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![Some(1), None]));
        let v = time_values(&ms).unwrap();
        assert_eq!(v.value(0), 1_000_000);
        assert!(v.is_null(1));
        let d: ArrayRef = Arc::new(Date32Array::from(vec![1]));
        assert_eq!(time_values(&d).unwrap().value(0), 86_400_000_000_000);
    }

    #[test]
    fn intervals_become_nanoseconds_and_months_are_refused() {
        let ts = DataType::Timestamp(TimeUnit::Nanosecond, None);
        let thirty = ScalarValue::new_interval_mdn(0, 0, 30_000_000_000);
        assert_eq!(duration_value(&thirty, &ts, "x").unwrap(), 30_000_000_000);
        let month = ScalarValue::new_interval_mdn(1, 0, 0);
        assert!(duration_value(&month, &ts, "x").is_err());
        assert_eq!(
            duration_value(&ScalarValue::Int32(Some(5)), &DataType::Int64, "x").unwrap(),
            5
        );
    }
}
