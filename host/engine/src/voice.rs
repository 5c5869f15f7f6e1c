//! Voices: a Piper voice is a model file `NAME.onnx` with its config
//! `NAME.onnx.json`, dropped into a voices folder. This module reads the
//! config and lists the voices of a folder; the model itself is loaded by the
//! engine.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why a voice could not be read.
#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a Piper voice config: {source}", path.display())]
    Config {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("{}: no model file {} next to the config", path.display(), model.display())]
    MissingModel { path: PathBuf, model: PathBuf },
}

/// `audio` of a Piper voice config.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AudioConfig {
    pub sample_rate: u32,
    #[serde(default)]
    pub quality: Option<String>,
}

/// `espeak` of a Piper voice config: the espeak-ng voice that phonemizes.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct EspeakConfig {
    pub voice: String,
}

/// `inference`: the voice's default synthesis scales.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
pub struct InferenceConfig {
    pub noise_scale: f32,
    pub length_scale: f32,
    pub noise_w: f32,
}

/// `language`: who the voice speaks for.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct LanguageInfo {
    /// e.g. `en_US`
    pub code: String,
    #[serde(default)]
    pub name_english: Option<String>,
    #[serde(default)]
    pub country_english: Option<String>,
}

/// A Piper voice config (`NAME.onnx.json`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct VoiceConfig {
    pub audio: AudioConfig,
    pub espeak: EspeakConfig,
    pub inference: InferenceConfig,
    #[serde(default)]
    pub phoneme_type: Option<String>,
    /// Phoneme (one codepoint) → ids; `^` BOS, `_` pad, `$` EOS.
    pub phoneme_id_map: HashMap<String, Vec<i64>>,
    #[serde(default = "one")]
    pub num_speakers: u32,
    /// Speaker name → id for multi-speaker voices.
    #[serde(default)]
    pub speaker_id_map: BTreeMap<String, i64>,
    #[serde(default)]
    pub language: Option<LanguageInfo>,
    #[serde(default)]
    pub dataset: Option<String>,
}

fn one() -> u32 {
    1
}

impl VoiceConfig {
    /// Read and check a config file.
    pub fn read(path: &Path) -> Result<VoiceConfig, VoiceError> {
        let text = std::fs::read_to_string(path).map_err(|source| VoiceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let config: VoiceConfig =
            serde_json::from_str(&text).map_err(|source| VoiceError::Config {
                path: path.to_path_buf(),
                source,
            })?;
        let invalid = |reason: String| VoiceError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        for special in ["^", "_", "$"] {
            if !config.phoneme_id_map.contains_key(special) {
                return Err(invalid(format!("phoneme_id_map lacks `{special}`")));
            }
        }
        if config.audio.sample_rate == 0 {
            return Err(invalid("audio.sample_rate is 0".to_string()));
        }
        if config.num_speakers == 0 {
            return Err(invalid("num_speakers is 0".to_string()));
        }
        Ok(config)
    }

    /// The id of `speaker`: a name from `speaker_id_map`, or a number below
    /// `num_speakers` (`"0"` is the only speaker of a single-speaker voice).
    pub fn speaker_id(&self, speaker: &str) -> Option<u32> {
        if let Some(&id) = self.speaker_id_map.get(speaker) {
            return u32::try_from(id).ok();
        }
        speaker
            .parse::<u32>()
            .ok()
            .filter(|&n| n < self.num_speakers.max(1))
    }

    /// Speaker names ordered by id, or `"0"…"N-1"` when the voice names none.
    pub fn speaker_names(&self) -> Vec<String> {
        if self.speaker_id_map.is_empty() {
            return (0..self.num_speakers.max(1))
                .map(|i| i.to_string())
                .collect();
        }
        let mut by_id: Vec<_> = self.speaker_id_map.iter().collect();
        by_id.sort_by_key(|(_, id)| **id);
        by_id.into_iter().map(|(name, _)| name.clone()).collect()
    }

    /// The speakers a request may name, for error messages.
    pub fn speakers_hint(&self) -> String {
        match self.num_speakers {
            0 | 1 => "0 (a single-speaker voice)".to_string(),
            _ => self.speaker_names().join(", "),
        }
    }

    /// The language tag in BCP 47 form (`en_US` → `en-US`).
    pub fn language_tag(&self) -> Option<String> {
        self.language.as_ref().map(|l| l.code.replace('_', "-"))
    }
}

/// One voice of a voices folder.
#[derive(Debug, Clone, Serialize)]
pub struct VoiceEntry {
    /// The file stem, e.g. `en_US-joe-medium`: what requests and pipelines name.
    pub name: String,
    pub model: PathBuf,
    pub model_bytes: u64,
    pub config: VoiceConfig,
}

/// Every voice in `dir` (each `NAME.onnx.json` with its `NAME.onnx`), sorted
/// by name, and the files that could not be read, with why.
pub fn scan(dir: &Path) -> Result<(Vec<VoiceEntry>, Vec<VoiceError>), VoiceError> {
    let entries = std::fs::read_dir(dir).map_err(|source| VoiceError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut voices = Vec::new();
    let mut errors = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
            continue;
        };
        let Some(name) = file.strip_suffix(".onnx.json") else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let model = path.with_file_name(format!("{name}.onnx"));
        let result = VoiceConfig::read(&path).and_then(|config| {
            let meta = std::fs::metadata(&model).map_err(|_| VoiceError::MissingModel {
                path: path.clone(),
                model: model.clone(),
            })?;
            Ok(VoiceEntry {
                name: name.to_string(),
                model: model.clone(),
                model_bytes: meta.len(),
                config,
            })
        });
        match result {
            Ok(v) => voices.push(v),
            Err(e) => errors.push(e),
        }
    }
    voices.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((voices, errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{"audio": {"sample_rate": 22050, "quality": "medium"},
        "espeak": {"voice": "en-us"},
        "inference": {"noise_scale": 0.667, "length_scale": 1, "noise_w": 0.8},
        "phoneme_id_map": {"_": [0], "^": [1], "$": [2], "a": [14]},
        "num_speakers": 1, "speaker_id_map": {},
        "language": {"code": "en_US", "name_english": "English"}}"#;

    #[test]
    fn scan_lists_voices_and_reports_broken_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("en_US-x-medium.onnx.json"), CONFIG).unwrap();
        std::fs::write(dir.path().join("en_US-x-medium.onnx"), b"model").unwrap();
        std::fs::write(dir.path().join("lonely.onnx.json"), CONFIG).unwrap();
        std::fs::write(dir.path().join("bad.onnx.json"), "{").unwrap();
        std::fs::write(dir.path().join("bad.onnx"), b"m").unwrap();
        let (voices, errors) = scan(dir.path()).unwrap();
        assert_eq!(voices.len(), 1);
        assert_eq!(voices[0].name, "en_US-x-medium");
        assert_eq!(voices[0].config.language_tag().as_deref(), Some("en-US"));
        assert_eq!(voices[0].config.audio.sample_rate, 22050);
        assert_eq!(errors.len(), 2);
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert!(text.iter().any(|t| t.contains("no model file")), "{text:?}");
        assert!(
            text.iter().any(|t| t.contains("not a Piper voice config")),
            "{text:?}"
        );
    }

    #[test]
    fn configs_without_special_phonemes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.onnx.json");
        std::fs::write(&p, CONFIG.replace("\"$\": [2], ", "")).unwrap();
        let err = VoiceConfig::read(&p).unwrap_err().to_string();
        assert!(err.contains("lacks `$`"), "{err}");
    }
}
