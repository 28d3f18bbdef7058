use super::*;
use crate::session::{SessionOptions, new_context};

fn state() -> SessionState {
    new_context(&SessionOptions::default())
        .expect("context")
        .state()
}

fn check(text: &str) -> Result<Statement> {
    parse(&state(), text)
}

#[test]
fn vigil_statements_are_read_by_their_words_in_any_case() {
    for (text, expected) in [
        ("FLUSH", Statement::Flush),
        ("flush;", Statement::Flush),
        ("  Compact ;; ", Statement::Compact),
        ("enforce\n  RETENTION", Statement::EnforceRetention),
        ("-- why\nSHOW RETENTION", Statement::ShowRetention),
        ("show /* all of them */ holds;", Statement::ShowHolds),
    ] {
        assert_eq!(check(text).expect(text), expected, "{text:?}");
    }
}

#[test]
fn anything_else_is_sql() {
    for text in [
        "SELECT 1",
        "SHOW TABLES",
        "SHOW COLUMNS FROM metrics",
        "SELECT flush FROM t",
        // Quoted words are identifiers, not vigil's keywords.
        "SELECT * FROM \"compact\"",
    ] {
        assert!(
            matches!(check(text), Ok(Statement::Sql(_))),
            "{text:?}: {:?}",
            check(text)
        );
    }
    // Words of a vigil statement with more after them are SQL, and not valid SQL.
    let e = check("FLUSH NOW please").expect_err("not a statement");
    assert!(!e.to_string().is_empty());
}

#[test]
fn temporal_syntax_is_rewritten_before_parsing() {
    let parsed = check("SELECT * FROM a ASOF JOIN b ON a.k = b.k AND a.t >= b.t").expect("asof");
    let Statement::Sql(statement) = parsed else {
        panic!("SQL")
    };
    assert!(
        statement.to_string().contains("MATCH_CONDITION"),
        "{statement}"
    );
}

#[test]
fn several_statements_or_none_are_refused() {
    let e = check("SELECT 1; SELECT 2").expect_err("two");
    assert!(e.to_string().contains("one SQL statement"), "{e}");
    let e = check("  ;  ").expect_err("none");
    assert!(e.to_string().contains("no SQL statement"), "{e}");
}

/// sqlparser prints where it stopped as " at Line: L, Column: C"; the span vigil reports
/// must be the same place. Reading the message here is the test's oracle only.
fn printed_location(message: &str) -> Option<(u64, u64)> {
    let rest = &message[message.find("Line: ")? + 6..];
    let (line, rest) = rest.split_once(',')?;
    let column: String = rest
        .trim_start()
        .strip_prefix("Column: ")?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((line.trim().parse().ok()?, column.parse().ok()?))
}

#[test]
fn parse_errors_carry_the_position_of_the_token_they_found() {
    for text in [
        "SELECT pod FROM metrics\nWHERE pod = = 'x'",
        "SELECT pod FRM metrics",
        "SELECT count(* FROM metrics",
        "SELECT * FROM metrics ORDER pod",
        "SELECT CASE WHEN 1 THEN 2 FROM t",
        "SELECT a FROM t WHERE b IN (1, 2 FROM u",
        "SELECT 1 AS FROM t",
        "SELECT * FROM t WHERE a = 1 GROUP a",
    ] {
        let e = check(text).expect_err(text);
        let printed = printed_location(&e.to_string());
        assert!(
            printed.is_some(),
            "{text:?}: the parser named no place: {e}"
        );
        assert_eq!(e.location(), printed, "{text:?}: {e}");
    }
}

#[test]
fn a_statement_cut_short_is_located_at_its_end() {
    for (text, end) in [
        ("SELECT pod,\n  FROM metrics WHERE", (2, 21)),
        ("SELECT * FROM metrics LIMIT", (1, 28)),
        ("SELECT 1 +", (1, 11)),
    ] {
        let e = check(text).expect_err(text);
        assert_eq!(e.location(), Some(end), "{text:?}: {e}");
    }
}

#[test]
fn tokenizer_errors_carry_their_location() {
    let e = check("SELECT 1,\n  'unterminated").expect_err("unterminated");
    assert_eq!(e.location().map(|(line, _)| line), Some(2), "{e}");
}
