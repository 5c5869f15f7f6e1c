"""Build the small random-weight test voice in tests/fixtures/voices/.

No multi-speaker or high-quality (ResBlock1) Piper voice is published on PyPI, so the
engine's speaker conditioning (emb_g → duration predictor, flow, decoder) and its
ResBlock1 decoder are checked against ONNX Runtime on a voice made here: Piper's own
VITS code (piper-tts 1.8 training modules) with seeded random weights, channels shrunk
so the file is small, exported exactly as piper/train/export_onnx.py does (opset 15,
the same input names, `sid` input, decoder weight norm removed).

Not run in CI: it needs torch (a multi-GB install). The generated files are committed;
tests/engine_model.rs only needs onnxruntime to make its references.

Usage (one-time, in a venv with `piper-tts[train]==1.8.0`, i.e. torch + lightning):
    python tests/engine/make_test_voice.py voices/en_US-joe-medium.onnx.json \
        tests/fixtures/voices/test-multi-high.onnx
"""
import copy
import json
import sys

import torch
from piper.train.vits.models import SynthesizerTrn

base_json, out = sys.argv[1], sys.argv[2]
N_SPEAKERS = 3
torch.manual_seed(20261122)
cfg = json.load(open(base_json))
model = SynthesizerTrn(
    n_vocab=cfg["num_symbols"], spec_channels=513, segment_size=32,
    # inter ≠ hidden and odd widths, so that nothing in the loader can assume Piper's 192.
    inter_channels=8, hidden_channels=16, filter_channels=48,
    n_heads=2, n_layers=3, kernel_size=3, p_dropout=0.1,
    # Piper's "high" decoder (HiFi-GAN V1: ResBlock1, four upsampling stages), 1/32 the width.
    resblock="1", resblock_kernel_sizes=(3, 7, 11),
    resblock_dilation_sizes=((1, 3, 5), (1, 3, 5), (1, 3, 5)),
    upsample_rates=(8, 8, 2, 2), upsample_initial_channel=16,
    upsample_kernel_sizes=(16, 16, 4, 4),
    n_speakers=N_SPEAKERS, gin_channels=8, use_sdp=True)
model.eval()
with torch.no_grad():
    # VITS zero-initializes some layers (the spline projections, the affine flow, the
    # flow's `post`), which would make every duration 1 frame and hide bugs there:
    # give them small random values. Speaker embeddings and the conditioning layers get a
    # larger scale so that the three speakers really differ (in durations too).
    for name, p in model.named_parameters():
        if not p.abs().sum():
            p.normal_(0.0, 0.3)
    model.emb_g.weight.normal_(0.0, 2.0)
    for name, p in model.named_parameters():
        if ".cond" in name and name.endswith("weight") or name.endswith("cond_layer.weight_g"):
            p.mul_(4.0)
    # Mean log-duration of about 1 (2–3 frames per id), so that the speakers' spread
    # shows in the rounded durations.
    model.dp.flows[0].m[0] -= 1.0  # reverse pass: logw = (z − m)·exp(−logs)
    model.dec.remove_weight_norm()


def infer_forward(text, text_lengths, scales, sid=None):
    return model.infer(text, text_lengths, noise_scale=scales[0], length_scale=scales[1],
                       noise_scale_w=scales[2], sid=sid)[0].unsqueeze(1)


model.forward = infer_forward
seq = torch.randint(0, cfg["num_symbols"], (1, 50), dtype=torch.long)
torch.onnx.export(
    model, (seq, torch.LongTensor([50]), torch.FloatTensor([0.667, 1.0, 0.8]), torch.LongTensor([0])),
    out, opset_version=15, input_names=["input", "input_lengths", "scales", "sid"],
    output_names=["output"],
    dynamic_axes={"input": {0: "batch_size", 1: "phonemes"}, "input_lengths": {0: "batch_size"},
                  "output": {0: "batch_size", 2: "time"}},
    dynamo=False)
cfg = copy.deepcopy(cfg)
cfg["audio"] = {"sample_rate": 22050, "quality": "high"}
cfg["num_speakers"] = N_SPEAKERS
cfg["speaker_id_map"] = {"alice": 0, "bob": 1, "carol": 2}
cfg["dataset"] = "test-multi-high"
json.dump(cfg, open(out + ".json", "w"), ensure_ascii=False, indent=2)
print("wrote", out)
