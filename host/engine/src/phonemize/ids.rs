//! Phonemes → model ids, as Piper's `phonemes_to_ids`: `^`, `_`, then each phoneme
//! followed by `_`, then `$`, through the voice's `phoneme_id_map`.

use std::collections::HashMap;

use super::Phonemizer;

/// Phoneme that starts every id sequence (beginning of sentence).
const BOS: &str = "^";
/// Phoneme that ends every id sequence (end of sentence).
const EOS: &str = "$";
/// Padding phoneme inserted after BOS and after every phoneme.
const PAD: &str = "_";

impl Phonemizer {
    /// Phonemes of one sentence → model ids: `^`, `_`, then each phoneme followed by
    /// `_`, then `$` (Piper's `phonemes_to_ids`). Phonemes missing from `id_map` are
    /// skipped and returned (in order, repeats included) so the caller can warn; a
    /// missing `^`, `_` or `$` is skipped and reported the same way.
    pub fn to_ids(
        phonemes: &[String],
        id_map: &HashMap<String, Vec<i64>>,
    ) -> (Vec<i64>, Vec<String>) {
        let mut ids = Vec::with_capacity(2 * phonemes.len() + 3);
        let mut missing = Vec::new();
        push_id(BOS, id_map, &mut ids, &mut missing);
        push_id(PAD, id_map, &mut ids, &mut missing);
        for phoneme in phonemes {
            if push_id(phoneme, id_map, &mut ids, &mut missing) {
                push_id(PAD, id_map, &mut ids, &mut missing);
            }
        }
        push_id(EOS, id_map, &mut ids, &mut missing);
        (ids, missing)
    }
}

/// Appends the ids of `phoneme` (true) or records it as missing (false).
fn push_id(
    phoneme: &str,
    id_map: &HashMap<String, Vec<i64>>,
    ids: &mut Vec<i64>,
    missing: &mut Vec<String>,
) -> bool {
    match id_map.get(phoneme) {
        Some(mapped) => {
            ids.extend_from_slice(mapped);
            true
        }
        None => {
            missing.push(phoneme.to_string());
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_bos_pad_eos_and_report_unknowns() {
        let map: HashMap<String, Vec<i64>> = [("_", 0), ("^", 1), ("$", 2), ("a", 14)]
            .iter()
            .map(|(k, v)| (k.to_string(), vec![*v]))
            .collect();
        let (ids, missing) = Phonemizer::to_ids(&["a".into(), "Z".into(), "a".into()], &map);
        assert_eq!(ids, vec![1, 0, 14, 0, 14, 0, 2]);
        assert_eq!(missing, vec!["Z".to_string()]);
    }
}
