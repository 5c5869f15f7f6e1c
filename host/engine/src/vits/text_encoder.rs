//! VITS text encoder (`enc_p`): phoneme embedding, relative-position transformer
//! (post-norm), projection to the prior's mean and log-std.

use candle_core::{Device, Tensor};

use super::conv::DirectConv1d;
use super::cpu;
use super::ops::{softmax_last_dim, ChannelNorm, Conv1d, FusedConv1d, Pointwise};
use super::weights::Weights;
use super::{attention, math};
use super::{Hyper, VitsError};

/// Output of the text encoder for one sentence (batch 1, no padding).
#[derive(Debug, Clone)]
pub struct EncodedText {
    /// Transformer output `[1, hidden, T]`; conditions the duration predictor.
    pub hidden: Tensor,
    /// Prior mean `[1, C, T]`.
    pub m_p: Tensor,
    /// Prior log-std `[1, C, T]`.
    pub logs_p: Tensor,
}

/// Multi-head self-attention with learned relative-position keys/values, shared by heads.
#[derive(Debug, Clone)]
struct RelativeAttention {
    conv_q: Conv1d,
    conv_k: Conv1d,
    conv_v: Conv1d,
    conv_o: Conv1d,
    /// `[2·window+1, d_k]`.
    emb_rel_k: Tensor,
    /// `[2·window+1, d_k]`.
    emb_rel_v: Tensor,
    n_heads: usize,
    window: usize,
}

impl RelativeAttention {
    /// `n_heads` and `window` are the voice's hyperparameters; the relative tables must
    /// fit them.
    fn load(
        w: &Weights,
        prefix: &str,
        hidden: usize,
        n_heads: usize,
        window: usize,
    ) -> Result<Self, VitsError> {
        let conv = |n: &str| Conv1d::load(w, &format!("{prefix}.{n}"), 1, true);
        let rel = |n: &str| -> Result<Tensor, VitsError> {
            let name = format!("{prefix}.{n}");
            let t = w.get_rank(&name, 3)?;
            let (_, span, d_k) = t.dims3()?;
            if n_heads == 0 || span != 2 * window + 1 || d_k * n_heads != hidden {
                return Err(VitsError::Shape {
                    name,
                    expected: format!(
                        "[1, {}, {}] (2·window+1, hidden/heads)",
                        2 * window + 1,
                        hidden / n_heads.max(1)
                    ),
                    got: t.dims().to_vec(),
                });
            }
            Ok(t.squeeze(0)?.contiguous()?)
        };
        let emb_rel_k = rel("emb_rel_k")?;
        let emb_rel_v = rel("emb_rel_v")?;
        if emb_rel_v.dims() != emb_rel_k.dims() {
            return Err(VitsError::Shape {
                name: format!("{prefix}.emb_rel_v"),
                expected: format!("the shape of emb_rel_k, {:?}", emb_rel_k.dims()),
                got: emb_rel_v.dims().to_vec(),
            });
        }
        Ok(Self {
            conv_q: conv("conv_q")?,
            conv_k: conv("conv_k")?,
            conv_v: conv("conv_v")?,
            conv_o: conv("conv_o")?,
            emb_rel_k,
            emb_rel_v,
            n_heads,
            window,
        })
    }

    /// `[1, H, T]` → `[heads, T, d_k]`.
    fn split_heads(&self, x: &Tensor) -> Result<Tensor, VitsError> {
        let (_, hidden, len) = x.dims3()?;
        Ok(x.reshape((self.n_heads, hidden / self.n_heads, len))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    fn forward(&self, x: &Tensor, bands: &BandIndex) -> Result<Tensor, VitsError> {
        let (_, hidden, len) = x.dims3()?;
        let d_k = hidden / self.n_heads;
        let q = (self.split_heads(&self.conv_q.forward(x)?)? / (d_k as f64).sqrt())?;
        let k = self.split_heads(&self.conv_k.forward(x)?)?;
        let v = self.split_heads(&self.conv_v.forward(x)?)?;

        let scores = q.matmul(&k.t()?.contiguous()?)?;
        let scores = (scores + self.relative_key_logits(&q, len, &bands.band)?)?;
        let p_attn = softmax_last_dim(&scores)?;
        let out = p_attn.matmul(&v)?;
        let out = (out + self.relative_value_term(&p_attn, len, &bands.diagonals)?)?;
        let out = out
            .transpose(1, 2)?
            .contiguous()?
            .reshape((1, hidden, len))?;
        self.conv_o.forward(&out)
    }

    /// Banded `[heads, T, T]` logits `q_i · emb_rel_k[j − i + window]` (zero outside the window).
    ///
    /// Computes the `[T, 2w+1]` products once, then scatters them onto the band with one
    /// gather (a zero column appended as the "outside" slot).
    fn relative_key_logits(
        &self,
        q: &Tensor,
        len: usize,
        idx: &Tensor,
    ) -> Result<Tensor, VitsError> {
        let span = 2 * self.window + 1;
        let d_k = q.dim(2)?;
        let rel = q
            .reshape((self.n_heads * len, d_k))?
            .matmul(&self.emb_rel_k.t()?)?;
        let rel = rel.reshape((self.n_heads, len * span))?;
        let rel = rel.pad_with_zeros(1, 0, 1)?;
        Ok(rel
            .index_select(idx, 1)?
            .reshape((self.n_heads, len, len))?)
    }

    /// `Σ_{|p| ≤ w} p_attn[i, i+p] · emb_rel_v[p + w]`, as `[heads, T, d_k]`.
    fn relative_value_term(
        &self,
        p_attn: &Tensor,
        len: usize,
        idx: &Tensor,
    ) -> Result<Tensor, VitsError> {
        let span = 2 * self.window + 1;
        let flat = p_attn
            .reshape((self.n_heads, len * len))?
            .pad_with_zeros(1, 0, 1)?;
        let rel_weights = flat
            .index_select(idx, 1)?
            .reshape((self.n_heads * len, span))?;
        let d_k = self.emb_rel_v.dim(1)?;
        Ok(rel_weights
            .matmul(&self.emb_rel_v)?
            .reshape((self.n_heads, len, d_k))?)
    }
}

/// The gather indices of the relative-position terms for one sentence length:
/// every layer shares them (they depend only on the length and the window), so
/// they are built once per sentence, not once per layer.
struct BandIndex {
    /// See [`band_gather_index`].
    band: Tensor,
    /// See [`diagonal_gather_index`].
    diagonals: Tensor,
}

impl BandIndex {
    fn new(len: usize, window: usize, device: &Device) -> Result<Self, VitsError> {
        Ok(Self {
            band: band_gather_index(len, window, device)?,
            diagonals: diagonal_gather_index(len, window, device)?,
        })
    }
}

/// Index into a flattened `[T, 2w+1]` table (+1 zero slot) producing the `[T, T]` band.
fn band_gather_index(len: usize, window: usize, device: &Device) -> Result<Tensor, VitsError> {
    let span = 2 * window + 1;
    let zero_slot = (len * span) as u32;
    let mut idx = Vec::with_capacity(len * len);
    for i in 0..len {
        for j in 0..len {
            let rel = j as isize - i as isize;
            idx.push(if rel.unsigned_abs() <= window {
                (i * span + (rel + window as isize) as usize) as u32
            } else {
                zero_slot
            });
        }
    }
    Ok(Tensor::from_vec(idx, len * len, device)?)
}

/// Index into a flattened `[T, T]` matrix (+1 zero slot) reading its `2w+1` diagonals as `[T, 2w+1]`.
fn diagonal_gather_index(len: usize, window: usize, device: &Device) -> Result<Tensor, VitsError> {
    let span = 2 * window + 1;
    let zero_slot = (len * len) as u32;
    let mut idx = Vec::with_capacity(len * span);
    for i in 0..len {
        for r in 0..span {
            let j = i as isize + r as isize - window as isize;
            idx.push(if (0..len as isize).contains(&j) {
                (i * len + j as usize) as u32
            } else {
                zero_slot
            });
        }
    }
    Ok(Tensor::from_vec(idx, len * span, device)?)
}

/// Position-wise feed-forward: conv(k) → ReLU → conv(k), "same" padding. On the CPU
/// both run as direct convolutions (about twice candle's im2col speed at 192 ↔ 768
/// channels), the ReLU fused into the second one's input.
#[derive(Debug, Clone)]
struct FeedForward {
    conv_1: FusedConv1d,
    conv_2: FusedConv1d,
}

impl FeedForward {
    fn forward(&self, x: &Tensor) -> Result<Tensor, VitsError> {
        let h = self.conv_1.forward(x, None, false)?;
        // LeakyReLU with slope 0 is the ReLU.
        self.conv_2.forward(&h, Some(0.0), false)
    }
}

/// One post-norm transformer layer.
#[derive(Debug, Clone)]
struct EncoderLayer {
    attn: RelativeAttention,
    norm_1: ChannelNorm,
    ffn: FeedForward,
    norm_2: ChannelNorm,
}

impl EncoderLayer {
    fn forward(&self, x: &Tensor, bands: &BandIndex) -> Result<Tensor, VitsError> {
        let x = self.norm_1.forward(&(x + self.attn.forward(x, bands)?)?)?;
        self.norm_2.forward(&(&x + self.ffn.forward(&x)?)?)
    }
}

/// [`EncoderLayer`] on plain `[H, T]` buffers (CPU): q/k/v in one gemm, attention with
/// a fused band + softmax pass ([`attention::relative_attention`]), the output projection and
/// the FFN accumulating into the residual, LayerNorm in place.
#[derive(Debug, Clone)]
struct CpuEncoderLayer {
    /// `[3H, H]`: q (pre-divided by `sqrt(d_k)`, as VITS divides the query), k, v.
    qkv: cpu::Pointwise,
    o: cpu::Pointwise,
    /// `[2·window+1, d_k]` each.
    rel_k: Vec<f32>,
    rel_v: Vec<f32>,
    heads: usize,
    norm_1: ChannelNorm,
    ffn_1: DirectConv1d,
    ffn_2: DirectConv1d,
    norm_2: ChannelNorm,
}

impl CpuEncoderLayer {
    fn new(layer: &EncoderLayer) -> Result<Self, VitsError> {
        let a = &layer.attn;
        let hidden = a.conv_q.out_channels();
        let d_k = hidden / a.n_heads;
        let scale = 1.0 / (d_k as f32).sqrt();
        let (mut weight, mut bias) = a.conv_q.to_vecs()?;
        weight
            .iter_mut()
            .chain(bias.iter_mut())
            .for_each(|v| *v *= scale);
        for conv in [&a.conv_k, &a.conv_v] {
            let (w, b) = conv.to_vecs()?;
            weight.extend(w);
            bias.extend(b);
        }
        let (wo, bo) = a.conv_o.to_vecs()?;
        let direct = |c: &FusedConv1d| {
            c.direct()
                .cloned()
                .ok_or_else(|| VitsError::Internal("FFN conv is not a direct conv".into()))
        };
        Ok(Self {
            qkv: cpu::Pointwise::new(weight, bias, 3 * hidden, hidden)?,
            o: cpu::Pointwise::new(wo, bo, hidden, hidden)?,
            rel_k: a.emb_rel_k.flatten_all()?.to_vec1::<f32>()?,
            rel_v: a.emb_rel_v.flatten_all()?.to_vec1::<f32>()?,
            heads: a.n_heads,
            norm_1: layer.norm_1.clone(),
            ffn_1: direct(&layer.ffn.conv_1)?,
            ffn_2: direct(&layer.ffn.conv_2)?,
            norm_2: layer.norm_2.clone(),
        })
    }

    /// `x` `[H, len]` in place.
    fn forward(&self, x: &mut [f32], len: usize) {
        let qkv = self.qkv.forward(x, len);
        let mut att = vec![0.0f32; x.len()];
        attention::relative_attention(&qkv, self.heads, len, &self.rel_k, &self.rel_v, &mut att);
        drop(qkv);
        self.o.accumulate(&att, len, x);
        self.norm_1.forward_cpu(x, len);
        let h = self.ffn_1.run(x, len, None, false);
        // LeakyReLU with slope 0 is the ReLU.
        let y = self.ffn_2.run(&h, len, Some(0.0), false);
        math::add_assign(x, &y);
        self.norm_2.forward_cpu(x, len);
    }
}

/// The transformer layers: candle ops, or on the CPU plain buffers.
#[derive(Debug, Clone)]
enum Layers {
    Tensor(Vec<EncoderLayer>),
    Cpu(Vec<CpuEncoderLayer>),
}

/// The text encoder `enc_p`.
#[derive(Debug, Clone)]
pub struct TextEncoder {
    /// `[n_symbols, hidden]`.
    emb: Tensor,
    layers: Layers,
    proj: Pointwise,
}

impl TextEncoder {
    /// Loads `enc_p.*`; layer count, width, heads and window are the voice's
    /// hyperparameters, the other widths those of the tensors.
    pub fn load(w: &Weights, hyper: &Hyper) -> Result<Self, VitsError> {
        let emb = w.get_rank("enc_p.emb.weight", 2)?;
        let hidden = hyper.hidden_channels;
        let n_layers = hyper.n_layers;
        if n_layers == 0 {
            return Err(VitsError::MissingWeight(
                "enc_p.encoder.attn_layers.0.conv_q.weight".into(),
            ));
        }
        let layers = (0..n_layers)
            .map(|i| {
                let p = "enc_p.encoder";
                Ok(EncoderLayer {
                    attn: RelativeAttention::load(
                        w,
                        &format!("{p}.attn_layers.{i}"),
                        hidden,
                        hyper.n_heads,
                        hyper.window_size,
                    )?,
                    norm_1: ChannelNorm::load(w, &format!("{p}.norm_layers_1.{i}"), hidden)?,
                    ffn: FeedForward {
                        conv_1: FusedConv1d::new(
                            Conv1d::load(w, &format!("{p}.ffn_layers.{i}.conv_1"), 1, true)?,
                            w.native_cpu(),
                        )?,
                        conv_2: FusedConv1d::new(
                            Conv1d::load(w, &format!("{p}.ffn_layers.{i}.conv_2"), 1, true)?,
                            w.native_cpu(),
                        )?,
                    },
                    norm_2: ChannelNorm::load(w, &format!("{p}.norm_layers_2.{i}"), hidden)?,
                })
            })
            .collect::<Result<Vec<_>, VitsError>>()?;
        let proj = Pointwise::load(w, "enc_p.proj", w.native_cpu())?;
        if proj.out_channels() % 2 != 0 {
            return Err(VitsError::Shape {
                name: "enc_p.proj.weight".into(),
                expected: "even output channels (mean ‖ log-std)".into(),
                got: vec![proj.out_channels()],
            });
        }
        // The CPU form needs direct FFN convolutions (kernel > 1, as in every Piper
        // voice); anything else keeps candle's ops.
        let native = w.native_cpu()
            && layers
                .iter()
                .all(|l| l.ffn.conv_1.direct().is_some() && l.ffn.conv_2.direct().is_some());
        let layers = if native {
            Layers::Cpu(
                layers
                    .iter()
                    .map(CpuEncoderLayer::new)
                    .collect::<Result<_, _>>()?,
            )
        } else {
            Layers::Tensor(layers)
        };
        Ok(Self { emb, layers, proj })
    }

    /// Number of phoneme symbols the embedding knows.
    pub fn n_symbols(&self) -> usize {
        self.emb.dims()[0]
    }

    /// Encodes one sentence of phoneme ids.
    pub fn forward(&self, ids: &[i64]) -> Result<EncodedText, VitsError> {
        let n_symbols = self.n_symbols();
        let idx = ids
            .iter()
            .map(|&id| {
                u32::try_from(id)
                    .ok()
                    .filter(|&v| (v as usize) < n_symbols)
                    .ok_or(VitsError::PhonemeIdOutOfRange { id, n_symbols })
            })
            .collect::<Result<Vec<u32>, _>>()?;
        let len = idx.len();
        let hidden = self.emb.dim(1)?;
        let idx = Tensor::from_vec(idx, len, self.emb.device())?;
        // Embeddings are scaled by sqrt(hidden) as in the original transformer.
        let x = (self.emb.index_select(&idx, 0)? * (hidden as f64).sqrt())?;
        let mut x = x.t()?.contiguous()?.unsqueeze(0)?;
        match &self.layers {
            Layers::Tensor(layers) => {
                let mut bands: Option<(usize, BandIndex)> = None;
                for layer in layers {
                    // Layers normally share one window; rebuild only if one differs.
                    let window = layer.attn.window;
                    if bands.as_ref().is_none_or(|(w, _)| *w != window) {
                        bands = Some((window, BandIndex::new(len, window, x.device())?));
                    }
                    let (_, b) = bands.as_ref().expect("just built");
                    x = layer.forward(&x, b)?;
                }
            }
            Layers::Cpu(layers) => {
                let mut buf = x.flatten_all()?.to_vec1::<f32>()?;
                for layer in layers {
                    layer.forward(&mut buf, len);
                }
                x = Tensor::from_vec(buf, (1, hidden, len), x.device())?;
            }
        }
        let stats = self.proj.forward(&x)?;
        let half = self.proj.out_channels() / 2;
        Ok(EncodedText {
            m_p: stats.narrow(1, 0, half)?,
            logs_p: stats.narrow(1, half, half)?,
            hidden: x,
        })
    }
}
