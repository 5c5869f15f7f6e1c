//! From matches to a [`StyleOutcome`]: one choice per dimension, the style,
//! the label, and the log lines that explain what was ignored.
//!
//! Rules:
//! - One entry per dimension; when an instruction names two (two dialects,
//!   fast and slow), the first in the instruction wins and a warn line names
//!   the loser. Emotions allow up to `max_emotions` entries (default 1).
//! - An explicit speed/pitch/volume word wins over an emotion's tweak of the
//!   same field; among emotions the first one's tweak wins.
//! - The label lists dimensions in the fixed order dialect, emotion, speed,
//!   pitch, volume, with entry names (emotions sorted, joined by `+`):
//!   `dialect=sichuanese;emotion=happy;speed=slow`.
//! - Nothing mapped → `Unmapped` with a reason naming any dialect-like
//!   request the table lacks (`no dialect entry matches "上海话"…`).
//! - Something mapped but a dialect-like request unmatched → mapped, plus a
//!   warn line naming the unmatched part (the label only ever says what was
//!   understood, so it stays low-cardinality).

use voxpipe_plugin_style::log::Level;
use voxpipe_plugin_style::{StageError, Style, StyleOutcome};

use crate::dialect_hint::unmatched_dialects;
use crate::matcher::{find_matches, Match};
use crate::table::{Dim, Entry, Table};
use crate::text::{normalize, quote_cut};

/// The outcome and the log lines to write for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub outcome: StyleOutcome,
    pub notes: Vec<(Level, String)>,
}

/// Map one instruction with a validated table.
pub fn map(table: &Table, instruct: &str) -> Result<Mapping, StageError> {
    let chars = instruct.chars().count();
    if chars > table.max_instruct_chars {
        return Err(StageError::InvalidInput(format!(
            "instruction is {chars} characters, more than max_instruct_chars = {}",
            table.max_instruct_chars
        )));
    }
    let text = normalize(instruct);
    let mut notes = Vec::new();
    if text.is_empty() {
        return Ok(Mapping {
            outcome: StyleOutcome::Unmapped("empty instruction: nothing to map".to_string()),
            notes,
        });
    }

    let matches = find_matches(table, &text);
    let unmatched = unmatched_dialects(table, &text, &matches);
    let said = |m: &Match| &text[m.start..m.end];

    // One choice per dimension, in instruction order.
    let mut chosen: Vec<&Match> = Vec::new();
    let mut negated: Vec<&Match> = Vec::new();
    for m in &matches {
        let entry = &table.entries[m.entry];
        if let Some(cue) = &m.negated_by {
            note(
                &mut notes,
                Level::Info,
                format!(
                    "ignored negated request \"{}\" ({}={}) after \"{cue}\"",
                    said(m),
                    entry.dim.name(),
                    entry.name
                ),
            );
            negated.push(m);
            continue;
        }
        let same_dim: Vec<&&Match> = chosen
            .iter()
            .filter(|c| table.entries[c.entry].dim == entry.dim)
            .collect();
        if same_dim.iter().any(|c| c.entry == m.entry) {
            continue; // the same entry said twice
        }
        let room = if entry.dim == Dim::Emotion {
            table.max_emotions
        } else {
            1
        };
        if same_dim.len() < room {
            chosen.push(m);
        } else {
            let first = same_dim[0];
            note(
                &mut notes,
                Level::Warn,
                format!(
                    "conflicting {} requests: kept \"{}\" ({}), ignored \"{}\" ({}); the first one in the instruction wins",
                    entry.dim.name(),
                    said(first),
                    table.entries[first.entry].name,
                    said(m),
                    entry.name
                ),
            );
        }
    }

    let quoted: Vec<String> = unmatched.iter().map(|n| format!("\"{n}\"")).collect();
    if chosen.is_empty() {
        let mut reason = String::new();
        if !quoted.is_empty() {
            reason.push_str(&format!(
                "no dialect entry matches {}, and ",
                quoted.join(", ")
            ));
        }
        if !negated.is_empty() {
            let list: Vec<String> = negated
                .iter()
                .map(|m| {
                    let e = &table.entries[m.entry];
                    format!(
                        "\"{}\" ({}={}, negated by \"{}\")",
                        said(m),
                        e.dim.name(),
                        e.name,
                        m.negated_by.as_deref().unwrap_or("")
                    )
                })
                .collect();
            reason.push_str(&format!(
                "only negated requests matched: {}",
                list.join(", ")
            ));
        } else if table.entries.is_empty() {
            reason.push_str(
                "the style table is empty: configure dialects, emotions, speeds, pitches or volumes",
            );
        } else {
            reason.push_str(&format!(
                "nothing in \"{}\" matched the table ({} entries)",
                quote_cut(&text, 40),
                table.entries.len()
            ));
        }
        return Ok(Mapping {
            outcome: StyleOutcome::Unmapped(reason),
            notes,
        });
    }

    let entries: Vec<&Entry> = chosen.iter().map(|m| &table.entries[m.entry]).collect();
    let (style, label) = compose(&entries);
    if !quoted.is_empty() {
        notes.push((
            Level::Warn,
            format!(
                "no dialect entry matches {}; mapped the rest as {label}",
                quoted.join(", ")
            ),
        ));
    }
    Ok(Mapping {
        outcome: StyleOutcome::Mapped { style, label },
        notes,
    })
}

/// Add a log line unless the same line is already there: a long
/// instruction repeating a request must not flood the host's log cap.
fn note(notes: &mut Vec<(Level, String)>, level: Level, message: String) {
    if !notes.iter().any(|(_, m)| *m == message) {
        notes.push((level, message));
    }
}

/// Build the style and label from the chosen entries (instruction order).
fn compose(chosen: &[&Entry]) -> (Style, String) {
    let in_dim = |dim: Dim| chosen.iter().filter(move |e| e.dim == dim);
    let mut style = Style::default();

    if let Some(d) = in_dim(Dim::Dialect).next() {
        style.dialect = d.effect.dialect.clone();
        style.language = d.effect.language.clone();
        style.voice = d.effect.voice.clone();
        style.speaker = d.effect.speaker.clone();
    }
    for e in in_dim(Dim::Emotion) {
        for tag in &e.effect.emotions {
            if !style.emotions.contains(tag) {
                style.emotions.push(tag.clone());
            }
        }
    }
    // Explicit words first, then the emotions' tweaks.
    let explicit_then_emotion = |dim: Dim, field: fn(&Entry) -> Option<f32>| {
        in_dim(dim)
            .chain(in_dim(Dim::Emotion))
            .find_map(|e| field(e))
    };
    style.speed = explicit_then_emotion(Dim::Speed, |e| e.effect.speed);
    style.pitch = explicit_then_emotion(Dim::Pitch, |e| e.effect.pitch);
    style.volume = explicit_then_emotion(Dim::Volume, |e| e.effect.volume);

    let mut label_parts = Vec::new();
    for dim in Dim::ALL {
        let mut names: Vec<&str> = in_dim(dim).map(|e| e.name.as_str()).collect();
        if names.is_empty() {
            continue;
        }
        for e in in_dim(dim) {
            for (k, v) in &e.effect.extra {
                if !style.extra.iter().any(|(have, _)| have == k) {
                    style.extra.push((k.clone(), v.clone()));
                }
            }
        }
        names.sort_unstable();
        label_parts.push(format!("{}={}", dim.name(), names.join("+")));
    }
    (style, label_parts.join(";"))
}
