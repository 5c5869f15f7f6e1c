//! Phonemes given in the text itself: Piper's inline `[[ … ]]` blocks, passed through as
//! phonemes with Piper's space rules, and CosyVoice 3 style ARPAbet runs
//! (`[M][AY0][N][UW1][T]`, an extension of ours) converted to IPA blocks first.

/// A piece of the input text: plain text for espeak, or phonemes given inline.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Part<'a> {
    Text(&'a str),
    /// Contents of a `[[ … ]]` block (brackets removed, not yet trimmed), or IPA
    /// converted from ARPAbet.
    Phonemes(String),
}

/// Splits text around `[[ … ]]` blocks like Piper's `re.split(r"(\[\[.*?\]\])")`:
/// shortest block, no newline inside. The result alternates text / phonemes and starts
/// and ends with text (possibly empty), which the space rules rely on.
pub(super) fn split_phoneme_blocks(text: &str) -> Vec<Part<'_>> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut search = 0;
    while let Some(offset) = text[search..].find("[[") {
        let open = search + offset;
        let inner_start = open + 2;
        let close = text[inner_start..].find("]]").map(|c| inner_start + c);
        match close {
            Some(close) if !text[inner_start..close].contains('\n') => {
                parts.push(Part::Text(&text[start..open]));
                parts.push(Part::Phonemes(text[inner_start..close].to_string()));
                start = close + 2;
                search = start;
            }
            // Like the regex: no block starts here, try from the next character.
            _ => search = open + 1,
        }
    }
    parts.push(Part::Text(&text[start..]));
    parts
}

/// Replaces ARPAbet runs inside text parts by phoneme parts, keeping the alternation.
pub(super) fn expand_arpabet(parts: Vec<Part<'_>>) -> Vec<Part<'_>> {
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        match part {
            Part::Text(text) => {
                let mut start = 0;
                for (run_start, run_end, ipa) in find_arpabet_runs(text) {
                    out.push(Part::Text(&text[start..run_start]));
                    out.push(Part::Phonemes(ipa));
                    start = run_end;
                }
                out.push(Part::Text(&text[start..]));
            }
            phonemes => out.push(phonemes),
        }
    }
    out
}

/// Appends an inline phoneme block to the current sentence, with Piper's space rules:
/// a space before it if the preceding text ends with a space, after it if the following
/// text starts with one.
pub(super) fn append_inline_phonemes(
    current: &mut Vec<String>,
    parts: &[Part<'_>],
    index: usize,
    inner: &str,
) {
    let text_at = |i: usize| match parts.get(i) {
        Some(Part::Text(text)) => *text,
        _ => "",
    };
    if index > 0 && text_at(index - 1).ends_with(' ') {
        current.push(" ".to_string());
    }
    current.extend(inner.trim().chars().map(String::from));
    if text_at(index + 1).starts_with(' ') {
        current.push(" ".to_string());
    }
}

/// ARPAbet (CMUdict, as CosyVoice 3 writes it) → IPA in espeak-ng's en-us style, so the
/// result uses symbols of Piper's English id map.
///
/// | ARPAbet | IPA | ARPAbet | IPA | ARPAbet | IPA |
/// |---|---|---|---|---|---|
/// | AA | ɑː | AE | æ | AH | ʌ (AH0: ə) |
/// | AO | ɔː | AW | aʊ | AY | aɪ |
/// | EH | ɛ | ER | ɜː (ER0: ɚ) | EY | eɪ |
/// | IH | ɪ | IY | iː | OW | oʊ |
/// | OY | ɔɪ | UH | ʊ | UW | uː |
/// | B | b | CH | tʃ | D | d |
/// | DH | ð | F | f | G | ɡ |
/// | HH | h | JH | dʒ | K | k |
/// | L | l | M | m | N | n |
/// | NG | ŋ | P | p | R | ɹ |
/// | S | s | SH | ʃ | T | t |
/// | TH | θ | V | v | W | w |
/// | Y | j | Z | z | ZH | ʒ |
///
/// Stress digits on vowels: `1` → `ˈ`, `2` → `ˌ`, placed right before the vowel as
/// espeak does (`həlˈoʊ`); `0` or none → no mark. Returns `None` for an unknown symbol
/// or a digit on a consonant.
fn arpabet_to_ipa(symbol: &str, stress: Option<u8>) -> Option<String> {
    let (ipa, vowel) = match symbol {
        "AA" => ("ɑː", true),
        "AE" => ("æ", true),
        "AH" if stress == Some(0) => ("ə", true),
        "AH" => ("ʌ", true),
        "AO" => ("ɔː", true),
        "AW" => ("aʊ", true),
        "AY" => ("aɪ", true),
        "EH" => ("ɛ", true),
        "ER" if stress == Some(0) => ("ɚ", true),
        "ER" => ("ɜː", true),
        "EY" => ("eɪ", true),
        "IH" => ("ɪ", true),
        "IY" => ("iː", true),
        "OW" => ("oʊ", true),
        "OY" => ("ɔɪ", true),
        "UH" => ("ʊ", true),
        "UW" => ("uː", true),
        "B" => ("b", false),
        "CH" => ("tʃ", false),
        "D" => ("d", false),
        "DH" => ("ð", false),
        "F" => ("f", false),
        "G" => ("ɡ", false),
        "HH" => ("h", false),
        "JH" => ("dʒ", false),
        "K" => ("k", false),
        "L" => ("l", false),
        "M" => ("m", false),
        "N" => ("n", false),
        "NG" => ("ŋ", false),
        "P" => ("p", false),
        "R" => ("ɹ", false),
        "S" => ("s", false),
        "SH" => ("ʃ", false),
        "T" => ("t", false),
        "TH" => ("θ", false),
        "V" => ("v", false),
        "W" => ("w", false),
        "Y" => ("j", false),
        "Z" => ("z", false),
        "ZH" => ("ʒ", false),
        _ => return None,
    };
    let mark = match (vowel, stress) {
        (false, Some(_)) | (true, Some(3..)) => return None,
        (true, Some(1)) => "ˈ",
        (true, Some(2)) => "ˌ",
        _ => "",
    };
    Some(format!("{mark}{ipa}"))
}

/// Parses one `[SYM]` or `[SYM<digit>]` token at the start of `text`: returns its
/// IPA and byte length.
fn parse_arpabet_token(text: &str) -> Option<(String, usize)> {
    let body_end = text.strip_prefix('[')?.find(']')? + 1;
    let body = &text[1..body_end];
    let (symbol, stress) = match body.as_bytes().last() {
        Some(digit @ b'0'..=b'9') => (&body[..body.len() - 1], Some(digit - b'0')),
        _ => (body, None),
    };
    if symbol.is_empty() || symbol.len() > 2 || !symbol.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    arpabet_to_ipa(symbol, stress).map(|ipa| (ipa, body_end + 1))
}

/// Finds runs of ARPAbet tokens: adjacent tokens form a word, words separated only by
/// spaces form one run (IPA words joined by one space). Returns (start, end, IPA).
fn find_arpabet_runs(text: &str) -> Vec<(usize, usize, String)> {
    let mut runs = Vec::new();
    let mut position = 0;
    while let Some(offset) = text[position..].find('[') {
        let start = position + offset;
        let mut cursor = start;
        let mut ipa = String::new();
        let mut end = start;
        loop {
            let spaces = text[cursor..].len() - text[cursor..].trim_start_matches(' ').len();
            let token_at = if end > start { cursor + spaces } else { cursor };
            let Some((token_ipa, length)) = parse_arpabet_token(&text[token_at..]) else {
                break;
            };
            if end > start && spaces > 0 {
                ipa.push(' ');
            }
            ipa.push_str(&token_ipa);
            cursor = token_at + length;
            end = cursor;
        }
        if end > start {
            runs.push((start, end, ipa));
            position = end;
        } else {
            position = start + 1;
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phoneme_blocks_split_like_piper() {
        let parts = split_phoneme_blocks("Say [[ h ə ]], ok [[x\n]] [[y]]");
        assert_eq!(
            parts,
            vec![
                Part::Text("Say "),
                Part::Phonemes(" h ə ".into()),
                Part::Text(", ok [[x\n]] "),
                Part::Phonemes("y".into()),
                Part::Text(""),
            ]
        );
    }

    #[test]
    fn arpabet_runs_become_ipa() {
        let runs = find_arpabet_runs("a [M][AY0][N][UW1][T]  [HH][AH0][L][OW1]. [XX]");
        assert_eq!(runs, vec![(2, 40, "maɪnˈuːt həlˈoʊ".to_string())]);
        assert_eq!(arpabet_to_ipa("ER", Some(0)).as_deref(), Some("ɚ"));
        assert_eq!(arpabet_to_ipa("T", Some(1)), None);
    }
}
