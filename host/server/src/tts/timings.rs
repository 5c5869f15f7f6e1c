//! Per-stage durations of one request, for the `Server-Timing` header (and,
//! later, metrics): the text stages, style, phonemize, model, audio stages,
//! encode, each once (repeated parts such as per-sentence model calls add up).

use std::time::Duration;

/// One named part of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    /// A header token: the stage name, or `phonemize`, `model`, `encode`, ….
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
        let name = token(name);
        match self.entries.iter_mut().find(|t| t.name == name) {
            Some(t) => t.duration += duration,
            None => self.entries.push(Timing {
                name,
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

    /// `name;desc="…";dur=12.3, …, total;dur=…` (milliseconds, as the spec says).
    pub fn header(&self, total: Duration) -> String {
        let mut parts: Vec<String> = self
            .entries
            .iter()
            .map(|t| {
                let dur = t.duration.as_secs_f64() * 1e3;
                match &t.desc {
                    Some(d) => format!("{};desc=\"{}\";dur={dur:.2}", t.name, quote(d)),
                    None => format!("{};dur={dur:.2}", t.name),
                }
            })
            .collect();
        parts.push(format!("total;dur={:.2}", total.as_secs_f64() * 1e3));
        parts.join(", ")
    }
}

/// A header token: stage names are free text in pipeline files.
fn token(name: &str) -> String {
    let t: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if t.is_empty() {
        "stage".into()
    } else {
        t
    }
}

fn quote(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .map(|c| if c == '"' || c == '\\' { '\'' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_sums_repeats_and_escapes() {
        let mut t = Timings::default();
        t.add(
            "normalize",
            Some("text en-normalize".into()),
            Duration::from_micros(410),
        );
        t.add("model", None, Duration::from_millis(100));
        t.add("model", None, Duration::from_millis(50));
        t.add(
            "my stage",
            Some("a \"quoted\" 说".into()),
            Duration::from_millis(1),
        );
        assert_eq!(t.get("model"), Some(Duration::from_millis(150)));
        assert_eq!(
            t.header(Duration::from_millis(200)),
            "normalize;desc=\"text en-normalize\";dur=0.41, model;dur=150.00, \
             my_stage;desc=\"a 'quoted' \";dur=1.00, total;dur=200.00"
        );
    }
}
