//! Bounds on what one call of a scalar function may allocate.
//!
//! A query's memory pool sees the operators that reserve (sorts, joins, aggregates), not the
//! arrays a scalar function builds: `lpad('a', 2147483647)` or `repeat(s, 10000000)` over a
//! batch would allocate gigabytes before any limit is consulted. The functions whose output
//! can grow far beyond their input are wrapped here: before running, the wrapper estimates
//! the bytes the call will produce for the batch from its arguments and refuses a call over
//! the bound; after running, it measures what was produced and refuses that too. The bound
//! is [`QueryGuards::max_function_output_bytes`], which the engine sets to the query's memory
//! limit. (The result batches a query hands out are accounted by the engine.)

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::kernels::length::length;
use datafusion::arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::config::{ConfigExtension, ConfigOptions};
use datafusion::common::{DataFusionError, Result, ScalarValue, extensions_options};
use datafusion::logical_expr::interval_arithmetic::Interval;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};

extensions_options! {
    /// vigil's per-query guards, under the `vigil` prefix of the session configuration.
    pub struct QueryGuards {
        /// Bytes one call of a growing scalar function (`repeat`, `lpad`, `array_repeat`...)
        /// may produce for one batch.
        pub max_function_output_bytes: usize, default = DEFAULT_MAX_FUNCTION_OUTPUT_BYTES
    }
}

impl ConfigExtension for QueryGuards {
    const PREFIX: &'static str = "vigil";
}

/// The bound when the query has no memory limit: 1 GiB for one function over one batch.
pub const DEFAULT_MAX_FUNCTION_OUTPUT_BYTES: usize = 1 << 30;

/// How a function's output grows with its arguments, for the estimate made before calling
/// it. Functions without an estimate are only measured after the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(s, n)`: `len(s) * n`.
    Repeat,
    /// `lpad(s, n [, fill])`, `rpad`: at least `n` bytes.
    Pad,
    /// `array_repeat(x, n)`: `n` elements.
    ArrayRepeat,
    /// `array_resize(a, n [, x])`: `n` elements.
    ArrayResize,
    /// `range(start, stop [, step])`, `generate_series`: `(stop - start) / step` elements,
    /// for integer arguments.
    Range,
    /// `replace(s, from, to)`: every occurrence of `from` (every position, when empty)
    /// becomes `to`.
    Replace,
    /// Measured only.
    Measured,
}

/// The functions wrapped, with how each grows.
const GROWING: [(&str, Growth); 10] = [
    ("repeat", Growth::Repeat),
    ("lpad", Growth::Pad),
    ("rpad", Growth::Pad),
    ("array_repeat", Growth::ArrayRepeat),
    ("array_resize", Growth::ArrayResize),
    ("range", Growth::Range),
    ("generate_series", Growth::Range),
    ("replace", Growth::Replace),
    ("regexp_replace", Growth::Measured),
    ("overlay", Growth::Measured),
];

/// `functions` with the growing ones wrapped.
pub fn bound_growing(functions: Vec<Arc<ScalarUDF>>) -> Vec<Arc<ScalarUDF>> {
    functions
        .into_iter()
        .map(
            |f| match GROWING.iter().find(|(name, _)| *name == f.name()) {
                Some((_, growth)) => Arc::new(ScalarUDF::new_from_impl(Bounded::new(f, *growth))),
                None => f,
            },
        )
        .collect()
}

/// A scalar function whose output is bounded per call.
///
/// It is declared volatile so that a call with constant arguments is not folded into a
/// constant while planning: a folded result is computed once and then copied into every row
/// of every batch by the projection, past any bound. Evaluated per batch, the estimate sees
/// how many rows the call is for.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: Arc<ScalarUDF>,
    growth: Growth,
    signature: Signature,
}

impl Bounded {
    fn new(inner: Arc<ScalarUDF>, growth: Growth) -> Bounded {
        let mut signature = inner.signature().clone();
        signature.volatility = Volatility::Volatile;
        Bounded {
            inner,
            growth,
            signature,
        }
    }

    fn inner(&self) -> &dyn ScalarUDFImpl {
        self.inner.inner().as_ref()
    }

    fn refuse(&self, bytes: usize, rows: usize, limit: usize, when: &str) -> DataFusionError {
        DataFusionError::ResourcesExhausted(format!(
            "{}() {when} {} for a batch of {rows} row{}, more than the {} one function call \
             may produce (the query's memory limit)",
            self.inner.name(),
            human_bytes(bytes),
            if rows == 1 { "" } else { "s" },
            human_bytes(limit)
        ))
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner().name()
    }

    fn aliases(&self) -> &[String] {
        self.inner().aliases()
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner().schema_name(args)
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner().return_type(arg_types)
    }

    fn with_updated_config(&self, config: &ConfigOptions) -> Option<ScalarUDF> {
        self.inner()
            .with_updated_config(config)
            .map(|updated| ScalarUDF::new_from_impl(Bounded::new(Arc::new(updated), self.growth)))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner().return_field_from_args(args)
    }

    fn is_strict(&self) -> bool {
        self.inner().is_strict()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let limit = args
            .config_options
            .extensions
            .get::<QueryGuards>()
            .map_or(DEFAULT_MAX_FUNCTION_OUTPUT_BYTES, |g| {
                g.max_function_output_bytes
            });
        let rows = args.number_rows;
        let estimate = estimate(self.growth, &args.args, rows)?;
        if estimate > limit {
            return Err(self.refuse(estimate, rows, limit, "would produce about"));
        }
        let output = self.inner().invoke_with_args(args)?;
        let produced = match &output {
            ColumnarValue::Array(array) => array.get_array_memory_size(),
            ColumnarValue::Scalar(value) => value.size(),
        };
        if produced > limit {
            return Err(self.refuse(produced, rows, limit, "produced"));
        }
        Ok(output)
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        self.inner().simplify(args, info)
    }

    fn short_circuits(&self) -> bool {
        self.inner().short_circuits()
    }

    fn evaluate_bounds(&self, input: &[&Interval]) -> Result<Interval> {
        self.inner().evaluate_bounds(input)
    }

    fn propagate_constraints(
        &self,
        interval: &Interval,
        inputs: &[&Interval],
    ) -> Result<Option<Vec<Interval>>> {
        self.inner().propagate_constraints(interval, inputs)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.inner().output_ordering(inputs)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner().preserves_lex_ordering(inputs)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner().coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner().documentation()
    }
}

/// An argument as one value per row: a scalar repeats.
enum PerRow {
    Ints(Vec<Option<i64>>),
    Int(Option<i64>),
    Lens(ArrayRef),
    Len(Option<usize>),
    Unknown,
}

impl PerRow {
    fn ints(value: &ColumnarValue) -> PerRow {
        match value {
            ColumnarValue::Scalar(s) => match s.cast_to(&DataType::Int64) {
                Ok(ScalarValue::Int64(v)) => PerRow::Int(v),
                _ => PerRow::Unknown,
            },
            ColumnarValue::Array(a) if a.data_type().is_integer() => {
                match datafusion::arrow::compute::cast(a, &DataType::Int64) {
                    Ok(ints) => PerRow::Ints(ints.as_primitive::<Int64Type>().iter().collect()),
                    Err(_) => PerRow::Unknown,
                }
            }
            ColumnarValue::Array(_) => PerRow::Unknown,
        }
    }

    /// Byte lengths of a string (or binary) argument.
    fn lens(value: &ColumnarValue) -> PerRow {
        match value {
            ColumnarValue::Scalar(s) => PerRow::Len(match s {
                ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
                    v.as_ref().map(String::len)
                }
                ScalarValue::Binary(v)
                | ScalarValue::LargeBinary(v)
                | ScalarValue::BinaryView(v) => v.as_ref().map(Vec::len),
                _ => return PerRow::Unknown,
            }),
            ColumnarValue::Array(a) => match a.data_type() {
                DataType::Utf8View => {
                    let view = a.as_string_view();
                    let lens: Vec<Option<i64>> =
                        view.iter().map(|s| s.map(|s| s.len() as i64)).collect();
                    PerRow::Ints(lens)
                }
                _ => match length(a.as_ref()) {
                    Ok(lens) => PerRow::Lens(lens),
                    Err(_) => PerRow::Unknown,
                },
            },
        }
    }

    /// The value at `row` as a non-negative count; `None` for NULL (no output) and `Some(0)`
    /// for what cannot be told.
    fn at(&self, row: usize) -> Option<u64> {
        let clamp = |v: i64| u64::try_from(v).unwrap_or(0);
        match self {
            PerRow::Ints(v) => v.get(row).copied().flatten().map(clamp),
            PerRow::Int(v) => v.map(clamp),
            PerRow::Len(v) => v.map(|n| n as u64),
            PerRow::Lens(a) => {
                if a.is_null(row) {
                    return None;
                }
                Some(match a.data_type() {
                    DataType::Int64 => clamp(a.as_primitive::<Int64Type>().value(row)),
                    _ => clamp(i64::from(
                        a.as_primitive::<datafusion::arrow::datatypes::Int32Type>()
                            .value(row),
                    )),
                })
            }
            PerRow::Unknown => Some(0),
        }
    }

    fn is_scalar(&self) -> bool {
        matches!(self, PerRow::Int(_) | PerRow::Len(_) | PerRow::Unknown)
    }
}

/// Bytes one row of a call produces, from the arguments' values at that row.
type RowBytes = Box<dyn Fn(&[PerRow], usize) -> u64>;

/// Bytes the call is expected to produce for `rows` rows (a lower bound: the estimate only
/// refuses what cannot fit).
fn estimate(growth: Growth, args: &[ColumnarValue], rows: usize) -> Result<usize> {
    let arg = |i: usize| args.get(i);
    // Elements of a list are counted at 8 bytes, the width of the usual numbers and
    // offsets.
    const ELEMENT: u64 = 8;
    let per_row: Vec<PerRow>;
    let row_bytes: RowBytes = match growth {
        Growth::Measured => return Ok(0),
        Growth::Repeat => {
            let (Some(s), Some(n)) = (arg(0), arg(1)) else {
                return Ok(0);
            };
            per_row = vec![PerRow::lens(s), PerRow::ints(n)];
            Box::new(|p: &[PerRow], r| match (p[0].at(r), p[1].at(r)) {
                (Some(len), Some(n)) => len.saturating_mul(n),
                _ => 0,
            })
        }
        Growth::Pad => {
            let Some(n) = arg(1) else { return Ok(0) };
            per_row = vec![PerRow::ints(n)];
            Box::new(|p: &[PerRow], r| p[0].at(r).unwrap_or(0))
        }
        Growth::ArrayRepeat => {
            let Some(n) = arg(1) else { return Ok(0) };
            per_row = vec![PerRow::ints(n)];
            Box::new(|p: &[PerRow], r| p[0].at(r).unwrap_or(0).saturating_mul(ELEMENT))
        }
        Growth::ArrayResize => {
            let Some(n) = arg(1) else { return Ok(0) };
            per_row = vec![PerRow::ints(n)];
            Box::new(|p: &[PerRow], r| p[0].at(r).unwrap_or(0).saturating_mul(ELEMENT))
        }
        Growth::Range => {
            let integer = |v: &ColumnarValue| v.data_type().is_integer();
            if args.is_empty() || !args.iter().all(integer) {
                return Ok(0);
            }
            let signed = |v: &ColumnarValue| match v {
                ColumnarValue::Scalar(s) => match s.cast_to(&DataType::Int64) {
                    Ok(ScalarValue::Int64(v)) => PerRow::Int(v),
                    _ => PerRow::Unknown,
                },
                other => PerRow::ints(other),
            };
            // range(stop) counts from 0; the step defaults to 1.
            per_row = match args.len() {
                1 => vec![PerRow::Int(Some(0)), signed(&args[0]), PerRow::Int(Some(1))],
                2 => vec![signed(&args[0]), signed(&args[1]), PerRow::Int(Some(1))],
                _ => vec![signed(&args[0]), signed(&args[1]), signed(&args[2])],
            };
            Box::new(|p: &[PerRow], r| {
                let value = |x: &PerRow| match x {
                    PerRow::Ints(v) => v.get(r).copied().flatten(),
                    PerRow::Int(v) => *v,
                    _ => None,
                };
                match (value(&p[0]), value(&p[1]), value(&p[2])) {
                    (Some(start), Some(stop), Some(step)) if step != 0 => {
                        let span = i128::from(stop) - i128::from(start);
                        let n = (span / i128::from(step)).max(0) as u128;
                        u64::try_from(n).unwrap_or(u64::MAX).saturating_mul(ELEMENT)
                    }
                    _ => 0,
                }
            })
        }
        Growth::Replace => {
            let (Some(s), Some(from), Some(to)) = (arg(0), arg(1), arg(2)) else {
                return Ok(0);
            };
            per_row = vec![PerRow::lens(s), PerRow::lens(from), PerRow::lens(to)];
            Box::new(|p: &[PerRow], r| {
                match (p[0].at(r), p[1].at(r), p[2].at(r)) {
                    (Some(len), Some(from), Some(to)) if to > from => {
                        // At most len / from occurrences; an empty pattern matches at every
                        // one of the len + 1 positions.
                        let times = len.checked_div(from).unwrap_or(len + 1);
                        len.saturating_add(times.saturating_mul(to - from))
                    }
                    (Some(len), ..) => len,
                    _ => 0,
                }
            })
        }
    };
    let total = if per_row.iter().all(PerRow::is_scalar) {
        row_bytes(&per_row, 0).saturating_mul(rows as u64)
    } else {
        (0..rows).fold(0u64, |sum, r| sum.saturating_add(row_bytes(&per_row, r)))
    };
    Ok(usize::try_from(total).unwrap_or(usize::MAX))
}

/// `1.5 GiB`, `64.0 MiB`, `512 B`.
fn human_bytes(bytes: usize) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar_int(n: i64) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Int64(Some(n)))
    }

    fn scalar_str(s: &str) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(s.to_string())))
    }

    #[test]
    fn estimates_follow_the_arguments() {
        let repeat = estimate(Growth::Repeat, &[scalar_str("xy"), scalar_int(1000)], 100);
        assert_eq!(repeat.unwrap(), 200_000);
        let pad = estimate(
            Growth::Pad,
            &[scalar_str("a"), scalar_int(2_147_483_647)],
            1,
        );
        assert_eq!(pad.unwrap(), 2_147_483_647);
        let negative = estimate(Growth::Pad, &[scalar_str("a"), scalar_int(-5)], 10);
        assert_eq!(negative.unwrap(), 0);
        let range = estimate(
            Growth::Range,
            &[scalar_int(0), scalar_int(1000), scalar_int(10)],
            2,
        );
        assert_eq!(range.unwrap(), 2 * 100 * 8);
        let backwards = estimate(
            Growth::Range,
            &[scalar_int(10), scalar_int(0), scalar_int(1)],
            1,
        );
        assert_eq!(backwards.unwrap(), 0);
        let replace = estimate(
            Growth::Replace,
            &[scalar_str("aaaa"), scalar_str(""), scalar_str("bbb")],
            1,
        );
        assert_eq!(replace.unwrap(), 4 + 5 * 3);
        let rows: ArrayRef = Arc::new(datafusion::arrow::array::StringArray::from(vec![
            Some("abc"),
            None,
            Some("d"),
        ]));
        let per_row = estimate(
            Growth::Repeat,
            &[ColumnarValue::Array(rows), scalar_int(10)],
            3,
        );
        assert_eq!(per_row.unwrap(), 40);
        assert_eq!(human_bytes(64 << 20), "64.0 MiB");
        assert_eq!(human_bytes(512), "512 B");
    }
}
