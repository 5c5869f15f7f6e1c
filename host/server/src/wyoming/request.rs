//! A `synthesize` / `synthesize-start` event's fields, checked and mapped onto
//! the service's [`SynthesisRequest`]: `voice` {`name` | `language`,
//! `speaker` (a name or a number)}, `text_format` (`text`, or `ssml`: the
//! SSML subset of docs/ssml.md, in a whole `synthesize` only). A voice chosen by language goes through
//! the pipeline's voice routes when one of them serves the language (the
//! same routing as HTTP), else [`crate::tts::VoiceStore::for_language`].
//! Every refusal is a [`TtsError`], whose `kind()` is the `error` event's
//! code.

use serde_json::{Map, Value};

use crate::tts::{InputFormat, SynthesisRequest, TtsError, TtsService};

/// The voice a client asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VoiceWish {
    pub name: Option<String>,
    pub language: Option<String>,
    pub speaker: Option<String>,
    /// `text_format` is `ssml`.
    pub ssml: bool,
}

/// What a `synthesize` or `synthesize-start` asks for, besides the text.
pub fn voice_wish(data: &Map<String, Value>) -> Result<VoiceWish, TtsError> {
    let ssml = text_format(data)? == InputFormat::Ssml;
    let voice = match data.get("voice") {
        None | Some(Value::Null) => {
            return Ok(VoiceWish {
                ssml,
                ..VoiceWish::default()
            })
        }
        Some(Value::Object(v)) => v,
        Some(other) => {
            return Err(TtsError::InvalidInput(format!(
                "`voice` must be an object such as {{\"name\": \"en_US-joe-medium\"}}, not {other}"
            )))
        }
    };
    let string = |key: &str| -> Result<Option<String>, TtsError> {
        match voice.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            // Speakers are names or numbers (`"speaker": 2`).
            Some(Value::Number(n)) if key == "speaker" => Ok(Some(n.to_string())),
            Some(other) => Err(TtsError::InvalidInput(format!(
                "`voice.{key}` must be a string, not {other}"
            ))),
        }
    };
    Ok(VoiceWish {
        name: string("name")?,
        language: string("language")?,
        speaker: string("speaker")?,
        ssml,
    })
}

fn text_format(data: &Map<String, Value>) -> Result<InputFormat, TtsError> {
    match data.get("text_format") {
        None | Some(Value::Null) => Ok(InputFormat::Text),
        Some(Value::String(f)) if f == "text" => Ok(InputFormat::Text),
        Some(Value::String(f)) if f == "ssml" => Ok(InputFormat::Ssml),
        Some(other) => Err(TtsError::InvalidInput(format!(
            "`text_format` {other} is not \"text\" or \"ssml\""
        ))),
    }
}

/// The `text` of a `synthesize` or `synthesize-chunk` event.
pub fn text(data: &Map<String, Value>) -> Result<String, TtsError> {
    match data.get("text") {
        Some(Value::String(t)) => Ok(t.clone()),
        Some(other) => Err(TtsError::InvalidInput(format!(
            "`text` must be a string, not {other}"
        ))),
        None => Err(TtsError::InvalidInput("`text` is missing".into())),
    }
}

/// The service request for `text` with `wish` on a listener bound to
/// `pipeline` (`None`: the default pipeline). A voice named wins over a
/// language, as the `wyoming` package says.
pub fn synthesis_request(
    service: &TtsService,
    pipeline: Option<&str>,
    text: String,
    wish: &VoiceWish,
) -> Result<SynthesisRequest, TtsError> {
    let language = wish.language.as_ref().map(|l| l.replace('_', "-"));
    let voice = match (&wish.name, &wish.language) {
        (Some(name), _) => Some(name.clone()),
        (None, Some(lang)) => {
            let name = pipeline.unwrap_or(&service.options.default_pipeline);
            let found = service.registry.get(name);
            // A route on the language: leave the voice to the run, which
            // routes with the request's language (as for HTTP).
            let style = voxpipe_types::Style::default();
            let subject = crate::pipeline::routes::Subject {
                style: &style,
                request_language: Some(lang),
            };
            match &found {
                Some(p)
                    if crate::pipeline::routes::choose(&p.routes, &subject)
                        .is_some_and(|(_, m)| m.language) =>
                {
                    None
                }
                _ => {
                    let preferred = found.map(|p| p.voice.clone()).unwrap_or_default();
                    Some(service.voices.for_language(lang, &preferred)?)
                }
            }
        }
        (None, None) => None,
    };
    Ok(SynthesisRequest {
        text,
        pipeline: pipeline.map(str::to_string),
        voice,
        speaker: wish.speaker.clone(),
        language,
        input_format: if wish.ssml {
            InputFormat::Ssml
        } else {
            InputFormat::Text
        },
        ..SynthesisRequest::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn voice_fields_and_text_formats() {
        let w = voice_wish(&data(json!({"voice": {"name": "v", "speaker": 2}}))).unwrap();
        assert_eq!(w.name.as_deref(), Some("v"));
        assert_eq!(w.speaker.as_deref(), Some("2"));
        let w = voice_wish(&data(
            json!({"voice": {"language": "en_US"}, "text_format": "text"}),
        ))
        .unwrap();
        assert_eq!(w.language.as_deref(), Some("en_US"));
        assert_eq!(voice_wish(&data(json!({}))).unwrap(), VoiceWish::default());
        for bad in [
            json!({"voice": "joe"}),
            json!({"voice": {"name": 3}}),
            json!({"voice": {"speaker": [1]}}),
            json!({"text_format": "markdown"}),
        ] {
            assert_eq!(
                voice_wish(&data(bad.clone())).unwrap_err().kind(),
                "invalid_input",
                "{bad}"
            );
        }
        assert!(
            voice_wish(&data(json!({"text_format": "ssml"})))
                .unwrap()
                .ssml
        );
        assert_eq!(text(&data(json!({"text": "Hi."}))).unwrap(), "Hi.");
        assert_eq!(text(&data(json!({}))).unwrap_err().kind(), "invalid_input");
        assert_eq!(
            text(&data(json!({"text": 5}))).unwrap_err().kind(),
            "invalid_input"
        );
    }
}
