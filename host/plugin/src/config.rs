//! A stage's config table as plugins receive it: a JSON object text
//! (`type config = string` in the WIT).

use serde::Serialize;

/// A stage config, converted once (when a pipeline loads) and passed to
/// every call as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct StageConfig(String);

impl StageConfig {
    /// The empty table `{}`.
    pub fn empty() -> StageConfig {
        StageConfig("{}".to_string())
    }

    /// Convert a TOML table (as written in a pipeline file). TOML dates and
    /// times, which JSON lacks, become their TOML text.
    pub fn from_toml(table: &toml::Table) -> StageConfig {
        let value = toml_to_json(&toml::Value::Table(table.clone()));
        StageConfig(value.to_string())
    }

    /// Use a JSON object text as is; `None` unless it is an object.
    pub fn from_json(text: &str) -> Option<StageConfig> {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(_)) => Some(StageConfig(text.to_string())),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This table with `key` set to `value` (for one call: the host's
    /// per-request additions, e.g. SSML `say_as` hints).
    pub fn with(&self, key: &str, value: serde_json::Value) -> StageConfig {
        let mut object = match serde_json::from_str::<serde_json::Value>(&self.0) {
            Ok(serde_json::Value::Object(o)) => o,
            _ => serde_json::Map::new(),
        };
        object.insert(key.to_string(), value);
        StageConfig(serde_json::Value::Object(object).to_string())
    }

    /// The JSON text, as the bindings want it.
    pub(crate) fn wit(&self) -> &String {
        &self.0
    }
}

fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(a) => J::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => J::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_tables_become_json_objects() {
        let t: toml::Table = toml::from_str("a = 1\nb = [\"x\", 2.5]\n[c]\nd = true").unwrap();
        let c = StageConfig::from_toml(&t);
        let v: serde_json::Value = serde_json::from_str(c.as_str()).unwrap();
        assert_eq!(v["a"], 1);
        assert_eq!(v["b"][1], 2.5);
        assert_eq!(v["c"]["d"], true);
        assert!(StageConfig::from_json("[1]").is_none());
    }
}
