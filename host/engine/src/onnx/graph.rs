//! The ONNX messages the reader needs, parsed from the wire format and borrowing from the
//! file's bytes (no copy of the tensor data until it is decoded).
//!
//! Field numbers come from `onnx/onnx.proto` (checked against onnx 1.23.2):
//!
//! | message          | fields used                                                          |
//! |------------------|----------------------------------------------------------------------|
//! | `ModelProto`     | graph = 7                                                            |
//! | `GraphProto`     | node = 1, initializer = 5                                            |
//! | `NodeProto`      | input = 1, output = 2, name = 3, op_type = 4, attribute = 5          |
//! | `AttributeProto` | name = 1, i = 3, t = 5, ints = 8, type = 20                          |
//! | `TensorProto`    | dims = 1, data_type = 2, int32_data = 5, float_data = 4, name = 8,   |
//! |                  | raw_data = 9, double_data = 10, external_data = 13, data_location = 14 |

use super::wire::{expect_len, expect_str, expect_varint, push_fixed, push_int64s, Reader};
use super::OnnxError;

/// ONNX `TensorProto.DataType` values we can turn into f32.
pub(super) const DT_FLOAT: i64 = 1;
pub(super) const DT_FLOAT16: i64 = 10;
pub(super) const DT_DOUBLE: i64 = 11;
pub(super) const DT_BFLOAT16: i64 = 16;

/// `AttributeProto.AttributeType.TENSOR`.
pub(super) const ATTR_TENSOR: i64 = 4;

#[derive(Default)]
pub(super) struct RawTensor<'a> {
    pub(super) name: &'a str,
    pub(super) dims: Vec<i64>,
    pub(super) data_type: i64,
    pub(super) raw_data: Option<&'a [u8]>,
    pub(super) float_data: Vec<[u8; 4]>,
    pub(super) double_data: Vec<[u8; 8]>,
    /// `int32_data` also carries float16/bfloat16 bit patterns, one per element.
    pub(super) int32_data: Vec<i64>,
    pub(super) external: bool,
    /// File offset of the message, for error messages.
    pub(super) offset: usize,
}

#[derive(Default)]
pub(super) struct RawAttr<'a> {
    pub(super) name: &'a str,
    pub(super) attr_type: i64,
    pub(super) i: Option<i64>,
    pub(super) ints: Vec<i64>,
    pub(super) t: Option<RawTensor<'a>>,
}

#[derive(Default)]
pub(super) struct RawNode<'a> {
    pub(super) name: &'a str,
    pub(super) op_type: &'a str,
    pub(super) inputs: Vec<&'a str>,
    pub(super) outputs: Vec<&'a str>,
    pub(super) attrs: Vec<RawAttr<'a>>,
}

#[derive(Default)]
pub(super) struct RawGraph<'a> {
    pub(super) nodes: Vec<RawNode<'a>>,
    pub(super) initializers: Vec<RawTensor<'a>>,
}

pub(super) fn parse_model(bytes: &[u8]) -> Result<RawGraph<'_>, OnnxError> {
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
