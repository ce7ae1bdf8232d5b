//! The last line of defence against printing a password: scrubbing free
//! text (server messages, configuration echoes) of anything that looks like
//! a connection string's secret. Below everything else: errors use it.

/// Replaces the password in anything that looks like a connection string
/// (`postgres://u:PASS@…`, `password=PASS`) with `***`.
///
/// Used on text that did not come through `ConnInfo` — server messages,
/// configuration echoes — as a last line of defence.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority_end = tail[..end].find('/').unwrap_or(end);
        match tail[..authority_end].rfind('@') {
            Some(at) => {
                let userinfo = &tail[..at];
                match userinfo.split_once(':') {
                    Some((user, _)) => {
                        out.push_str(user);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&tail[at..end]);
            }
            None => out.push_str(&tail[..end]),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    redact_keyword_password(&out)
}

fn redact_keyword_password(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("password=") {
        let boundary = pos == 0 || !rest.as_bytes()[pos - 1].is_ascii_alphanumeric();
        let (head, tail) = rest.split_at(pos + "password=".len());
        out.push_str(head);
        if !boundary {
            rest = tail;
            continue;
        }
        let end = if let Some(quoted) = tail.strip_prefix('\'') {
            quoted.find('\'').map(|i| i + 2).unwrap_or(tail.len())
        } else {
            tail.find(|c: char| c.is_whitespace() || c == '&')
                .unwrap_or(tail.len())
        };
        out.push_str("***");
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}
