//! vigil's statements, parsed once: its own commands and everything DataFusion parses.
//!
//! [`parse`] tokenizes the text with the session's dialect. A statement whose words are one of
//! vigil's own (`FLUSH`, `COMPACT`, `ENFORCE RETENTION`, `SHOW RETENTION`, `SHOW HOLDS`; any
//! case, comments and a trailing `;` allowed) becomes that variant; anything else goes to
//! DataFusion's parser, with the temporal spellings rewritten first (`tokens`) and ASOF joins
//! nested (`nest_asof_joins`). A new statement is one variant here and one match arm where
//! it runs.
//!
//! Parse errors carry where the parser stopped as a DataFusion `Diagnostic` span (tokenizer
//! errors as their own location), so callers read positions from spans, never from message
//! text ([`crate::QueryError::location`]).

use datafusion::common::{Diagnostic, Span};
use datafusion::error::DataFusionError;
use datafusion::execution::SessionState;
use datafusion::sql::parser::{DFParserBuilder, Statement as DFStatement};
use datafusion::sql::sqlparser::dialect::{Dialect, dialect_from_str};
use datafusion::sql::sqlparser::tokenizer::{
    Location, Span as SqlSpan, Token, TokenWithSpan, Tokenizer,
};

use crate::error::{QueryError, Result};
use crate::sql::{depth, nest_statement, tokens};

/// One statement of vigil's SQL.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `FLUSH`: write every hot row into segments.
    Flush,
    /// `COMPACT`: merge small segments.
    Compact,
    /// `ENFORCE RETENTION`: run a retention pass now.
    EnforceRetention,
    /// `SHOW RETENTION`: the retention rules in effect.
    ShowRetention,
    /// `SHOW HOLDS`: the legal holds in effect.
    ShowHolds,
    /// Any other statement, as DataFusion's parser read it (temporal syntax included).
    Sql(Box<DFStatement>),
}

impl Statement {
    /// The statement's name in messages (`FLUSH`, `SHOW HOLDS`, or `SQL`).
    pub fn name(&self) -> &'static str {
        match self {
            Statement::Flush => "FLUSH",
            Statement::Compact => "COMPACT",
            Statement::EnforceRetention => "ENFORCE RETENTION",
            Statement::ShowRetention => "SHOW RETENTION",
            Statement::ShowHolds => "SHOW HOLDS",
            Statement::Sql(_) => "SQL",
        }
    }
}

/// vigil's own statements by their words.
const OWN: &[(&[&str], Statement)] = &[
    (&["FLUSH"], Statement::Flush),
    (&["COMPACT"], Statement::Compact),
    (&["ENFORCE", "RETENTION"], Statement::EnforceRetention),
    (&["SHOW", "RETENTION"], Statement::ShowRetention),
    (&["SHOW", "HOLDS"], Statement::ShowHolds),
];

/// Parses one statement with the session's dialect and recursion limit.
pub fn parse(state: &SessionState, text: &str) -> Result<Statement> {
    let options = state.config().options();
    let dialect_name = options.sql_parser.dialect.to_string();
    let dialect = dialect_from_str(&dialect_name)
        .ok_or_else(|| QueryError::syntax(format!("unsupported SQL dialect `{dialect_name}`")))?;
    let dialect = dialect.as_ref();
    let tokens = tokenize(text, dialect)?;
    if let Some(own) = own_statement(&tokens) {
        return Ok(own);
    }
    let rewritten = if tokens::needs_rewrite(text) {
        tokens::rewrite(text, dialect)?
    } else {
        None
    };
    let source = rewritten.as_deref().unwrap_or(text);
    let mut parser = DFParserBuilder::new(source)
        .with_dialect(dialect)
        .with_recursion_limit(options.sql_parser.recursion_limit.get())
        .build()?;
    let mut statements = match parser.parse_statements() {
        Ok(statements) => statements,
        // Positions in rewritten text would point at the rewrite, not at what was typed.
        Err(e) if rewritten.is_some() => return Err(e.into()),
        Err(e) => {
            let stopped = [
                parser.parser.get_current_token().clone(),
                parser.parser.peek_token_ref().clone(),
            ];
            return Err(located(e, &stopped, end_of(&tokens)).into());
        }
    };
    let mut statement = match (statements.pop_front(), statements.is_empty()) {
        (Some(statement), true) => statement,
        (None, _) => return Err(QueryError::syntax("no SQL statement given")),
        (Some(_), false) => return Err(QueryError::syntax("only one SQL statement at a time")),
    };
    nest_statement(&mut statement);
    depth::bound(&mut statement)?;
    Ok(Statement::Sql(Box::new(statement)))
}

fn tokenize(text: &str, dialect: &dyn Dialect) -> Result<Vec<TokenWithSpan>> {
    Tokenizer::new(dialect, text)
        .tokenize_with_location()
        .map_err(|e| QueryError::Syntax {
            message: e.message.clone(),
            location: (e.location.line > 0).then_some((e.location.line, e.location.column)),
        })
}

/// The statement the tokens spell if it is one of vigil's own: unquoted words only, matched
/// without regard to case, comments and trailing semicolons ignored.
fn own_statement(tokens: &[TokenWithSpan]) -> Option<Statement> {
    let mut words = Vec::new();
    let mut significant = tokens
        .iter()
        .map(|t| &t.token)
        .filter(|t| !matches!(t, Token::Whitespace(_) | Token::EOF))
        .collect::<Vec<_>>();
    while significant.last() == Some(&&Token::SemiColon) {
        significant.pop();
    }
    for token in significant {
        match token {
            Token::Word(w) if w.quote_style.is_none() => words.push(w),
            _ => return None,
        }
    }
    OWN.iter().find_map(|(spelling, statement)| {
        (words.len() == spelling.len()
            && words
                .iter()
                .zip(spelling.iter())
                .all(|(w, s)| w.value.eq_ignore_ascii_case(s)))
        .then(|| statement.clone())
    })
}

/// A parser error with the span of the token it is about, unless DataFusion's parser already
/// gave it one.
///
/// sqlparser reports the token it found instead of what it expected, and has either just
/// consumed it or stopped before it: `stopped` holds both (the last consumed token and the
/// next). The error's text names the found token, which tells the two apart; its position is
/// the token's span (the end of the text for `EOF`).
fn located(e: DataFusionError, stopped: &[TokenWithSpan; 2], end: Location) -> DataFusionError {
    if e.diagnostic().is_some() {
        return e;
    }
    let message = match &e {
        DataFusionError::SQL(parser, _) => parser.to_string(),
        other => other.to_string(),
    };
    let [consumed, next] = stopped;
    let names = |t: &TokenWithSpan| message.contains(&format!("found: {}", t.token));
    let at = if names(consumed) && !names(next) {
        consumed
    } else {
        next
    };
    // The end of the text has no span of its own: the problem is right after the last token.
    let span = if at.token == Token::EOF {
        SqlSpan::new(end, end)
    } else {
        at.span
    };
    let Some(span) = Span::try_from_sqlparser_span(span) else {
        return e;
    };
    e.with_diagnostic(Diagnostic::new_error(message, Some(span)))
}

/// Where the last token that is not white space ends.
fn end_of(tokens: &[TokenWithSpan]) -> Location {
    tokens
        .iter()
        .rev()
        .find(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
        .map_or(Location::new(1, 1), |t| t.span.end)
}

#[cfg(test)]
mod tests;
