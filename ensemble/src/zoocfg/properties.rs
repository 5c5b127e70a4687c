//! Java `.properties` text as `java.util.Properties.load` reads it, which is
//! how ZooKeeper reads `zoo.cfg` and its dynamic file.
//!
//! Supported: `#` and `!` comments, blank lines, `=`, `:` or whitespace as the
//! key separator with spaces around it, continuation lines ending in a
//! backslash, and the escapes `\t \n \r \f \uXXXX`. Values are trimmed, as
//! ZooKeeper trims them.

/// One `key=value` entry and the (1-based) line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// What a properties file holds, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    /// A comment line, without its `#`/`!` and one following space.
    Comment(String),
    Entry(Entry),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadEscape {
    pub line: usize,
}

pub(crate) fn read(text: &str) -> Result<Vec<Item>, BadEscape> {
    let mut items = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, raw)) = lines.next() {
        let first_line = index + 1;
        let trimmed = raw.trim_start_matches([' ', '\t', '\u{c}']);
        if trimmed.is_empty() {
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix(['#', '!']) {
            items.push(Item::Comment(
                comment.strip_prefix(' ').unwrap_or(comment).to_owned(),
            ));
            continue;
        }
        let mut logical = String::from(trimmed);
        while ends_in_continuation(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start_matches([' ', '\t', '\u{c}'])),
                None => break,
            }
        }
        let (key, value) = split_key_value(&logical);
        items.push(Item::Entry(Entry {
            key: unescape(key, first_line)?.trim().to_owned(),
            value: unescape(value, first_line)?.trim().to_owned(),
            line: first_line,
        }));
    }
    Ok(items)
}

fn ends_in_continuation(line: &str) -> bool {
    line.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

/// Splits at the first unescaped `=`, `:` or whitespace; a whitespace
/// separator may be followed by one `=` or `:`.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    for (at, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' => return (&line[..at], line[at + 1..].trim_start()),
            ' ' | '\t' | '\u{c}' => {
                let rest = line[at..].trim_start();
                let rest = rest.strip_prefix(['=', ':']).unwrap_or(rest);
                return (&line[..at], rest.trim_start());
            }
            _ => {}
        }
    }
    (line, "")
}

fn unescape(text: &str, line: usize) -> Result<String, BadEscape> {
    if !text.contains('\\') {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .and_then(char::from_u32)
                    .ok_or(BadEscape { line })?;
                out.push(code);
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

/// Escapes a value so that [`read`] gives it back unchanged.
pub(crate) fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (at, c) in value.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{c}' => out.push_str("\\f"),
            ' ' if at == 0 => out.push_str("\\ "),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(text: &str) -> Vec<(String, String, usize)> {
        read(text)
            .unwrap()
            .into_iter()
            .filter_map(|item| match item {
                Item::Entry(e) => Some((e.key, e.value, e.line)),
                Item::Comment(_) => None,
            })
            .collect()
    }

    #[test]
    fn separators_spaces_and_comments() {
        let text = "# a comment\n! another\n\ntickTime = 2000\ninitLimit:10\nsyncLimit 5\n  dataDir=/data  \n";
        assert_eq!(
            entries(text),
            vec![
                ("tickTime".into(), "2000".into(), 4),
                ("initLimit".into(), "10".into(), 5),
                ("syncLimit".into(), "5".into(), 6),
                ("dataDir".into(), "/data".into(), 7),
            ]
        );
    }

    #[test]
    fn continuation_lines_and_escapes() {
        let text = "4lw.commands.whitelist=ruok,\\\n    srvr\nkey\\=with\\:sep=v\\u0041\\t\n";
        assert_eq!(
            entries(text),
            vec![
                ("4lw.commands.whitelist".into(), "ruok,srvr".into(), 1),
                ("key=with:sep".into(), "vA".into(), 3),
            ]
        );
    }

    #[test]
    fn a_bad_unicode_escape_names_its_line() {
        assert_eq!(read("a=1\nb=\\u00zz\n"), Err(BadEscape { line: 2 }));
    }

    #[test]
    fn escaped_values_read_back() {
        for value in ["plain", " leading", "back\\slash", "tab\there", "C:\\dir"] {
            let text = format!("k={}\n", escape_value(value));
            assert_eq!(entries(&text)[0].1, value.trim(), "{text:?}");
        }
    }
}
