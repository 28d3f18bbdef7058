//! The automaton against a naive backtracking matcher on random patterns and rows.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

/// What is left to match: patterns, or the rest of a repetition.
#[derive(Debug, Clone)]
enum Frame<'a> {
    Pat(&'a Pattern),
    Rep {
        inner: &'a Pattern,
        done: u32,
        min: u32,
        max: Option<u32>,
        greedy: bool,
    },
}

struct Rows<'a> {
    masks: &'a [u64],
    times: &'a [i64],
    within: Option<i64>,
}

/// Backtracking in preference order: the reference semantics.
fn bt(
    rows: &Rows,
    stack: Vec<Frame>,
    start: usize,
    pos: usize,
    path: Vec<usize>,
) -> Option<Vec<usize>> {
    let mut stack = stack;
    let Some(top) = stack.pop() else {
        return (pos > start).then_some(path);
    };
    match top {
        Frame::Pat(Pattern::Var(v)) => {
            let ok = pos < rows.masks.len()
                && rows.masks[pos] & (1 << v) != 0
                && rows
                    .within
                    .is_none_or(|w| rows.times[pos] - rows.times[start] <= w);
            if !ok {
                return None;
            }
            let mut path = path;
            path.push(*v);
            bt(rows, stack, start, pos + 1, path)
        }
        Frame::Pat(Pattern::Concat(ps)) => {
            stack.extend(ps.iter().rev().map(Frame::Pat));
            bt(rows, stack, start, pos, path)
        }
        Frame::Pat(Pattern::Alt(ps)) => ps.iter().find_map(|p| {
            let mut s = stack.clone();
            s.push(Frame::Pat(p));
            bt(rows, s, start, pos, path.clone())
        }),
        Frame::Pat(Pattern::Repeat {
            inner,
            min,
            max,
            greedy,
        }) => {
            stack.push(Frame::Rep {
                inner,
                done: 0,
                min: *min,
                max: *max,
                greedy: *greedy,
            });
            bt(rows, stack, start, pos, path)
        }
        Frame::Rep {
            inner,
            done,
            min,
            max,
            greedy,
        } => {
            let more = || {
                if max.is_some_and(|m| done >= m) {
                    return None;
                }
                let mut s = stack.clone();
                s.push(Frame::Rep {
                    inner,
                    done: done + 1,
                    min,
                    max,
                    greedy,
                });
                s.push(Frame::Pat(inner));
                bt(rows, s, start, pos, path.clone())
            };
            let stop = || {
                if done < min {
                    return None;
                }
                bt(rows, stack.clone(), start, pos, path.clone())
            };
            if greedy {
                more().or_else(stop)
            } else {
                stop().or_else(more)
            }
        }
    }
}

fn reference(pattern: &Pattern, rows: &Rows, skip: Skip) -> Vec<Found> {
    let mut out = vec![];
    let mut s = 0;
    while s < rows.masks.len() {
        match bt(rows, vec![Frame::Pat(pattern)], s, s, vec![]) {
            Some(vars) => {
                let found = Found { start: s, vars };
                s = next_start(&found, skip);
                out.push(found);
            }
            None => s += 1,
        }
    }
    out
}

fn random_pattern(rng: &mut StdRng, vars: usize, depth: u32) -> Pattern {
    let leaf = depth == 0 || rng.random_bool(0.35);
    if leaf {
        return Pattern::Var(rng.random_range(0..vars));
    }
    match rng.random_range(0..3) {
        0 => Pattern::Concat(
            (0..rng.random_range(2..4))
                .map(|_| random_pattern(rng, vars, depth - 1))
                .collect(),
        ),
        1 => Pattern::Alt(
            (0..rng.random_range(2..4))
                .map(|_| random_pattern(rng, vars, depth - 1))
                .collect(),
        ),
        _ => {
            // Repetition bodies that cannot match empty (see `docs/sql.md`).
            let mut inner = random_pattern(rng, vars, depth - 1);
            while inner.nullable() {
                inner = random_pattern(rng, vars, depth - 1);
            }
            let (min, max) = match rng.random_range(0..6) {
                0 => (0, None),
                1 => (1, None),
                2 => (0, Some(1)),
                3 => (2, Some(2)),
                4 => (1, Some(3)),
                _ => (2, None),
            };
            Pattern::Repeat {
                inner: Box::new(inner),
                min,
                max,
                greedy: rng.random_bool(0.5),
            }
        }
    }
}

#[test]
fn automaton_agrees_with_backtracking() {
    let mut rng = StdRng::seed_from_u64(20261125);
    for case in 0..3000 {
        let vars = rng.random_range(1..4);
        let pattern = random_pattern(&mut rng, vars, 3);
        let n = rng.random_range(0..14);
        let masks: Vec<u64> = (0..n)
            .map(|_| rng.random_range(0..(1u64 << vars)))
            .collect();
        let mut t = 0;
        let times: Vec<i64> = (0..n)
            .map(|_| {
                t += rng.random_range(0..3);
                t
            })
            .collect();
        let within = rng.random_bool(0.3).then(|| rng.random_range(0..6));
        let skip = match rng.random_range(0..4) {
            0 => Skip::PastLastRow,
            1 => Skip::ToNextRow,
            2 => Skip::ToFirst(rng.random_range(0..vars)),
            _ => Skip::ToLast(rng.random_range(0..vars)),
        };
        let rows = Rows {
            masks: &masks,
            times: &times,
            within,
        };
        let expected = reference(&pattern, &rows, skip);
        let program = Arc::new(Program::compile(&pattern).unwrap());
        let got = find_all(
            program,
            n,
            within.is_some(),
            skip,
            |row, v| masks[row] & (1 << v) != 0,
            |start, row| within.is_none_or(|w| times[row] - times[start] <= w),
        );
        assert_eq!(
            got, expected,
            "case {case}: pattern {pattern:?}, masks {masks:?}, times {times:?}, within {within:?}, skip {skip:?}"
        );
    }
}

#[test]
fn greedy_and_reluctant_choose_different_lengths() {
    // a b* (greedy) vs a b*? b (reluctant then b): rows a b b b
    let masks = [0b01u64, 0b10, 0b10, 0b10];
    let run = |p: Pattern| {
        find_all(
            Arc::new(Program::compile(&p).unwrap()),
            4,
            false,
            Skip::PastLastRow,
            |row, v| masks[row] & (1 << v) != 0,
            |_, _| true,
        )
    };
    let greedy = Pattern::Concat(vec![
        Pattern::Var(0),
        Pattern::Repeat {
            inner: Box::new(Pattern::Var(1)),
            min: 0,
            max: None,
            greedy: true,
        },
    ]);
    assert_eq!(
        run(greedy),
        vec![Found {
            start: 0,
            vars: vec![0, 1, 1, 1]
        }]
    );
    let reluctant = Pattern::Concat(vec![
        Pattern::Var(0),
        Pattern::Repeat {
            inner: Box::new(Pattern::Var(1)),
            min: 0,
            max: None,
            greedy: false,
        },
        Pattern::Var(1),
    ]);
    assert_eq!(
        run(reluctant),
        vec![Found {
            start: 0,
            vars: vec![0, 1]
        }]
    );
}

#[test]
fn long_greedy_matches_cost_one_step_per_row() {
    // `a b+` over 300,000 rows: the greedy thread reaches Match at every row. Remembering the
    // best match by unwinding its path each time would take 300,000^2 / 2 steps; dropping the
    // path recursively would overflow a test thread's stack.
    let rows = 300_000;
    let pattern = Pattern::Concat(vec![
        Pattern::Var(0),
        Pattern::Repeat {
            inner: Box::new(Pattern::Var(1)),
            min: 1,
            max: None,
            greedy: true,
        },
    ]);
    let program = Arc::new(Program::compile(&pattern).expect("compiles"));
    let found = find_all(
        program,
        rows,
        false,
        Skip::PastLastRow,
        |row, v| (row == 0) == (v == 0),
        |_, _| true,
    );
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].start, 0);
    assert_eq!(found[0].vars.len(), rows);
    assert!(found[0].vars[1..].iter().all(|&v| v == 1));
}
