#!/usr/bin/env python3
"""ONNX Runtime and Piper timing of a Piper voice, for voxpipe-bench's side-by-side table.

Usage: ort_bench.py VOICE.onnx SENTENCES.json REPS THREADS
SENTENCES.json: {"sentences": [{"ids": [...]}, ...]}. Uses the voice's default
scales (noise 0.667, length 1, noise_w 0.8) and speaker 0 of a multi-speaker
voice. Prints one JSON object:
{"sentences": [{"median_s": ..., "samples": ..., "piper_median_s": ...}, ...],
 "piper": "1.8.0" or null}.

ONNX Runtime runs with THREADS intra-op threads. Piper (the `piper-tts`
package, when installed) is timed through its own API on the same phoneme ids:
`PiperVoice.load` + `phoneme_ids_to_audio` (its session uses ONNX Runtime's
default threads, i.e. every core), without its audio normalization.
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
try:
    from importlib.metadata import version

    from piper import PiperVoice, SynthesisConfig

    piper_voice = PiperVoice.load(voice)
    piper_config = SynthesisConfig(speaker_id=0, noise_scale=0.667, length_scale=1.0,
                                   noise_w_scale=0.8, normalize_audio=False)
    piper_version = version("piper-tts")
except ImportError:
    piper_voice, piper_version = None, None

out = []
for s in json.load(open(sentences))["sentences"]:
    ids = np.array([s["ids"]], dtype=np.int64)
    feeds = {"input": ids, "input_lengths": np.array([ids.shape[1]], dtype=np.int64),
             "scales": np.array([0.667, 1.0, 0.8], dtype=np.float32)}
    if any(i.name == "sid" for i in sess.get_inputs()):
        feeds["sid"] = np.array([0], dtype=np.int64)
    sess.run(None, feeds)  # warm-up
    times, samples = [], 0
    for _ in range(reps):
        t0 = time.perf_counter()
        audio = sess.run(None, feeds)[0]
        times.append(time.perf_counter() - t0)
        samples = int(audio.size)
    row = {"median_s": statistics.median(times), "samples": samples}
    if piper_voice is not None:
        piper_voice.phoneme_ids_to_audio(s["ids"], piper_config)  # warm-up
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            piper_voice.phoneme_ids_to_audio(s["ids"], piper_config)
            times.append(time.perf_counter() - t0)
        row["piper_median_s"] = statistics.median(times)
    out.append(row)
print(json.dumps({"sentences": out, "piper": piper_version}))
