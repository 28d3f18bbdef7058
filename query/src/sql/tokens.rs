//! Token-level rewrites for the temporal syntax sqlparser does not parse.
//!
//! sqlparser 0.62 parses Snowflake's `ASOF JOIN t MATCH_CONDITION (..) [ON ..]` and
//! `MATCH_RECOGNIZE (.. PATTERN (..) DEFINE ..)`, but not DuckDB's `ASOF [LEFT] JOIN t ON ..`,
//! `ASOF LEFT JOIN`, QuestDB's `TOLERANCE`, a `NEAREST` direction or Flink's `WITHIN`. This
//! module moves each of those into syntax sqlparser does parse, without losing anything:
//!
//! - the ASOF options become a marker call `__vigil_asof('<spelling>', <left>, <nearest>,
//!   <tolerance>)` ANDed into the `MATCH_CONDITION` (one is added for DuckDB's spelling);
//! - `WITHIN <expr>` becomes the first `DEFINE` entry, `__vigil_within AS <expr>`.
//!
//! The planner reads the markers back (see [`crate::asof`] and [`crate::match_recognize`]).

use datafusion::sql::sqlparser::dialect::Dialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{QueryError, Result};

/// Name of the marker function carrying ASOF options through the parser.
pub const ASOF_MARKER: &str = "__vigil_asof";
/// Name of the DEFINE entry carrying a MATCH_RECOGNIZE `WITHIN` bound.
pub const WITHIN_MARKER: &str = "__vigil_within";

/// Words that end an ASOF join clause when met outside parentheses.
const CLAUSE_END: &[&str] = &[
    "JOIN",
    "INNER",
    "LEFT",
    "RIGHT",
    "FULL",
    "CROSS",
    "NATURAL",
    "ASOF",
    "WHERE",
    "GROUP",
    "ORDER",
    "LIMIT",
    "HAVING",
    "WINDOW",
    "QUALIFY",
    "UNION",
    "EXCEPT",
    "INTERSECT",
    "OFFSET",
    "FETCH",
    "MATCH_RECOGNIZE",
];

/// True when `sql` mentions anything the rewrite handles (the temporal keywords, or a
/// column named like a keyword), so plain SQL skips it.
pub fn needs_rewrite(sql: &str) -> bool {
    let upper = sql.to_ascii_uppercase();
    upper.contains("ASOF") || upper.contains("MATCH_RECOGNIZE") || upper.contains("CLUSTER")
}

/// Rewrites `sql` so that sqlparser parses it; returns `None` when nothing needed changing.
pub fn rewrite(sql: &str, dialect: &dyn Dialect) -> Result<Option<String>> {
    let mut tokens = Tokenizer::new(dialect, sql)
        .tokenize()
        .map_err(|e| QueryError::syntax(e.to_string()))?;
    let mut changed = false;
    let mut nth = 0;
    while let Some(at) = nth_word(&tokens, "ASOF", nth) {
        rewrite_asof(&mut tokens, at, dialect)?;
        changed = true;
        nth += 1;
    }
    let mut nth = 0;
    while let Some(at) = nth_word(&tokens, "PATTERN", nth) {
        changed |= rewrite_within(&mut tokens, at)?;
        nth += 1;
    }
    changed |= quote_column_keywords(&mut tokens);
    Ok(changed.then(|| tokens.iter().map(|t| t.to_string()).collect()))
}

/// Words that are vigil column names but keywords to the parser in some position: `cluster`
/// ends a projection list (`CLUSTER BY`) once trailing commas are allowed, so `SELECT pod,
/// cluster FROM ...` would not parse. Such a word not followed by `BY` is quoted.
fn quote_column_keywords(tokens: &mut [Token]) -> bool {
    let mut changed = false;
    for i in 0..tokens.len() {
        if !is_word(&tokens[i], "CLUSTER") {
            continue;
        }
        let followed_by_by = next_sig(tokens, i + 1).is_some_and(|j| is_word(&tokens[j], "BY"));
        if !followed_by_by {
            tokens[i] = Token::make_word("cluster", Some('"'));
            changed = true;
        }
    }
    changed
}

fn is_word(token: &Token, word: &str) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

fn is_space(token: &Token) -> bool {
    matches!(token, Token::Whitespace(_))
}

fn nth_word(tokens: &[Token], word: &str, nth: usize) -> Option<usize> {
    tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| is_word(t, word))
        .nth(nth)
        .map(|(i, _)| i)
}

/// Index of the next significant token at or after `from`.
fn next_sig(tokens: &[Token], from: usize) -> Option<usize> {
    (from..tokens.len()).find(|&i| !is_space(&tokens[i]))
}

/// Index of the `)` matching the `(` at `open`.
fn matching_paren(tokens: &[Token], open: usize) -> Result<usize> {
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i);
                }
            }
            _ => {}
        }
    }
    Err(QueryError::syntax("unbalanced parentheses"))
}

fn tokenize(text: &str, dialect: &dyn Dialect) -> Result<Vec<Token>> {
    Tokenizer::new(dialect, text)
        .tokenize()
        .map_err(|e| QueryError::syntax(e.to_string()))
}

fn render(tokens: &[Token]) -> String {
    tokens.iter().map(|t| t.to_string()).collect::<String>()
}

/// Where an ASOF join's clause ends: the first token, outside parentheses, that cannot be part
/// of it (or the end of input).
fn clause_end(tokens: &[Token], from: usize) -> usize {
    let mut depth = 0i32;
    let mut i = from;
    while i < tokens.len() {
        match &tokens[i] {
            Token::LParen => depth += 1,
            Token::RParen => {
                if depth == 0 {
                    return i;
                }
                depth -= 1;
            }
            Token::Comma | Token::SemiColon if depth == 0 => return i,
            t @ Token::Word(_) if depth == 0 => {
                let ends = CLAUSE_END.iter().any(|w| is_word(t, w));
                // `left(s, 2)` and `right(s, 2)` are functions, not joins.
                let is_call =
                    next_sig(tokens, i + 1).is_some_and(|n| matches!(tokens[n], Token::LParen));
                if ends && !is_call {
                    return i;
                }
            }
            _ => {}
        }
        i += 1;
    }
    tokens.len()
}

fn rewrite_asof(tokens: &mut Vec<Token>, at: usize, dialect: &dyn Dialect) -> Result<()> {
    let syntax = |msg: &str| QueryError::syntax(format!("ASOF JOIN: {msg}"));
    let mut join = next_sig(tokens, at + 1).ok_or_else(|| syntax("expected JOIN after ASOF"))?;
    let mut left = false;
    if is_word(&tokens[join], "LEFT") {
        left = true;
        // Drop `LEFT` (and an optional `OUTER`): sqlparser only knows `ASOF JOIN`.
        tokens.remove(join);
        join = next_sig(tokens, join).ok_or_else(|| syntax("expected JOIN after ASOF LEFT"))?;
        if is_word(&tokens[join], "OUTER") {
            tokens.remove(join);
            join = next_sig(tokens, join)
                .ok_or_else(|| syntax("expected JOIN after ASOF LEFT OUTER"))?;
        }
    }
    if !is_word(&tokens[join], "JOIN") {
        return Err(syntax(&format!(
            "expected JOIN after ASOF, found `{}`",
            tokens[join]
        )));
    }

    // Find MATCH_CONDITION or ON outside parentheses: the joined relation comes first.
    let mut depth = 0i32;
    let mut found = None;
    for (i, t) in tokens.iter().enumerate().skip(join + 1) {
        match t {
            Token::LParen => depth += 1,
            Token::RParen if depth == 0 => break,
            Token::RParen => depth -= 1,
            Token::Comma | Token::SemiColon if depth == 0 => break,
            t if depth == 0 && (is_word(t, "MATCH_CONDITION") || is_word(t, "ON")) => {
                found = Some(i);
                break;
            }
            t if depth == 0 && CLAUSE_END.iter().any(|w| is_word(t, w)) => break,
            _ => {}
        }
    }
    let keyword = found.ok_or_else(|| {
        syntax("expected MATCH_CONDITION (...) or ON ... after the joined relation")
    })?;
    let snowflake = is_word(&tokens[keyword], "MATCH_CONDITION");

    // The extent of the rest of the clause, where TOLERANCE and NEAREST may appear.
    let (condition_close, rest_from) = if snowflake {
        let open = next_sig(tokens, keyword + 1)
            .filter(|&i| matches!(tokens[i], Token::LParen))
            .ok_or_else(|| syntax("expected `(` after MATCH_CONDITION"))?;
        let close = matching_paren(tokens, open)?;
        (Some((open, close)), close + 1)
    } else {
        (None, keyword + 1)
    };
    let end = clause_end(tokens, rest_from);
    let options_at = (rest_from..end)
        .find(|&i| is_word(&tokens[i], "TOLERANCE") || is_word(&tokens[i], "NEAREST"));
    let mut tolerance = None;
    let mut nearest = false;
    if let Some(options_at) = options_at {
        let mut i = options_at;
        while i < end {
            if is_word(&tokens[i], "NEAREST") {
                nearest = true;
                i += 1;
            } else if is_word(&tokens[i], "TOLERANCE") {
                let stop = (i + 1..end)
                    .find(|&j| is_word(&tokens[j], "NEAREST"))
                    .unwrap_or(end);
                let expr = render(&tokens[i + 1..stop]);
                if expr.trim().is_empty() {
                    return Err(syntax(
                        "TOLERANCE needs a value, e.g. INTERVAL '30 seconds'",
                    ));
                }
                if tolerance.replace(expr).is_some() {
                    return Err(syntax("TOLERANCE given twice"));
                }
                i = stop;
            } else if is_space(&tokens[i]) {
                i += 1;
            } else {
                return Err(syntax(&format!(
                    "unexpected `{}` after TOLERANCE/NEAREST",
                    tokens[i]
                )));
            }
        }
        tokens.splice(
            options_at..end,
            [Token::Whitespace(
                datafusion::sql::sqlparser::tokenizer::Whitespace::Space,
            )],
        );
    }

    let marker = format!(
        "{ASOF_MARKER}('{}', {left}, {nearest}, {})",
        if snowflake { "snowflake" } else { "duckdb" },
        tolerance.as_deref().unwrap_or("NULL")
    );
    match condition_close {
        Some((open, close)) => {
            // MATCH_CONDITION ( cond ) -> MATCH_CONDITION ( ( cond ) AND marker )
            let tail = tokenize(&format!(") AND {marker}"), dialect)?;
            tokens.splice(close..close, tail);
            tokens.insert(open + 1, Token::LParen);
        }
        None => {
            let insert = tokenize(&format!("MATCH_CONDITION ({marker}) "), dialect)?;
            tokens.splice(keyword..keyword, insert);
        }
    }
    Ok(())
}

/// `PATTERN (..) WITHIN <expr> DEFINE ..` -> `PATTERN (..) DEFINE __vigil_within AS <expr>, ..`.
fn rewrite_within(tokens: &mut Vec<Token>, pattern: usize) -> Result<bool> {
    let Some(open) = next_sig(tokens, pattern + 1).filter(|&i| matches!(tokens[i], Token::LParen))
    else {
        return Ok(false);
    };
    let close = matching_paren(tokens, open)?;
    let Some(within) = next_sig(tokens, close + 1).filter(|&i| is_word(&tokens[i], "WITHIN"))
    else {
        return Ok(false);
    };
    let define = (within + 1..tokens.len())
        .find(|&i| is_word(&tokens[i], "DEFINE"))
        .ok_or_else(|| {
            QueryError::syntax("MATCH_RECOGNIZE: expected DEFINE after WITHIN <interval>")
        })?;
    let expr: Vec<Token> = tokens[within + 1..define].to_vec();
    if expr.iter().all(is_space) {
        return Err(QueryError::syntax(
            "MATCH_RECOGNIZE: WITHIN needs a duration, e.g. WITHIN INTERVAL '1 hour'",
        ));
    }
    let mut entry = vec![
        Token::Whitespace(datafusion::sql::sqlparser::tokenizer::Whitespace::Space),
        Token::make_word(WITHIN_MARKER, None),
        Token::Whitespace(datafusion::sql::sqlparser::tokenizer::Whitespace::Space),
        Token::make_keyword("AS"),
        Token::Whitespace(datafusion::sql::sqlparser::tokenizer::Whitespace::Space),
    ];
    entry.extend(expr);
    entry.push(Token::Comma);
    tokens.splice(define + 1..define + 1, entry);
    tokens.drain(within..define);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::GenericDialect;

    /// The rewrite, with runs of spaces collapsed.
    fn rw(sql: &str) -> String {
        let out = rewrite(sql, &GenericDialect {})
            .unwrap()
            .unwrap_or_else(|| sql.to_string());
        out.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn duckdb_spelling_gets_a_match_condition() {
        let out = rw("SELECT * FROM a ASOF JOIN b ON a.k = b.k AND a.t >= b.t WHERE x > 1");
        assert_eq!(
            out,
            "SELECT * FROM a ASOF JOIN b MATCH_CONDITION (__vigil_asof('duckdb', false, false, NULL)) ON a.k = b.k AND a.t >= b.t WHERE x > 1"
        );
    }

    #[test]
    fn snowflake_spelling_keeps_its_condition_and_gains_options() {
        let out = rw(
            "SELECT * FROM a ASOF LEFT JOIN b MATCH_CONDITION (a.t >= b.t) ON a.k = b.k TOLERANCE INTERVAL '30 seconds' NEAREST ORDER BY 1",
        );
        assert_eq!(
            out,
            "SELECT * FROM a ASOF JOIN b MATCH_CONDITION ((a.t >= b.t) AND __vigil_asof('snowflake', true, true, INTERVAL '30 seconds' )) ON a.k = b.k ORDER BY 1"
        );
    }

    #[test]
    fn functions_named_left_do_not_end_the_clause() {
        let out = rw("SELECT * FROM a ASOF JOIN b ON left(a.k, 2) = b.k AND a.t >= b.t");
        assert!(
            out.contains("ON left(a.k, 2) = b.k AND a.t >= b.t"),
            "{out}"
        );
    }

    #[test]
    fn within_moves_into_define() {
        let out = rw(
            "SELECT * FROM t MATCH_RECOGNIZE (ORDER BY ts PATTERN (a b+) WITHIN INTERVAL '1 hour' DEFINE a AS x = 1)",
        );
        assert!(
            out.contains("PATTERN (a b+) DEFINE __vigil_within AS INTERVAL '1 hour' , a AS x = 1)"),
            "{out}"
        );
    }

    #[test]
    fn plain_sql_is_untouched() {
        assert!(rewrite("SELECT 1", &GenericDialect {}).unwrap().is_none());
    }

    #[test]
    fn asof_without_a_condition_is_a_clear_error() {
        let err = rewrite(
            "SELECT * FROM a ASOF JOIN b WHERE 1 = 1",
            &GenericDialect {},
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("MATCH_CONDITION"), "{err}");
    }
}
