//! Reader of the weights of a Piper (VITS) voice stored as an ONNX file.
//!
//! The ONNX file is a protobuf message (`onnx.ModelProto`). Rather than depend on a protobuf
//! compiler, this module decodes the few fields it needs by hand from the protobuf wire format.
//! Only floating-point tensors are weights; integer tensors are graph constants (shapes, axes,
//! pads) and are skipped. Weights are exposed under canonical PyTorch state-dict names
//! (`flow.flows.0.enc.in_layers.0.weight`), undoing the quirks of Piper's export.
//!
//! One concern per file, in the order the bytes go through them:
//!
//! - `wire`: the protobuf wire format (varints, length-delimited fields, fixed32/fixed64,
//!   packed repeated scalars);
//! - `graph`: the ONNX messages read from it (model, graph, node, attribute, tensor), with the
//!   field numbers used;
//! - `tensor`: decoding a tensor's data (float32, float16, bfloat16, double) into f32;
//! - `naming`: the rules that give each tensor its PyTorch name (Piper's export quirks), and
//!   the assembly of [`Weights`];
//! - `weights`: [`Weights`], [`Tensor`] and [`ConvAttrs`], what callers get back;
//! - `hyper`: [`hyperparameters`], everything the model needs that is not a weight, inferred
//!   once from the shapes and conv attributes.
//!
//! The reader also records the attributes of every `Conv` / `ConvTranspose` node by the
//! canonical name of its weight ([`Weights::conv_attrs`]), which gives exact upsample strides and
//! dilations to [`hyperparameters`].

mod graph;
mod hyper;
mod naming;
mod tensor;
mod weights;
mod wire;

use std::path::{Path, PathBuf};

pub use hyper::{hyperparameters, DecoderHyper, DurationHyper, FlowHyper, Hyper, ResBlockKind};
pub use weights::{ConvAttrs, Tensor, Weights};

/// Errors from reading an ONNX voice or inferring its hyperparameters.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The file could not be read from disk.
    #[error("cannot read ONNX file {path}: {source}")]
    Io {
        /// The file that was being read.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The bytes are not a well-formed protobuf message (truncated or corrupt file).
    #[error("malformed ONNX file at byte {offset}: {reason}")]
    Malformed {
        /// Absolute byte offset in the file where decoding failed.
        offset: usize,
        /// What was wrong.
        reason: String,
    },
    /// The model has no graph (field 7 of `ModelProto` is absent).
    #[error("ONNX file has no graph: not an ONNX model, or an empty one")]
    NoGraph,
    /// A tensor's declared shape, type or data is inconsistent.
    #[error("tensor `{name}`: {reason}")]
    BadTensor {
        /// The tensor's name in the ONNX file.
        name: String,
        /// What was inconsistent.
        reason: String,
    },
    /// A tensor keeps its data in a side file (ONNX external data), which this reader does not load.
    #[error("tensor `{0}` stores its data in an external file, which is not supported")]
    ExternalData(String),
    /// Two different ONNX tensors were given the same canonical weight name.
    #[error("two ONNX tensors map to the same weight name `{0}`")]
    DuplicateName(String),
    /// A weight the caller asked for is not in the voice.
    #[error("weight `{0}` is missing from the voice")]
    Missing(String),
    /// A hyperparameter could not be inferred from the weights.
    #[error("cannot infer hyperparameter {what}: {reason}")]
    Hyper {
        /// Which hyperparameter.
        what: &'static str,
        /// Why it could not be inferred.
        reason: String,
    },
}

/// Reads every float weight of the ONNX voice at `path` and names it canonically
/// (see the `naming` module for the rules).
pub fn read_weights(path: &Path) -> Result<Weights, OnnxError> {
    let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    weights_from_bytes(&bytes)
}

/// Same as [`read_weights`], for a model already in memory.
pub fn weights_from_bytes(bytes: &[u8]) -> Result<Weights, OnnxError> {
    let graph = graph::parse_model(bytes)?;
    naming::build_weights(&graph)
}

#[cfg(test)]
mod tests {
    use super::graph::DT_FLOAT;
    use super::*;

    /// Encodes a varint, for building small messages by hand.
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn len_field(field: u32, payload: &[u8], out: &mut Vec<u8>) {
        varint(u64::from(field) << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    /// A model with one Conv node and one anonymous float initializer, float_data packed.
    fn tiny_model() -> Vec<u8> {
        let mut tensor = Vec::new();
        let mut dims = Vec::new();
        varint(2, &mut dims);
        varint(1, &mut dims);
        len_field(1, &dims, &mut tensor);
        varint(2 << 3, &mut tensor);
        varint(DT_FLOAT as u64, &mut tensor);
        let floats: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        len_field(4, &floats, &mut tensor);
        len_field(8, b"onnx::Conv_1", &mut tensor);
        let mut node = Vec::new();
        len_field(1, b"x", &mut node);
        len_field(1, b"onnx::Conv_1", &mut node);
        len_field(2, b"y", &mut node);
        len_field(3, b"/a/b.0/Conv", &mut node);
        len_field(4, b"Conv", &mut node);
        let mut graph = Vec::new();
        len_field(1, &node, &mut graph);
        len_field(5, &tensor, &mut graph);
        let mut model = Vec::new();
        varint(1 << 3, &mut model);
        varint(8, &mut model);
        len_field(7, &graph, &mut model);
        model
    }

    #[test]
    fn names_anonymous_conv_weight_from_its_node() {
        let w = weights_from_bytes(&tiny_model()).expect("tiny model parses");
        let t = w.get("a.b.0.weight").expect("renamed");
        assert_eq!(t.dims, vec![2, 1]);
        assert_eq!(t.data, vec![1.5, -2.0]);
        assert_eq!(w.conv_attrs("a.b.0.weight").map(|a| a.group), Some(1));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let model = tiny_model();
        for cut in 1..model.len() {
            assert!(
                weights_from_bytes(&model[..cut]).is_err(),
                "cut at {cut} accepted"
            );
        }
    }
}
