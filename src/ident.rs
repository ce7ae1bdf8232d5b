//! Quoting of SQL identifiers and literals — the only place that turns a name
//! into SQL text.
//!
//! Values always travel as bind parameters; identifiers cannot, so they go
//! through [`quote_ident`], which PostgreSQL's own `quote_ident()` rules mirror:
//! wrap in double quotes and double any embedded double quote.

use std::fmt;

/// Quotes an identifier for PostgreSQL: `users` → `"users"`, `a"b` → `"a""b"`.
///
/// Always quoting (instead of quoting only when needed) keeps the rule simple
/// and makes case-sensitive names work as written.
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for ch in name.chars() {
        if ch == '"' {
            out.push('"');
        }
        out.push(ch);
    }
    out.push('"');
    out
}

/// Quotes a string literal for the rare statements that cannot take bind
/// parameters (`SET LOCAL lock_timeout = '5s'`, `COMMENT ON`).
///
/// Uses the standard-conforming form (`'it''s'`); a literal containing a
/// backslash is written as an `E''` string with escaped backslashes so the
/// result is correct whatever `standard_conforming_strings` says.
pub fn quote_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 3);
    if value.contains('\\') {
        out.push('E');
    }
    out.push('\'');
    for ch in value.chars() {
        match ch {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            _ => out.push(ch),
        }
    }
    out.push('\'');
    out
}

/// A possibly schema-qualified name such as `public.users`, parsed from
/// configuration (not from SQL), rendered quoted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QualifiedName {
    /// Schema, when given.
    pub schema: Option<String>,
    /// Object name.
    pub name: String,
}

impl QualifiedName {
    /// Parses `name`, `schema.name`, or either part in double quotes
    /// (`"My Schema"."Users"`). Unquoted parts are folded to lower case, as
    /// PostgreSQL does.
    pub fn parse(input: &str) -> Result<Self, String> {
        let parts = split_qualified(input)?;
        match parts.as_slice() {
            [name] => Ok(Self {
                schema: None,
                name: name.clone(),
            }),
            [schema, name] => Ok(Self {
                schema: Some(schema.clone()),
                name: name.clone(),
            }),
            _ => Err(format!(
                "`{input}` is not a valid name: expected `table` or `schema.table`"
            )),
        }
    }
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(schema) = &self.schema {
            write!(f, "{}.", quote_ident(schema))?;
        }
        f.write_str(&quote_ident(&self.name))
    }
}

fn split_qualified(input: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut chars = input.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    Some('"') => break,
                    Some(c) => part.push(c),
                    None => return Err(format!("`{input}` has an unterminated quoted name")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                if !(c.is_alphanumeric() || c == '_' || c == '$') {
                    return Err(format!(
                        "`{input}` is not a valid name: `{c}` must be inside double quotes"
                    ));
                }
                part.push(c.to_ascii_lowercase());
                chars.next();
            }
        }
        if part.is_empty() {
            return Err(format!("`{input}` is not a valid name: empty part"));
        }
        parts.push(part);
        match chars.next() {
            Some('.') => continue,
            None => return Ok(parts),
            Some(c) => return Err(format!("`{input}` is not a valid name: unexpected `{c}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_ident("users"), r#""users""#);
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(quote_ident("Mixed Case"), r#""Mixed Case""#);
    }

    #[test]
    fn quotes_literals() {
        assert_eq!(quote_literal("5s"), "'5s'");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal(r"a\b"), r"E'a\\b'");
    }

    #[test]
    fn parses_qualified_names() {
        let q = QualifiedName::parse("public.Users").unwrap();
        assert_eq!(q.schema.as_deref(), Some("public"));
        assert_eq!(q.name, "users");
        assert_eq!(q.to_string(), r#""public"."users""#);
        let q = QualifiedName::parse(r#""My ""S"""."T.x""#).unwrap();
        assert_eq!(q.schema.as_deref(), Some(r#"My "S""#));
        assert_eq!(q.name, "T.x");
        assert!(QualifiedName::parse("a.b.c").is_err());
        assert!(QualifiedName::parse("users; drop table x").is_err());
        assert!(QualifiedName::parse(r#""open"#).is_err());
        assert!(QualifiedName::parse("").is_err());
    }
}
