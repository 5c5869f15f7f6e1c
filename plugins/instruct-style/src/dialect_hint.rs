//! Spotting dialect requests the table does not know, so that "a frontend
//! sends 上海话 but the table lacks it" is reported by name instead of
//! vanishing.
//!
//! Only text no keyword claimed is searched. A Chinese request is a marker
//! suffix (`话`, `语`, `腔`, `方言`, `口音` by default) preceded by up to four
//! Han characters; everything up to the last filler character (`请`, `用`,
//! `这`, `句`, …) is cut off, and nothing left means no request (`这句话`,
//! `说话`, `的语气`). An English request is a marker word (`dialect`,
//! `accent`) with the word before it unless that is a filler (`a`, `with`,
//! …). This is a heuristic for a log line and an unmapped reason: it can
//! name a non-dialect (`笑话`), and it never changes the style.

use crate::matcher::{unclaimed_fragments, Match};
use crate::table::Table;
use crate::text::{is_cjk, is_clause_break, is_word_char};

/// Most Han characters kept before a marker (`黑龙江话` needs three).
const MAX_NAME_CHARS: usize = 4;

/// Names of unmatched dialect requests, in instruction order, deduplicated.
pub fn unmatched_dialects(table: &Table, text: &str, matches: &[Match]) -> Vec<String> {
    let mut found: Vec<(usize, String)> = Vec::new();
    for (offset, fragment) in unclaimed_fragments(text, matches) {
        for marker in &table.markers {
            for (pos, _) in fragment.match_indices(marker.as_str()) {
                if let Some((start, name)) = chinese_request(table, fragment, pos, marker) {
                    found.push((offset + start, name));
                }
            }
        }
        for word in &table.marker_words {
            for (start, end) in word.find_all(fragment) {
                // "Cantonese dialect": the marker word qualifies the match
                // right before it, which is no unmatched request.
                let follows_match = fragment[..start].trim().is_empty()
                    && text[..offset]
                        .chars()
                        .next_back()
                        .is_some_and(|c| !is_clause_break(c));
                if follows_match {
                    continue;
                }
                let (start, name) = english_request(table, fragment, start, end);
                found.push((offset + start, name));
            }
        }
    }
    found.sort();
    let mut names: Vec<String> = Vec::new();
    for (_, name) in found {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The request ending with `marker` at `pos`, e.g. `火星话` in `请用火星话`.
fn chinese_request(
    table: &Table,
    fragment: &str,
    pos: usize,
    marker: &str,
) -> Option<(usize, String)> {
    let run_start = fragment[..pos]
        .char_indices()
        .rev()
        .take_while(|&(_, c)| is_cjk(c))
        .last()
        .map_or(pos, |(i, _)| i);
    let run = &fragment[run_start..pos];
    let cut = table
        .fillers
        .iter()
        .filter_map(|f| run.rfind(f.as_str()).map(|i| i + f.len()))
        .max()
        .unwrap_or(0);
    let core = &run[cut..];
    let skip = core.chars().count().saturating_sub(MAX_NAME_CHARS);
    let core_start = core.char_indices().nth(skip).map_or(core.len(), |(i, _)| i);
    let core = &core[core_start..];
    if core.is_empty() {
        return None;
    }
    Some((run_start + cut + core_start, format!("{core}{marker}")))
}

/// The request around the marker word at `start..end`, e.g.
/// `martian accent` in `with a martian accent`.
fn english_request(table: &Table, fragment: &str, start: usize, end: usize) -> (usize, String) {
    let marker = &fragment[start..end];
    let before = fragment[..start].trim_end();
    let word_start = before
        .char_indices()
        .rev()
        .take_while(|&(_, c)| is_word_char(c))
        .last()
        .map(|(i, _)| i);
    match word_start {
        Some(ws) if !table.fillers.iter().any(|f| f == &before[ws..]) => {
            (ws, format!("{} {marker}", &before[ws..]))
        }
        _ => (start, marker.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::find_matches;
    use crate::table::parse;
    use crate::text::normalize;
    use serde_json::json;
    use voxpipe_plugin_style::Config;

    fn hints(instruct: &str) -> Vec<String> {
        let table = parse(
            &Config::from_value(json!({
                "dialects": {"sichuanese": {"keywords": ["四川话"]}},
                "emotions": {"sad": {"keywords": ["悲伤"]}}
            }))
            .unwrap(),
        )
        .unwrap();
        let text = normalize(instruct);
        let m = find_matches(&table, &text);
        unmatched_dialects(&table, &text, &m)
    }

    #[test]
    fn unknown_dialects_are_named() {
        assert_eq!(hints("请用火星话"), vec!["火星话"]);
        assert_eq!(hints("上海话"), vec!["上海话"]);
        assert_eq!(hints("带点上海口音"), vec!["上海口音"]);
        assert_eq!(hints("用黑龙江话说"), vec!["黑龙江话"]);
        assert_eq!(hints("in a Martian accent"), vec!["martian accent"]);
        assert_eq!(hints("with an accent"), vec!["accent"]);
        assert!(hints("四川话 dialect").is_empty());
    }

    #[test]
    fn ordinary_words_with_markers_are_not_requests() {
        assert!(hints("用四川话说这句话").is_empty());
        assert!(hints("用悲伤的语气朗读").is_empty());
        assert!(hints("慢慢说话").is_empty());
        assert!(hints("").is_empty());
    }
}
