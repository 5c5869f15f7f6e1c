//! URLs and e-mail addresses, read the way people say them:
//! "https://example.com/a" → "example dot com slash a",
//! "jo.smith@mail.org" → "jo dot smith at mail dot org".
//!
//! Recognised: anything starting with `http://`, `https://` or `www.`;
//! e-mail addresses (one `@`, a dotted domain ending in letters); bare
//! domains whose last label is a common top-level domain (`example.com`,
//! `docs.rs/x`) — a short list, so that prose like "e.g." or "Node.js"
//! is never mistaken for one. The scheme is not read; a trailing slash
//! is dropped.

use crate::scan::rest;
use crate::words::spell_digits;

const TLDS: [&str; 16] = [
    "com", "org", "net", "edu", "gov", "io", "dev", "co", "uk", "de", "fr", "info", "app", "ai",
    "us", "rs",
];

fn is_host(host: &str, need_tld: bool) -> bool {
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() < 2 {
        return false;
    }
    let labels_ok = labels
        .iter()
        .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    let last = labels[labels.len() - 1];
    let tld_ok = if need_tld {
        TLDS.contains(&last)
    } else {
        last.len() >= 2 && last.bytes().all(|b| b.is_ascii_alphabetic())
    };
    labels_ok && tld_ok
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._%+-".contains(&b))
        && is_host(domain, false)
}

/// What of `core` is read: the scheme stripped, or `None` if not a URL/email.
fn spoken_part(core: &str) -> Option<&str> {
    if !core.is_ascii() || core.len() < 4 {
        return None;
    }
    let lower = core.to_ascii_lowercase();
    for scheme in ["https://", "http://"] {
        if lower.starts_with(scheme) {
            let body = &core[scheme.len()..];
            let ok = body
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric());
            return ok.then_some(body);
        }
    }
    if lower.starts_with("www.") && core.len() > 4 {
        return Some(core);
    }
    if core.contains('@') {
        return is_email(core).then_some(core);
    }
    let host = core.split('/').next().unwrap_or("");
    is_host(host, true).then_some(core)
}

fn symbol_word(c: char) -> Option<&'static str> {
    Some(match c {
        '.' => "dot",
        '/' => "slash",
        '@' => "at",
        '-' => "dash",
        '_' => "underscore",
        ':' => "colon",
        '?' => "question mark",
        '=' => "equals",
        '&' => "and",
        '#' => "hash",
        '%' => "percent",
        '+' => "plus",
        '~' => "tilde",
        _ => return None,
    })
}

fn read(body: &str) -> String {
    let body = body.trim_end_matches('/');
    let mut words: Vec<String> = Vec::new();
    let mut run = String::new();
    let flush = |run: &mut String, words: &mut Vec<String>| {
        if run.is_empty() {
            return;
        }
        if run.eq_ignore_ascii_case("www") {
            words.push("w w w".to_string());
        } else {
            words.push(std::mem::take(run));
        }
        run.clear();
    };
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_alphabetic() {
            run.push(c);
        } else if c.is_ascii_digit() {
            flush(&mut run, &mut words);
            let mut digits = c.to_string();
            while let Some(d) = chars.next_if(char::is_ascii_digit) {
                digits.push(d);
            }
            words.push(spell_digits(&digits));
        } else {
            flush(&mut run, &mut words);
            if let Some(w) = symbol_word(c) {
                words.push(w.to_string());
            }
        }
    }
    flush(&mut run, &mut words);
    words.join(" ")
}

/// A URL or e-mail address starting at `i` (the start of a
/// whitespace-delimited chunk); trailing sentence punctuation is left out.
pub fn web_at(t: &str, i: usize) -> Option<(usize, String)> {
    let r = rest(t, i);
    let chunk = &r[..r.find(char::is_whitespace).unwrap_or(r.len())];
    let core = chunk.trim_end_matches(|c: char| ".,;:!?)]}'\">".contains(c));
    let body = spoken_part(core)?;
    let out = read(body);
    (!out.is_empty()).then(|| (i + core.len(), out))
}
