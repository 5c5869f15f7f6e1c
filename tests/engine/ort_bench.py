#!/usr/bin/env python3
"""ONNX Runtime timing of a Piper voice, for voxpipe-bench's side-by-side table.

Usage: ort_bench.py VOICE.onnx SENTENCES.json REPS THREADS
SENTENCES.json: {"sentences": [{"ids": [...]}, ...]}. Uses the voice's default
scales (noise 0.667, length 1, noise_w 0.8). Prints one JSON object:
{"sentences": [{"median_s": ..., "samples": ...}, ...]}.
"""
import json
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort

voice, sentences, reps, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
opts = ort.SessionOptions()
opts.intra_op_num_threads = threads
sess = ort.InferenceSession(voice, opts, providers=["CPUExecutionProvider"])
out = []
for s in json.load(open(sentences))["sentences"]:
    ids = np.array([s["ids"]], dtype=np.int64)
    feeds = {"input": ids, "input_lengths": np.array([ids.shape[1]], dtype=np.int64),
             "scales": np.array([0.667, 1.0, 0.8], dtype=np.float32)}
    sess.run(None, feeds)  # warm-up
    times, samples = [], 0
    for _ in range(reps):
        t0 = time.perf_counter()
        audio = sess.run(None, feeds)[0]
        times.append(time.perf_counter() - t0)
        samples = int(audio.size)
    out.append({"median_s": statistics.median(times), "samples": samples})
print(json.dumps({"sentences": out}))
