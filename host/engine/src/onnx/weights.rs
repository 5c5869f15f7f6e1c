//! What the reader hands back: the float weights of a voice under canonical PyTorch names
//! ([`Weights`]), each a dense f32 [`Tensor`], plus the attributes of the `Conv` /
//! `ConvTranspose` nodes that read them ([`ConvAttrs`]).

use std::collections::BTreeMap;
use std::fmt;

use super::OnnxError;

/// A dense float32 tensor in row-major (C) order.
#[derive(Clone, PartialEq)]
pub struct Tensor {
    /// Shape, outermost dimension first; empty for a scalar.
    pub dims: Vec<usize>,
    /// `dims.iter().product()` values, row-major.
    pub data: Vec<f32>,
}

impl fmt::Debug for Tensor {
    // The data can hold millions of values: print the shape and a short prefix only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head: Vec<f32> = self.data.iter().take(4).copied().collect();
        f.debug_struct("Tensor")
            .field("dims", &self.dims)
            .field("head", &head)
            .finish()
    }
}

/// Attributes of a `Conv` or `ConvTranspose` node, with ONNX defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvAttrs {
    /// `Conv` or `ConvTranspose`.
    pub op_type: String,
    /// Stride per spatial axis (default 1).
    pub strides: Vec<usize>,
    /// Dilation per spatial axis (default 1).
    pub dilations: Vec<usize>,
    /// Begin pads for every spatial axis, then end pads (default 0).
    pub pads: Vec<usize>,
    /// Number of groups (default 1).
    pub group: usize,
}

/// The float weights of a voice under canonical PyTorch names, plus conv node attributes.
#[derive(Debug, Clone)]
pub struct Weights {
    pub(super) tensors: BTreeMap<String, Tensor>,
    pub(super) conv_attrs: BTreeMap<String, ConvAttrs>,
    pub(super) skipped: Vec<String>,
    pub(super) initializer_count: usize,
    pub(super) node_count: usize,
}

impl Weights {
    /// The weight called `name`, or [`OnnxError::Missing`] naming it.
    pub fn get(&self, name: &str) -> Result<&Tensor, OnnxError> {
        self.tensors
            .get(name)
            .ok_or_else(|| OnnxError::Missing(name.to_string()))
    }

    /// Whether a weight called `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// All weight names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// All weights with their names, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.tensors.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of weights exposed.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether no weight was found.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Total number of float values over all weights.
    pub fn parameter_count(&self) -> usize {
        self.tensors.values().map(|t| t.data.len()).sum()
    }

    /// Attributes of the `Conv`/`ConvTranspose` node whose weight input is `weight_name`.
    pub fn conv_attrs(&self, weight_name: &str) -> Option<&ConvAttrs> {
        self.conv_attrs.get(weight_name)
    }

    /// ONNX names of float tensors that were not exposed (graph constants, unnamable tensors).
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// Number of `GraphProto.initializer` entries in the file, of every data type.
    pub fn initializer_count(&self) -> usize {
        self.initializer_count
    }

    /// Number of nodes in the graph.
    pub fn node_count(&self) -> usize {
        self.node_count
    }

    /// Names present under `prefix` followed by a decimal index and a dot, as sorted indices.
    /// `indices("flow.flows.")` on a medium voice gives `[0, 1, 2, …]` for the indices that exist.
    pub fn indices(&self, prefix: &str) -> Vec<usize> {
        let mut found: Vec<usize> = self
            .tensors
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter_map(|(k, _)| {
                let rest = &k[prefix.len()..];
                let digits = rest.split('.').next()?;
                digits.parse().ok()
            })
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }
}
