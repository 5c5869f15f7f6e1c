//! Normalizing flow (`flow`): mean-only residual coupling layers with WaveNet
//! conditioning, run in reverse (prior sample → latent for the decoder).

use candle_core::Tensor;

use super::cpu::gated_tanh;
use super::ops::{flip_channels, Conv1d, FusedConv1d, Pointwise};
use super::weights::Weights;
use super::{FlowHyper, VitsError};

/// Non-causal WaveNet: dilated conv → gated tanh·sigmoid → 1×1 res/skip.
/// On the CPU the whole stack runs on plain buffers ([`WaveNet::forward_cpu`]): the
/// dilated convs as direct convolutions (at 192 → 384 channels, k5, about twice
/// candle's im2col + gemm), the gate as one pass, and the res/skip convolution
/// adding straight into the residual and skip sums.
#[derive(Debug, Clone)]
struct WaveNet {
    in_layers: Vec<FusedConv1d>,
    /// Speaker conditioning `gin → 2·hidden·layers` of multi-speaker voices; layer i
    /// adds its slice i to the dilated conv's output.
    cond_layer: Option<Conv1d>,
    res_skip_layers: Vec<Pointwise>,
    hidden: usize,
}

impl WaveNet {
    /// `n_layers` and `dilation_rate` are the voice's (layer i has dilation rate^i).
    fn load(
        w: &Weights,
        prefix: &str,
        n_layers: usize,
        dilation_rate: usize,
    ) -> Result<Self, VitsError> {
        if n_layers == 0 {
            return Err(VitsError::MissingWeight(format!(
                "{prefix}.in_layers.0.weight"
            )));
        }
        let found = w.count_indexed(|i| format!("{prefix}.in_layers.{i}.weight"));
        if found != n_layers {
            return Err(VitsError::Unsupported(format!(
                "{prefix} has {found} layers but the voice gives {n_layers}"
            )));
        }
        let convs = (0..n_layers)
            .map(|i| {
                Conv1d::load(
                    w,
                    &format!("{prefix}.in_layers.{i}"),
                    dilation_rate.pow(i as u32),
                    true,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let hidden = convs[0].in_channels();
        let res_skip_layers = (0..n_layers)
            .map(|i| {
                let name = format!("{prefix}.res_skip_layers.{i}");
                let layer = Pointwise::load(w, &name, w.native_cpu())?;
                // Every layer but the last emits a residual and a skip half.
                let want = if i + 1 < n_layers { 2 * hidden } else { hidden };
                if layer.out_channels() != want || layer.in_channels() != hidden {
                    return Err(VitsError::Shape {
                        name: format!("{name}.weight"),
                        expected: format!("[{want}, {hidden}, 1]"),
                        got: vec![layer.out_channels(), layer.in_channels(), 1],
                    });
                }
                Ok(layer)
            })
            .collect::<Result<Vec<_>, VitsError>>()?;
        let in_layers = convs
            .into_iter()
            .map(|c| FusedConv1d::new(c, w.native_cpu()))
            .collect::<Result<Vec<_>, _>>()?;
        let cond_layer = w
            .contains(&format!("{prefix}.cond_layer.weight"))
            .then(|| Conv1d::load(w, &format!("{prefix}.cond_layer"), 1, true))
            .transpose()?;
        if let Some(c) = &cond_layer {
            if c.out_channels() != 2 * hidden * n_layers {
                return Err(VitsError::Shape {
                    name: format!("{prefix}.cond_layer.weight"),
                    expected: format!(
                        "{} outputs (2 · {hidden} · {n_layers})",
                        2 * hidden * n_layers
                    ),
                    got: vec![c.out_channels(), c.in_channels()],
                });
            }
        }
        Ok(Self {
            hidden,
            cond_layer,
            in_layers,
            res_skip_layers,
        })
    }

    fn forward(&self, x: &Tensor, g: Option<&Tensor>) -> Result<Tensor, VitsError> {
        let h = self.hidden;
        // `[1, 2·h·layers, 1]`: one time step, broadcast over the frames.
        let cond = match (&self.cond_layer, g) {
            (Some(layer), Some(g)) => Some(layer.forward(g)?),
            _ => None,
        };
        let mut x = x.clone();
        let mut skip: Option<Tensor> = None;
        let last = self.in_layers.len() - 1;
        for (i, (conv, res_skip)) in self.in_layers.iter().zip(&self.res_skip_layers).enumerate() {
            let mut x_in = conv.forward(&x, None, false)?;
            if let Some(cond) = &cond {
                x_in = x_in.broadcast_add(&cond.narrow(1, 2 * h * i, 2 * h)?)?;
            }
            // Gated activation: tanh(first half) · sigmoid(second half).
            let gate = (x_in.narrow(1, h, h)?.neg()?.exp()? + 1.0)?.recip()?;
            let acts = (x_in.narrow(1, 0, h)?.tanh()? * gate)?;
            let rs = res_skip.forward(&acts)?;
            // Every layer but the last splits its output into a residual and a skip half.
            let skip_part = if i < last {
                x = (x + rs.narrow(1, 0, h)?)?;
                rs.narrow(1, h, h)?
            } else {
                rs
            };
            skip = Some(match skip {
                Some(s) => (s + skip_part)?,
                None => skip_part,
            });
        }
        skip.ok_or_else(|| VitsError::Internal("WaveNet without layers".into()))
    }

    /// The layers in their CPU forms, when they were loaded so.
    fn cpu_layers(&self) -> Option<Vec<(&super::conv::DirectConv1d, &super::cpu::Pointwise)>> {
        self.in_layers
            .iter()
            .zip(&self.res_skip_layers)
            .map(|(c, r)| Some((c.direct()?, r.cpu()?)))
            .collect()
    }

    /// [`Self::forward`] on a `[hidden, len]` buffer, returning the skip sum
    /// `[hidden, len]`. `cond` is the conditioning layer's output (`2·hidden·layers`).
    fn forward_cpu(
        &self,
        x: &[f32],
        len: usize,
        cond: Option<&[f32]>,
    ) -> Result<Vec<f32>, VitsError> {
        let h = self.hidden;
        let layers = self
            .cpu_layers()
            .ok_or_else(|| VitsError::Internal("WaveNet not loaded for the CPU".into()))?;
        // Residual stream in rows 0..h, skip sum in rows h..2h: one gemm per layer
        // adds the res/skip convolution's two halves to both.
        let mut state = vec![0.0f32; 2 * h * len];
        state[..h * len].copy_from_slice(x);
        let mut acts = vec![0.0f32; h * len];
        let last = layers.len() - 1;
        for (i, (conv, res_skip)) in layers.into_iter().enumerate() {
            let x_in = conv.run(&state[..h * len], len, None, false);
            let offset = cond.map(|c| &c[2 * h * i..2 * h * (i + 1)]);
            gated_tanh(&x_in, h, len, offset, &mut acts);
            drop(x_in);
            if i < last {
                res_skip.accumulate(&acts, len, &mut state);
            } else {
                res_skip.accumulate(&acts, len, &mut state[h * len..]);
            }
        }
        state.drain(..h * len);
        Ok(state)
    }
}

/// Mean-only residual coupling layer: `x1 -= post(WN(pre(x0)))` in reverse.
#[derive(Debug, Clone)]
struct CouplingLayer {
    pre: Pointwise,
    enc: WaveNet,
    post: Pointwise,
    half: usize,
}

impl CouplingLayer {
    fn reverse(&self, x: &Tensor, g: Option<&Tensor>) -> Result<Tensor, VitsError> {
        let x0 = x.narrow(1, 0, self.half)?;
        let x1 = x.narrow(1, self.half, self.half)?;
        let h = self.enc.forward(&self.pre.forward(&x0)?, g)?;
        let m = self.post.forward(&h)?;
        Ok(Tensor::cat(&[&x0, &(x1 - m)?], 1)?)
    }

    /// [`Self::reverse`] in place on a `[2·half, len]` buffer (CPU).
    fn reverse_cpu(
        &self,
        x: &mut [f32],
        len: usize,
        cond: Option<&[f32]>,
    ) -> Result<(), VitsError> {
        let (Some(pre), Some(post)) = (self.pre.cpu(), self.post.cpu()) else {
            return Err(VitsError::Internal(
                "coupling layer not loaded for the CPU".into(),
            ));
        };
        let (x0, x1) = x.split_at_mut(self.half * len);
        let h = pre.forward(x0, len);
        let skip = self.enc.forward_cpu(&h, len, cond)?;
        post.subtract(&skip, len, x1);
        Ok(())
    }
}

/// The residual coupling block `flow` (coupling layers at even indices, Flips between).
#[derive(Debug, Clone)]
pub struct Flow {
    layers: Vec<CouplingLayer>,
}

impl Flow {
    /// Loads the coupling layers `flow.flows.{0,2,4,…}.*` the voice's hyperparameters
    /// list, with their WaveNet depth and dilation rate (1 in VITS/Piper).
    pub fn load(w: &Weights, hyper: &FlowHyper) -> Result<Self, VitsError> {
        let layers = hyper
            .coupling_indices
            .iter()
            .map(|i| {
                let p = format!("flow.flows.{i}");
                let pre = Pointwise::load(w, &format!("{p}.pre"), w.native_cpu())?;
                let post = Pointwise::load(w, &format!("{p}.post"), w.native_cpu())?;
                let half = pre.in_channels();
                // mean-only: post emits exactly the second half's means
                if post.out_channels() != half {
                    return Err(VitsError::Unsupported(format!(
                        "{p}.post has {} outputs; only mean-only coupling is supported",
                        post.out_channels()
                    )));
                }
                Ok(CouplingLayer {
                    pre,
                    enc: WaveNet::load(
                        w,
                        &format!("{p}.enc"),
                        hyper.n_layers,
                        hyper.dilation_rate,
                    )?,
                    post,
                    half,
                })
            })
            .collect::<Result<Vec<_>, VitsError>>()?;
        if layers.is_empty() {
            return Err(VitsError::MissingWeight("flow.flows.0.pre.weight".into()));
        }
        Ok(Self { layers })
    }

    /// Input width of each coupling layer's speaker conditioning (0 without one).
    pub fn cond_widths(&self) -> impl Iterator<Item = usize> + '_ {
        self.layers
            .iter()
            .map(|l| l.enc.cond_layer.as_ref().map_or(0, Conv1d::in_channels))
    }

    /// Inverse flow: for each coupling layer from last to first, Flip then un-couple;
    /// `g` `[1, gin, 1]` is the speaker of a multi-speaker voice.
    pub fn reverse(&self, z: &Tensor, g: Option<&Tensor>) -> Result<Tensor, VitsError> {
        if self.layers.iter().all(|l| l.enc.cpu_layers().is_some()) {
            return self.reverse_cpu(z, g);
        }
        let mut z = z.clone();
        for layer in self.layers.iter().rev() {
            z = layer.reverse(&flip_channels(&z)?, g)?;
        }
        Ok(z)
    }

    /// [`Self::reverse`] on one buffer, flipped and un-coupled in place (CPU).
    fn reverse_cpu(&self, z: &Tensor, g: Option<&Tensor>) -> Result<Tensor, VitsError> {
        let (_, channels, len) = z.dims3()?;
        let mut buf = z.flatten_all()?.to_vec1::<f32>()?;
        for layer in self.layers.iter().rev() {
            // Flip: reverse the order of the channel rows.
            for c in 0..channels / 2 {
                let (a, b) = buf.split_at_mut((channels - 1 - c) * len);
                a[c * len..(c + 1) * len].swap_with_slice(&mut b[..len]);
            }
            let cond = match (&layer.enc.cond_layer, g) {
                (Some(cond), Some(g)) => Some(cond.forward(g)?.flatten_all()?.to_vec1::<f32>()?),
                _ => None,
            };
            layer.reverse_cpu(&mut buf, len, cond.as_deref())?;
        }
        Ok(Tensor::from_vec(buf, (1, channels, len), z.device())?)
    }
}
