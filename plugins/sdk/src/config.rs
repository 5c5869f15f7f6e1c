//! Typed access to the stage's `config` table, which the host passes as a
//! JSON object text.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::say_as::{SayAs, SAY_AS_KEY};
use crate::StageError;

/// The stage's config table from the pipeline file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    table: Map<String, Value>,
}

impl Config {
    /// Parse the JSON object the host passes.
    pub fn parse(json: &str) -> Result<Config, StageError> {
        match serde_json::from_str::<Value>(json) {
            Ok(Value::Object(table)) => Ok(Config { table }),
            Ok(_) => Err(StageError::InvalidConfig(
                "config must be a table".to_string(),
            )),
            Err(e) => Err(StageError::InvalidConfig(format!(
                "config is not JSON: {e}"
            ))),
        }
    }

    /// Build a config from a JSON value (handy in unit tests).
    pub fn from_value(value: Value) -> Result<Config, StageError> {
        Config::parse(&value.to_string())
    }

    /// The value at `key`, converted to `T`; `None` when absent. A value of
    /// the wrong type is an [`StageError::InvalidConfig`] naming the key.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StageError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| StageError::InvalidConfig(format!("`{key}`: {e}"))),
        }
    }

    /// The value at `key`, or `default` when absent.
    pub fn get_or<T: DeserializeOwned>(&self, key: &str, default: T) -> Result<T, StageError> {
        Ok(self.get(key)?.unwrap_or(default))
    }

    /// The whole table as a `serde` type (use `#[serde(deny_unknown_fields)]`
    /// to refuse misspelled keys).
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, StageError> {
        serde_json::from_value(Value::Object(self.table.clone()))
            .map_err(|e| StageError::InvalidConfig(e.to_string()))
    }

    /// Refuse any key not in `known`, naming it and listing the known ones
    /// (a misspelled key is caught when the pipeline loads).
    pub fn only_keys(&self, known: &[&str]) -> Result<(), StageError> {
        match self.table.keys().find(|k| !known.contains(&k.as_str())) {
            Some(key) => Err(StageError::InvalidConfig(format!(
                "unknown key `{key}` (known keys: {})",
                known.join(", ")
            ))),
            None => Ok(()),
        }
    }

    /// The number at `key` (or `default` when absent), refused unless it lies
    /// within `min..=max`.
    pub fn number_in(
        &self,
        key: &str,
        default: f64,
        min: f64,
        max: f64,
    ) -> Result<f64, StageError> {
        let v: f64 = self.get_or(key, default)?;
        if !(min..=max).contains(&v) {
            return Err(StageError::InvalidConfig(format!(
                "`{key}` = {v} is outside {min}..={max}"
            )));
        }
        Ok(v)
    }

    /// The raw table.
    pub fn table(&self) -> &Map<String, Value> {
        &self.table
    }

    /// For a text stage that declares `applies = ["say-as"]`: the SSML
    /// `say-as` hints the host put in the `say_as` key for this call (none
    /// for plain text), and the config without that key — the pipeline's
    /// own table, to check as always.
    pub fn split_say_as(&self) -> Result<(Config, Vec<SayAs>), StageError> {
        let mut table = self.table.clone();
        let hints = match table.remove(SAY_AS_KEY) {
            None => Vec::new(),
            Some(v) => serde_json::from_value(v).map_err(|e| {
                StageError::InvalidConfig(format!("`{SAY_AS_KEY}` (the host's hints): {e}"))
            })?,
        };
        Ok((Config { table }, hints))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn say_as_hints_come_out_of_the_table() {
        let c = Config::from_value(json!({
            "rules": {"dates": true},
            "say_as": [{"start": 0, "end": 4, "interpret_as": "date", "format": "ymd"}]
        }))
        .unwrap();
        let (rest, hints) = c.split_say_as().unwrap();
        assert_eq!(rest.table().len(), 1);
        assert_eq!(hints[0].format.as_deref(), Some("ymd"));
        let (_, none) = Config::default().split_say_as().unwrap();
        assert!(none.is_empty());
        let bad = Config::from_value(json!({"say_as": 3})).unwrap();
        assert!(bad.split_say_as().is_err());
    }

    #[test]
    fn typed_get_names_the_key_on_a_type_error() {
        let c = Config::from_value(json!({"gain_db": "loud"})).unwrap();
        let err = c.get::<f32>("gain_db").unwrap_err();
        assert!(matches!(err, StageError::InvalidConfig(m) if m.contains("gain_db")));
        assert_eq!(c.get_or::<f32>("other", 1.5).unwrap(), 1.5);
    }

    #[test]
    fn unknown_keys_and_out_of_range_numbers_name_the_key() {
        let c = Config::from_value(json!({"gain": 3, "level": 99.0})).unwrap();
        let err = c.only_keys(&["level"]).unwrap_err();
        assert_eq!(
            err,
            StageError::InvalidConfig("unknown key `gain` (known keys: level)".into())
        );
        let err = c.number_in("level", 0.0, -10.0, 10.0).unwrap_err();
        assert!(matches!(err, StageError::InvalidConfig(m) if m.contains("`level` = 99")));
        assert_eq!(c.number_in("other", 1.5, 0.0, 2.0).unwrap(), 1.5);
    }

    #[test]
    fn non_object_config_is_refused() {
        assert!(Config::parse("[1]").is_err());
        assert!(Config::parse("{").is_err());
        assert!(Config::parse("{}").unwrap().table().is_empty());
    }
}
