//! The SSML subset: a document parsed with a real XML parser and lowered
//! into what the rest of the service already speaks — plain text (for the
//! text stages, the phonemizer and the voice), exact silences, and per-span
//! overrides of the voice, language, speed, pitch and volume.
//!
//! Lowering, element by element (docs/ssml.md has the user's table):
//! - `speak` (root), `p`, `s`: structure; a `p` or `s` ends a sentence (a
//!   full stop is added when its text has no final punctuation).
//! - `break`: a [`Block::Silence`] of exactly `time` (or the `strength`'s
//!   length); the voice's audio around it is a separate utterance.
//! - `prosody`: `rate` multiplies the speed, `pitch` adds semitones, `volume`
//!   adds decibels (nested elements combine), carried as [`Prosody`].
//! - `say-as`: handed to the pipeline's first text stage as a hint when that
//!   stage declares `applies = ["say-as"]` ([`Hinted`]: the block's text
//!   with the content as written, and where each `say-as` lies, which the
//!   stage reads from its config's `say_as` key) — the normalizer of the
//!   pipeline's language reads it. Otherwise the host rewrites the content
//!   into English text read one way only (`characters` → spaced letters,
//!   `ordinal` → "21st", `date` → "March 5th, 2024", `telephone` → digit
//!   groups…), and the text stages get plain text as for any request. No
//!   WIT change either way.
//!   Like any inline text, it joins the words around it as the document
//!   spaces it.
//! - `sub`: its `alias` instead of the content; `phoneme` (`alphabet="ipa"`):
//!   an inline `[[ … ]]` block (Piper's syntax, which the phonemizer passes
//!   through).
//! - `voice name`, `lang xml:lang` (and `xml:lang` on `speak`, `p`, `s`): the
//!   voice, or the language the pipeline's routes give a voice.
//!
//! Anything else — an element, an attribute or a value outside the subset —
//! is refused with the name of what was refused ([`SsmlError::Unsupported`]),
//! never dropped. A DTD is refused (so no entity can be declared, let alone
//! expanded); elements, nesting and the total break time are capped.

use roxmltree::{Document, Node, NodeType, ParsingOptions};

/// The SSML namespace; elements may also be in no namespace.
const SSML_NS: &str = "http://www.w3.org/2001/10/synthesis";
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Most elements in one document.
pub const MAX_ELEMENTS: usize = 2000;
/// Deepest nesting of elements.
pub const MAX_DEPTH: usize = 32;
/// Longest single `break`, milliseconds.
pub const MAX_BREAK_MS: u32 = 10_000;
/// Most silence the breaks of one document add, milliseconds.
pub const MAX_TOTAL_BREAK_MS: u32 = 120_000;
/// Prosody limits after nesting: pitch in semitones, volume in dB, rate as a
/// factor (the request's `speed` range bounds the product as well).
pub const PITCH_RANGE: (f32, f32) = (-12.0, 12.0);
pub const VOLUME_RANGE: (f32, f32) = (-40.0, 12.0);
pub const RATE_RANGE: (f32, f32) = (0.25, 4.0);

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SsmlError {
    /// Not well-formed XML (400).
    #[error("malformed SSML at line {line}, column {column}: {message}")]
    Malformed {
        line: u32,
        column: u32,
        message: String,
    },
    /// Well-formed, but outside the subset (422): names what was refused.
    #[error("{0}")]
    Unsupported(String),
    /// Over one of the document caps (413).
    #[error("{0}")]
    TooLarge(String),
}

/// Prosody of a span of text: rate (× speed), pitch (semitones), volume (dB).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prosody {
    pub rate: f32,
    pub pitch: f32,
    pub volume: f32,
}

impl Prosody {
    pub const NEUTRAL: Prosody = Prosody {
        rate: 1.0,
        pitch: 0.0,
        volume: 0.0,
    };
}

/// What a stretch of speech is spoken with.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub prosody: Prosody,
    /// `voice name`: a voice of the voices folder.
    pub voice: Option<String>,
    /// `xml:lang`: routed to a voice through the pipeline's routes.
    pub lang: Option<String>,
}

/// One piece of the lowered document, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// Text to speak (plain text, possibly with inline `[[ ]]` phonemes),
    /// and the same words as the document wrote them (`say-as`, `sub` and
    /// `phoneme` content rather than what they lower to): what word
    /// timestamps report.
    Speech {
        text: String,
        written: String,
        settings: Settings,
        /// When the block has `say-as` elements: the text for a text stage
        /// that takes them as hints.
        hinted: Option<Hinted>,
    },
    /// Exact silence.
    Silence { ms: u32 },
}

/// A speech block's text with each `say-as` content as the document wrote
/// it, and where those are: what a text stage that declares `say-as` gets
/// (the hints as JSON in its config's `say_as` key).
#[derive(Debug, Clone, PartialEq)]
pub struct Hinted {
    pub text: String,
    pub say_as: Vec<SayAs>,
}

/// One `say-as` element over [`Hinted::text`]: `start..end` in bytes.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SayAs {
    pub start: usize,
    pub end: usize,
    pub interpret_as: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// True when `text` is SSML by its look: a `<speak` root after optional
/// whitespace and an XML declaration (the OpenAI route's auto-detection).
pub fn looks_like_ssml(text: &str) -> bool {
    let mut t = text.trim_start();
    if let Some(rest) = t.strip_prefix("<?xml") {
        match rest.find("?>") {
            Some(end) => t = rest[end + 2..].trim_start(),
            None => return false,
        }
    }
    t.strip_prefix("<speak")
        .is_some_and(|rest| rest.starts_with(|c: char| c == '>' || c == '/' || c.is_whitespace()))
}

/// Parses and lowers `doc`.
pub fn parse(doc: &str) -> Result<Vec<Block>, SsmlError> {
    let options = ParsingOptions {
        allow_dtd: false,
        // Elements, texts and comments: a bound well above MAX_ELEMENTS
        // that stops a huge document before it is all in memory.
        nodes_limit: (MAX_ELEMENTS * 4) as u32,
        ..ParsingOptions::default()
    };
    let parsed = Document::parse_with_options(doc, options).map_err(|e| match e {
        roxmltree::Error::DtdDetected => SsmlError::Unsupported(
            "a DTD (<!DOCTYPE …>) is not allowed in SSML here: no entities can be declared".into(),
        ),
        roxmltree::Error::NodesLimitReached => SsmlError::TooLarge(format!(
            "the SSML document has too many nodes (at most {MAX_ELEMENTS} elements)"
        )),
        e => {
            let pos = e.pos();
            let message = e.to_string();
            // roxmltree appends " at ROW:COL"; the position is given apart.
            let message = match message.rfind(" at ") {
                Some(i) => message[..i].to_string(),
                None => message,
            };
            SsmlError::Malformed {
                line: pos.row,
                column: pos.col,
                message,
            }
        }
    })?;
    let root = parsed.root_element();
    let mut lower = Lower {
        doc: &parsed,
        blocks: Vec::new(),
        text: String::new(),
        written: String::new(),
        hinted: String::new(),
        say_as: Vec::new(),
        current: None,
        elements: 0,
        break_ms: 0,
    };
    if name_of(&lower, root)? != "speak" {
        return Err(lower.unsupported(root, "the root element must be <speak>".into()));
    }
    let settings = Settings {
        prosody: Prosody::NEUTRAL,
        voice: None,
        lang: None,
    };
    lower.element(root, &settings, 1)?;
    lower.flush();
    if !lower
        .blocks
        .iter()
        .any(|b| matches!(b, Block::Speech { .. }))
    {
        return Err(SsmlError::Unsupported(
            "the SSML document has no text to speak".into(),
        ));
    }
    Ok(lower.blocks)
}

struct Lower<'a, 'input> {
    doc: &'a Document<'input>,
    blocks: Vec<Block>,
    /// Text gathered for `current` settings, not yet a block.
    text: String,
    /// The same, as the document wrote it.
    written: String,
    /// The same, with `say-as` content as written, and where it lies.
    hinted: String,
    say_as: Vec<SayAs>,
    current: Option<Settings>,
    elements: usize,
    break_ms: u32,
}

/// `text` appended to `buf` as XML text is read aloud: whitespace collapses
/// to one space; text that touches markup without a space ("<sub …/>s")
/// stays joined.
fn append_words(buf: &mut String, text: &str) {
    let lead = text.starts_with(char::is_whitespace);
    for (i, word) in text.split_whitespace().enumerate() {
        if (i > 0 || lead) && !buf.is_empty() && !buf.ends_with(' ') {
            buf.push(' ');
        }
        buf.push_str(word);
    }
    if text.ends_with(char::is_whitespace) && !buf.is_empty() && !buf.ends_with(' ') {
        buf.push(' ');
    }
}

/// The value of attribute `name` among an element's checked attributes,
/// trimmed.
fn attr<'v>(attrs: &'v [(String, String)], name: &str) -> Option<&'v str> {
    attrs.iter().find(|(n, _)| n == name).map(|(_, v)| v.trim())
}

/// The element's local name, checked to be in the SSML namespace (or none).
fn name_of<'i>(lower: &Lower<'_, 'i>, node: Node<'_, 'i>) -> Result<&'i str, SsmlError> {
    let tag = node.tag_name();
    match tag.namespace() {
        None | Some(SSML_NS) => Ok(tag.name()),
        Some(ns) => Err(lower.unsupported(
            node,
            format!("element <{}> in namespace {ns} is not SSML", tag.name()),
        )),
    }
}

impl<'input> Lower<'_, 'input> {
    fn unsupported(&self, node: Node<'_, 'input>, what: String) -> SsmlError {
        let pos = self.doc.text_pos_at(node.range().start);
        SsmlError::Unsupported(format!("{what} (line {}, column {})", pos.row, pos.col))
    }

    /// The attributes of `node`, each checked against `allowed` (local names
    /// in no namespace; `xml:lang` as "xml:lang").
    fn attributes(
        &self,
        node: Node<'_, 'input>,
        element: &str,
        allowed: &[&str],
    ) -> Result<Vec<(String, String)>, SsmlError> {
        let mut out = Vec::new();
        for a in node.attributes() {
            let name = match a.namespace() {
                None => a.name().to_string(),
                Some(XML_NS) => format!("xml:{}", a.name()),
                // Schema hints on the root say nothing about the speech.
                Some(XSI_NS) if element == "speak" => continue,
                Some(ns) => format!("{{{ns}}}{}", a.name()),
            };
            if !allowed.contains(&name.as_str()) {
                return Err(self.unsupported(
                    node,
                    format!(
                        "attribute `{name}` of <{element}> is not supported{}",
                        if allowed.is_empty() {
                            String::new()
                        } else {
                            format!(" (supported: {})", allowed.join(", "))
                        }
                    ),
                ));
            }
            out.push((name, a.value().to_string()));
        }
        Ok(out)
    }

    /// Speech `text`, which the document wrote as `written`.
    fn push_text(&mut self, settings: &Settings, text: &str, written: &str) {
        self.settle(settings);
        append_words(&mut self.text, text);
        append_words(&mut self.written, written);
        append_words(&mut self.hinted, text);
    }

    /// A `say-as` element: `spoken` is the host's own reading of `content`.
    fn push_say_as(
        &mut self,
        settings: &Settings,
        spoken: &str,
        content: &str,
        interpret_as: &str,
        format: Option<&str>,
    ) {
        self.settle(settings);
        append_words(&mut self.text, spoken);
        append_words(&mut self.written, content);
        let before = self.hinted.len();
        append_words(&mut self.hinted, content);
        let added = &self.hinted[before..];
        let start = before + (added.len() - added.trim_start().len());
        let end = self.hinted.trim_end().len();
        if start < end {
            self.say_as.push(SayAs {
                start,
                end,
                interpret_as: interpret_as.to_string(),
                format: format.map(str::to_string),
            });
        }
    }

    /// Text with other settings starts a new block.
    fn settle(&mut self, settings: &Settings) {
        if self.current.as_ref() != Some(settings) {
            self.flush();
            self.current = Some(settings.clone());
        }
    }

    /// Ends a sentence: a full stop unless the text already ends one.
    fn end_sentence(&mut self) {
        let h = self.hinted.trim_end();
        if !h.is_empty() {
            let ends = h.ends_with(['.', '!', '?', ';', ':', '…', '。', '！', '？', '；']);
            self.hinted = format!("{h}{} ", if ends { "" } else { "." });
        }
        if !self.written.trim_end().is_empty() {
            self.written = format!("{} ", self.written.trim_end());
        }
        let t = self.text.trim_end();
        if t.is_empty() {
            return;
        }
        let ends = t.ends_with(['.', '!', '?', ';', ':', '…', '。', '！', '？', '；']);
        let mut s = t.to_string();
        if !ends {
            s.push('.');
        }
        s.push(' ');
        self.text = s;
    }

    fn flush(&mut self) {
        let text = self.text.trim();
        if let (false, Some(settings)) = (text.is_empty(), self.current.clone()) {
            // Adjacent speech with the same settings (split by a break that
            // lowered to nothing) stays one block.
            self.blocks.push(Block::Speech {
                text: text.to_string(),
                written: self.written.trim().to_string(),
                settings,
                hinted: (!self.say_as.is_empty()).then(|| {
                    // Ranges were made on the untrimmed text.
                    let lead = self.hinted.len() - self.hinted.trim_start().len();
                    Hinted {
                        text: self.hinted.trim().to_string(),
                        say_as: std::mem::take(&mut self.say_as)
                            .into_iter()
                            .map(|h| SayAs {
                                start: h.start - lead,
                                end: h.end - lead,
                                ..h
                            })
                            .collect(),
                    }
                }),
            });
        }
        self.text.clear();
        self.written.clear();
        self.hinted.clear();
        self.say_as.clear();
    }

    fn silence(&mut self, node: Node<'_, 'input>, ms: u32) -> Result<(), SsmlError> {
        self.break_ms = self.break_ms.saturating_add(ms);
        if self.break_ms > MAX_TOTAL_BREAK_MS {
            return Err(SsmlError::TooLarge(format!(
                "the breaks of the SSML document add more than {} s of silence (line {})",
                MAX_TOTAL_BREAK_MS / 1000,
                self.doc.text_pos_at(node.range().start).row
            )));
        }
        if ms == 0 {
            // No pause: the words stay in one block, still two words.
            append_words(&mut self.text, " ");
            append_words(&mut self.written, " ");
            append_words(&mut self.hinted, " ");
            return Ok(());
        }
        self.flush();
        match self.blocks.last_mut() {
            Some(Block::Silence { ms: before }) => *before += ms,
            _ => self.blocks.push(Block::Silence { ms }),
        }
        Ok(())
    }

    fn children(
        &mut self,
        node: Node<'_, 'input>,
        settings: &Settings,
        depth: usize,
    ) -> Result<(), SsmlError> {
        for child in node.children() {
            match child.node_type() {
                NodeType::Element => self.element(child, settings, depth + 1)?,
                NodeType::Text => {
                    let text = child.text().unwrap_or("");
                    self.push_text(settings, text, text)
                }
                // Comments and processing instructions say nothing.
                _ => {}
            }
        }
        Ok(())
    }

    /// The text content of an element that may hold text only.
    fn text_only(&self, node: Node<'_, 'input>, element: &str) -> Result<String, SsmlError> {
        let mut text = String::new();
        for child in node.children() {
            match child.node_type() {
                NodeType::Text => text.push_str(child.text().unwrap_or("")),
                NodeType::Element => {
                    return Err(self.unsupported(
                        child,
                        format!(
                            "<{}> inside <{element}> is not supported: it holds text only",
                            child.tag_name().name()
                        ),
                    ))
                }
                _ => {}
            }
        }
        Ok(text.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    fn element(
        &mut self,
        node: Node<'_, 'input>,
        settings: &Settings,
        depth: usize,
    ) -> Result<(), SsmlError> {
        self.elements += 1;
        if self.elements > MAX_ELEMENTS {
            return Err(SsmlError::TooLarge(format!(
                "the SSML document has more than {MAX_ELEMENTS} elements"
            )));
        }
        if depth > MAX_DEPTH {
            return Err(SsmlError::TooLarge(format!(
                "the SSML document nests elements more than {MAX_DEPTH} deep"
            )));
        }
        let name = name_of(self, node)?;
        match name {
            "speak" => {
                if depth > 1 {
                    return Err(self.unsupported(node, "<speak> inside <speak>".into()));
                }
                let attrs = self.attributes(node, name, &["version", "xml:lang"])?;
                let inner = self.with_lang(node, settings, &attrs)?;
                self.children(node, &inner, depth)
            }
            "p" | "s" => {
                let attrs = self.attributes(node, name, &["xml:lang"])?;
                let inner = self.with_lang(node, settings, &attrs)?;
                self.end_sentence();
                self.children(node, &inner, depth)?;
                self.end_sentence();
                Ok(())
            }
            "lang" => {
                let attrs = self.attributes(node, name, &["xml:lang"])?;
                if attrs.is_empty() {
                    return Err(self.unsupported(node, "<lang> needs `xml:lang`".into()));
                }
                let inner = self.with_lang(node, settings, &attrs)?;
                self.children(node, &inner, depth)
            }
            "voice" => {
                let attrs = self.attributes(node, name, &["name"])?;
                let Some(voice) = attr(&attrs, "name").filter(|v| !v.is_empty()) else {
                    return Err(self.unsupported(node, "<voice> needs `name`".into()));
                };
                let inner = Settings {
                    voice: Some(voice.to_string()),
                    ..settings.clone()
                };
                self.children(node, &inner, depth)
            }
            "break" => {
                let attrs = self.attributes(node, name, &["time", "strength"])?;
                if node.has_children() {
                    return Err(self.unsupported(node, "<break> must be empty".into()));
                }
                let time = attr(&attrs, "time");
                let strength = attr(&attrs, "strength");
                let ms = match (time, strength) {
                    (Some(t), _) => break_time(t).map_err(|e| self.unsupported(node, e))?,
                    (None, Some(s)) => strength_ms(s).map_err(|e| self.unsupported(node, e))?,
                    (None, None) => strength_ms("medium").expect("medium"),
                };
                self.silence(node, ms)
            }
            "prosody" => {
                let attrs = self.attributes(node, name, &["rate", "pitch", "volume"])?;
                let mut p = settings.prosody;
                for (key, value) in &attrs {
                    let v = value.trim();
                    let r = match key.as_str() {
                        "rate" => rate(v).map(|r| p.rate *= r),
                        "pitch" => pitch(v).map(|st| p.pitch += st),
                        _ => volume(v).map(|db| p.volume += db),
                    };
                    r.map_err(|e| self.unsupported(node, format!("<prosody {key}=\"{v}\">: {e}")))?;
                }
                let within = |v: f32, (lo, hi): (f32, f32)| (lo..=hi).contains(&v);
                if !within(p.rate, RATE_RANGE)
                    || !within(p.pitch, PITCH_RANGE)
                    || !within(p.volume, VOLUME_RANGE)
                {
                    return Err(self.unsupported(
                        node,
                        format!(
                            "<prosody> nests to rate ×{:.2}, pitch {:+.1} st, volume {:+.1} dB; \
                             supported: rate ×{}–{}, pitch {:+}–{:+} st, volume {:+}–{:+} dB",
                            p.rate,
                            p.pitch,
                            p.volume,
                            RATE_RANGE.0,
                            RATE_RANGE.1,
                            PITCH_RANGE.0,
                            PITCH_RANGE.1,
                            VOLUME_RANGE.0,
                            VOLUME_RANGE.1
                        ),
                    ));
                }
                let inner = Settings {
                    prosody: p,
                    ..settings.clone()
                };
                self.children(node, &inner, depth)
            }
            "say-as" => {
                let attrs = self.attributes(node, name, &["interpret-as", "format"])?;
                let Some(kind) = attr(&attrs, "interpret-as") else {
                    return Err(self.unsupported(node, "<say-as> needs `interpret-as`".into()));
                };
                let content = self.text_only(node, name)?;
                let spoken = say_as(kind, attr(&attrs, "format"), &content).map_err(|e| {
                    self.unsupported(node, format!("<say-as interpret-as=\"{kind}\">: {e}"))
                })?;
                self.push_say_as(settings, &spoken, &content, kind, attr(&attrs, "format"));
                Ok(())
            }
            "sub" => {
                let attrs = self.attributes(node, name, &["alias"])?;
                let Some(alias) = attr(&attrs, "alias") else {
                    return Err(self.unsupported(node, "<sub> needs `alias`".into()));
                };
                let written = self.text_only(node, name)?;
                self.push_text(settings, alias, &written);
                Ok(())
            }
            "phoneme" => {
                let attrs = self.attributes(node, name, &["alphabet", "ph"])?;
                match attr(&attrs, "alphabet") {
                    Some("ipa") => {}
                    Some(other) => {
                        return Err(self.unsupported(
                            node,
                            format!("<phoneme alphabet=\"{other}\">: only `ipa` is supported"),
                        ))
                    }
                    None => {
                        return Err(
                            self.unsupported(node, "<phoneme> needs alphabet=\"ipa\"".into())
                        )
                    }
                }
                let ph = attr(&attrs, "ph").unwrap_or("");
                if ph.is_empty() || ph.contains("[[") || ph.contains("]]") {
                    return Err(self.unsupported(
                        node,
                        "<phoneme> needs `ph` with IPA, without `[[` or `]]`".into(),
                    ));
                }
                let written = self.text_only(node, name)?;
                self.push_text(settings, &format!("[[ {ph} ]]"), &written);
                Ok(())
            }
            other => Err(self.unsupported(
                node,
                format!(
                    "element <{other}> is not supported (supported: speak, p, s, break, prosody, \
                     say-as, sub, phoneme, voice, lang)"
                ),
            )),
        }
    }

    /// `settings` with the element's `xml:lang`, if it has one.
    fn with_lang(
        &self,
        node: Node<'_, 'input>,
        settings: &Settings,
        attrs: &[(String, String)],
    ) -> Result<Settings, SsmlError> {
        let Some(lang) = attr(attrs, "xml:lang") else {
            return Ok(settings.clone());
        };
        let ok = !lang.is_empty()
            && lang.len() <= super::LANGUAGE_MAX_CHARS
            && lang
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(self.unsupported(
                node,
                format!("xml:lang=\"{lang}\" is not a language tag such as en-US"),
            ));
        }
        Ok(Settings {
            lang: Some(lang.to_string()),
            ..settings.clone()
        })
    }
}

/// A `break time`: "500ms", "1.5s".
fn break_time(v: &str) -> Result<u32, String> {
    let v = v.trim();
    let (number, scale) = if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return Err(format!(
            "<break time=\"{v}\">: a time is like 500ms or 1.5s"
        ));
    };
    let ms = number
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map(|n| n * scale)
        .ok_or_else(|| format!("<break time=\"{v}\">: a time is like 500ms or 1.5s"))?;
    if ms > f64::from(MAX_BREAK_MS) {
        return Err(format!(
            "<break time=\"{v}\">: a break is at most {} s",
            MAX_BREAK_MS / 1000
        ));
    }
    Ok(ms.round() as u32)
}

/// A `break strength`'s length, milliseconds.
fn strength_ms(v: &str) -> Result<u32, String> {
    Ok(match v.trim() {
        "none" => 0,
        "x-weak" => 100,
        "weak" => 250,
        "medium" => 500,
        "strong" => 800,
        "x-strong" => 1200,
        other => {
            return Err(format!(
                "<break strength=\"{other}\">: one of none, x-weak, weak, medium, strong, x-strong"
            ))
        }
    })
}

/// A signed number with a unit suffix: "+2st", "-10%", "3dB".
fn signed(v: &str, unit: &str) -> Option<f32> {
    let n = v.strip_suffix(unit)?.trim();
    let n: f32 = n.strip_prefix('+').unwrap_or(n).parse().ok()?;
    n.is_finite().then_some(n)
}

/// `prosody rate`: a keyword, a percentage of the current rate, or a factor.
fn rate(v: &str) -> Result<f32, String> {
    let r =
        match v {
            "x-slow" => 0.5,
            "slow" => 0.75,
            "medium" | "default" => 1.0,
            "fast" => 1.25,
            "x-fast" => 1.75,
            _ => {
                let r = if let Some(p) = v.strip_suffix('%') {
                    p.trim().parse::<f32>().ok().map(|p| p / 100.0)
                } else {
                    v.parse::<f32>().ok()
                };
                match r {
                    Some(r) if r.is_finite() && r > 0.0 => r,
                    _ => return Err(
                        "a rate is x-slow, slow, medium, fast, x-fast, a percentage (80%) or a \
                         factor (1.2)"
                            .into(),
                    ),
                }
            }
        };
    Ok(r)
}

/// `prosody pitch`, semitones: a keyword, "+2st", or "+10%" of the frequency.
fn pitch(v: &str) -> Result<f32, String> {
    Ok(match v {
        "x-low" => -6.0,
        "low" => -3.0,
        "medium" | "default" => 0.0,
        "high" => 3.0,
        "x-high" => 6.0,
        _ => {
            if let Some(st) = signed(v, "st") {
                st
            } else if let Some(p) = signed(v, "%").filter(|p| *p > -100.0) {
                12.0 * (1.0 + p / 100.0).log2()
            } else {
                return Err(
                    "a pitch is x-low, low, medium, high, x-high, semitones (+2st) or a \
                            relative change (+10%); absolute frequencies (Hz) are not supported"
                        .into(),
                );
            }
        }
    })
}

/// `prosody volume`, decibels: a keyword or "+6dB".
fn volume(v: &str) -> Result<f32, String> {
    Ok(match v {
        "silent" => VOLUME_RANGE.0,
        "x-soft" => -12.0,
        "soft" => -6.0,
        "medium" | "default" => 0.0,
        "loud" => 6.0,
        "x-loud" => 12.0,
        _ => signed(v, "dB").ok_or(
            "a volume is silent, x-soft, soft, medium, loud, x-loud or decibels (+6dB); \
             absolute numbers are not supported",
        )?,
    })
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn ordinal(n: u64) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// Digits one by one: "1 2 3".
fn spaced_digits(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_digit)
        .map(String::from)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `say-as`: the content rewritten into text read one way only.
fn say_as(kind: &str, format: Option<&str>, content: &str) -> Result<String, String> {
    if content.is_empty() {
        return Err("it has no content".into());
    }
    if format.is_some() && kind != "date" {
        return Err("`format` is supported with interpret-as=\"date\" only".into());
    }
    let digits_only = |s: &str| -> Result<String, String> {
        let d: String = s
            .chars()
            .filter(|c| !matches!(c, ',' | ' ' | '_'))
            .collect();
        if !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()) {
            Ok(d)
        } else {
            Err(format!("`{s}` is not a whole number"))
        }
    };
    match kind {
        "characters" | "spell-out" | "verbatim" => Ok(content
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_uppercase().to_string())
            .collect::<Vec<_>>()
            .join(" ")),
        "cardinal" | "number" => {
            let (sign, rest) = match content.strip_prefix('-') {
                Some(r) => ("minus ", r),
                None => ("", content),
            };
            Ok(format!("{sign}{}", digits_only(rest)?))
        }
        "ordinal" => {
            let d = digits_only(content.trim_end_matches(['.', 's', 't', 'n', 'd', 'r', 'h']))?;
            let n: u64 = d.parse().map_err(|_| format!("`{content}` is too large"))?;
            Ok(ordinal(n))
        }
        "digits" => {
            if !content.chars().all(|c| c.is_ascii_digit() || c == ' ') {
                return Err(format!("`{content}` is not digits"));
            }
            Ok(spaced_digits(content))
        }
        "telephone" => {
            let groups: Vec<String> = content
                .split(|c: char| !c.is_ascii_digit())
                .filter(|g| !g.is_empty())
                .map(spaced_digits)
                .collect();
            if groups.is_empty()
                || !content
                    .chars()
                    .all(|c| c.is_ascii_digit() || " +-().".contains(c))
            {
                return Err(format!("`{content}` is not a telephone number"));
            }
            let plus = if content.trim_start().starts_with('+') {
                "plus "
            } else {
                ""
            };
            Ok(format!("{plus}{}", groups.join(", ")))
        }
        "date" => date(format.unwrap_or("ymd"), content),
        other => Err(format!(
            "interpret-as=\"{other}\" is not supported (supported: characters, spell-out, \
             cardinal, number, ordinal, digits, telephone, date)"
        )),
    }
}

/// A date in `format` (letters y, m, d in the order given) → "March 5th, 2024".
fn date(format: &str, content: &str) -> Result<String, String> {
    let order: Vec<char> = format.chars().collect();
    let valid = matches!(
        format,
        "ymd" | "mdy" | "dmy" | "ym" | "my" | "md" | "dm" | "y" | "m" | "d"
    );
    if !valid {
        return Err(format!(
            "format=\"{format}\" is not one of ymd, mdy, dmy, ym, my, md, dm, y, m, d"
        ));
    }
    let fields: Vec<&str> = content
        .split(['-', '/', '.', ' '])
        .filter(|f| !f.is_empty())
        .collect();
    if fields.len() != order.len() || !fields.iter().all(|f| f.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(format!("`{content}` is not a date in format {format}"));
    }
    let (mut y, mut m, mut d) = (None, None, None);
    for (field, which) in fields.iter().zip(&order) {
        let n: u32 = field
            .parse()
            .map_err(|_| format!("`{content}` is not a date"))?;
        match which {
            'y' => y = Some(n),
            'm' => m = Some(n),
            _ => d = Some(n),
        }
    }
    if m.is_some_and(|m| !(1..=12).contains(&m)) || d.is_some_and(|d| !(1..=31).contains(&d)) {
        return Err(format!("`{content}` is not a date in format {format}"));
    }
    let month = m.map(|m| MONTHS[m as usize - 1]);
    Ok(match (y, month, d) {
        (Some(y), Some(m), Some(d)) => format!("{m} {}, {y}", ordinal(d.into())),
        (Some(y), Some(m), None) => format!("{m} {y}"),
        (None, Some(m), Some(d)) => format!("{m} {}", ordinal(d.into())),
        (Some(y), None, None) => y.to_string(),
        (None, Some(m), None) => m.to_string(),
        (None, None, Some(d)) => format!("the {}", ordinal(d.into())),
        _ => unreachable!("formats are checked above"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn speech(text: &str) -> Block {
        written(text, text)
    }

    fn written(text: &str, written: &str) -> Block {
        Block::Speech {
            text: text.into(),
            written: written.into(),
            hinted: None,
            settings: Settings {
                prosody: Prosody::NEUTRAL,
                voice: None,
                lang: None,
            },
        }
    }

    fn refused(doc: &str) -> String {
        match parse(doc) {
            Err(SsmlError::Unsupported(m)) | Err(SsmlError::TooLarge(m)) => m,
            other => panic!("{doc}: {other:?}"),
        }
    }

    #[test]
    fn structure_and_breaks_lower_to_text_and_silence() {
        let blocks = parse(
            "<speak>Hello <break time=\"700ms\"/> world<p>One</p><s>Two!</s>\
             <break strength=\"weak\"/><break time=\"1.5s\"/>end</speak>",
        )
        .unwrap();
        assert_eq!(
            blocks,
            [
                speech("Hello"),
                Block::Silence { ms: 700 },
                written("world. One. Two!", "world One Two!"),
                Block::Silence { ms: 1750 },
                speech("end"),
            ]
        );
        // A bare break is medium; none is nothing at all.
        let b = parse("<speak>a<break/>b<break strength=\"none\"/>c</speak>").unwrap();
        assert_eq!(b, [speech("a"), Block::Silence { ms: 500 }, speech("b c")]);
    }

    #[test]
    fn the_written_words_are_the_documents() {
        let b = parse(
            "<speak>On <say-as interpret-as=\"date\" format=\"mdy\">3/5/2024</say-as> \
             <sub alias=\"Doctor\">Dr.</sub> Who ate a \
             <phoneme alphabet=\"ipa\" ph=\"təˈmɑːtoʊ\">tomato</phoneme>.</speak>",
        )
        .unwrap();
        let mut expected = written(
            "On March 5th, 2024 Doctor Who ate a [[ təˈmɑːtoʊ ]].",
            "On 3/5/2024 Dr. Who ate a tomato.",
        );
        // For a text stage that takes say-as hints: the content as written.
        if let Block::Speech { hinted, .. } = &mut expected {
            *hinted = Some(Hinted {
                text: "On 3/5/2024 Doctor Who ate a [[ təˈmɑːtoʊ ]].".into(),
                say_as: vec![SayAs {
                    start: 3,
                    end: 11,
                    interpret_as: "date".into(),
                    format: Some("mdy".into()),
                }],
            });
        }
        assert_eq!(b, [expected]);
    }

    #[test]
    fn say_as_sub_and_phoneme_become_plain_text() {
        let one = |inner: &str| match &parse(&format!("<speak>{inner}</speak>")).unwrap()[..] {
            [Block::Speech { text, .. }] => text.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            one("<say-as interpret-as=\"characters\">abc</say-as>"),
            "A B C"
        );
        assert_eq!(
            one("<say-as interpret-as=\"cardinal\">1,234</say-as>"),
            "1234"
        );
        assert_eq!(one("<say-as interpret-as=\"ordinal\">21</say-as>"), "21st");
        assert_eq!(one("<say-as interpret-as=\"ordinal\">12</say-as>"), "12th");
        assert_eq!(
            one("<say-as interpret-as=\"digits\">2024</say-as>"),
            "2 0 2 4"
        );
        assert_eq!(
            one("<say-as interpret-as=\"date\" format=\"mdy\">3/5/2024</say-as>"),
            "March 5th, 2024"
        );
        assert_eq!(
            one("<say-as interpret-as=\"date\">2024-12-06</say-as>"),
            "December 6th, 2024"
        );
        assert_eq!(
            one("<say-as interpret-as=\"telephone\">+1 (555) 123-4567</say-as>"),
            "plus 1, 5 5 5, 1 2 3, 4 5 6 7"
        );
        assert_eq!(
            one("The <sub alias=\"World Wide Web Consortium\">W3C</sub> says"),
            "The World Wide Web Consortium says"
        );
        assert_eq!(
            one("say <phoneme alphabet=\"ipa\" ph=\"təmˈeɪtoʊ\">tomato</phoneme>."),
            "say [[ təmˈeɪtoʊ ]]."
        );
    }

    #[test]
    fn prosody_voice_and_lang_nest() {
        let b = parse(
            "<speak xml:lang=\"en-US\">a<prosody rate=\"50%\" pitch=\"+2st\" volume=\"-6dB\">b\
             <prosody rate=\"slow\" pitch=\"low\">c</prosody></prosody>\
             <voice name=\"test-zh\"><lang xml:lang=\"zh\">d</lang></voice></speak>",
        )
        .unwrap();
        let settings: Vec<(&str, Settings)> = b
            .iter()
            .map(|b| match b {
                Block::Speech { text, settings, .. } => (text.as_str(), settings.clone()),
                Block::Silence { .. } => panic!(),
            })
            .collect();
        assert_eq!(settings.len(), 4);
        assert_eq!(settings[0].1.lang.as_deref(), Some("en-US"));
        assert_eq!(
            settings[1].1.prosody,
            Prosody {
                rate: 0.5,
                pitch: 2.0,
                volume: -6.0
            }
        );
        assert_eq!(
            settings[2].1.prosody,
            Prosody {
                rate: 0.375,
                pitch: -1.0,
                volume: -6.0
            }
        );
        assert_eq!(settings[3].0, "d");
        assert_eq!(settings[3].1.voice.as_deref(), Some("test-zh"));
        assert_eq!(settings[3].1.lang.as_deref(), Some("zh"));
        assert!(
            (pitch("+10%").unwrap() - 1.65).abs() < 0.01,
            "{}",
            pitch("+10%").unwrap()
        );
    }

    #[test]
    fn outside_the_subset_is_refused_by_name() {
        for (doc, says) in [
            ("<speak><audio src=\"x.wav\"/></speak>", "element <audio>"),
            ("<speak>a<mark name=\"m\"/></speak>", "element <mark>"),
            ("<speak><emphasis>a</emphasis></speak>", "element <emphasis>"),
            ("<speak><break time=\"1s\" foo=\"x\"/>a</speak>", "attribute `foo` of <break>"),
            ("<speak><prosody pitch=\"200Hz\">a</prosody></speak>", "pitch=\"200Hz\""),
            ("<speak><prosody rate=\"fast\"><prosody rate=\"400%\">a</prosody></prosody></speak>", "nests to rate"),
            ("<speak><say-as interpret-as=\"currency\">$3</say-as></speak>", "interpret-as=\"currency\""),
            ("<speak><say-as interpret-as=\"cardinal\">abc</say-as></speak>", "not a whole number"),
            ("<speak><phoneme alphabet=\"x-sampa\" ph=\"a\">a</phoneme></speak>", "only `ipa`"),
            ("<speak><voice gender=\"female\">a</voice></speak>", "attribute `gender`"),
            ("<speak><break time=\"11s\"/>a</speak>", "at most 10 s"),
            ("<speak><break time=\"fast\"/>a</speak>", "500ms or 1.5s"),
            ("<foo>a</foo>", "root element must be <speak>"),
            ("<speak><x:y xmlns:x=\"urn:x\">a</x:y></speak>", "not SSML"),
            ("<speak> <!-- only a comment --> </speak>", "no text to speak"),
            ("<!DOCTYPE speak [<!ENTITY a \"b\">]><speak>&a;</speak>", "DTD"),
        ] {
            let m = refused(doc);
            assert!(m.contains(says), "{doc}: {m}");
        }
        // The refusal says where.
        assert!(refused("<speak>\n  <audio/></speak>").contains("line 2, column 3"));
    }

    #[test]
    fn malformed_input_says_line_and_column() {
        match parse("<speak>\nHello <break time=\"1s\"></speak>") {
            Err(SsmlError::Malformed { line, column, .. }) => {
                assert_eq!(line, 2);
                assert!(column > 1);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse("<speak>&undefined;</speak>"),
            Err(SsmlError::Malformed { .. })
        ));
    }

    #[test]
    fn caps_stop_huge_documents_quickly() {
        let deep = format!("<speak>{}a{}</speak>", "<s>".repeat(40), "</s>".repeat(40));
        assert!(refused(&deep).contains("deep"));
        let many = format!("<speak>{}</speak>", "<s>a</s>".repeat(MAX_ELEMENTS + 1));
        let started = std::time::Instant::now();
        assert!(matches!(parse(&many), Err(SsmlError::TooLarge(_))));
        let breaks = format!("<speak>a{}</speak>", "<break time=\"10s\"/>".repeat(13));
        assert!(refused(&breaks).contains("120 s"));
        // A billion-laughs document is a DTD: refused before any expansion.
        let laughs = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">\
            <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">]>\
            <speak>&lol2;</speak>";
        assert!(refused(laughs).contains("DTD"));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn detection_wants_a_speak_root() {
        assert!(looks_like_ssml("<speak>a</speak>"));
        assert!(looks_like_ssml(
            "  <?xml version=\"1.0\"?>\n<speak version=\"1.1\">a</speak>"
        ));
        assert!(!looks_like_ssml("<speaker>a</speaker>"));
        assert!(!looks_like_ssml("Say <speak> aloud"));
    }
}
