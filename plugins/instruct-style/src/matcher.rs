//! Finding the table's keywords in a normalized instruction.
//!
//! Matching is leftmost-longest over all dimensions at once: every keyword
//! occurrence is a candidate; going left to right, the longest candidate at
//! a position wins and claims its span, and candidates overlapping a claimed
//! span are dropped. So `快乐` (happy) beats `快` (fast), `悄悄话` (whisper)
//! beats `悄悄`, and `不快不慢` (normal speed, when listed) beats both `快`
//! and `慢`. Ties (same start, same length) go to the earlier dimension in
//! label order, then to the entry name: deterministic either way.
//!
//! Negation: a match is *negated* when a negation cue (`不要`, `别`,
//! `not`, …) occurs in its scope, the text between the start of its clause
//! (after the last `,` `。` `!` …) or the end of the previous match,
//! whichever is later, and the match itself. `不要太快` → `快` negated;
//! `慢一点, 别太快` → `慢` kept, `快` negated; `不要开心要悲伤` → `开心`
//! negated, `悲伤` kept (its scope, `要`, starts after `开心`). A negated
//! match claims its span but contributes nothing.

use crate::table::Table;
use crate::text::{contains_cue, is_clause_break};

/// One accepted keyword occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// Byte range in the normalized instruction.
    pub start: usize,
    pub end: usize,
    /// Index into [`Table::entries`].
    pub entry: usize,
    /// The negation cue that cancels this match, if any.
    pub negated_by: Option<String>,
}

/// All accepted matches in `text` (normalized), left to right,
/// non-overlapping.
pub fn find_matches(table: &Table, text: &str) -> Vec<Match> {
    let mut candidates: Vec<(usize, usize, usize)> = Vec::new();
    for (index, entry) in table.entries.iter().enumerate() {
        for keyword in &entry.keywords {
            for (start, end) in keyword.find_all(text) {
                candidates.push((start, end, index));
            }
        }
    }
    // Leftmost first, then longest, then table order (dimension, name).
    candidates.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then((b.1 - b.0).cmp(&(a.1 - a.0)))
            .then(a.2.cmp(&b.2))
    });

    let mut matches: Vec<Match> = Vec::new();
    let mut claimed_to = 0;
    for (start, end, entry) in candidates {
        if start < claimed_to {
            continue;
        }
        let scope = &text[clause_start(text, start).max(claimed_to)..start];
        let negated_by = table
            .negations
            .iter()
            .find(|cue| contains_cue(scope, cue))
            .map(|cue| cue.text.clone());
        matches.push(Match {
            start,
            end,
            entry,
            negated_by,
        });
        claimed_to = end;
    }
    matches
}

/// Byte offset where the clause containing `pos` starts.
fn clause_start(text: &str, pos: usize) -> usize {
    text[..pos]
        .char_indices()
        .rev()
        .find(|&(_, c)| is_clause_break(c))
        .map_or(0, |(i, c)| i + c.len_utf8())
}

/// The parts of `text` no match claimed, split at clause breaks, as
/// `(offset, fragment)` pairs: where unmatched requests may hide.
pub fn unclaimed_fragments<'t>(text: &'t str, matches: &[Match]) -> Vec<(usize, &'t str)> {
    let mut gaps = Vec::new();
    let mut from = 0;
    for m in matches {
        gaps.push((from, m.start));
        from = m.end;
    }
    gaps.push((from, text.len()));

    let mut out = Vec::new();
    for (gap_start, gap_end) in gaps {
        let mut piece_start = gap_start;
        for (i, c) in text[gap_start..gap_end].char_indices() {
            if is_clause_break(c) {
                push_fragment(&mut out, text, piece_start, gap_start + i);
                piece_start = gap_start + i + c.len_utf8();
            }
        }
        push_fragment(&mut out, text, piece_start, gap_end);
    }
    out
}

fn push_fragment<'t>(out: &mut Vec<(usize, &'t str)>, text: &'t str, start: usize, end: usize) {
    if start < end && !text[start..end].trim().is_empty() {
        out.push((start, &text[start..end]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::parse;
    use serde_json::json;
    use voxpipe_plugin_style::Config;

    fn table() -> Table {
        parse(
            &Config::from_value(json!({
                "emotions": {"happy": {"keywords": ["快乐", "开心"]}, "sad": {"keywords": ["悲伤"]}},
                "speeds": {"fast": {"keywords": ["快"], "speed": 1.3},
                           "slow": {"keywords": ["慢"], "speed": 0.8},
                           "normal": {"keywords": ["不快不慢"], "speed": 1.0}}
            }))
            .unwrap(),
        )
        .unwrap()
    }

    fn names(t: &Table, text: &str) -> Vec<(String, bool)> {
        find_matches(t, text)
            .into_iter()
            .map(|m| (t.entries[m.entry].name.clone(), m.negated_by.is_some()))
            .collect()
    }

    #[test]
    fn longest_match_wins_at_a_position() {
        let t = table();
        assert_eq!(names(&t, "快乐地说"), vec![("happy".to_string(), false)]);
        assert_eq!(names(&t, "不快不慢"), vec![("normal".to_string(), false)]);
    }

    #[test]
    fn negation_scope_ends_at_clause_or_previous_match() {
        let t = table();
        assert_eq!(names(&t, "不要太快"), vec![("fast".to_string(), true)]);
        assert_eq!(
            names(&t, "慢一点,别太快"),
            vec![("slow".to_string(), false), ("fast".to_string(), true)]
        );
        assert_eq!(
            names(&t, "不要开心要悲伤"),
            vec![("happy".to_string(), true), ("sad".to_string(), false)]
        );
        assert_eq!(names(&t, "不要停,快"), vec![("fast".to_string(), false)]);
    }

    #[test]
    fn fragments_skip_matches_and_split_at_clause_breaks() {
        let t = table();
        let text = "请用火星话,开心地说";
        let m = find_matches(&t, text);
        let frags: Vec<&str> = unclaimed_fragments(text, &m)
            .into_iter()
            .map(|f| f.1)
            .collect();
        assert_eq!(frags, vec!["请用火星话", "地说"]);
    }
}
