//! Mixed-language text: runs of another script inside a request (Chinese in
//! English text, English in Chinese text) spoken by the voice the pipeline's
//! routes give that language, instead of the request's voice reading them in
//! its own language.
//!
//! The text is cut into script runs — Han (CJK ideographs and CJK
//! punctuation) and everything else; digits, spaces and punctuation stay
//! with the run they are in — and each run is given a language: `zh` for
//! Han, the pipeline's (or the request's) language otherwise, `en` when that
//! is itself Chinese. A run whose language is not the main voice's goes to
//! the first route that matches that language and whose voice speaks it; with
//! no such route it stays with the main voice (whose phonemizer reads it as
//! best it can, as before). Adjacent runs with the same voice are merged, so a
//! text in one script is one part, exactly as without this module.

use std::sync::Arc;

use voxpipe_engine::synth::LoadedVoice;
use voxpipe_types::Style;

use super::VoiceStore;
use crate::pipeline::routes::{self, Route};

/// A stretch of the text and the voice that speaks it.
pub(super) struct Part {
    pub voice: Arc<LoadedVoice>,
    pub text: String,
    /// The speaker the route chose for this voice (the main part's speaker
    /// is the request's choice and is not set here).
    pub route_speaker: Option<String>,
}

fn is_han(c: char) -> bool {
    matches!(c,
        '\u{3400}'..='\u{4DBF}'     // CJK extension A
        | '\u{4E00}'..='\u{9FFF}'   // CJK unified ideographs
        | '\u{F900}'..='\u{FAFF}'   // compatibility ideographs
        | '\u{20000}'..='\u{2FA1F}' // extensions B–F, compatibility supplement
        | '\u{3000}'..='\u{303F}'   // CJK symbols and punctuation (。、「」)
        | '\u{FF00}'..='\u{FFEF}'   // full-width forms (，！？)
    )
}

/// A CJK ideograph (not CJK punctuation or a full-width form): what makes a
/// run Chinese text rather than punctuation.
pub(super) fn is_ideograph(c: char) -> bool {
    is_han(c) && !matches!(c, '\u{3000}'..='\u{303F}' | '\u{FF00}'..='\u{FFEF}')
}

/// Letters decide a run's script; anything else joins the run it is in.
fn script(c: char) -> Option<bool> {
    if is_han(c) {
        Some(true)
    } else if c.is_alphabetic() {
        Some(false)
    } else {
        None
    }
}

/// The text cut where the script changes: (is Han, run). Characters before
/// the first letter join the first run.
pub(super) fn script_runs(text: &str) -> Vec<(bool, &str)> {
    let mut runs: Vec<(bool, &str)> = Vec::new();
    let mut start = 0;
    let mut current: Option<bool> = None;
    for (i, c) in text.char_indices() {
        let Some(han) = script(c) else { continue };
        match current {
            Some(cur) if cur != han => {
                runs.push((cur, &text[start..i]));
                start = i;
                current = Some(han);
            }
            None => current = Some(han),
            _ => {}
        }
    }
    if start < text.len() {
        runs.push((current.unwrap_or(false), &text[start..]));
    }
    runs
}

pub(super) fn primary(tag: &str) -> String {
    tag.split(['-', '_'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// The first route that matches `language` and whose voice speaks it.
fn route_for<'r>(
    routes_list: &'r [Route],
    language: &str,
    pipeline_voice: &str,
    voices: &VoiceStore,
) -> Option<(&'r Route, Arc<LoadedVoice>)> {
    let style = Style {
        language: Some(language.to_string()),
        ..Style::default()
    };
    let subject = routes::Subject {
        style: &style,
        request_language: None,
    };
    routes_list.iter().find_map(|r| {
        let matched = r.matches(&subject)?;
        if !matched.language {
            return None;
        }
        let voice = voices
            .get(r.voice.as_deref().unwrap_or(pipeline_voice))
            .ok()?;
        let speaks = voice
            .entry
            .config
            .language_tag()
            .is_some_and(|t| primary(&t) == primary(language));
        speaks.then_some((r, voice))
    })
}

/// Who speaks which language in one request: the main voice, the language
/// of non-Han runs (the request's or the pipeline's, `en` when that is
/// itself Chinese), and the pipeline's routes to other voices.
pub(super) struct Speakers<'a> {
    main: &'a Arc<LoadedVoice>,
    main_language: String,
    latin: String,
    routes: &'a [Route],
    pipeline_voice: &'a str,
    voices: &'a VoiceStore,
}

impl<'a> Speakers<'a> {
    pub(super) fn new(
        main: &'a Arc<LoadedVoice>,
        latin_language: Option<&str>,
        routes: &'a [Route],
        pipeline_voice: &'a str,
        voices: &'a VoiceStore,
    ) -> Self {
        Speakers {
            main,
            main_language: main
                .entry
                .config
                .language_tag()
                .map(|t| primary(&t))
                .unwrap_or_default(),
            latin: latin_language
                .map(primary)
                .filter(|l| l != "zh")
                .unwrap_or_else(|| "en".to_string()),
            routes,
            pipeline_voice,
            voices,
        }
    }

    /// The request's own voice.
    pub(super) fn main(&self) -> &Arc<LoadedVoice> {
        self.main
    }

    /// The voice for text in `language`, with the speaker its route names:
    /// the main voice when it speaks the language, else the first route's
    /// voice that does; `None` when neither.
    pub(super) fn voice_for(&self, language: &str) -> Option<(Arc<LoadedVoice>, Option<String>)> {
        if primary(language) == self.main_language {
            return Some((self.main.clone(), None));
        }
        route_for(self.routes, language, self.pipeline_voice, self.voices)
            .map(|(route, voice)| (voice, route.speaker.clone()))
    }

    /// Each script run of `text` with its language: (language, is Han, run).
    fn runs<'t>(&self, text: &'t str) -> Vec<(String, bool, &'t str)> {
        script_runs(text)
            .into_iter()
            .map(|(han, run)| {
                let language = if han {
                    "zh".to_string()
                } else {
                    self.latin.clone()
                };
                (language, han, run)
            })
            .collect()
    }

    /// The parts of `text`: one per change of voice. The main voice speaks
    /// everything no route gives to another voice.
    pub(super) fn parts(&self, text: &str) -> Vec<Part> {
        if self.routes.is_empty() || script_runs(text).len() < 2 {
            return vec![Part {
                voice: self.main.clone(),
                text: text.to_string(),
                route_speaker: None,
            }];
        }
        let mut out: Vec<Part> = Vec::new();
        for (language, _, run) in self.runs(text) {
            let (voice, route_speaker) = self
                .voice_for(&language)
                .unwrap_or_else(|| (self.main.clone(), None));
            match out.last_mut() {
                Some(last) if Arc::ptr_eq(&last.voice, &voice) => last.text.push_str(run),
                _ => out.push(Part {
                    voice,
                    text: run.to_string(),
                    route_speaker,
                }),
            }
        }
        out
    }

    /// The languages of `text`'s script runs that no voice here speaks: what
    /// the main voice reads as best its phonemizer can (letter names, or
    /// nothing), reported unhonored like a style field. A run counts only
    /// with letters of its script (a full-width comma is not Chinese).
    pub(super) fn unserved(&self, text: &str) -> Vec<String> {
        // Each language is looked up once, however many runs it has.
        let (mut decided, mut out): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
        for (language, han, run) in self.runs(text) {
            let letters = if han {
                run.chars().any(is_ideograph)
            } else {
                run.chars().any(|c| c.is_alphabetic() && !is_han(c))
            };
            if !letters || decided.contains(&language) {
                continue;
            }
            if self.voice_for(&language).is_none() {
                out.push(language.clone());
            }
            decided.push(language);
        }
        out
    }
}

/// How long the voices overlap where one hands over to another.
const CROSSFADE_MS: u32 = 10;

/// Samples of [`CROSSFADE_MS`] at `rate`.
pub(super) fn crossfade_len(rate: u32) -> usize {
    (rate * CROSSFADE_MS / 1000) as usize
}

/// The previous voice's last samples (`tail`) faded out over the start of
/// the next voice's audio (`head`), which fades in: a linear crossfade, so
/// the two overlap by the tail's length and a switch never clicks.
pub(super) fn crossfade(head: &mut Vec<f32>, tail: Vec<f32>) {
    let n = tail.len();
    if n == 0 {
        return;
    }
    if head.len() < n {
        head.resize(n, 0.0);
    }
    for (k, (h, t)) in head.iter_mut().zip(tail).enumerate() {
        let g = (k as f32 + 0.5) / n as f32;
        *h = t * (1.0 - g) + *h * g;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_crossfade_overlaps_and_blends() {
        let mut head = vec![1.0f32; 6];
        crossfade(&mut head, vec![0.0; 4]);
        assert_eq!(head, [0.125, 0.375, 0.625, 0.875, 1.0, 1.0]);
        // A head shorter than the tail takes the rest of the tail's fade.
        let mut head = vec![1.0f32; 1];
        crossfade(&mut head, vec![1.0; 2]);
        assert_eq!(head, [1.0, 0.25]);
        let mut untouched = vec![0.5f32; 3];
        crossfade(&mut untouched, Vec::new());
        assert_eq!(untouched, [0.5; 3]);
        assert_eq!(crossfade_len(22050), 220);
    }

    use super::*;

    #[test]
    fn runs_split_at_letters_of_the_other_script() {
        let runs = script_runs("Hello, 你好世界。Say 3 words: 好的!");
        assert_eq!(
            runs,
            vec![
                (false, "Hello, "),
                (true, "你好世界。"),
                (false, "Say 3 words: "),
                (true, "好的!"),
            ]
        );
        assert_eq!(script_runs("Only English."), vec![(false, "Only English.")]);
        assert_eq!(script_runs("123 你好"), vec![(true, "123 你好")]);
        assert_eq!(script_runs(""), vec![]);
        // Digits and punctuation never start a run of their own.
        assert_eq!(
            script_runs("我用Python编程。"),
            vec![(true, "我用"), (false, "Python"), (true, "编程。")]
        );
    }
}
