//! Host-side bindings of the three stage worlds in `wit/stages.wit`, and
//! conversions between the generated types and [`voxpipe_types`].
//!
//! The text world's bindings own the shared `types` and `log` interfaces; the
//! style and audio worlds reuse them (`with`), so one set of types and one
//! `log` host implementation serve all three.

pub mod text {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "voxpipe:stages/text-stage",
    });
}

pub mod style {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "voxpipe:stages/style-stage",
        with: {
            "voxpipe:stages/types": super::text::voxpipe::stages::types,
            "voxpipe:stages/log": super::text::voxpipe::stages::log,
        },
    });
}

pub mod audio {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "voxpipe:stages/audio-stage",
        with: {
            "voxpipe:stages/types": super::text::voxpipe::stages::types,
            "voxpipe:stages/log": super::text::voxpipe::stages::log,
        },
    });
}

pub use text::voxpipe::stages::log as wit_log;
pub use text::voxpipe::stages::types as wit;

use voxpipe_types::{Audio, ChunkPosition, RequestContext, StageKind, Style, StyleOutcome};

pub(crate) fn kind_from_wit(k: wit::StageKind) -> StageKind {
    match k {
        wit::StageKind::Text => StageKind::Text,
        wit::StageKind::Style => StageKind::Style,
        wit::StageKind::Audio => StageKind::Audio,
    }
}

pub(crate) fn style_to_wit(s: &Style) -> wit::Style {
    wit::Style {
        voice: s.voice.clone(),
        language: s.language.clone(),
        speaker: s.speaker.clone(),
        dialect: s.dialect.clone(),
        speed: s.speed,
        pitch: s.pitch,
        volume: s.volume,
        noise_scale: s.noise_scale,
        noise_w: s.noise_w,
        emotions: s.emotions.clone(),
        extra: s.extra.clone(),
    }
}

pub(crate) fn style_from_wit(s: wit::Style) -> Style {
    Style {
        voice: s.voice,
        language: s.language,
        speaker: s.speaker,
        dialect: s.dialect,
        speed: s.speed,
        pitch: s.pitch,
        volume: s.volume,
        noise_scale: s.noise_scale,
        noise_w: s.noise_w,
        emotions: s.emotions,
        extra: s.extra,
    }
}

pub(crate) fn context_to_wit(c: &RequestContext) -> wit::RequestContext {
    wit::RequestContext {
        request_id: c.request_id.clone(),
        language: c.language.clone(),
        voice: c.voice.clone(),
        pipeline: c.pipeline.clone(),
        style: c.style.as_ref().map(style_to_wit),
    }
}

pub(crate) fn outcome_from_wit(o: wit::StyleOutcome) -> StyleOutcome {
    match o {
        wit::StyleOutcome::Mapped(m) => StyleOutcome::Mapped {
            style: style_from_wit(m.style),
            label: m.label,
        },
        wit::StyleOutcome::Unmapped(reason) => StyleOutcome::Unmapped { reason },
    }
}

pub(crate) fn position_to_wit(p: ChunkPosition) -> wit::ChunkPosition {
    wit::ChunkPosition {
        index: p.index,
        last: p.last,
    }
}

pub(crate) fn audio_from_wit(a: wit::Audio) -> Audio {
    Audio {
        sample_rate: a.sample_rate,
        channels: a.channels,
        samples: a.samples,
    }
}
