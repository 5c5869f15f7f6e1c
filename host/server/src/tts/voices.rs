//! The voices a service speaks with: loaded from the voices folder on first
//! use and kept, one load at a time.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use voxpipe_engine::device::Device;
use voxpipe_engine::synth::LoadedVoice;
use voxpipe_engine::voice::{self, VoiceEntry};

use super::TtsError;

/// Voices by name, loaded on first use and kept.
pub struct VoiceStore {
    dir: PathBuf,
    device: Device,
    loaded: Mutex<HashMap<String, Arc<LoadedVoice>>>,
    /// Serializes loads so two first requests do not load a voice twice.
    loading: Mutex<()>,
}

impl VoiceStore {
    pub fn new(dir: PathBuf, device: Device) -> VoiceStore {
        VoiceStore {
            dir,
            device,
            loaded: Mutex::new(HashMap::new()),
            loading: Mutex::new(()),
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The voice called `name`, loading it if needed (blocking: about a second).
    pub fn get(&self, name: &str) -> Result<Arc<LoadedVoice>, TtsError> {
        if let Some(v) = self.loaded_voice(name) {
            return Ok(v);
        }
        let _one_at_a_time = self.loading.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = self.loaded_voice(name) {
            return Ok(v);
        }
        let voice = Arc::new(LoadedVoice::load_on(&self.dir, name, &self.device)?);
        tracing::info!(
            voice = name,
            device = %voxpipe_engine::device::device_label(&self.device),
            seconds = voice.load_time.as_secs_f64(),
            "voice loaded"
        );
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), voice.clone());
        Ok(voice)
    }

    /// The voice if it is already loaded.
    pub fn loaded_voice(&self, name: &str) -> Option<Arc<LoadedVoice>> {
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Every voice in the folder (loaded or not).
    pub fn catalog(&self) -> Vec<VoiceEntry> {
        voice::scan(&self.dir).map(|(v, _)| v).unwrap_or_default()
    }

    /// The voice to speak `language` (`en_US`, `en-US` or `en`) with: `preferred`
    /// (the pipeline's voice) when it speaks it, else the first voice in the
    /// folder for the exact language, else the first of the same language
    /// family. Front ends that take a language without a voice (Wyoming)
    /// call it when no voice route of the pipeline serves the language
    /// (pipeline/routes.rs); routes come first.
    pub fn for_language(&self, language: &str, preferred: &str) -> Result<String, TtsError> {
        let catalog = self.catalog();
        let tags: Vec<(&str, String)> = catalog
            .iter()
            .filter_map(|v| Some((v.name.as_str(), v.config.language_tag()?)))
            .collect();
        pick_by_language(&tags, language, preferred).ok_or_else(|| TtsError::UnknownVoice {
            name: format!("for language {language}"),
            available: tags
                .iter()
                .map(|(name, tag)| format!("{name} ({tag})"))
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// A refusal naming the voices the folder has.
    pub fn unknown(&self, name: &str) -> TtsError {
        TtsError::UnknownVoice {
            name: name.to_string(),
            available: self
                .catalog()
                .iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// [`VoiceStore::for_language`] on (voice, BCP 47 tag) pairs.
fn pick_by_language(voices: &[(&str, String)], language: &str, preferred: &str) -> Option<String> {
    let want = language.replace('_', "-").to_ascii_lowercase();
    let family = |tag: &str| tag.split('-').next().unwrap_or("").to_string();
    let exact = |tag: &str| tag.to_ascii_lowercase() == want;
    let near = |tag: &str| family(&tag.to_ascii_lowercase()) == family(&want);
    for matches in [&exact as &dyn Fn(&str) -> bool, &near] {
        if voices.iter().any(|(n, t)| *n == preferred && matches(t)) {
            return Some(preferred.to_string());
        }
        if let Some((n, _)) = voices.iter().find(|(_, t)| matches(t)) {
            return Some(n.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_language_picks_the_preferred_voice_then_exact_then_family() {
        let voices = [
            ("de_DE-a", "de-DE".to_string()),
            ("en_GB-b", "en-GB".to_string()),
            ("en_US-c", "en-US".to_string()),
            ("en_US-d", "en-US".to_string()),
        ];
        let pick = |lang: &str, preferred: &str| pick_by_language(&voices, lang, preferred);
        assert_eq!(pick("en_US", "en_US-d").as_deref(), Some("en_US-d"));
        assert_eq!(pick("en-us", "de_DE-a").as_deref(), Some("en_US-c"));
        // No exact voice: the family, the preferred one first.
        assert_eq!(pick("en_AU", "en_US-d").as_deref(), Some("en_US-d"));
        assert_eq!(pick("en", "de_DE-a").as_deref(), Some("en_GB-b"));
        assert_eq!(pick("fr_FR", "en_US-c"), None);
    }
}
