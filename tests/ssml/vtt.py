"""Reads WebVTT captions from stdin with webvtt-py (a real parser) and prints
each cue as a JSON line {"start", "end", "text"}, times in seconds: what a
player would show (tests/ssml.rs, word timestamps)."""
import io
import json
import sys

import webvtt


def seconds(stamp):
    h, m, s = stamp.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


for cue in webvtt.from_buffer(io.StringIO(sys.stdin.read())):
    print(json.dumps({"start": seconds(cue.start), "end": seconds(cue.end), "text": cue.text}))
