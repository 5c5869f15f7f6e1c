//! Named weight store with shape-checked access.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use super::VitsError;

/// Checkpoint-named tensors (`enc_p.emb.weight`, `flow.flows.0.pre.weight`, …), all f32.
#[derive(Debug, Clone)]
pub struct Weights {
    tensors: HashMap<String, Tensor>,
    device: Device,
    /// Build the CPU's hand-written kernels (see [`super::Kernels`]).
    native: bool,
}

impl Weights {
    /// Wraps already-named tensors (e.g. from an ONNX initializer reader after renaming);
    /// converts them to f32 on `device`.
    pub fn from_tensors(
        tensors: HashMap<String, Tensor>,
        device: &Device,
    ) -> Result<Self, VitsError> {
        let tensors = tensors
            .into_iter()
            .map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?.to_device(device)?)))
            .collect::<Result<HashMap<_, _>, VitsError>>()?;
        Ok(Self {
            tensors,
            native: device.is_cpu(),
            device: device.clone(),
        })
    }

    /// The device every tensor lives on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Use candle's ops only, as on a GPU, even on the CPU (see [`super::Kernels`]).
    pub fn candle_only(mut self) -> Self {
        self.native = false;
        self
    }

    /// Whether the layers are built for the CPU's hand-written kernels.
    pub(crate) fn native_cpu(&self) -> bool {
        self.native
    }

    /// Converts the weights read from a voice's ONNX file (already named
    /// after the checkpoint by the reader) to tensors on `device`.
    pub fn from_onnx(onnx: &crate::onnx::Weights, device: &Device) -> Result<Self, VitsError> {
        let tensors = onnx
            .iter()
            .map(|(name, t)| {
                let tensor = Tensor::from_slice(&t.data, t.dims.as_slice(), device)?;
                Ok((name.to_string(), tensor))
            })
            .collect::<Result<HashMap<_, _>, VitsError>>()?;
        Self::from_tensors(tensors, device)
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Result<Tensor, VitsError> {
        self.tensors
            .get(name)
            .cloned()
            .ok_or_else(|| VitsError::MissingWeight(name.to_string()))
    }

    /// The tensor called `name`, checked to have `rank` dimensions.
    pub(crate) fn get_rank(&self, name: &str, rank: usize) -> Result<Tensor, VitsError> {
        let t = self.get(name)?;
        if t.rank() != rank {
            return Err(VitsError::Shape {
                name: name.to_string(),
                expected: format!("rank {rank}"),
                got: t.dims().to_vec(),
            });
        }
        Ok(t)
    }

    /// A tensor of exactly `len` elements, flattened to `[len]`.
    pub(crate) fn get_vector(&self, name: &str, len: usize) -> Result<Tensor, VitsError> {
        let t = self.get(name)?;
        if t.elem_count() != len {
            return Err(VitsError::Shape {
                name: name.to_string(),
                expected: format!("{len} elements"),
                got: t.dims().to_vec(),
            });
        }
        Ok(t.flatten_all()?)
    }

    /// Counts consecutive indices `i = 0, 1, …` for which `format(i)` names a tensor.
    pub(crate) fn count_indexed(&self, format: impl Fn(usize) -> String) -> usize {
        (0..).take_while(|&i| self.contains(&format(i))).count()
    }
}
