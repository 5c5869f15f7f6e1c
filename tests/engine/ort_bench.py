#!/usr/bin/env python3
"""ONNX Runtime and Piper on call, for voxpipe-bench's interleaved side-by-side table.

Usage: ort_bench.py VOICE.onnx SENTENCES.json THREADS
SENTENCES.json: {"sentences": [{"ids": [...]}, ...]}.

Loads the voice into an ONNX Runtime session (THREADS intra-op threads) and, when the
`piper-tts` package is installed, into Piper's own API (`PiperVoice.load`; its session
uses ONNX Runtime's default threads, i.e. every core). Prints one JSON line
{"piper": "1.8.0" or null}, then answers each request line on stdin:
  `ort I` or `piper I`  → synthesize sentence I once; print {"s": seconds, "samples": n}
Both use the voice's default scales (noise 0.667, length 1, noise_w 0.8) and speaker 0 of
a multi-speaker voice; Piper runs `phoneme_ids_to_audio` on the same ids, without its
audio normalization. voxpipe-bench alternates these calls with its own runs, so that
both sides see the same machine (shared machines drift by tens of percent in minutes).
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort

voice, sentences, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
opts = ort.SessionOptions()
opts.intra_op_num_threads = threads
sess = ort.InferenceSession(voice, opts, providers=["CPUExecutionProvider"])
multi = any(i.name == "sid" for i in sess.get_inputs())
try:
    from importlib.metadata import version

    from piper import PiperVoice, SynthesisConfig

    piper_voice = PiperVoice.load(voice)
    piper_config = SynthesisConfig(speaker_id=0, noise_scale=0.667, length_scale=1.0,
                                   noise_w_scale=0.8, normalize_audio=False)
    piper_version = version("piper-tts")
except ImportError:
    piper_voice, piper_version = None, None

ids = [s["ids"] for s in json.load(open(sentences))["sentences"]]


def run_ort(i):
    x = np.array([ids[i]], dtype=np.int64)
    feeds = {"input": x, "input_lengths": np.array([x.shape[1]], dtype=np.int64),
             "scales": np.array([0.667, 1.0, 0.8], dtype=np.float32)}
    if multi:
        feeds["sid"] = np.array([0], dtype=np.int64)
    return sess.run(None, feeds)[0].size


def run_piper(i):
    return np.size(piper_voice.phoneme_ids_to_audio(ids[i], piper_config))


print(json.dumps({"piper": piper_version}), flush=True)
for line in sys.stdin:
    what, i = line.split()
    run = run_piper if what == "piper" else run_ort
    t0 = time.perf_counter()
    n = run(int(i))
    print(json.dumps({"s": time.perf_counter() - t0, "samples": int(n)}), flush=True)
