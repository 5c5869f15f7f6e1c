//! Piper's naming quirks: which float tensors of the graph are weights, and under which
//! canonical PyTorch state-dict name (`flow.flows.0.enc.in_layers.0.weight`) each is exposed.
//! The rules, applied by [`build_weights`]:
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

use std::collections::{BTreeMap, HashMap};

use super::graph::{RawGraph, RawNode, RawTensor, ATTR_TENSOR};
use super::tensor::{decode_tensor, is_float_type};
use super::{ConvAttrs, OnnxError, Tensor, Weights};

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
pub(super) fn build_weights(graph: &RawGraph<'_>) -> Result<Weights, OnnxError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
