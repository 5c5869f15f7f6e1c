#!/usr/bin/env python3
"""Integrated loudness (LUFS) and sample peak of WAV files, measured with
pyloudnorm: the independent reference for voxpipe's loudness plugin.

Usage: measure.py FILE.wav...   → one JSON object per line:
    {"file": ..., "lufs": ..., "rate": ..., "channels": ...}
Reads 16-bit PCM WAV with the standard library (no libsndfile needed).
"""
import json
import sys
import wave

import numpy as np
import pyloudnorm as pyln


def read(path):
    with wave.open(path, "rb") as w:
        assert w.getsampwidth() == 2, "16-bit PCM expected"
        channels, rate = w.getnchannels(), w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    data = data / 32768.0
    return data.reshape(-1, channels), rate, channels


for path in sys.argv[1:]:
    data, rate, channels = read(path)
    # DeMan: the exact BS.1770 filters; pyloudnorm's default class approximates
    # them and reads up to 0.1 LU high at 22.05 kHz.
    lufs = pyln.Meter(rate, filter_class="DeMan").integrated_loudness(data)
    print(json.dumps({"file": path, "lufs": lufs, "rate": rate, "channels": channels}))
