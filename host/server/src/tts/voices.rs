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
