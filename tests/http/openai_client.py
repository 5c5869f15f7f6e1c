#!/usr/bin/env python3
"""The official `openai` Python SDK as a real client of voxpipe's
/v1/audio/speech. Usage: openai_client.py BASE_URL (e.g. http://127.0.0.1:8080/v1).
Exits non-zero with a message on the first failed check; prints a JSON summary."""
import base64
import json
import sys
import time

import openai

base = sys.argv[1]
client = openai.OpenAI(base_url=base, api_key="voxpipe-test", max_retries=0)
summary = {"openai_version": openai.__version__}

# Whole file, as most users call it.
r = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello from the OpenAI SDK.",
                               response_format="wav", instructions="speak slowly")
wav = r.read()
assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE", wav[:16]
assert len(wav) > 22050, len(wav)
summary["wav_bytes"] = len(wav)
summary["trace_id"] = r.response.headers.get("x-trace-id")
assert summary["trace_id"] and len(summary["trace_id"]) == 32

# OpenAI's default format (mp3), written to a file with the SDK's helper.
r = client.audio.speech.create(model="tts-1", voice="nova", input="Default format.")
assert r.response.headers["content-type"] == "audio/mpeg"
summary["mp3_bytes"] = len(r.read())

# Streamed raw audio: chunks arrive as sentences finish.
text = "The first sentence. The second sentence follows. And here is the third."
started = time.perf_counter()
first = None
pcm = b""
with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=text, response_format="pcm", stream_format="audio") as resp:
    for chunk in resp.iter_bytes():
        if first is None and chunk:
            first = time.perf_counter() - started
        pcm += chunk
total = time.perf_counter() - started
assert len(pcm) > 2 * 22050 and len(pcm) % 2 == 0, len(pcm)
summary["stream_first_byte_s"] = round(first, 3)
summary["stream_total_s"] = round(total, 3)

# Server-sent events.
deltas, done = b"", None
with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=text, response_format="pcm", stream_format="sse") as resp:
    for line in resp.iter_lines():
        if not line.startswith("data: "):
            continue
        event = json.loads(line[len("data: "):])
        if event["type"] == "speech.audio.delta":
            deltas += base64.b64decode(event["audio"])
        elif event["type"] == "speech.audio.done":
            done = event
assert done is not None, "no speech.audio.done"
assert deltas == pcm, (len(deltas), len(pcm))

# Errors surface as the SDK's typed exceptions with our message.
try:
    client.audio.speech.create(model="no-such-pipeline", voice="alloy", input="x")
    raise AssertionError("unknown model accepted")
except openai.NotFoundError as e:
    assert "unknown_pipeline" in str(e) or "no-such-pipeline" in str(e), str(e)
try:
    client.audio.speech.create(model="tts-1", voice="alloy", input="x", speed=9.0)
    raise AssertionError("speed 9 accepted")
except openai.UnprocessableEntityError as e:
    assert "speed" in str(e), str(e)
try:
    client.audio.speech.create(model="tts-1", voice="alloy", input="x", response_format="aac")
    raise AssertionError("aac accepted")
except openai.BadRequestError as e:
    assert "aac" in str(e), str(e)

print(json.dumps(summary))
