//! The response cache: the same request (pipeline version, every input and
//! the response format) is not synthesized twice; the encoded body is kept. Content-addressed (sha256 of the inputs), bounded by
//! bytes, least recently used out first. A pipeline edit is a new version, so
//! it never serves stale audio.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::tts::Job;

/// A cached response body and what its headers need.
#[derive(Debug, Clone)]
pub struct CachedAudio {
    pub body: Bytes,
    pub content_type: &'static str,
    pub style_mapped: Option<String>,
    pub style_unmapped: Option<String>,
    pub style_unhonored: Option<String>,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<[u8; 32], CachedAudio>,
    /// Keys from least to most recently used (may hold stale duplicates).
    order: VecDeque<[u8; 32]>,
    bytes: usize,
}

/// A bytes-bounded LRU of encoded responses.
#[derive(Debug)]
pub struct AudioCache {
    capacity: usize,
    entries: Mutex<Entries>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// The cache key of a job's audio encoded as `format`: the pipeline's version
/// and every input that changes the output.
pub fn job_key(job: &Job, format: &str) -> [u8; 32] {
    let p = &job.pipeline;
    key(&[
        &p.name,
        &p.version.to_string(),
        &p.loaded_at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
            .to_string(),
        &job.text,
        job.voice.as_deref().unwrap_or(""),
        job.speaker.as_deref().unwrap_or(""),
        job.language.as_deref().unwrap_or(""),
        job.instruct.as_deref().unwrap_or(""),
        &job.speed.to_string(),
        &job.sample_rate.unwrap_or(0).to_string(),
        &job.seed.to_string(),
        // The same characters read as text or as SSML are different audio.
        if job.ssml.is_some() { "ssml" } else { "text" },
        format,
    ])
}

/// Builds a cache key from the parts of a request that change its audio.
fn key(parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        // Length-prefixed, so ("ab","c") and ("a","bc") differ.
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    h.finalize().into()
}

impl AudioCache {
    /// `capacity` bytes of audio; 0 disables the cache.
    pub fn new(capacity: usize) -> AudioCache {
        AudioCache {
            capacity,
            entries: Mutex::new(Entries::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    pub fn get(&self, key: &[u8; 32]) -> Option<CachedAudio> {
        if !self.enabled() {
            return None;
        }
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match e.map.get(key).cloned() {
            Some(hit) => {
                e.order.retain(|k| k != key);
                e.order.push_back(*key);
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(hit)
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Stores `audio` unless it alone is larger than a quarter of the cache.
    pub fn put(&self, key: [u8; 32], audio: CachedAudio) {
        let size = audio.body.len();
        if !self.enabled() || size > self.capacity / 4 {
            return;
        }
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = e.map.insert(key, audio) {
            e.bytes -= old.body.len();
            e.order.retain(|k| *k != key);
        }
        e.bytes += size;
        e.order.push_back(key);
        while e.bytes > self.capacity {
            let Some(oldest) = e.order.pop_front() else {
                break;
            };
            if let Some(old) = e.map.remove(&oldest) {
                e.bytes -= old.body.len();
            }
        }
    }

    /// (hits, misses) since start.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio(n: usize) -> CachedAudio {
        CachedAudio {
            body: Bytes::from(vec![0u8; n]),
            content_type: "audio/wav",
            style_mapped: None,
            style_unmapped: None,
            style_unhonored: None,
        }
    }

    #[test]
    fn evicts_least_recently_used_within_the_byte_bound() {
        let cache = AudioCache::new(1000);
        let (a, b, c) = (key(&["a"]), key(&["b"]), key(&["c"]));
        cache.put(a, audio(200));
        cache.put(b, audio(200));
        assert!(cache.get(&a).is_some()); // a is now the most recent
        cache.put(c, audio(250));
        cache.put(key(&["d"]), audio(250)); // 900 bytes: all fit
        cache.put(key(&["e"]), audio(200)); // 1100: evict b (LRU)
        assert!(cache.get(&b).is_none());
        assert!(cache.get(&a).is_some());
        assert!(cache.bytes() <= 1000);
        cache.put(key(&["huge"]), audio(600)); // > capacity / 4: not stored
        assert!(cache.get(&key(&["huge"])).is_none());
        let (hits, misses) = cache.stats();
        assert_eq!((hits, misses), (2, 2));
    }

    #[test]
    fn keys_are_length_prefixed_and_disabled_cache_stores_nothing() {
        assert_ne!(key(&["ab", "c"]), key(&["a", "bc"]));
        let off = AudioCache::new(0);
        off.put(key(&["a"]), audio(1));
        assert!(off.get(&key(&["a"])).is_none());
    }
}
