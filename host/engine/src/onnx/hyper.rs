//! The model's hyperparameters: everything the VITS model needs that is not a weight, inferred
//! from tensor shapes and conv node attributes (nothing is hard-coded to a voice size).

use super::{OnnxError, Weights};

/// Stochastic duration predictor settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationHyper {
    /// Channels inside the predictor (`dp.pre` output).
    pub filter_channels: usize,
    /// Kernel size of the DDSConv depthwise convolutions.
    pub kernel_size: usize,
    /// Dilations of the main DDSConv layers (1, 3, 9 for three layers).
    pub ddsconv_dilations: Vec<usize>,
    /// Indices of the ConvFlow modules in `dp.flows` (e.g. 3, 5, 7 on a medium voice).
    pub conv_flow_indices: Vec<usize>,
    /// Bins of the rational-quadratic spline.
    pub num_bins: usize,
}

/// Flow (residual coupling with WaveNet) settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowHyper {
    /// Indices of the coupling layers in `flow.flows` (0, 2, 4, 6: Flips sit in between).
    pub coupling_indices: Vec<usize>,
    /// WaveNet layers per coupling layer.
    pub n_layers: usize,
    /// WaveNet kernel size.
    pub kernel_size: usize,
    /// WaveNet dilation rate (dilation of layer i is rate^i).
    pub dilation_rate: usize,
}

/// Which HiFi-GAN residual block the decoder uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResBlockKind {
    /// `convs1` / `convs2` pairs (VITS resblock "1").
    One,
    /// A single `convs` list (VITS resblock "2", Piper medium).
    Two,
}

/// HiFi-GAN decoder settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecoderHyper {
    /// Channels after `conv_pre`.
    pub upsample_initial_channel: usize,
    /// Upsample factor per stage.
    pub upsample_rates: Vec<usize>,
    /// ConvTranspose kernel per stage.
    pub upsample_kernel_sizes: Vec<usize>,
    /// Whether rates came from the graph's ConvTranspose strides (true) or from kernel / 2.
    pub rates_from_graph: bool,
    /// Residual block kind.
    pub resblock_kind: ResBlockKind,
    /// Kernel size of each residual block of a stage.
    pub resblock_kernel_sizes: Vec<usize>,
    /// Dilations of the convolutions of each residual block of a stage.
    pub resblock_dilation_sizes: Vec<Vec<usize>>,
    /// Output samples per latent frame: the product of the upsample rates.
    pub hop_length: usize,
}

/// Everything the VITS model needs that is not a weight, inferred from shapes and graph attributes.
///
/// The one home of a voice's hyperparameters: `vits::Voice::from_onnx` infers it once and the
/// layers take their architecture from it (layer and flow counts, heads, window, dilations,
/// strides, resblock kind). Widths and kernel sizes are also listed here, for callers and
/// tests; the layers read those off the shapes of the tensors they load, which are the same
/// tensors this struct reads them from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hyper {
    /// Phoneme vocabulary size (rows of `enc_p.emb.weight`).
    pub n_vocab: usize,
    /// Text encoder width.
    pub hidden_channels: usize,
    /// Latent width (half of `enc_p.proj` outputs).
    pub inter_channels: usize,
    /// Text encoder FFN width.
    pub filter_channels: usize,
    /// Attention heads (`hidden_channels / d_k`, d_k from `emb_rel_k`).
    pub n_heads: usize,
    /// Text encoder layers.
    pub n_layers: usize,
    /// Text encoder FFN kernel size.
    pub kernel_size: usize,
    /// Relative attention window (`emb_rel_k` holds 2·window+1 positions).
    pub window_size: usize,
    /// Duration predictor.
    pub duration: DurationHyper,
    /// Flow.
    pub flow: FlowHyper,
    /// Decoder.
    pub decoder: DecoderHyper,
    /// Speaker embedding width (0 for single-speaker voices).
    pub gin_channels: usize,
    /// Number of speakers (0 for single-speaker voices).
    pub n_speakers: usize,
}

fn hyper_err(what: &'static str, reason: impl Into<String>) -> OnnxError {
    OnnxError::Hyper {
        what,
        reason: reason.into(),
    }
}

/// Dimension `axis` of weight `name`, checking its rank.
fn dim(w: &Weights, name: &str, rank: usize, axis: usize) -> Result<usize, OnnxError> {
    let t = w.get(name)?;
    if t.dims.len() != rank {
        return Err(OnnxError::BadTensor {
            name: name.to_string(),
            reason: format!("expected rank {rank}, found shape {:?}", t.dims),
        });
    }
    Ok(t.dims[axis])
}

/// Infers the model's hyperparameters from tensor shapes and conv attributes (nothing is
/// hard-coded to a voice size).
pub fn hyperparameters(w: &Weights) -> Result<Hyper, OnnxError> {
    let n_vocab = dim(w, "enc_p.emb.weight", 2, 0)?;
    let hidden_channels = dim(w, "enc_p.emb.weight", 2, 1)?;
    let inter_channels = dim(w, "enc_p.proj.weight", 3, 0)? / 2;
    let filter_channels = dim(w, "enc_p.encoder.ffn_layers.0.conv_1.weight", 3, 0)?;
    let kernel_size = dim(w, "enc_p.encoder.ffn_layers.0.conv_1.weight", 3, 2)?;
    let n_layers = w.indices("enc_p.encoder.attn_layers.").len();
    let (n_heads, window_size) = attention_geometry(w, hidden_channels)?;
    let (gin_channels, n_speakers) = match w.get("emb_g.weight") {
        Ok(t) if t.dims.len() == 2 => (t.dims[1], t.dims[0]),
        _ => (0, 0),
    };
    Ok(Hyper {
        n_vocab,
        hidden_channels,
        inter_channels,
        filter_channels,
        n_heads,
        n_layers,
        kernel_size,
        window_size,
        duration: duration_hyper(w)?,
        flow: flow_hyper(w)?,
        decoder: decoder_hyper(w)?,
        gin_channels,
        n_speakers,
    })
}

/// `emb_rel_k` is [heads or 1, 2·window+1, d_k]; heads = hidden / d_k.
fn attention_geometry(w: &Weights, hidden: usize) -> Result<(usize, usize), OnnxError> {
    let name = "enc_p.encoder.attn_layers.0.emb_rel_k";
    let positions = dim(w, name, 3, 1)?;
    let d_k = dim(w, name, 3, 2)?;
    if d_k == 0 || !hidden.is_multiple_of(d_k) || positions % 2 == 0 {
        return Err(hyper_err(
            "n_heads/window_size",
            format!("{name} shape does not fit hidden channels {hidden}"),
        ));
    }
    Ok((hidden / d_k, (positions - 1) / 2))
}

fn duration_hyper(w: &Weights) -> Result<DurationHyper, OnnxError> {
    let filter_channels = dim(w, "dp.pre.weight", 3, 0)?;
    let kernel_size = dim(w, "dp.convs.convs_sep.0.weight", 3, 2)?;
    let ddsconv_dilations = w
        .indices("dp.convs.convs_sep.")
        .iter()
        .map(|i| {
            dilation_of(
                w,
                &format!("dp.convs.convs_sep.{i}.weight"),
                "duration DDSConv dilations",
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    // ConvFlows are the dp.flows entries with a spline projection.
    let conv_flow_indices: Vec<usize> = w
        .indices("dp.flows.")
        .into_iter()
        .filter(|i| w.contains(&format!("dp.flows.{i}.proj.weight")))
        .collect();
    let first = conv_flow_indices
        .first()
        .ok_or_else(|| hyper_err("num_bins", "no dp.flows.*.proj.weight"))?;
    // proj outputs half_channels · (3·bins − 1); half_channels is `pre`'s input width.
    let half = dim(w, &format!("dp.flows.{first}.pre.weight"), 3, 1)?;
    let proj_out = dim(w, &format!("dp.flows.{first}.proj.weight"), 3, 0)?;
    if half == 0 || proj_out % half != 0 || (proj_out / half + 1) % 3 != 0 {
        return Err(hyper_err(
            "num_bins",
            format!("proj outputs {proj_out} for {half} channels"),
        ));
    }
    Ok(DurationHyper {
        filter_channels,
        kernel_size,
        ddsconv_dilations,
        conv_flow_indices,
        num_bins: (proj_out / half + 1) / 3,
    })
}

fn flow_hyper(w: &Weights) -> Result<FlowHyper, OnnxError> {
    let coupling_indices: Vec<usize> = w
        .indices("flow.flows.")
        .into_iter()
        .filter(|i| w.contains(&format!("flow.flows.{i}.enc.in_layers.0.weight")))
        .collect();
    let first = *coupling_indices
        .first()
        .ok_or_else(|| hyper_err("flow", "no flow.flows.*.enc.in_layers.0.weight"))?;
    let prefix = format!("flow.flows.{first}.enc.in_layers.");
    let n_layers = w.indices(&prefix).len();
    let kernel_size = dim(w, &format!("{prefix}0.weight"), 3, 2)?;
    // Layer i has dilation rate^i, so layer 1 gives the rate; a missing graph attribute means 1.
    let dilation_rate = if n_layers > 1 {
        w.conv_attrs(&format!("{prefix}1.weight"))
            .and_then(|a| a.dilations.first().copied())
            .unwrap_or(1)
    } else {
        1
    };
    Ok(FlowHyper {
        coupling_indices,
        n_layers,
        kernel_size,
        dilation_rate,
    })
}

fn dilation_of(w: &Weights, weight: &str, what: &'static str) -> Result<usize, OnnxError> {
    w.conv_attrs(weight)
        .and_then(|a| a.dilations.first().copied())
        .ok_or_else(|| hyper_err(what, format!("no Conv node attributes for {weight}")))
}

fn decoder_hyper(w: &Weights) -> Result<DecoderHyper, OnnxError> {
    let upsample_initial_channel = dim(w, "dec.conv_pre.weight", 3, 0)?;
    let stages = w.indices("dec.ups.");
    if stages.is_empty() {
        return Err(hyper_err("upsample_rates", "no dec.ups.*.weight"));
    }
    let mut upsample_kernel_sizes = Vec::with_capacity(stages.len());
    let mut upsample_rates = Vec::with_capacity(stages.len());
    let mut rates_from_graph = true;
    for i in &stages {
        let name = format!("dec.ups.{i}.weight");
        let kernel = dim(w, &name, 3, 2)?;
        // Prefer the exported ConvTranspose stride; without it, HiFi-GAN configs use
        // kernel = 2 · rate (Piper medium: 16, 16, 8 ↔ 8, 8, 4).
        let rate = match w.conv_attrs(&name).and_then(|a| a.strides.first().copied()) {
            Some(stride) => stride,
            None => {
                rates_from_graph = false;
                kernel / 2
            }
        };
        upsample_kernel_sizes.push(kernel);
        upsample_rates.push(rate);
    }
    let resblocks = w.indices("dec.resblocks.");
    if resblocks.is_empty() || !resblocks.len().is_multiple_of(stages.len()) {
        return Err(hyper_err(
            "resblocks",
            format!(
                "{} resblocks for {} upsample stages",
                resblocks.len(),
                stages.len()
            ),
        ));
    }
    let per_stage = resblocks.len() / stages.len();
    let resblock_kind = if w.contains("dec.resblocks.0.convs1.0.weight") {
        ResBlockKind::One
    } else {
        ResBlockKind::Two
    };
    let list = match resblock_kind {
        ResBlockKind::One => "convs1",
        ResBlockKind::Two => "convs",
    };
    let mut resblock_kernel_sizes = Vec::with_capacity(per_stage);
    let mut resblock_dilation_sizes = Vec::with_capacity(per_stage);
    for j in 0..per_stage {
        let prefix = format!("dec.resblocks.{j}.{list}.");
        resblock_kernel_sizes.push(dim(w, &format!("{prefix}0.weight"), 3, 2)?);
        let dilations = w
            .indices(&prefix)
            .iter()
            .map(|k| dilation_of(w, &format!("{prefix}{k}.weight"), "resblock_dilation_sizes"))
            .collect::<Result<Vec<_>, _>>()?;
        resblock_dilation_sizes.push(dilations);
    }
    let hop_length = upsample_rates.iter().product();
    Ok(DecoderHyper {
        upsample_initial_channel,
        upsample_rates,
        upsample_kernel_sizes,
        rates_from_graph,
        resblock_kind,
        resblock_kernel_sizes,
        resblock_dilation_sizes,
        hop_length,
    })
}
