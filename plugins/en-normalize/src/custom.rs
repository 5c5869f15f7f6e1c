//! Custom tables from the config, matched literally at word boundaries.

use std::collections::BTreeMap;

use crate::scan::{alnum_at, prev_char, rest};

/// A table indexed by the first character of each key, longest key first,
/// so a lookup only tries the few keys that can match there.
pub struct Table<'a> {
    by_first: BTreeMap<char, Vec<(&'a str, &'a str)>>,
}

impl<'a> Table<'a> {
    pub fn new(map: &'a BTreeMap<String, String>) -> Self {
        let mut by_first: BTreeMap<char, Vec<(&str, &str)>> = BTreeMap::new();
        for (k, v) in map {
            if let Some(c) = k.chars().next() {
                by_first.entry(c).or_default().push((k, v));
            }
        }
        for list in by_first.values_mut() {
            list.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
        }
        Table { by_first }
    }

    /// The longest key matching at `i` with word boundaries: a key that
    /// starts (ends) with a letter or digit must not be glued to another
    /// letter or digit before (after) it. Returns (key, value, end).
    pub fn match_at(&self, t: &str, i: usize, c: char) -> Option<(&'a str, &'a str, usize)> {
        let list = self.by_first.get(&c)?;
        let r = rest(t, i);
        for &(k, v) in list {
            if !r.starts_with(k) {
                continue;
            }
            let end = i + k.len();
            let starts_alnum = k.chars().next().is_some_and(char::is_alphanumeric);
            let ends_alnum = k.chars().next_back().is_some_and(char::is_alphanumeric);
            if starts_alnum && prev_char(t, i).is_some_and(char::is_alphanumeric) {
                continue;
            }
            if ends_alnum && alnum_at(t, end) {
                continue;
            }
            return Some((k, v, end));
        }
        None
    }
}
