//! Retention rules: how long rows of a kind (optionally of one namespace, one metric name
//! pattern) are kept, and which rollups metrics become before they go.
//!
//! The most specific rule that matches a row decides: a rule naming a namespace beats one that
//! does not; then an exact metric name beats a pattern, which beats no metric at all; then the
//! pattern with more literal characters. Two rules equally specific that can match the same
//! row and say different things are refused, naming both.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::SignalKind;
use crate::error::{Result, StorageError};

/// After `keep`, rows of the previous resolution become buckets of `step`, kept while younger
/// than `keep` (counted from the bucket's time, like every age here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownsampleStep {
    pub step: Duration,
    pub keep: Duration,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionRule {
    /// An ingested kind (never [`SignalKind::Rollup`]: rollups follow their metric's rule).
    pub kind: SignalKind,
    /// Only rows of this namespace.
    pub namespace: Option<String>,
    /// Only metrics whose name matches this pattern (`*` any run of characters, `?` one).
    pub metric: Option<String>,
    /// How long raw rows are kept.
    pub keep: Duration,
    /// Metrics only: the rollups raw rows become, finest first.
    pub downsample: Vec<DownsampleStep>,
}

impl RetentionRule {
    /// A rule for every row of `kind`, kept for `keep`.
    pub fn new(kind: SignalKind, keep: Duration) -> Self {
        RetentionRule {
            kind,
            namespace: None,
            metric: None,
            keep,
            downsample: Vec::new(),
        }
    }

    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    pub fn metric(mut self, pattern: impl Into<String>) -> Self {
        self.metric = Some(pattern.into());
        self
    }

    pub fn downsample(mut self, step: Duration, keep: Duration) -> Self {
        self.downsample.push(DownsampleStep { step, keep });
        self
    }

    /// True when the rule applies to a row of `kind` in `namespace` named `metric`.
    pub fn matches(&self, kind: SignalKind, namespace: Option<&str>, metric: Option<&str>) -> bool {
        let kind = if kind == SignalKind::Rollup {
            SignalKind::Metric
        } else {
            kind
        };
        self.kind == kind
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| namespace == Some(ns))
            && self
                .metric
                .as_deref()
                .is_none_or(|p| metric.is_some_and(|m| glob_matches(p, m)))
    }

    /// The longest any data under this rule lives, raw or rolled up.
    pub fn longest_keep(&self) -> Duration {
        self.downsample
            .iter()
            .map(|s| s.keep)
            .fold(self.keep, Duration::max)
    }

    fn specificity(&self) -> (bool, u8, usize) {
        match &self.metric {
            None => (self.namespace.is_some(), 0, 0),
            Some(p) if !p.contains(['*', '?']) => (self.namespace.is_some(), 2, p.len()),
            Some(p) => (
                self.namespace.is_some(),
                1,
                p.chars().filter(|c| *c != '*' && *c != '?').count(),
            ),
        }
    }

    /// `kind = "metrics", namespace = "shop", metric = "cpu_*"`: how errors and logs name it.
    pub fn selector(&self) -> String {
        let mut out = format!("kind = {:?}", self.kind.table_name());
        if let Some(ns) = &self.namespace {
            out.push_str(&format!(", namespace = {ns:?}"));
        }
        if let Some(m) = &self.metric {
            out.push_str(&format!(", metric = {m:?}"));
        }
        out
    }

    /// `keep 7d, then 1m for 90d, then 1h for 365d`.
    pub fn describe_keep(&self) -> String {
        let mut out = format!("keep {}", format_duration(self.keep));
        for s in &self.downsample {
            out.push_str(&format!(
                ", then {} rollups for {}",
                format_duration(s.step),
                format_duration(s.keep)
            ));
        }
        out
    }
}

/// A validated set of rules. Kinds no rule covers are kept forever.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    rules: Vec<RetentionRule>,
}

impl RetentionPolicy {
    /// Checks the rules alone and together; the error names the rule (1-based, in the order
    /// given) and what is wrong with it.
    pub fn new(rules: Vec<RetentionRule>) -> Result<Self> {
        for (i, rule) in rules.iter().enumerate() {
            check_rule(i + 1, rule)?;
        }
        for (i, a) in rules.iter().enumerate() {
            for (j, b) in rules.iter().enumerate().skip(i + 1) {
                if a.kind == b.kind
                    && a.namespace == b.namespace
                    && a.specificity() == b.specificity()
                    && patterns_overlap(a.metric.as_deref(), b.metric.as_deref())
                    && (a.keep != b.keep || a.downsample != b.downsample)
                {
                    return Err(StorageError::InvalidPolicy {
                        rule: format!("rule {} ({})", j + 1, b.selector()),
                        problem: format!(
                            "it and rule {} ({}) can both apply to the same rows, are equally \
                             specific, and disagree ({} vs {}); make one of them narrower",
                            i + 1,
                            a.selector(),
                            b.describe_keep(),
                            a.describe_keep()
                        ),
                    });
                }
            }
        }
        Ok(RetentionPolicy { rules })
    }

    /// Parses rules in their configuration form (durations like `7d`, `90 days`, `1h`).
    pub fn from_specs(specs: &[RuleSpec]) -> Result<Self> {
        let rules = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| spec.to_rule(i + 1))
            .collect::<Result<Vec<_>>>()?;
        RetentionPolicy::new(rules)
    }

    pub fn rules(&self) -> &[RetentionRule] {
        &self.rules
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule deciding a row, with its 1-based number, or `None` (kept forever).
    pub fn rule_for(
        &self,
        kind: SignalKind,
        namespace: Option<&str>,
        metric: Option<&str>,
    ) -> Option<(usize, &RetentionRule)> {
        let mut best: Option<(usize, &RetentionRule)> = None;
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.matches(kind, namespace, metric)
                && best.is_none_or(|(_, b)| rule.specificity() > b.specificity())
            {
                best = Some((i + 1, rule));
            }
        }
        best
    }

    /// Every downsampling step any rule names.
    pub fn steps(&self) -> BTreeSet<Duration> {
        self.rules
            .iter()
            .flat_map(|r| r.downsample.iter().map(|s| s.step))
            .collect()
    }

    /// True when some rule covers `kind` (rollups: metrics).
    pub fn covers(&self, kind: SignalKind) -> bool {
        self.rules.iter().any(|r| r.matches_kind(kind))
    }

    /// One line per rule, in order: what changed between two policies is visible in it.
    pub fn fingerprint(&self) -> String {
        self.rules
            .iter()
            .map(|r| format!("{}: {}", r.selector(), r.describe_keep()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Rollup buckets must not straddle segment windows: a step divides the window or is a
    /// whole number of windows.
    pub fn check_window(&self, window: Duration) -> Result<()> {
        for (i, rule) in self.rules.iter().enumerate() {
            for s in &rule.downsample {
                let (step, w) = (s.step.as_nanos(), window.as_nanos());
                if !(w % step == 0 || step % w == 0) {
                    return Err(StorageError::InvalidPolicy {
                        rule: format!("rule {} ({})", i + 1, rule.selector()),
                        problem: format!(
                            "downsample step {} neither divides the store's segment window ({}) \
                             nor is a multiple of it",
                            format_duration(s.step),
                            format_duration(window)
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

impl RetentionRule {
    fn matches_kind(&self, kind: SignalKind) -> bool {
        self.kind == kind || (kind == SignalKind::Rollup && self.kind == SignalKind::Metric)
    }
}

fn check_rule(number: usize, rule: &RetentionRule) -> Result<()> {
    let bad = |problem: String| {
        Err(StorageError::InvalidPolicy {
            rule: format!("rule {number} ({})", rule.selector()),
            problem,
        })
    };
    if rule.kind == SignalKind::Rollup {
        return bad(
            "rollups follow the rule of their metrics; write the rule for kind \"metrics\"".into(),
        );
    }
    if rule.keep.is_zero() {
        return bad("keep must be longer than 0".into());
    }
    if rule
        .namespace
        .as_deref()
        .is_some_and(|n| n.trim().is_empty())
    {
        return bad("namespace is empty".into());
    }
    if let Some(m) = &rule.metric {
        if rule.kind != SignalKind::Metric {
            return bad("metric patterns apply to kind \"metrics\" only".into());
        }
        if m.trim().is_empty() {
            return bad("metric pattern is empty".into());
        }
    }
    if !rule.downsample.is_empty() && rule.kind != SignalKind::Metric {
        return bad("only metrics can be downsampled".into());
    }
    let mut previous_step: Option<Duration> = None;
    let mut previous_keep = rule.keep;
    for s in &rule.downsample {
        let step = format_duration(s.step);
        if s.step < Duration::from_secs(1) || s.step.subsec_nanos() != 0 {
            return bad(format!(
                "downsample step {step} must be a whole number of seconds"
            ));
        }
        if let Some(p) = previous_step
            && (s.step <= p || s.step.as_secs() % p.as_secs() != 0)
        {
            return bad(format!(
                "downsample step {step} must be longer than, and a multiple of, the step before \
                 it ({})",
                format_duration(p)
            ));
        }
        if s.keep <= previous_keep {
            return bad(format!(
                "the {step} rollups are kept for {}, which must be longer than the {} before \
                 them (ages count from the data's time, so a rollup kept no longer than its \
                 source would never be read)",
                format_duration(s.keep),
                format_duration(previous_keep)
            ));
        }
        previous_step = Some(s.step);
        previous_keep = s.keep;
    }
    Ok(())
}

/// A rule as the configuration file writes it.
///
/// ```toml
/// [[retention.rules]]
/// kind = "metrics"
/// metric = "container_*"
/// keep = "7d"
/// downsample = [{ step = "1m", keep = "90d" }, { step = "1h", keep = "365d" }]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub kind: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub metric: Option<String>,
    pub keep: String,
    #[serde(default)]
    pub downsample: Vec<StepSpec>,
}

/// One `downsample` entry of a [`RuleSpec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    pub step: String,
    pub keep: String,
}

impl RuleSpec {
    fn to_rule(&self, number: usize) -> Result<RetentionRule> {
        let name = || {
            let mut out = format!("rule {number} (kind = {:?}", self.kind);
            if let Some(ns) = &self.namespace {
                out.push_str(&format!(", namespace = {ns:?}"));
            }
            if let Some(m) = &self.metric {
                out.push_str(&format!(", metric = {m:?}"));
            }
            out.push(')');
            out
        };
        let bad = |problem: String| StorageError::InvalidPolicy {
            rule: name(),
            problem,
        };
        let kind = self.kind.parse::<SignalKind>().map_err(|_| {
            bad(format!(
                "unknown kind {:?}: expected one of metrics, logs, spans, audit, events",
                self.kind
            ))
        })?;
        let duration =
            |what: &str, text: &str| parse_duration(text).map_err(|e| bad(format!("{what}: {e}")));
        let mut rule = RetentionRule {
            kind,
            namespace: self.namespace.clone(),
            metric: self.metric.clone(),
            keep: duration("keep", &self.keep)?,
            downsample: Vec::new(),
        };
        for (i, s) in self.downsample.iter().enumerate() {
            rule.downsample.push(DownsampleStep {
                step: duration(&format!("downsample[{i}].step"), &s.step)?,
                keep: duration(&format!("downsample[{i}].keep"), &s.keep)?,
            });
        }
        Ok(rule)
    }
}

/// `7d`, `90 days`, `1h 30m`, `10m` (or `0`): a duration, never negative.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    if t.starts_with('-') {
        return Err(format!("{text:?} is negative; durations must be positive"));
    }
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(t).map_err(|e| {
        format!("{text:?} is not a duration ({e}); write e.g. \"30s\", \"10m\", \"7d\", \"1y\"")
    })
}

/// The shortest exact spelling in days, hours, minutes and seconds: `90d`, `1h`, `30s`,
/// `1d 6h`.
pub fn format_duration(d: Duration) -> String {
    let mut left = d.as_secs();
    let mut parts = Vec::new();
    for (unit, secs) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if left >= secs {
            parts.push(format!("{}{unit}", left / secs));
            left %= secs;
        }
    }
    if d.subsec_nanos() > 0 || parts.is_empty() {
        parts.push(format!("{}ms", d.subsec_millis()));
    }
    parts.join(" ")
}

/// Shell-style match: `*` any run of characters (empty too), `?` exactly one.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// True when some string matches both patterns (`None`: every name).
fn patterns_overlap(a: Option<&str>, b: Option<&str>) -> bool {
    let (Some(a), Some(b)) = (a, b) else {
        return true;
    };
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // reach[i][j]: some string takes pattern a to position i and pattern b to position j.
    let mut reach = vec![vec![false; b.len() + 1]; a.len() + 1];
    reach[0][0] = true;
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            if !reach[i][j] {
                continue;
            }
            // A star may match nothing.
            if i < a.len() && a[i] == '*' {
                reach[i + 1][j] = true;
            }
            if j < b.len() && b[j] == '*' {
                reach[i][j + 1] = true;
            }
            if i < a.len() && j < b.len() {
                let (x, y) = (a[i], b[j]);
                // One character both can take: a star stays, anything else moves on.
                if x == '*' && y != '*' {
                    reach[i][j + 1] = true;
                } else if y == '*' && x != '*' {
                    reach[i + 1][j] = true;
                } else if x == '*' || x == '?' || y == '?' || x == y {
                    reach[i + 1][j + 1] = true;
                }
            }
        }
    }
    reach[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(n: u64) -> Duration {
        Duration::from_secs(n * 86_400)
    }

    #[test]
    fn globs_match_and_overlap() {
        assert!(glob_matches("container_*", "container_cpu_usage"));
        assert!(glob_matches("*_bytes", "net_rx_bytes"));
        assert!(glob_matches("c?u", "cpu"));
        assert!(!glob_matches("c?u", "cpuu"));
        assert!(glob_matches("*", ""));
        assert!(!glob_matches("cpu", "cpu2"));
        assert!(patterns_overlap(Some("cpu_*"), Some("*_total")));
        assert!(patterns_overlap(Some("a*c"), Some("ab*")));
        assert!(!patterns_overlap(Some("cpu_*"), Some("mem_*")));
        assert!(!patterns_overlap(Some("a?"), Some("abc")));
        assert!(patterns_overlap(Some("a?c"), Some("*c")));
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let policy = RetentionPolicy::new(vec![
            RetentionRule::new(SignalKind::Metric, days(7)),
            RetentionRule::new(SignalKind::Metric, days(30)).namespace("shop"),
            RetentionRule::new(SignalKind::Metric, days(2)).metric("container_*"),
            RetentionRule::new(SignalKind::Metric, days(3)).metric("container_cpu_usage"),
            RetentionRule::new(SignalKind::Audit, days(365)),
        ])
        .unwrap();
        let rule =
            |ns: Option<&str>, m: &str| policy.rule_for(SignalKind::Metric, ns, Some(m)).unwrap().0;
        assert_eq!(rule(Some("web"), "http_requests"), 1);
        assert_eq!(rule(Some("shop"), "container_memory"), 2);
        assert_eq!(rule(None, "container_memory"), 3);
        assert_eq!(rule(Some("web"), "container_cpu_usage"), 4);
        // Rollups follow their metric's rule.
        assert_eq!(
            policy
                .rule_for(SignalKind::Rollup, Some("web"), Some("container_memory"))
                .unwrap()
                .0,
            3
        );
        assert_eq!(
            policy
                .rule_for(SignalKind::Audit, Some("x"), None)
                .unwrap()
                .0,
            5
        );
        assert!(policy.rule_for(SignalKind::Log, Some("x"), None).is_none());
    }

    fn spec(kind: &str, keep: &str) -> RuleSpec {
        RuleSpec {
            kind: kind.into(),
            keep: keep.into(),
            ..RuleSpec::default()
        }
    }

    fn error(specs: &[RuleSpec]) -> String {
        RetentionPolicy::from_specs(specs).unwrap_err().to_string()
    }

    #[test]
    fn bad_rules_are_named() {
        let e = error(&[spec("metrics", "7d"), spec("logz", "1d")]);
        assert!(
            e.contains("rule 2") && e.contains("unknown kind \"logz\""),
            "{e}"
        );
        let e = error(&[spec("logs", "-3d")]);
        assert!(e.contains("rule 1") && e.contains("negative"), "{e}");
        let e = error(&[spec("logs", "soon")]);
        assert!(
            e.contains("keep") && e.contains("\"soon\" is not a duration"),
            "{e}"
        );
        let e = error(&[spec("logs", "0s")]);
        assert!(e.contains("longer than 0"), "{e}");
        let e = error(&[spec("logs", "7d"), spec("logs", "30d")]);
        assert!(
            e.contains("rule 2") && e.contains("rule 1") && e.contains("disagree"),
            "{e}"
        );
        let mut a = spec("metrics", "7d");
        a.metric = Some("cpu_*".into());
        let mut b = spec("metrics", "9d");
        b.metric = Some("*_tot".into());
        let e = error(&[a.clone(), b.clone()]);
        assert!(e.contains("disagree"), "{e}");
        b.metric = Some("mem_*".into());
        RetentionPolicy::from_specs(&[a, b]).unwrap();
        let mut d = spec("metrics", "7d");
        d.downsample = vec![
            StepSpec {
                step: "1h".into(),
                keep: "90d".into(),
            },
            StepSpec {
                step: "1m".into(),
                keep: "365d".into(),
            },
        ];
        let e = error(&[d.clone()]);
        assert!(e.contains("step 1m must be longer than"), "{e}");
        d.downsample.truncate(1);
        d.downsample[0].keep = "2d".into();
        let e = error(&[d]);
        assert!(e.contains("must be longer than the 7d"), "{e}");
        let mut l = spec("logs", "7d");
        l.metric = Some("x".into());
        assert!(error(&[l]).contains("metric patterns apply to kind"));
        // The same rule twice is harmless.
        RetentionPolicy::from_specs(&[spec("logs", "7d"), spec("logs", "1 week")]).unwrap();
    }
}
