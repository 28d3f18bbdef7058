//! Row patterns compiled to an automaton, and the automaton run over a partition's rows.
//!
//! A pattern is compiled to a small program (`Var`, `Split`, `Jmp`, `Match`) and run as a
//! Pike VM: all live partial matches advance together, one row at a time, in the priority
//! order SQL:2016 defines (earlier start first; greedy quantifiers prefer more, reluctant
//! ones fewer; alternation prefers the left branch). The result is the match a backtracking
//! matcher would find, in one pass and without backtracking; memory is the live threads.

use std::sync::Arc;

/// A row pattern over variables numbered `0..n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Var(usize),
    Concat(Vec<Pattern>),
    Alt(Vec<Pattern>),
    Repeat {
        inner: Box<Pattern>,
        min: u32,
        max: Option<u32>,
        greedy: bool,
    },
}

impl Pattern {
    /// True when the pattern can match zero rows.
    pub fn nullable(&self) -> bool {
        match self {
            Pattern::Var(_) => false,
            Pattern::Concat(ps) => ps.iter().all(Pattern::nullable),
            Pattern::Alt(ps) => ps.iter().any(Pattern::nullable),
            Pattern::Repeat { inner, min, .. } => *min == 0 || inner.nullable(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inst {
    /// Consume one row classified as this variable.
    Var(usize),
    /// Continue at both, preferring the first.
    Split(usize, usize),
    Jmp(usize),
    Match,
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Program {
    insts: Vec<Inst>,
}

/// Largest number of copies a bounded quantifier may expand to.
const MAX_EXPANSION: u32 = 10_000;

impl Program {
    pub fn compile(pattern: &Pattern) -> Result<Program, String> {
        let mut insts = vec![];
        emit(pattern, &mut insts)?;
        insts.push(Inst::Match);
        Ok(Program { insts })
    }

    pub fn len(&self) -> usize {
        self.insts.len()
    }

    /// The variables the first row of a match can have (bit set).
    pub fn first_vars(&self) -> u64 {
        let mut seen = vec![false; self.insts.len()];
        let mut stack = vec![0];
        let mut vars = 0u64;
        while let Some(pc) = stack.pop() {
            if std::mem::replace(&mut seen[pc], true) {
                continue;
            }
            match self.insts[pc] {
                Inst::Var(v) => vars |= 1 << v,
                Inst::Split(a, b) => stack.extend([a, b]),
                Inst::Jmp(a) => stack.push(a),
                Inst::Match => {}
            }
        }
        vars
    }

    pub fn is_empty(&self) -> bool {
        self.insts.is_empty()
    }
}

fn emit(pattern: &Pattern, out: &mut Vec<Inst>) -> Result<(), String> {
    match pattern {
        Pattern::Var(v) => out.push(Inst::Var(*v)),
        Pattern::Concat(ps) => {
            for p in ps {
                emit(p, out)?;
            }
        }
        Pattern::Alt(ps) => {
            // split L1, next; L1: p0; jmp end; next: split L2, next2; ...
            let mut jumps = vec![];
            for (i, p) in ps.iter().enumerate() {
                if i + 1 < ps.len() {
                    let split = out.len();
                    out.push(Inst::Split(split + 1, 0));
                    emit(p, out)?;
                    jumps.push(out.len());
                    out.push(Inst::Jmp(0));
                    let next = out.len();
                    out[split] = Inst::Split(split + 1, next);
                } else {
                    emit(p, out)?;
                }
            }
            let end = out.len();
            for j in jumps {
                out[j] = Inst::Jmp(end);
            }
        }
        Pattern::Repeat {
            inner,
            min,
            max,
            greedy,
        } => {
            if max.is_some_and(|m| m < *min) {
                return Err(format!(
                    "quantifier {{{min},{}}} has max below min",
                    max.unwrap_or(0)
                ));
            }
            if *min > MAX_EXPANSION || max.is_some_and(|m| m > MAX_EXPANSION) {
                return Err(format!(
                    "quantifier bounds above {MAX_EXPANSION} are not supported"
                ));
            }
            for _ in 0..*min {
                emit(inner, out)?;
            }
            match max {
                None => {
                    // L: split body, end (greedy) / split end, body (reluctant); body; jmp L
                    let split = out.len();
                    out.push(Inst::Split(0, 0));
                    emit(inner, out)?;
                    out.push(Inst::Jmp(split));
                    let end = out.len();
                    out[split] = branch(*greedy, split + 1, end);
                }
                Some(m) => {
                    // Each optional copy: split body, end; body. Nested so later copies
                    // are only tried after earlier ones.
                    let mut splits = vec![];
                    for _ in *min..*m {
                        splits.push(out.len());
                        out.push(Inst::Split(0, 0));
                        emit(inner, out)?;
                    }
                    let end = out.len();
                    for s in splits {
                        out[s] = branch(*greedy, s + 1, end);
                    }
                }
            }
        }
    }
    Ok(())
}

fn branch(greedy: bool, body: usize, skip: usize) -> Inst {
    if greedy {
        Inst::Split(body, skip)
    } else {
        Inst::Split(skip, body)
    }
}

/// Which variable each row of a match was classified as, last row first.
#[derive(Debug)]
struct PathNode {
    var: usize,
    prev: Option<Arc<PathNode>>,
}

impl Drop for PathNode {
    /// Drops the path a node at a time: the default recursive drop of a path as long as a
    /// match of many thousands of rows would overflow the stack of the thread running it.
    fn drop(&mut self) {
        let mut prev = self.prev.take();
        while let Some(node) = prev {
            match Arc::try_unwrap(node) {
                Ok(mut node) => prev = node.prev.take(),
                // Another path shares the rest; it is dropped with that path.
                Err(_) => break,
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Thread {
    pc: usize,
    start: usize,
    len: usize,
    path: Option<Arc<PathNode>>,
}

/// A match: the first row and each row's variable, in row order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub start: usize,
    pub vars: Vec<usize>,
}

impl Found {
    pub fn end(&self) -> usize {
        self.start + self.vars.len() - 1
    }
}

fn unwind(thread: &Thread) -> Found {
    let mut vars = Vec::with_capacity(thread.len);
    let mut node = thread.path.as_ref();
    while let Some(n) = node {
        vars.push(n.var);
        node = n.prev.as_ref();
    }
    vars.reverse();
    Found {
        start: thread.start,
        vars,
    }
}

/// The automaton running over one partition, fed one row at a time.
///
/// Rows are numbered from 0 in partition order. Between matches, the caller decides where the
/// next search starts (AFTER MATCH SKIP) and feeds rows from there.
#[derive(Debug)]
pub struct Matcher {
    program: Arc<Program>,
    /// Live threads in priority order, each waiting at a `Var`.
    threads: Vec<Thread>,
    /// The thread of the best match so far; it is final once no higher-priority thread is
    /// alive. It is kept as a thread (its path shared with the threads still growing it) and
    /// unwound into a [`Found`] only when decided: a greedy `x+` reaches `Match` at every row,
    /// and unwinding there each time would cost the match's length per row.
    best: Option<Thread>,
    /// Next row to feed.
    next_row: usize,
    /// With a WITHIN bound, threads of different starts at one state behave differently.
    bounded: bool,
    seen: Vec<u64>,
    generation: u64,
    /// Variables a match can begin with.
    first_vars: u64,
}

impl Matcher {
    pub fn new(program: Arc<Program>, bounded: bool) -> Self {
        let n = program.len();
        let first_vars = program.first_vars();
        Matcher {
            first_vars,
            program,
            threads: vec![],
            best: None,
            next_row: 0,
            bounded,
            seen: vec![0; n],
            generation: 0,
        }
    }

    /// Restarts the search at `row`, forgetting everything live.
    pub fn restart(&mut self, row: usize) {
        self.threads.clear();
        self.best = None;
        self.next_row = row;
    }

    /// The next row this matcher expects.
    pub fn next_row(&self) -> usize {
        self.next_row
    }

    /// The earliest row a live thread or a pending match still needs.
    pub fn oldest_needed(&self) -> usize {
        let live = self.threads.iter().map(|t| t.start).min();
        let best = self.best.as_ref().map(|b| b.start);
        live.into_iter().chain(best).min().unwrap_or(self.next_row)
    }

    /// Live partial matches.
    pub fn live(&self) -> usize {
        self.threads.len()
    }

    /// True when feeding a row with these variables can change nothing: no partial match is
    /// live and none can start with it. The caller may then [`Matcher::skip_row`].
    pub fn would_ignore(&self, mask: u64) -> bool {
        self.threads.is_empty() && self.best.is_none() && mask & self.first_vars == 0
    }

    /// Moves past a row that [`Matcher::would_ignore`].
    pub fn skip_row(&mut self) {
        self.next_row += 1;
    }

    fn add(&mut self, list: &mut Vec<Thread>, thread: Thread) {
        // A lower-priority thread in the same state can never do better than the one there
        // already. Without a WITHIN bound the state is the pc; with one, also the start.
        if self.bounded {
            if list
                .iter()
                .any(|t| t.pc == thread.pc && t.start == thread.start)
            {
                return;
            }
        } else {
            if self.seen[thread.pc] == self.generation {
                return;
            }
            self.seen[thread.pc] = self.generation;
        }
        match self.program.insts[thread.pc] {
            Inst::Jmp(to) => self.add(list, Thread { pc: to, ..thread }),
            Inst::Split(a, b) => {
                self.add(
                    list,
                    Thread {
                        pc: a,
                        ..thread.clone()
                    },
                );
                self.add(list, Thread { pc: b, ..thread });
            }
            Inst::Var(_) | Inst::Match => list.push(thread),
        }
    }

    /// Feeds row `self.next_row()`: `matches(v)` says whether the row satisfies variable `v`,
    /// `within_ok(start)` whether the row may join a match that began at row `start`.
    /// Returns a match once it is decided.
    pub fn feed(
        &mut self,
        matches: impl Fn(usize) -> bool,
        within_ok: impl Fn(usize) -> bool,
    ) -> Option<Found> {
        let row = self.next_row;
        self.next_row += 1;
        let mut current = std::mem::take(&mut self.threads);
        if self.best.is_none() {
            // A new start, lowest priority: earlier starts win.
            self.generation += 1;
            if !self.bounded {
                for t in &current {
                    self.seen[t.pc] = self.generation;
                }
            }
            let mut fresh = vec![];
            self.add(
                &mut fresh,
                Thread {
                    pc: 0,
                    start: row,
                    len: 0,
                    path: None,
                },
            );
            current.extend(fresh);
        }
        self.generation += 1;
        let mut next = Vec::with_capacity(current.len());
        for thread in current {
            if let Inst::Var(v) = self.program.insts[thread.pc]
                && matches(v)
                && within_ok(thread.start)
            {
                let advanced = Thread {
                    pc: thread.pc + 1,
                    start: thread.start,
                    len: thread.len + 1,
                    path: Some(Arc::new(PathNode {
                        var: v,
                        prev: thread.path.clone(),
                    })),
                };
                self.add(&mut next, advanced);
            }
        }
        self.threads = next;
        self.decide(false)
    }

    /// Ends the partition: the best match left, if any.
    pub fn finish(&mut self) -> Option<Found> {
        self.decide(true)
    }

    fn decide(&mut self, at_end: bool) -> Option<Found> {
        // The first thread at Match beats every thread after it; threads before it may still
        // find a preferred match.
        if let Some(i) = self
            .threads
            .iter()
            .position(|t| self.program.insts[t.pc] == Inst::Match && t.len > 0)
        {
            self.best = Some(self.threads[i].clone());
            self.threads.truncate(i);
        }
        let program = Arc::clone(&self.program);
        self.threads
            .retain(|t| matches!(program.insts[t.pc], Inst::Var(_)));
        if at_end || self.threads.is_empty() {
            self.threads.clear();
            return self.best.take().map(|best| unwind(&best));
        }
        None
    }
}

/// Where the search goes on after a match (AFTER MATCH SKIP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    PastLastRow,
    ToNextRow,
    /// To the first row classified as this variable.
    ToFirst(usize),
    /// To the last row classified as this variable.
    ToLast(usize),
}

/// The row where the next search starts. Skipping to a variable the match did not use, or
/// to the match's own first row, goes to the next row instead (a search must move on).
pub fn next_start(found: &Found, skip: Skip) -> usize {
    let row_of = |i: usize| found.start + i;
    let target = match skip {
        Skip::PastLastRow => return found.end() + 1,
        Skip::ToNextRow => return found.start + 1,
        Skip::ToFirst(v) => found.vars.iter().position(|&x| x == v).map(row_of),
        Skip::ToLast(v) => found.vars.iter().rposition(|&x| x == v).map(row_of),
    };
    match target {
        Some(row) if row > found.start => row,
        _ => found.start + 1,
    }
}

/// Runs `program` over a whole partition held in memory: `matches(row, v)` and
/// `within_ok(start, row)` as in [`Matcher::feed`].
pub fn find_all(
    program: Arc<Program>,
    rows: usize,
    bounded: bool,
    skip: Skip,
    matches: impl Fn(usize, usize) -> bool,
    within_ok: impl Fn(usize, usize) -> bool,
) -> Vec<Found> {
    let mut matcher = Matcher::new(program, bounded);
    let mut out = vec![];
    loop {
        let found = if matcher.next_row() < rows {
            let row = matcher.next_row();
            let mask = (0..64)
                .filter(|&v| v < 64 && matches(row, v))
                .fold(0u64, |m, v| m | 1 << v);
            if matcher.would_ignore(mask) {
                matcher.skip_row();
                continue;
            }
            matcher.feed(|v| matches(row, v), |start| within_ok(start, row))
        } else {
            match matcher.finish() {
                Some(f) => Some(f),
                None => break,
            }
        };
        if let Some(found) = found {
            let next = next_start(&found, skip);
            out.push(found);
            matcher.restart(next);
        }
    }
    out
}

#[cfg(test)]
#[path = "pattern_tests.rs"]
mod tests;
