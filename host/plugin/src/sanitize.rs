//! Strings a plugin hands the host are untrusted: they end up in HTTP
//! bodies, headers, log lines (JSON and text), span attributes and metric
//! labels. Free text is cut to a documented length and made one line;
//! identifiers that the host looks things up by are checked, not repaired.

/// Longest plugin name and version (bytes). They are metric labels and
/// appear on every span of a call.
pub const MAX_NAME: usize = 64;
/// Longest plugin description (bytes).
pub const MAX_DESCRIPTION: usize = 256;
/// Longest error message a plugin's `stage-error` may carry into a response
/// (bytes).
pub const MAX_ERROR_MESSAGE: usize = 512;

/// Characters that reorder or hide text on a terminal or in a browser
/// (bidirectional overrides and isolates, zero-width marks): dropped from
/// free text, refused in identifiers.
fn is_invisible_control(c: char) -> bool {
    matches!(c,
        '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' |
        '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// `s` made safe to show on one line: control characters (newlines, tabs,
/// escapes, NUL) become spaces, invisible reordering characters are dropped,
/// and the result is cut to at most `max` bytes at a character boundary,
/// ending in `…` when cut. Reads at most about `max` bytes of `s`, however
/// long it is.
pub fn one_line(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    for c in s.chars() {
        if is_invisible_control(c) {
            continue;
        }
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > max {
            // Make room for the ellipsis (3 bytes) without splitting a char.
            while out.len() + '…'.len_utf8() > max {
                if out.pop().is_none() {
                    break;
                }
            }
            if out.len() + '…'.len_utf8() <= max {
                out.push('…');
            }
            return out;
        }
        out.push(c);
    }
    out
}

/// Why `s` is not a usable identifier (a plugin name, a voice or speaker
/// name, a language tag, an emotion), or `None` when it is: 1 to `max`
/// bytes, no control or invisible characters, no leading or trailing space.
pub fn identifier_problem(s: &str, max: usize) -> Option<String> {
    if s.is_empty() {
        return Some("is empty".to_string());
    }
    if s.len() > max {
        return Some(format!("is {} bytes long (at most {max})", s.len()));
    }
    if s.chars().any(|c| c.is_control() || is_invisible_control(c)) {
        return Some("contains control characters".to_string());
    }
    if s.trim() != s {
        return Some("has leading or trailing whitespace".to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_removes_line_breaks_and_escapes() {
        assert_eq!(one_line("a\nb\r\nc\u{1b}[31m\0d", 100), "a b  c [31m d");
        assert_eq!(one_line("left\u{202E}right", 100), "leftright");
        assert_eq!(one_line("plain", 100), "plain");
    }

    #[test]
    fn one_line_cuts_at_a_char_boundary_with_an_ellipsis() {
        let cut = one_line(&"x".repeat(1000), 10);
        assert_eq!(cut, "xxxxxxx…");
        assert!(cut.len() <= 10);
        let cut = one_line(&"四".repeat(100), 10);
        assert!(cut.len() <= 10, "{cut}");
        assert!(cut.ends_with('…'));
        assert_eq!(one_line("12345", 5), "12345");
    }

    #[test]
    fn identifiers_are_checked_not_repaired() {
        assert_eq!(identifier_problem("en-normalize", 64), None);
        assert_eq!(identifier_problem("四川话", 64), None);
        assert!(identifier_problem("", 64).is_some());
        assert!(identifier_problem("a\nb", 64).is_some());
        assert!(identifier_problem("a\0", 64).is_some());
        assert!(identifier_problem(" a", 64).is_some());
        assert!(identifier_problem(&"a".repeat(65), 64).is_some());
        assert!(identifier_problem("ab\u{202E}", 64).is_some());
    }
}
