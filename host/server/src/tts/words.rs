//! Word timestamps: when each word of the request is heard in the response.
//!
//! Three mappings, each done here and nowhere else (docs/api.md, "Word
//! timestamps", says the same for users):
//!
//! 1. **Model → spoken words.** The voice's duration predictor gives every
//!    phoneme id a whole number of frames, so the engine knows where each
//!    word espeak-ng spoke lies in a model call's audio
//!    (`voxpipe_engine::words`). Those are espeak-ng's words: it joins short
//!    ones ("in the" → one word) and reads "three" where a text had "3".
//! 2. **Spoken words → the text's words.** The text the voice read (after the
//!    text stages) is cut into tokens and aligned with the spoken words by a
//!    monotone dynamic programme ([`align_spoken`]): one to one, several
//!    tokens to one spoken word (their time shared by their expected length),
//!    or one token to several; a token or word left over costs more than any
//!    pairing. Then the text stages' output is aligned with the request's own
//!    words ([`align_original`]): equal words pair up, and what a normalizer
//!    rewrote ("$3.50" → "three dollars and fifty cents") is the run between
//!    two equal words, so "$3.50" spans from "three" to "cents".
//! 3. **The voice's timeline → the response's.** Audio stages may trim,
//!    pad or stretch; SSML breaks add silence; resampling changes the rate
//!    but not the seconds. Rather than trust every plugin to report what it
//!    did, the host re-derives it ([`Clock`]): it keeps a 5 ms loudness
//!    envelope of what went into the audio stages and of what came out, and
//!    for each utterance maps the first and last sound of its input onto
//!    the first and last sound of its output (relative thresholds, so gain
//!    and fades do not move them). A stage that cuts or adds at an
//!    utterance's edges (trim-fade, pauses) is a shift; one that stretches
//!    time evenly (pitch-shift's `tempo`) is a slope; only a stage that
//!    edits the middle of an utterance unevenly is beyond this, and is
//!    documented as such.

use std::ops::Range;

use serde::Serialize;
use voxpipe_engine::words::SpokenWord;

use super::mixed::is_ideograph;

/// One word of the request and when it is heard, in seconds from the start
/// of the response's audio.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WordTiming {
    pub text: String,
    pub start: f64,
    pub end: f64,
}

/// A word of a text: where it is, how it compares, how long it should sound.
#[derive(Debug, Clone)]
struct Token {
    range: Range<usize>,
    /// Lower-case letters and digits: what [`align_original`] compares.
    key: String,
    /// Phonemes it is expected to make (letters 1, digits and ideographs 3).
    weight: f64,
}

/// The words of `text`: runs between spaces, each ideograph its own word,
/// and nothing that has no letter or digit.
fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut start = None;
    let push = |range: Range<usize>, out: &mut Vec<Token>| {
        let word = &text[range.clone()];
        let key: String = word
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect();
        if key.is_empty() {
            return;
        }
        let weight = word
            .chars()
            .map(|c| {
                if is_ideograph(c) || c.is_ascii_digit() {
                    3.0
                } else if c.is_alphabetic() {
                    1.0
                } else {
                    0.0
                }
            })
            .sum::<f64>()
            .max(1.0);
        out.push(Token { range, key, weight });
    };
    for (i, c) in text.char_indices() {
        if c.is_whitespace() || is_ideograph(c) {
            if let Some(s) = start.take() {
                push(s..i, &mut out);
            }
            if is_ideograph(c) {
                push(i..i + c.len_utf8(), &mut out);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        push(s..text.len(), &mut out);
    }
    out
}

/// Most tokens one spoken word may join, and most spoken words one token
/// may make ("1995" → "nineteen ninety five").
const MAX_JOIN: usize = 4;
const MAX_SPLIT: usize = 6;
/// Cost of pairing anything but one with one, per extra item.
const GROUP_COST: f64 = 0.35;
/// Cost of a token nothing spoke, or a spoken word no token accounts for.
const SKIP_COST: f64 = 1.5;

/// Which tokens went with which spoken words, in order.
#[derive(Debug, Clone, PartialEq)]
struct Pairing {
    tokens: Range<usize>,
    words: Range<usize>,
}

/// Aligns tokens (their `weight`s) with spoken words (their phoneme counts)
/// by least total cost. `partial`: the spoken words are only a prefix of
/// what will be spoken (a stream's first sentences), so the alignment may
/// stop before the last token; it then covers the tokens up to where it
/// stopped.
fn align_spoken(weights: &[f64], phonemes: &[usize], partial: bool) -> Vec<Pairing> {
    let (n, m) = (weights.len(), phonemes.len());
    let width = m + 1;
    let mut cost = vec![f64::INFINITY; (n + 1) * width];
    // How each cell was reached: (tokens, words) taken by the last step.
    let mut step = vec![(0u8, 0u8); (n + 1) * width];
    cost[0] = 0.0;
    let mut wsum = vec![0.0; n + 1];
    for (i, w) in weights.iter().enumerate() {
        wsum[i + 1] = wsum[i] + w;
    }
    let mut psum = vec![0usize; m + 1];
    for (j, p) in phonemes.iter().enumerate() {
        psum[j + 1] = psum[j] + p;
    }
    for i in 0..=n {
        for j in 0..=m {
            let here = cost[i * width + j];
            if !here.is_finite() {
                continue;
            }
            let mut relax = |a: usize, b: usize, c: f64| {
                let (ni, nj) = (i + a, j + b);
                if ni <= n && nj <= m && here + c < cost[ni * width + nj] {
                    cost[ni * width + nj] = here + c;
                    step[ni * width + nj] = (a as u8, b as u8);
                }
            };
            relax(1, 0, SKIP_COST);
            relax(0, 1, SKIP_COST);
            let pair = |a: usize, b: usize| {
                let expected = wsum[(i + a).min(n)] - wsum[i];
                let spoken = (psum[(j + b).min(m)] - psum[j]) as f64;
                ((spoken + 1.0) / (expected + 1.0)).ln().abs() + GROUP_COST * (a + b - 2) as f64
            };
            for a in 1..=MAX_JOIN {
                relax(a, 1, pair(a, 1));
            }
            for b in 2..=MAX_SPLIT {
                relax(1, b, pair(1, b));
            }
        }
    }
    let end_i = if partial {
        (0..=n)
            .min_by(|&a, &b| cost[a * width + m].total_cmp(&cost[b * width + m]))
            .unwrap_or(n)
    } else {
        n
    };
    let (mut i, mut j) = (end_i, m);
    let mut out = Vec::new();
    while i > 0 || j > 0 {
        let (a, b) = step[i * width + j];
        let (a, b) = (usize::from(a), usize::from(b));
        if a == 0 && b == 0 {
            break;
        }
        out.push(Pairing {
            tokens: i - a..i,
            words: j - b..j,
        });
        i -= a;
        j -= b;
    }
    out.reverse();
    out
}

/// `spoken` (weights) cut into one contiguous, non-empty range per request
/// word (weights `original`), each about its share of the expected length.
/// Needs `spoken.len() >= original.len()`.
fn split_run(original: &[f64], spoken: &[f64]) -> Vec<Range<usize>> {
    let (n, m) = (original.len(), spoken.len());
    let total_o: f64 = original.iter().sum();
    let total_s: f64 = spoken.iter().sum();
    let mut out = Vec::with_capacity(n);
    let (mut at, mut want, mut have) = (0usize, 0.0, 0.0);
    for (k, w) in original.iter().enumerate() {
        want += w / total_o.max(f64::EPSILON) * total_s;
        let start = at;
        // At least one token each, and leave one for every word after.
        let last = m - (n - k - 1);
        at += 1;
        have += spoken[start];
        while at < last && (k + 1 == n || (have + spoken[at] / 2.0) <= want) {
            have += spoken[at];
            at += 1;
        }
        out.push(start..at);
    }
    out
}

/// The times of tokens from their pairing with spoken words: a token paired
/// with words spans them; tokens joined in one word share it by weight; a
/// token nothing spoke is an instant where the speech around it stops.
fn token_times(weights: &[f64], words: &[SpokenWord], pairings: &[Pairing]) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut last_end = words.first().map_or(0.0, |w| w.start);
    for p in pairings {
        if p.words.is_empty() {
            out.extend(p.tokens.clone().map(|_| (last_end, last_end)));
            continue;
        }
        let (start, end) = (words[p.words.start].start, words[p.words.end - 1].end);
        let total: f64 = weights[p.tokens.clone()].iter().sum();
        let mut at = start;
        for &w in &weights[p.tokens.clone()] {
            let next = at + (end - start) * w / total.max(f64::EPSILON);
            out.push((at, next));
            at = next;
        }
        last_end = end;
    }
    out
}

/// For each run of the request's words, the run of the spoken text's tokens
/// it became: equal words (by [`Token::key`]) pair up by a longest common
/// subsequence; between two pairs, the request's words became the tokens
/// between them. Every request word is in exactly one run; a run may have
/// no tokens (the text stages dropped a word), which [`Piece`] resolves.
fn align_original(original: &[Token], spoken: &[Token]) -> Vec<(Range<usize>, Range<usize>)> {
    let (n, m) = (original.len(), spoken.len());
    // lcs[i][j]: longest common subsequence of original[i..] and spoken[j..].
    let width = m + 1;
    let mut lcs = vec![0u32; (n + 1) * width];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i * width + j] = if original[i].key == spoken[j].key {
                lcs[(i + 1) * width + j + 1] + 1
            } else {
                lcs[(i + 1) * width + j].max(lcs[i * width + j + 1])
            };
        }
    }
    let mut runs = Vec::new();
    let (mut i, mut j) = (0, 0);
    let (mut gi, mut gj) = (0, 0);
    while i < n && j < m {
        if original[i].key == spoken[j].key
            && lcs[i * width + j] == lcs[(i + 1) * width + j + 1] + 1
        {
            if gi < i {
                runs.push((gi..i, gj..j));
            } else if gj < j {
                // Spoken tokens with no request word (a stage added words):
                // they join the previous run, or the next pair.
                match runs.last_mut() {
                    Some((_, s)) => s.end = j,
                    None => {
                        runs.push((i..i + 1, gj..j + 1));
                        i += 1;
                        j += 1;
                        (gi, gj) = (i, j);
                        continue;
                    }
                }
            }
            runs.push((i..i + 1, j..j + 1));
            i += 1;
            j += 1;
            (gi, gj) = (i, j);
        } else if lcs[(i + 1) * width + j] >= lcs[i * width + j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    if gi < n {
        runs.push((gi..n, gj..m));
    } else if gj < m {
        match runs.last_mut() {
            Some((_, s)) => s.end = m,
            None => runs.push((gi..n, gj..m)),
        }
    }
    runs
}

/// One piece of text as the request gave it and as the voice read it, and
/// how far its words have been timed and reported.
struct Piece {
    original: String,
    original_tokens: Vec<Token>,
    spoken_tokens: Vec<Token>,
    runs: Vec<(Range<usize>, Range<usize>)>,
    /// Spoken words of the piece's model calls so far, in input seconds.
    words: Vec<SpokenWord>,
    /// Input-timeline times of spoken tokens, as far as aligned.
    times: Vec<(f64, f64)>,
    /// Runs already reported.
    reported: usize,
    /// Input seconds where the piece's audio starts.
    start: f64,
}

/// Word timestamps of one run, piece by piece (see the module doc).
pub struct WordClock {
    clock: Clock,
    pieces: Vec<Piece>,
    /// The current piece and the input time its model calls start at.
    call_start: f64,
}

impl Default for WordClock {
    fn default() -> Self {
        WordClock {
            clock: Clock::default(),
            pieces: Vec::new(),
            call_start: 0.0,
        }
    }
}

impl WordClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new piece: `original` as the request gave it, `spoken` as the text
    /// stages left it for the voice.
    pub fn piece(&mut self, original: &str, spoken: &str) {
        let original_tokens = tokens(original);
        let spoken_tokens = tokens(spoken);
        let runs = align_original(&original_tokens, &spoken_tokens);
        self.pieces.push(Piece {
            original: original.to_string(),
            original_tokens,
            spoken_tokens,
            runs,
            words: Vec::new(),
            times: Vec::new(),
            reported: 0,
            start: self.clock.input.seconds(),
        });
    }

    /// Audio of the voice, about to enter the audio stages.
    pub fn input(&mut self, samples: &[f32], rate: u32) {
        self.clock.input.push(samples, 1, rate);
    }

    /// Audio delivered to the response (after the audio stages and breaks).
    pub fn output(&mut self, samples: &[f32], channels: u16, rate: u32) {
        self.clock.output.push(samples, channels, rate);
    }

    /// A model call begins: its audio starts at the input's current end.
    pub fn call_starts(&mut self) {
        self.call_start = self.clock.input.seconds();
    }

    /// A model call ended: its spoken words, relative to its start.
    pub fn call_words(&mut self, words: Vec<SpokenWord>) {
        let offset = self.call_start;
        if let Some(piece) = self.pieces.last_mut() {
            piece.words.extend(words.into_iter().map(|w| SpokenWord {
                start: w.start + offset,
                end: w.end + offset,
                phonemes: w.phonemes,
            }));
        }
    }

    /// An utterance begins (unless one is open): what the audio stages make
    /// from here until [`WordClock::end`] is its output.
    pub fn begin(&mut self) {
        if self.clock.open.is_none() {
            self.clock.open();
        }
    }

    /// The open utterance's output is complete.
    pub fn end(&mut self) {
        self.clock.close();
    }

    /// The words that can be reported now, in the response's seconds.
    /// `piece_done`: the current piece has no more model calls to come.
    pub fn take(&mut self, piece_done: bool) -> Vec<WordTiming> {
        let mut out = Vec::new();
        let pieces = self.pieces.len();
        for (k, piece) in self.pieces.iter_mut().enumerate() {
            let complete = k + 1 < pieces || piece_done;
            if piece.times.len() < piece.spoken_tokens.len() {
                let weights: Vec<f64> = piece.spoken_tokens.iter().map(|t| t.weight).collect();
                let phonemes: Vec<usize> = piece.words.iter().map(|w| w.phonemes).collect();
                let pairings = align_spoken(&weights, &phonemes, !complete);
                let times = token_times(&weights, &piece.words, &pairings);
                // A partial alignment's last token may still grow.
                let keep = if complete {
                    times.len()
                } else {
                    times.len().saturating_sub(1)
                };
                if keep > piece.times.len() {
                    piece
                        .times
                        .extend_from_slice(&times[piece.times.len()..keep]);
                }
            }
            while let Some((orig, spoken)) = piece.runs.get(piece.reported) {
                let (orig, spoken) = (orig.clone(), spoken.clone());
                if spoken.end > piece.times.len() || spoken.start > piece.times.len() {
                    break;
                }
                // Input spans of the run's request words: a run the text
                // stages dropped is an instant where the speech before it
                // ends; several words that became several spoken tokens
                // take them in order by expected length ("5th, 2024" →
                // "fifth" | "twenty twenty four"); fewer spoken tokens than
                // words share the run's time evenly.
                let span = |r: Range<usize>| (piece.times[r.start].0, piece.times[r.end - 1].1);
                let spans: Vec<(f64, f64)> = if spoken.is_empty() {
                    let at = spoken
                        .start
                        .checked_sub(1)
                        .and_then(|i| piece.times.get(i))
                        .map_or(piece.start, |t| t.1);
                    vec![(at, at); orig.len()]
                } else if orig.len() > 1 && spoken.len() >= orig.len() {
                    let weights = |ts: &[Token]| ts.iter().map(|t| t.weight).collect::<Vec<_>>();
                    split_run(
                        &weights(&piece.original_tokens[orig.clone()]),
                        &weights(&piece.spoken_tokens[spoken.clone()]),
                    )
                    .into_iter()
                    .map(|r| span(r.start + spoken.start..r.end + spoken.start))
                    .collect()
                } else {
                    let (a, b) = span(spoken.clone());
                    let n = orig.len() as f64;
                    (0..orig.len())
                        .map(|k| {
                            let at = |k: usize| a + (b - a) * k as f64 / n;
                            (at(k), at(k + 1))
                        })
                        .collect()
                };
                let placed: Option<Vec<(f64, f64)>> =
                    spans.iter().map(|&(a, b)| self.clock.place(a, b)).collect();
                let Some(placed) = placed else {
                    break;
                };
                for (t, (a, b)) in piece.original_tokens[orig].iter().zip(placed) {
                    out.push(WordTiming {
                        text: piece.original[t.range.clone()].to_string(),
                        start: round_ms(a),
                        end: round_ms(b.max(a)),
                    });
                }
                piece.reported += 1;
            }
        }
        // Pieces fully reported are not needed again.
        let done = self
            .pieces
            .iter()
            .take_while(|p| p.reported == p.runs.len())
            .count();
        let keep_last = usize::from(!piece_done && done == pieces && pieces > 0);
        self.pieces.drain(..done.saturating_sub(keep_last));
        out
    }

    /// The run ended: the last utterance is closed and every word reported.
    pub fn finish(&mut self) -> Vec<WordTiming> {
        self.clock.close();
        self.take(true)
    }
}

fn round_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

/// Seconds per envelope bucket.
const HOP: f64 = 0.005;
/// A bucket this far below an utterance's loudest is silence (dB).
const SOUND_DB: f64 = -40.0;
/// How far a word's edge may move to meet the edge of a pause: the model's
/// frames put a word's quiet ends (a final unreleased stop, a weak "th")
/// up to about this far from where the sound stops.
const SNAP_SECONDS: f64 = 0.1;

/// [`SNAP_SECONDS`], or `VOXPIPE_WORD_SNAP_MS` (read once; 0 turns the
/// snapping off, which `voxpipe-bench timestamps` uses to show the model's
/// own accuracy beside the snapped one).
fn snap_seconds() -> f64 {
    static SNAP: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *SNAP.get_or_init(|| {
        std::env::var("VOXPIPE_WORD_SNAP_MS")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|ms| ms.is_finite() && (0.0..=1000.0).contains(ms))
            .map_or(SNAP_SECONDS, |ms| ms / 1000.0)
    })
}
/// The shortest silence that is a pause.
const PAUSE_SECONDS: f64 = 0.08;

/// A loudness envelope: mean square per [`HOP`] seconds, of audio appended
/// at any rate (the seconds are what count).
#[derive(Debug, Default)]
struct Envelope {
    /// Buckets dropped from the front (no longer needed).
    base: usize,
    energy: Vec<f64>,
    count: Vec<u32>,
    /// Samples appended so far, in seconds.
    seconds: f64,
}

impl Envelope {
    fn push(&mut self, samples: &[f32], channels: u16, rate: u32) {
        let channels = usize::from(channels.max(1));
        let step = 1.0 / f64::from(rate.max(1));
        for frame in samples.chunks(channels) {
            let bucket = (self.seconds / HOP) as usize;
            let index = bucket.saturating_sub(self.base);
            if index >= self.energy.len() {
                self.energy.resize(index + 1, 0.0);
                self.count.resize(index + 1, 0);
            }
            let e: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
            if e.is_finite() {
                self.energy[index] += e / channels as f64;
            }
            self.count[index] += 1;
            self.seconds += step;
        }
    }

    fn seconds(&self) -> f64 {
        self.seconds
    }

    /// The first and last bucket with sound in `from..to` seconds, as
    /// seconds (start of the first, end of the last).
    fn sound(&self, from: f64, to: f64) -> Option<(f64, f64)> {
        let floor = self.floor(from, to)?;
        let (lo, hi) = self.buckets(from, to);
        let first = (lo..hi).find(|&k| self.level(k) >= floor)?;
        let last = (lo..hi).rev().find(|&k| self.level(k) >= floor)?;
        let at = |k: usize| (k + self.base) as f64 * HOP;
        Some((at(first).max(from), at(last + 1).min(to)))
    }

    /// The buckets held of `from..to` seconds, as indices.
    fn buckets(&self, from: f64, to: f64) -> (usize, usize) {
        let lo = ((from / HOP).round() as usize).max(self.base) - self.base;
        let hi = ((to / HOP).round() as usize).saturating_sub(self.base);
        (lo, hi.min(self.energy.len()))
    }

    fn level(&self, k: usize) -> f64 {
        self.energy[k] / f64::from(self.count[k].max(1))
    }

    /// The level below which `from..to` is silent ([`SOUND_DB`] under its
    /// loudest bucket); `None` if it is all silence.
    fn floor(&self, from: f64, to: f64) -> Option<f64> {
        let (lo, hi) = self.buckets(from, to);
        let loudest = (lo..hi).map(|k| self.level(k)).fold(0.0, f64::max);
        (loudest > 0.0).then(|| loudest * 10f64.powf(SOUND_DB / 10.0))
    }

    /// `t` moved to the nearest edge of a pause within [`snap_seconds`]: where
    /// sound starts after one (`rising`) or stops before one. A pause is at
    /// least [`PAUSE_SECONDS`] under `floor`, or the edge of `within`; a dip
    /// shorter than that (a stop consonant's closure) is not one. No such
    /// edge near: `t` as it was.
    fn snap(&self, t: f64, floor: f64, rising: bool, within: (f64, f64)) -> f64 {
        let (lo, hi) = self.buckets(within.0, within.1);
        let silent = |k: isize| -> bool {
            k < lo as isize || k >= hi as isize || self.level(k as usize) < floor
        };
        let pause = (PAUSE_SECONDS / HOP).round() as isize;
        let reach = (snap_seconds() / HOP).round() as isize;
        let here = (t / HOP).round() as isize - self.base as isize;
        let edge = |k: isize| -> bool {
            if rising {
                !silent(k) && (1..=pause).all(|d| silent(k - d))
            } else {
                !silent(k) && (1..=pause).all(|d| silent(k + d))
            }
        };
        (0..=reach)
            .flat_map(|d| [here - d, here + d])
            .find(|&k| edge(k))
            .map_or(t, |k| {
                let k = k + self.base as isize + isize::from(!rising);
                k as f64 * HOP
            })
    }

    /// Forget everything before `seconds`.
    fn drop_before(&mut self, seconds: f64) {
        let bucket = (seconds / HOP) as usize;
        let n = bucket.saturating_sub(self.base).min(self.energy.len());
        self.energy.drain(..n);
        self.count.drain(..n);
        self.base += n;
    }
}

/// How one utterance's input seconds became output seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Utterance {
    input: (f64, f64),
    output: (f64, f64),
    /// Output = `at_out + (input - at_in) * slope`, clamped to `output`.
    at_in: f64,
    at_out: f64,
    slope: f64,
    /// Its output's silence level (`None`: all silent).
    floor: Option<f64>,
}

impl Utterance {
    fn map(&self, t: f64) -> f64 {
        (self.at_out + (t - self.at_in) * self.slope).clamp(self.output.0, self.output.1)
    }
}

/// The voice's timeline against the response's, utterance by utterance.
#[derive(Debug, Default)]
struct Clock {
    input: Envelope,
    output: Envelope,
    /// Where the open utterance began (input, output seconds).
    open: Option<(f64, f64)>,
    closed: Vec<Utterance>,
}

/// A slope this close to 1 is a shift: the envelopes' 5 ms steps, not a stretch.
const SLOPE_TOLERANCE: f64 = 0.02;

impl Clock {
    fn open(&mut self) {
        self.open = Some((self.input.seconds(), self.output.seconds()));
    }

    fn close(&mut self) {
        let Some((a0, b0)) = self.open.take() else {
            return;
        };
        let (a1, b1) = (self.input.seconds(), self.output.seconds());
        let (at_in, at_out, slope) = match (self.input.sound(a0, a1), self.output.sound(b0, b1)) {
            (Some((i0, i1)), Some((o0, o1))) => {
                let slope = if i1 - i0 > HOP {
                    (o1 - o0) / (i1 - i0)
                } else {
                    1.0
                };
                if (slope - 1.0).abs() <= SLOPE_TOLERANCE {
                    // A shift: the onsets, and the ends, agree as well as the
                    // envelopes can tell; take their mean offset.
                    let shift = ((o0 - i0) + (o1 - i1)) / 2.0;
                    (i0, i0 + shift, 1.0)
                } else {
                    (i0, o0, slope)
                }
            }
            // Silence in or out: only the start is known.
            _ => (a0, b0, 1.0),
        };
        self.closed.push(Utterance {
            input: (a0, a1),
            output: (b0, b1),
            at_in,
            at_out,
            slope,
            floor: self.output.floor(b0, b1),
        });
        // The input's envelope is not needed again.
        self.input.drop_before(a1);
    }

    /// A word's input span → its span in the response, once the utterance
    /// holding it is closed (`None` before): mapped, then each edge that
    /// borders a pause moved onto where the output's sound stops or starts
    /// (the model's frames place a word to about a frame; the audio shows
    /// a pause's edge to 5 ms).
    fn place(&mut self, start: f64, end: f64) -> Option<(f64, f64)> {
        // Utterances wholly before the word are not needed again: words
        // come in order.
        while self.closed.len() > 1 && self.closed[0].input.1 <= start {
            self.closed.remove(0);
            if let Some(next) = self.closed.first() {
                self.output.drop_before(next.output.0);
            }
        }
        let found = self.closed.iter().find(|u| end <= u.input.1);
        // Past the last closed utterance: wait for the open one, or (none
        // open: the run is over) it is the last one's end.
        let u = match (found, self.open) {
            (Some(u), _) => *u,
            (None, None) => *self.closed.last()?,
            (None, Some(_)) => return None,
        };
        let (a, b) = (u.map(start), u.map(end));
        let Some(floor) = u.floor else {
            return Some((a, b));
        };
        let clamp = |t: f64| t.clamp(u.output.0, u.output.1);
        let a = clamp(self.output.snap(a, floor, true, u.output));
        let b = clamp(self.output.snap(b, floor, false, u.output)).max(a);
        Some((a, b))
    }
}

/// WebVTT captions of `words`: a cue per phrase (at most 8 words or 4 s,
/// ending after a sentence's last word or before a pause of 0.5 s).
pub fn webvtt(words: &[WordTiming]) -> String {
    let mut out = String::from("WEBVTT\n");
    let mut cue: Vec<&WordTiming> = Vec::new();
    let flush = |cue: &mut Vec<&WordTiming>, out: &mut String| {
        let (Some(first), Some(last)) = (cue.first(), cue.last()) else {
            return;
        };
        let end = last.end.max(first.start + 0.001);
        let mut text = String::new();
        for (i, w) in cue.iter().enumerate() {
            let joined = i > 0 && !(is_cjk_word(&cue[i - 1].text) && is_cjk_word(&w.text));
            if joined {
                text.push(' ');
            }
            text.push_str(&w.text.replace("-->", "->"));
        }
        out.push_str(&format!(
            "\n{} --> {}\n{}\n",
            vtt_time(first.start),
            vtt_time(end),
            text.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        ));
        cue.clear();
    };
    for w in words {
        if let (Some(first), Some(prev)) = (cue.first(), cue.last()) {
            if cue.len() >= 8 || w.end - first.start > 4.0 || w.start - prev.end > 0.5 {
                flush(&mut cue, &mut out);
            }
        }
        cue.push(w);
        if w.text.ends_with(['.', '!', '?', '。', '！', '？']) {
            flush(&mut cue, &mut out);
        }
    }
    flush(&mut cue, &mut out);
    out
}

fn is_cjk_word(text: &str) -> bool {
    text.chars().next().is_some_and(is_ideograph)
}

fn vtt_time(seconds: f64) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Vec<String> {
        tokens(text).into_iter().map(|t| t.key).collect()
    }

    #[test]
    fn tokens_are_words_and_ideographs_with_letters_or_digits() {
        assert_eq!(
            keys("It costs $3.50 — today, 你好!"),
            ["it", "costs", "350", "today", "你", "好"]
        );
    }

    #[test]
    fn joined_and_split_spoken_words_are_paired_by_length() {
        // "I went in the house": espeak joins "in the" (ɪnðə, 4 phonemes).
        let weights = [1.0, 4.0, 2.0, 3.0, 5.0];
        let phonemes = [2, 4, 4, 5];
        let p = align_spoken(&weights, &phonemes, false);
        assert_eq!(
            p,
            vec![
                Pairing {
                    tokens: 0..1,
                    words: 0..1
                },
                Pairing {
                    tokens: 1..2,
                    words: 1..2
                },
                Pairing {
                    tokens: 2..4,
                    words: 2..3
                },
                Pairing {
                    tokens: 4..5,
                    words: 3..4
                },
            ]
        );
        // "1995" → four spoken words.
        let p = align_spoken(&[12.0], &[8, 6, 5, 3], false);
        assert_eq!(
            p,
            vec![Pairing {
                tokens: 0..1,
                words: 0..4
            }]
        );
    }

    #[test]
    fn a_rewritten_run_of_several_words_is_cut_by_expected_length() {
        // "5th, 2024" → "fifth, twenty twenty four".
        assert_eq!(
            split_run(&[5.0, 12.0], &[5.0, 6.0, 6.0, 4.0]),
            vec![0..1, 1..4]
        );
        // As many spoken tokens as words: one each.
        assert_eq!(split_run(&[9.0, 1.0], &[3.0, 3.0]), vec![0..1, 1..2]);
    }

    #[test]
    fn a_partial_alignment_stops_where_the_spoken_words_do() {
        // Two sentences of text, the first spoken so far.
        let weights = [5.0, 5.0, 4.0, 6.0, 3.0];
        let p = align_spoken(&weights, &[5, 6], true);
        assert_eq!(p.last().map(|p| p.tokens.end), Some(2));
    }

    #[test]
    fn rewritten_words_span_what_they_became() {
        let original = tokens("It costs $3.50 today.");
        let spoken = tokens("It costs three dollars and fifty cents today.");
        let runs = align_original(&original, &spoken);
        assert_eq!(
            runs,
            vec![(0..1, 0..1), (1..2, 1..2), (2..3, 2..7), (3..4, 7..8)]
        );
        // A dropped word, an added one.
        let runs = align_original(&tokens("a & b"), &tokens("a b c"));
        assert_eq!(runs, vec![(0..1, 0..1), (1..2, 1..3)]);
    }

    #[test]
    fn a_trimmed_utterance_is_a_shift_and_a_stretched_one_a_slope() {
        let rate = 1000;
        let tone = |n: usize| vec![0.5f32; n];
        let silence = |n: usize| vec![0.0f32; n];
        // In: 300 ms silence, 1 s sound, 300 ms silence. Out: trimmed to 30 ms.
        let mut c = Clock::default();
        c.open();
        for part in [silence(300), tone(1000), silence(300)] {
            c.input.push(&part, 1, rate);
        }
        for part in [silence(30), tone(1000), silence(30)] {
            c.output.push(&part, 1, rate);
        }
        c.close();
        let (t, _) = c.place(0.8, 0.9).unwrap();
        assert!((t - 0.53).abs() < 0.006, "{t}");
        // Next utterance, stretched ×2, after 500 ms of break silence.
        c.open();
        for part in [silence(100), tone(1000)] {
            c.input.push(&part, 1, rate);
        }
        for part in [silence(500), silence(200), tone(2000)] {
            c.output.push(&part, 1, rate);
        }
        c.close();
        // Input 1.6 + 0.1 + 0.5 = 2.2 s → output 1.06 + 0.7 + 1.0 = 2.76 s.
        let (t, _) = c.place(2.2, 2.3).unwrap();
        assert!((t - 2.76).abs() < 0.011, "{t}");
        // A word's start 20 ms (in the output) off a pause's edge is moved onto it.
        let (t, _) = c.place(1.71, 1.8).unwrap();
        assert!((t - 1.76).abs() < 0.006, "{t}");
    }

    #[test]
    fn captions_are_phrases_in_webvtt() {
        let w = |text: &str, start: f64, end: f64| WordTiming {
            text: text.into(),
            start,
            end,
        };
        let vtt = webvtt(&[
            w("Hello", 0.1, 0.4),
            w("world.", 0.45, 0.9),
            w("Again", 2.0, 2.5),
        ]);
        assert_eq!(
            vtt,
            "WEBVTT\n\n00:00:00.100 --> 00:00:00.900\nHello world.\n\n\
             00:00:02.000 --> 00:00:02.500\nAgain\n"
        );
    }
}
