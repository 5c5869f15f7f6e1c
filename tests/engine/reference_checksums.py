"""Checksums of ~20 weights of a Piper voice, read with the official `onnx` Python package.

Names are resolved independently of the Rust reader: anonymous tensors are looked up through the
node that consumes them. Output: one line per weight,
`name dims sum sumsq v0 v1 v2` (dims comma-separated; sums in float64 over the float32 values;
v0..v2 as float32 bit patterns in hex), for tests/onnx_reference.rs.
Usage: python3 reference_checksums.py VOICE.onnx > tests/fixtures/joe_checksums.txt
"""
import sys
import numpy as np
import onnx
from onnx import numpy_helper

model = onnx.load(sys.argv[1])
g = model.graph
inits = {t.name: t for t in g.initializer}
nodes = {n.name: n for n in g.node}

def by_consumer(node_name, slot):
    return numpy_helper.to_array(inits[nodes[node_name].input[slot]])

def plain(name):
    return numpy_helper.to_array(inits[name])

tensors = {
    "enc_p.emb.weight": by_consumer("/enc_p/emb/Gather", 0),
    "dp.flows.0.logs": (-np.log(plain("/dp/flows.0/Exp_output_0").astype(np.float64))).astype(np.float32),
    "dp.flows.0.m": plain("dp.flows.0.m"),
}
for f in (0, 6):
    for l in (0, 3):
        tensors[f"flow.flows.{f}.enc.in_layers.{l}.weight"] = by_consumer(f"/flow/flows.{f}/enc/in_layers.{l}/Conv", 1)
        tensors[f"flow.flows.{f}.enc.res_skip_layers.{l}.weight"] = by_consumer(f"/flow/flows.{f}/enc/res_skip_layers.{l}/Conv", 1)
for name in [
    "enc_p.encoder.attn_layers.0.emb_rel_k", "enc_p.encoder.attn_layers.5.conv_o.weight",
    "enc_p.encoder.ffn_layers.2.conv_1.weight", "enc_p.proj.bias", "dec.conv_pre.weight",
    "dec.ups.0.weight", "dec.ups.2.bias", "dec.resblocks.8.convs.1.weight", "dec.conv_post.weight",
    "flow.flows.6.enc.in_layers.0.bias", "dp.flows.7.proj.weight", "dp.convs.norms_2.2.gamma",
]:
    tensors[name] = plain(name)

for name, a in tensors.items():
    assert a.dtype == np.float32, name
    flat = a.ravel()
    d = a.astype(np.float64)
    heads = " ".join(f"{v.view(np.uint32):08x}" for v in flat[:3])
    print(name, ",".join(str(x) for x in a.shape), repr(float(d.sum())), repr(float((d * d).sum())), heads)
