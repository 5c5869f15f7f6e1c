//! Per-stage durations of one request: the queue, the text stages, style,
//! phonemize, model, audio stages, resample (and the front end's encode),
//! each once (repeated parts such as per-sentence model calls add up). Front
//! ends report them their way (HTTP: the `Server-Timing` header, built in
//! `http/reply.rs`).

use std::time::Duration;

/// One named part of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    /// The stage name, or `queue`, `phonemize`, `model`, `encode`, ….
    pub name: String,
    /// What it is, e.g. `text en-normalize`.
    pub desc: Option<String>,
    pub duration: Duration,
}

/// The parts of one request, in the order they first ran.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timings {
    pub entries: Vec<Timing>,
}

impl Timings {
    /// Adds `duration` to the part called `name` (created on first use).
    pub fn add(&mut self, name: &str, desc: Option<String>, duration: Duration) {
        match self.entries.iter_mut().find(|t| t.name == name) {
            Some(t) => {
                t.duration += duration;
                // A part done by several (the model by two voices of a
                // mixed-language text) names each once.
                if let (Some(mine), Some(new)) = (&mut t.desc, desc) {
                    if !mine.split("; ").any(|d| d == new) {
                        mine.push_str("; ");
                        mine.push_str(&new);
                    }
                }
            }
            None => self.entries.push(Timing {
                name: name.to_string(),
                desc,
                duration,
            }),
        }
    }

    /// Appends everything from `other` (timings measured on another thread).
    pub fn extend(&mut self, other: Timings) {
        for t in other.entries {
            self.add(&t.name, t.desc, t.duration);
        }
    }

    pub fn get(&self, name: &str) -> Option<Duration> {
        self.entries
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.duration)
    }

    /// Time spent working (everything but waiting in the queue): the
    /// numerator of a request's real-time factor.
    pub fn busy(&self) -> Duration {
        self.entries
            .iter()
            .filter(|t| t.name != "queue")
            .map(|t| t.duration)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_add_up_and_queue_is_not_busy() {
        let mut t = Timings::default();
        t.add("queue", None, Duration::from_millis(30));
        t.add("model", None, Duration::from_millis(100));
        t.add("model", Some("ignored".into()), Duration::from_millis(50));
        assert_eq!(t.get("model"), Some(Duration::from_millis(150)));
        assert_eq!(t.entries.len(), 2);
        assert_eq!(t.busy(), Duration::from_millis(150));
    }
}
