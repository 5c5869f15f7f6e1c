//! Reader of the weights of a Piper (VITS) voice stored as an ONNX file.
//!
//! The ONNX file is a protobuf message (`onnx.ModelProto`). Rather than depend on a protobuf
//! compiler, this module decodes the few fields it needs by hand from the protobuf wire format
//! (varints, length-delimited fields, fixed32/fixed64, packed repeated scalars). Field numbers
//! come from `onnx/onnx.proto` (checked against onnx 1.23.2):
//!
//! | message          | fields used                                                          |
//! |------------------|----------------------------------------------------------------------|
//! | `ModelProto`     | graph = 7                                                            |
//! | `GraphProto`     | node = 1, initializer = 5                                            |
//! | `NodeProto`      | input = 1, output = 2, name = 3, op_type = 4, attribute = 5          |
//! | `AttributeProto` | name = 1, i = 3, t = 5, ints = 8, type = 20                          |
//! | `TensorProto`    | dims = 1, data_type = 2, int32_data = 5, float_data = 4, name = 8,   |
//! |                  | raw_data = 9, double_data = 10, external_data = 13, data_location = 14 |
//!
//! Only floating-point tensors are weights; integer tensors are graph constants (shapes, axes,
//! pads) and are skipped. Weights are exposed under canonical PyTorch state-dict names
//! (`flow.flows.0.enc.in_layers.0.weight`), undoing the quirks of Piper's export:
//!
//! 1. An initializer whose name already is a PyTorch parameter path (dot-separated identifiers,
//!    at least one dot) keeps its name.
//! 2. Any other float initializer or `Constant` node value whose name does not start with `/`
//!    (`onnx::Conv_8168`, the phoneme embedding stored as `sid`, bare numbers) is named from the
//!    node(s) that consume it: the consumer's node name minus its last path segment, with `/`
//!    replaced by `.`, plus the parameter role given by the operator and input slot:
//!    `Conv`/`ConvTranspose` input 1 → `.weight`, input 2 → `.bias`; `Gather` input 0 →
//!    `.weight` (embeddings); `MatMul` input 1 and `Gemm` input 1 → `.weight`, `Gemm` input 2 →
//!    `.bias`. So `/flow/flows.6/enc/in_layers.0/Conv` input 1 → `flow.flows.6.enc.in_layers.0.weight`
//!    and `/enc_p/emb/Gather` input 0 → `enc_p.emb.weight`. Every consumer must agree on the name;
//!    otherwise the tensor is skipped (listed by [`Weights::skipped`]).
//! 3. A float tensor named `/P/Exp_output_0` where `P.m` (slashes turned into dots) is a weight of
//!    the same shape is the export's constant folding of `exp(-logs)` in VITS's
//!    `ElementwiseAffine` reverse pass; it is exposed as `P.logs = -ln(value)`
//!    (`/dp/flows.0/Exp_output_0` → `dp.flows.0.logs`). Newer torch versions fold only the
//!    negation: an anonymous tensor read only by the node `/P/Exp` is `-logs`, exposed as
//!    `P.logs = -value`.
//! 4. Every other tensor whose name starts with `/` is an exporter-generated graph constant
//!    (`sqrt(hidden)`, `1e-5`, `-10000`, …), not a weight; float ones are listed by
//!    [`Weights::skipped`].
//! 5. `torch.onnx.export` stores bit-identical parameters once (LayerNorm gammas still at
//!    their initial ones, say): the first keeps its name and each other one becomes an
//!    `Identity` node reading it (`enc_p.encoder.norm_layers_1.0.gamma` →
//!    `dp.convs.norms_1.0.gamma`, or → `onnx::Exp_9186` for a `-logs` equal to its `m`).
//!    Each such output is one more tensor under the output's name, to which rules 1–4
//!    apply.
//!
//! The module also records the attributes of every `Conv` / `ConvTranspose` node by the
//! canonical name of its weight ([`Weights::conv_attrs`]), which gives exact upsample strides and
//! dilations to [`hyperparameters`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

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
    tensors: BTreeMap<String, Tensor>,
    conv_attrs: BTreeMap<String, ConvAttrs>,
    skipped: Vec<String>,
    initializer_count: usize,
    node_count: usize,
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

/// Reads every float weight of the ONNX voice at `path` and names it canonically
/// (see the module documentation for the naming rules).
pub fn read_weights(path: &Path) -> Result<Weights, OnnxError> {
    let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    weights_from_bytes(&bytes)
}

/// Same as [`read_weights`], for a model already in memory.
pub fn weights_from_bytes(bytes: &[u8]) -> Result<Weights, OnnxError> {
    let graph = parse_model(bytes)?;
    build_weights(&graph)
}

// ---------------------------------------------------------------------------------------------
// Protobuf wire format
// ---------------------------------------------------------------------------------------------

/// Protobuf wire types (the low 3 bits of a field key).
const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_FIXED32: u8 = 5;

/// A cursor over one protobuf message; `base` is the message's offset in the file, so that
/// errors report absolute positions.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

/// A field's value as it appears on the wire.
enum Value<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Len(Reader<'a>),
    Fixed32([u8; 4]),
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    fn offset(&self) -> usize {
        self.base + self.pos
    }

    fn error(&self, reason: impl Into<String>) -> OnnxError {
        OnnxError::Malformed {
            offset: self.offset(),
            reason: reason.into(),
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn read_varint(&mut self) -> Result<u64, OnnxError> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(self.error("varint runs past the end of its message (truncated file?)"));
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.error("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], OnnxError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(self.error(format!(
                "field of {n} bytes runs past the end of its message ({} bytes left; truncated file?)",
                self.buf.len() - self.pos
            )));
        };
        let slice = &self.buf[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    /// Reads the next field: its number and value.
    fn next_field(&mut self) -> Result<(u32, Value<'a>), OnnxError> {
        let key = self.read_varint()?;
        let field = u32::try_from(key >> 3).map_err(|_| self.error("field number out of range"))?;
        if field == 0 {
            return Err(self.error("field number 0 is invalid"));
        }
        let value = match (key & 7) as u8 {
            WIRE_VARINT => Value::Varint(self.read_varint()?),
            WIRE_FIXED64 => Value::Fixed64(self.fixed::<8>()?),
            WIRE_LEN => {
                let len = self.read_varint()?;
                let len = usize::try_from(len).map_err(|_| self.error("length out of range"))?;
                let base = self.offset();
                Value::Len(Reader::new(self.take(len)?, base))
            }
            WIRE_FIXED32 => Value::Fixed32(self.fixed::<4>()?),
            other => {
                return Err(self.error(format!("unsupported wire type {other} (groups or garbage)")))
            }
        };
        Ok((field, value))
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], OnnxError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
}

impl<'a> Value<'a> {
    fn wire_name(&self) -> &'static str {
        match self {
            Value::Varint(_) => "varint",
            Value::Fixed64(_) => "fixed64",
            Value::Len(_) => "length-delimited",
            Value::Fixed32(_) => "fixed32",
        }
    }
}

/// Error for a field that arrived with the wrong wire type.
fn wrong_wire(reader: &Reader<'_>, what: &str, value: &Value<'_>) -> OnnxError {
    reader.error(format!(
        "{what} has unexpected wire type {}",
        value.wire_name()
    ))
}

fn expect_len<'a>(
    reader: &Reader<'a>,
    what: &str,
    value: Value<'a>,
) -> Result<Reader<'a>, OnnxError> {
    match value {
        Value::Len(r) => Ok(r),
        other => Err(wrong_wire(reader, what, &other)),
    }
}

fn expect_str<'a>(reader: &Reader<'a>, what: &str, value: Value<'a>) -> Result<&'a str, OnnxError> {
    let inner = expect_len(reader, what, value)?;
    std::str::from_utf8(inner.rest()).map_err(|_| inner.error(format!("{what} is not UTF-8")))
}

fn expect_varint(reader: &Reader<'_>, what: &str, value: Value<'_>) -> Result<u64, OnnxError> {
    match value {
        Value::Varint(v) => Ok(v),
        other => Err(wrong_wire(reader, what, &other)),
    }
}

/// Appends a repeated int64 field, packed (one length-delimited run) or not (one varint each).
fn push_int64s(
    reader: &Reader<'_>,
    what: &str,
    value: Value<'_>,
    out: &mut Vec<i64>,
) -> Result<(), OnnxError> {
    match value {
        // Two's complement: negative int64 are encoded as 10-byte varints.
        Value::Varint(v) => out.push(v as i64),
        Value::Len(mut packed) => {
            while !packed.at_end() {
                out.push(packed.read_varint()? as i64);
            }
        }
        other => return Err(wrong_wire(reader, what, &other)),
    }
    Ok(())
}

/// Appends a repeated fixed-width field (float, double), packed or not.
fn push_fixed<'a, const N: usize>(
    reader: &Reader<'a>,
    what: &str,
    value: Value<'a>,
    out: &mut Vec<[u8; N]>,
) -> Result<(), OnnxError> {
    match value {
        Value::Fixed32(b) if N == 4 => out.push(copy_array(&b)),
        Value::Fixed64(b) if N == 8 => out.push(copy_array(&b)),
        Value::Len(packed) => {
            let bytes = packed.rest();
            if bytes.len() % N != 0 {
                return Err(packed.error(format!("packed {what} is not a multiple of {N} bytes")));
            }
            out.extend(bytes.chunks_exact(N).map(copy_array));
        }
        other => return Err(wrong_wire(reader, what, &other)),
    }
    Ok(())
}

fn copy_array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

// ---------------------------------------------------------------------------------------------
// ONNX messages (only the fields we need, borrowing from the file's bytes)
// ---------------------------------------------------------------------------------------------

/// ONNX `TensorProto.DataType` values we can turn into f32.
const DT_FLOAT: i64 = 1;
const DT_FLOAT16: i64 = 10;
const DT_DOUBLE: i64 = 11;
const DT_BFLOAT16: i64 = 16;

/// `AttributeProto.AttributeType.TENSOR`.
const ATTR_TENSOR: i64 = 4;

#[derive(Default)]
struct RawTensor<'a> {
    name: &'a str,
    dims: Vec<i64>,
    data_type: i64,
    raw_data: Option<&'a [u8]>,
    float_data: Vec<[u8; 4]>,
    double_data: Vec<[u8; 8]>,
    /// `int32_data` also carries float16/bfloat16 bit patterns, one per element.
    int32_data: Vec<i64>,
    external: bool,
    /// File offset of the message, for error messages.
    offset: usize,
}

#[derive(Default)]
struct RawAttr<'a> {
    name: &'a str,
    attr_type: i64,
    i: Option<i64>,
    ints: Vec<i64>,
    t: Option<RawTensor<'a>>,
}

#[derive(Default)]
struct RawNode<'a> {
    name: &'a str,
    op_type: &'a str,
    inputs: Vec<&'a str>,
    outputs: Vec<&'a str>,
    attrs: Vec<RawAttr<'a>>,
}

#[derive(Default)]
struct RawGraph<'a> {
    nodes: Vec<RawNode<'a>>,
    initializers: Vec<RawTensor<'a>>,
}

fn parse_model(bytes: &[u8]) -> Result<RawGraph<'_>, OnnxError> {
    let mut reader = Reader::new(bytes, 0);
    let mut graph: Option<RawGraph<'_>> = None;
    while !reader.at_end() {
        let (field, value) = reader.next_field()?;
        if field == 7 {
            // A message field seen twice is merged; for a graph that means appending its lists.
            let inner = expect_len(&reader, "ModelProto.graph", value)?;
            parse_graph(inner, graph.get_or_insert_with(RawGraph::default))?;
        }
    }
    graph.ok_or(OnnxError::NoGraph)
}

fn parse_graph<'a>(mut reader: Reader<'a>, graph: &mut RawGraph<'a>) -> Result<(), OnnxError> {
    while !reader.at_end() {
        let (field, value) = reader.next_field()?;
        match field {
            1 => graph
                .nodes
                .push(parse_node(expect_len(&reader, "GraphProto.node", value)?)?),
            5 => graph.initializers.push(parse_tensor(expect_len(
                &reader,
                "GraphProto.initializer",
                value,
            )?)?),
            _ => {}
        }
    }
    Ok(())
}

fn parse_node(mut reader: Reader<'_>) -> Result<RawNode<'_>, OnnxError> {
    let mut node = RawNode::default();
    while !reader.at_end() {
        let (field, value) = reader.next_field()?;
        match field {
            1 => node
                .inputs
                .push(expect_str(&reader, "NodeProto.input", value)?),
            2 => node
                .outputs
                .push(expect_str(&reader, "NodeProto.output", value)?),
            3 => node.name = expect_str(&reader, "NodeProto.name", value)?,
            4 => node.op_type = expect_str(&reader, "NodeProto.op_type", value)?,
            5 => node.attrs.push(parse_attr(expect_len(
                &reader,
                "NodeProto.attribute",
                value,
            )?)?),
            _ => {}
        }
    }
    Ok(node)
}

fn parse_attr(mut reader: Reader<'_>) -> Result<RawAttr<'_>, OnnxError> {
    let mut attr = RawAttr::default();
    while !reader.at_end() {
        let (field, value) = reader.next_field()?;
        match field {
            1 => attr.name = expect_str(&reader, "AttributeProto.name", value)?,
            3 => attr.i = Some(expect_varint(&reader, "AttributeProto.i", value)? as i64),
            5 => {
                attr.t = Some(parse_tensor(expect_len(
                    &reader,
                    "AttributeProto.t",
                    value,
                )?)?)
            }
            8 => push_int64s(&reader, "AttributeProto.ints", value, &mut attr.ints)?,
            20 => attr.attr_type = expect_varint(&reader, "AttributeProto.type", value)? as i64,
            _ => {}
        }
    }
    Ok(attr)
}

fn parse_tensor(mut reader: Reader<'_>) -> Result<RawTensor<'_>, OnnxError> {
    let mut t = RawTensor {
        offset: reader.offset(),
        ..RawTensor::default()
    };
    while !reader.at_end() {
        let (field, value) = reader.next_field()?;
        match field {
            1 => push_int64s(&reader, "TensorProto.dims", value, &mut t.dims)?,
            2 => t.data_type = expect_varint(&reader, "TensorProto.data_type", value)? as i64,
            4 => push_fixed(&reader, "TensorProto.float_data", value, &mut t.float_data)?,
            5 => push_int64s(&reader, "TensorProto.int32_data", value, &mut t.int32_data)?,
            8 => t.name = expect_str(&reader, "TensorProto.name", value)?,
            9 => t.raw_data = Some(expect_len(&reader, "TensorProto.raw_data", value)?.rest()),
            10 => push_fixed(
                &reader,
                "TensorProto.double_data",
                value,
                &mut t.double_data,
            )?,
            13 => t.external = true,
            // DataLocation.EXTERNAL = 1.
            14 => t.external |= expect_varint(&reader, "TensorProto.data_location", value)? == 1,
            _ => {}
        }
    }
    Ok(t)
}

// ---------------------------------------------------------------------------------------------
// Tensor decoding
// ---------------------------------------------------------------------------------------------

fn is_float_type(data_type: i64) -> bool {
    matches!(data_type, DT_FLOAT | DT_FLOAT16 | DT_DOUBLE | DT_BFLOAT16)
}

/// Decodes a float tensor (float32, float16, bfloat16 or double) into f32 values.
fn decode_tensor(raw: &RawTensor<'_>, name: &str) -> Result<Tensor, OnnxError> {
    let bad = |reason: String| OnnxError::BadTensor {
        name: name.to_string(),
        reason: format!("{reason} (tensor at byte {})", raw.offset),
    };
    if raw.external {
        return Err(OnnxError::ExternalData(name.to_string()));
    }
    let dims = raw
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(format!("negative dimension {d}"))))
        .collect::<Result<Vec<usize>, _>>()?;
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("shape {dims:?} overflows")))?;
    let data = decode_values(raw, count).map_err(bad)?;
    if data.len() != count {
        return Err(bad(format!(
            "shape {dims:?} needs {count} values but the data holds {}",
            data.len()
        )));
    }
    Ok(Tensor { dims, data })
}

fn decode_values(raw: &RawTensor<'_>, count: usize) -> Result<Vec<f32>, String> {
    let width = match raw.data_type {
        DT_FLOAT => 4,
        DT_DOUBLE => 8,
        DT_FLOAT16 | DT_BFLOAT16 => 2,
        other => return Err(format!("data type {other} is not a float type")),
    };
    if let Some(bytes) = raw.raw_data {
        if bytes.len() != count * width {
            return Err(format!(
                "raw_data holds {} bytes, shape needs {count} × {width}",
                bytes.len()
            ));
        }
        // ONNX raw_data is always little-endian.
        return Ok(match raw.data_type {
            DT_FLOAT => f32s_from_le_bytes(bytes),
            DT_DOUBLE => bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(copy_array(c)) as f32)
                .collect(),
            DT_FLOAT16 => bytes
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes(copy_array(c))))
                .collect(),
            _ => bytes
                .chunks_exact(2)
                .map(|c| bf16_to_f32(u16::from_le_bytes(copy_array(c))))
                .collect(),
        });
    }
    Ok(match raw.data_type {
        DT_FLOAT => raw
            .float_data
            .iter()
            .map(|b| f32::from_le_bytes(*b))
            .collect(),
        DT_DOUBLE => raw
            .double_data
            .iter()
            .map(|b| f64::from_le_bytes(*b) as f32)
            .collect(),
        DT_FLOAT16 => raw
            .int32_data
            .iter()
            .map(|&v| f16_to_f32(v as u16))
            .collect(),
        _ => raw
            .int32_data
            .iter()
            .map(|&v| bf16_to_f32(v as u16))
            .collect(),
    })
}

/// Little-endian f32 bytes to values. On little-endian targets this is one memcpy, which keeps
/// a 63 MB voice fast to load even in unoptimized builds (the per-value loop takes ~1 s there).
fn f32s_from_le_bytes(bytes: &[u8]) -> Vec<f32> {
    let count = bytes.len() / 4;
    if cfg!(target_endian = "little") {
        let mut out = vec![0f32; count];
        // SAFETY: `out` owns `count * 4` writable bytes, `bytes` has at least as many, the two
        // allocations cannot overlap, u8 has no alignment requirement, and every bit pattern is
        // a valid f32. The byte order of the file and of the target agree (little-endian).
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr().cast::<u8>(), count * 4);
        }
        out
    } else {
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(copy_array(c)))
            .collect()
    }
}

/// IEEE 754 half precision to single precision, exact (subnormals, infinities and NaN included).
fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x3ff);
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal half: value = m × 2^-24, exactly representable in f32.
            let v = m as f32 * f32::from_bits(0x3380_0000);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// bfloat16 is the top half of an f32.
fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

// ---------------------------------------------------------------------------------------------
// Naming
// ---------------------------------------------------------------------------------------------

/// Whether `name` already is a PyTorch parameter path such as `dec.ups.0.weight`.
fn is_canonical(name: &str) -> bool {
    name.contains('.')
        && name.split('.').all(|seg| {
            !seg.is_empty() && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// Module path of a node from its exporter name: `/flow/flows.6/enc/in_layers.0/Conv` →
/// `flow.flows.6.enc.in_layers.0` (the last segment names the operator instance).
fn module_of_node(node_name: &str) -> Option<String> {
    let trimmed = node_name.strip_prefix('/')?;
    let (module, _op) = trimmed.rsplit_once('/')?;
    let dotted = module.replace('/', ".");
    is_canonical(&format!("{dotted}.x")).then_some(dotted)
}

/// The parameter role of the input `slot` of an operator, for rule 2 of the module docs.
fn role_of_input(op_type: &str, slot: usize) -> Option<&'static str> {
    match (op_type, slot) {
        ("Conv" | "ConvTranspose" | "MatMul" | "Gemm", 1) => Some("weight"),
        ("Conv" | "ConvTranspose" | "Gemm", 2) => Some("bias"),
        ("Gather", 0) => Some("weight"),
        _ => None,
    }
}

/// Where each value name is consumed: (node index, input slot).
fn consumers_of<'a>(graph: &RawGraph<'a>) -> HashMap<&'a str, Vec<(usize, usize)>> {
    let mut map: HashMap<&'a str, Vec<(usize, usize)>> = HashMap::new();
    for (node_index, node) in graph.nodes.iter().enumerate() {
        for (slot, input) in node.inputs.iter().enumerate() {
            if !input.is_empty() {
                map.entry(input).or_default().push((node_index, slot));
            }
        }
    }
    map
}

/// Canonical name of an anonymous tensor from the nodes consuming it; `None` when they
/// disagree or none of them is a parametrized operator.
fn name_from_consumers(
    graph: &RawGraph<'_>,
    consumers: &HashMap<&str, Vec<(usize, usize)>>,
    value_name: &str,
) -> Option<String> {
    let uses = consumers.get(value_name)?;
    let mut derived: Option<String> = None;
    for &(node_index, slot) in uses {
        let node = graph.nodes.get(node_index)?;
        let role = role_of_input(node.op_type, slot)?;
        let name = format!("{}.{role}", module_of_node(node.name)?);
        match &derived {
            Some(previous) if *previous != name => return None,
            _ => derived = Some(name),
        }
    }
    derived
}

/// All float tensors of the graph: initializers, then `Constant` node `value` attributes (named
/// by the node's first output), then the outputs of `Identity` nodes reading one of those
/// (rule 5: the export's deduplication of identical parameters), each under its own name.
fn float_tensors<'g, 'a>(graph: &'g RawGraph<'a>) -> Vec<(&'a str, &'g RawTensor<'a>)> {
    let initializers = graph
        .initializers
        .iter()
        .filter(|t| is_float_type(t.data_type))
        .map(|t| (t.name, t));
    let constants = graph
        .nodes
        .iter()
        .filter(|n| n.op_type == "Constant")
        .filter_map(|n| {
            let attr = n
                .attrs
                .iter()
                .find(|a| a.name == "value" && (a.attr_type == ATTR_TENSOR || a.t.is_some()))?;
            let tensor = attr.t.as_ref()?;
            let output = n.outputs.first()?;
            is_float_type(tensor.data_type).then_some((*output, tensor))
        });
    let mut tensors: Vec<_> = initializers.chain(constants).collect();
    let by_name: HashMap<&str, &RawTensor<'a>> = tensors.iter().copied().collect();
    let identities = graph
        .nodes
        .iter()
        .filter(|n| n.op_type == "Identity")
        .filter_map(|n| {
            let tensor = by_name.get(n.inputs.first()?)?;
            Some((*n.outputs.first()?, *tensor))
        })
        .collect::<Vec<_>>();
    tensors.extend(identities);
    tensors
}

fn insert_unique(
    tensors: &mut BTreeMap<String, Tensor>,
    name: String,
    tensor: Tensor,
) -> Result<(), OnnxError> {
    if tensors.contains_key(&name) {
        return Err(OnnxError::DuplicateName(name));
    }
    tensors.insert(name, tensor);
    Ok(())
}

/// Applies the naming rules of the module docs and decodes the kept tensors.
fn build_weights(graph: &RawGraph<'_>) -> Result<Weights, OnnxError> {
    let consumers = consumers_of(graph);
    let mut tensors = BTreeMap::new();
    let mut onnx_to_canonical: HashMap<&str, String> = HashMap::new();
    let mut folded_exp = Vec::new();
    let mut skipped = Vec::new();

    for (onnx_name, raw) in float_tensors(graph) {
        let canonical = if is_canonical(onnx_name) {
            Some(onnx_name.to_string())
        } else if onnx_name.starts_with('/') {
            // Rule 3 needs every named weight first: handle the folded exps afterwards.
            if let Some(module) = folded_exp_module(onnx_name) {
                folded_exp.push((onnx_name, module, raw, Folded::ExpNegLogs));
            } else {
                skipped.push(onnx_name.to_string());
            }
            None
        } else if let Some(module) = exp_input_module(graph, &consumers, onnx_name) {
            folded_exp.push((onnx_name, module, raw, Folded::NegLogs));
            None
        } else {
            let derived = name_from_consumers(graph, &consumers, onnx_name);
            if derived.is_none() {
                skipped.push(onnx_name.to_string());
            }
            derived
        };
        if let Some(name) = canonical {
            let tensor = decode_tensor(raw, onnx_name)?;
            onnx_to_canonical.insert(onnx_name, name.clone());
            insert_unique(&mut tensors, name, tensor)?;
        }
    }

    for (onnx_name, module, raw, folded) in folded_exp {
        let tensor = decode_tensor(raw, onnx_name)?;
        let partner = tensors.get(&format!("{module}.m")).map(|m| m.dims.clone());
        if partner.as_ref() != Some(&tensor.dims) {
            skipped.push(onnx_name.to_string());
            continue;
        }
        let logs = match folded {
            Folded::ExpNegLogs => logs_from_exp_neg(tensor, onnx_name)?,
            Folded::NegLogs => Tensor {
                data: tensor.data.iter().map(|v| -v).collect(),
                dims: tensor.dims,
            },
        };
        let name = format!("{module}.logs");
        onnx_to_canonical.insert(onnx_name, name.clone());
        insert_unique(&mut tensors, name, logs)?;
    }

    let conv_attrs = collect_conv_attrs(graph, &onnx_to_canonical);
    Ok(Weights {
        tensors,
        conv_attrs,
        skipped,
        initializer_count: graph.initializers.len(),
        node_count: graph.nodes.len(),
    })
}

/// How the export folded `exp(-logs)` of an `ElementwiseAffine` (rule 3).
#[derive(Debug, Clone, Copy)]
enum Folded {
    /// The whole expression: a constant `/P/Exp_output_0` holding `exp(-logs)`.
    ExpNegLogs,
    /// Only the negation (newer torch): an anonymous `onnx::Exp_N` holding `-logs`,
    /// read by the node `/P/Exp`.
    NegLogs,
}

/// Rule 3's `P` for an anonymous tensor whose only consumer is the `Exp` node `/P/Exp`.
fn exp_input_module(
    graph: &RawGraph<'_>,
    consumers: &HashMap<&str, Vec<(usize, usize)>>,
    value_name: &str,
) -> Option<String> {
    let [(node_index, 0)] = consumers.get(value_name)?.as_slice() else {
        return None;
    };
    let node = graph.nodes.get(*node_index)?;
    if node.op_type != "Exp" {
        return None;
    }
    module_of_node(node.name)
}

/// `/dp/flows.0/Exp_output_0` → `dp.flows.0`.
fn folded_exp_module(onnx_name: &str) -> Option<String> {
    let module = onnx_name.strip_prefix('/')?.strip_suffix("/Exp_output_0")?;
    let dotted = module.replace('/', ".");
    is_canonical(&format!("{dotted}.x")).then_some(dotted)
}

/// Inverts the export's folding of `exp(-logs)`: logs = -ln(value), computed in f64.
fn logs_from_exp_neg(exp_neg: Tensor, onnx_name: &str) -> Result<Tensor, OnnxError> {
    if let Some(bad) = exp_neg.data.iter().find(|v| !(**v > 0.0 && v.is_finite())) {
        return Err(OnnxError::BadTensor {
            name: onnx_name.to_string(),
            reason: format!("folded exp(-logs) holds {bad}, which has no logarithm"),
        });
    }
    let data = exp_neg
        .data
        .iter()
        .map(|&v| (-f64::from(v).ln()) as f32)
        .collect();
    Ok(Tensor {
        dims: exp_neg.dims,
        data,
    })
}

/// Conv/ConvTranspose attributes keyed by the canonical name of the node's weight input.
fn collect_conv_attrs(
    graph: &RawGraph<'_>,
    onnx_to_canonical: &HashMap<&str, String>,
) -> BTreeMap<String, ConvAttrs> {
    let mut out = BTreeMap::new();
    for node in &graph.nodes {
        if node.op_type != "Conv" && node.op_type != "ConvTranspose" {
            continue;
        }
        let Some(weight) = node.inputs.get(1).and_then(|w| onnx_to_canonical.get(w)) else {
            continue;
        };
        out.insert(weight.clone(), conv_attrs_of(node));
    }
    out
}

fn conv_attrs_of(node: &RawNode<'_>) -> ConvAttrs {
    let ints = |name: &str| -> Option<Vec<usize>> {
        let attr = node.attrs.iter().find(|a| a.name == name)?;
        Some(
            attr.ints
                .iter()
                .map(|&v| usize::try_from(v).unwrap_or(0))
                .collect(),
        )
    };
    let spatial = ints("kernel_shape").map_or(1, |k| k.len().max(1));
    ConvAttrs {
        op_type: node.op_type.to_string(),
        strides: ints("strides").unwrap_or_else(|| vec![1; spatial]),
        dilations: ints("dilations").unwrap_or_else(|| vec![1; spatial]),
        pads: ints("pads").unwrap_or_else(|| vec![0; 2 * spatial]),
        group: node
            .attrs
            .iter()
            .find(|a| a.name == "group")
            .and_then(|a| a.i)
            .and_then(|g| usize::try_from(g).ok())
            .unwrap_or(1),
    }
}

// ---------------------------------------------------------------------------------------------
// Hyperparameters
// ---------------------------------------------------------------------------------------------

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

#[cfg(test)]
mod tests {
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

    #[test]
    fn half_precision_decodes_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert!(f16_to_f32(0x7c00).is_infinite());
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
    }

    #[test]
    fn canonical_names() {
        assert!(is_canonical("dec.ups.0.weight"));
        assert!(!is_canonical("sid"));
        assert!(!is_canonical("onnx::Conv_8168"));
        assert!(!is_canonical("/dp/flows.0/Exp_output_0"));
        assert_eq!(
            module_of_node("/flow/flows.6/enc/in_layers.0/Conv").as_deref(),
            Some("flow.flows.6.enc.in_layers.0")
        );
        assert_eq!(
            folded_exp_module("/dp/flows.0/Exp_output_0").as_deref(),
            Some("dp.flows.0")
        );
    }
}
