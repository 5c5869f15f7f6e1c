#!/usr/bin/env python3
"""The `wyoming` Python package (the client code Home Assistant's integration
uses: AsyncTcpClient / AsyncUnixClient) as a real client of voxpipe's Wyoming
listener. Usage: client.py SCENARIO TCP_PORT [UNIX_SOCKET]. Each scenario
exits non-zero with a message on the first failed check and prints a JSON
summary on stdout for the Rust test to check further."""
import asyncio
import json
import sys
import time

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient, AsyncUnixClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.ping import Ping, Pong
from wyoming.tts import (Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop,
                         SynthesizeStopped, SynthesizeVoice)

TIMEOUT = 60


async def read(client):
    event = await asyncio.wait_for(client.read_event(), TIMEOUT)
    assert event is not None, "the server closed the connection"
    return event


def cycle(start_event):
    start = AudioStart.from_event(start_event)
    assert (start.width, start.channels) == (2, 1), start
    return {"rate": start.rate, "bytes": 0, "chunks": 0, "max_chunk": 0}


async def audio(client, until=AudioStop, started=None):
    """Reads one reply up to `until` (from inside the cycle of the
    `audio-start` event `started`, if given); returns its audio cycles and
    the event types."""
    cycles, kinds = [], []
    current = cycle(started) if started is not None else None
    while True:
        event = await read(client)
        kinds.append(event.type)
        if Error.is_type(event.type):
            err = Error.from_event(event)
            raise AssertionError(f"error event: {err.code}: {err.text}")
        if AudioStart.is_type(event.type):
            assert current is None, "audio-start inside an audio cycle"
            current = cycle(event)
        elif AudioChunk.is_type(event.type):
            chunk = AudioChunk.from_event(event)
            assert current is not None, "audio-chunk before audio-start"
            assert chunk.rate == current["rate"] and chunk.width == 2
            current["bytes"] += len(chunk.audio)
            current["chunks"] += 1
            current["max_chunk"] = max(current["max_chunk"], len(chunk.audio))
        elif AudioStop.is_type(event.type):
            cycles.append(current)
            current = None
            if until is AudioStop:
                return cycles, kinds
        elif until.is_type(event.type):
            assert current is None, "the stream ended inside an audio cycle"
            return cycles, kinds


async def expect_error(client, event, code):
    await client.write_event(event)
    reply = await read(client)
    assert Error.is_type(reply.type), f"expected an error ({code}), got {reply}"
    err = Error.from_event(reply)
    assert err.code == code, f"expected {code}, got {err.code}: {err.text}"
    assert err.text, "an error has a message"
    return err.text


async def describe(port, _unix):
    async with AsyncTcpClient("127.0.0.1", port) as c:
        await c.write_event(Ping(text="hi").event())
        pong = await read(c)
        assert Pong.is_type(pong.type) and Pong.from_event(pong).text == "hi", pong
        await c.write_event(Describe().event())
        info = Info.from_event(await read(c))
    assert len(info.tts) == 1, info.tts
    program = info.tts[0]
    assert program.name == "voxpipe" and program.installed and program.version
    assert program.supports_synthesize_streaming
    return {
        "description": program.description,
        "voices": [{"name": v.name, "languages": v.languages, "installed": v.installed,
                    "speakers": [s.name for s in v.speakers] if v.speakers else None}
                   for v in program.voices],
    }


async def synthesize(port, _unix):
    text = "Hello there. This is voxpipe speaking to Home Assistant. Goodbye for now."
    out = {}
    async with AsyncTcpClient("127.0.0.1", port) as c:
        # By name, as Home Assistant sends a voice picked in its UI.
        await c.write_event(Synthesize(text, SynthesizeVoice(name="en_US-joe-medium")).event())
        cycles, kinds = await audio(c)
        out["by_name"] = cycles
        out["by_name_kinds"] = [kinds[0], kinds[-1]]
        # By language, on the same connection.
        await c.write_event(Synthesize("Chosen by language.", SynthesizeVoice(language="en_US")).event())
        out["by_language"], _ = await audio(c)
        # A multi-speaker voice: a speaker by name and by number.
        for speaker in ["bob", "2"]:
            voice = SynthesizeVoice(name="test-multi-high", speaker=speaker)
            await c.write_event(Synthesize("A speaker.", voice).event())
            out[f"speaker_{speaker}"], _ = await audio(c)
    return out


async def streaming(port, _unix):
    """Text in pieces that split words and sentences; the first sentence's
    audio must come before the rest of the text is sent."""
    async with AsyncTcpClient("127.0.0.1", port) as c:
        await c.write_event(SynthesizeStart(SynthesizeVoice(name="en_US-joe-medium")).event())
        for piece in ["Hel", "lo wor", "ld. How a"]:
            await c.write_event(SynthesizeChunk(piece).event())
        first = await read(c)
        assert AudioStart.is_type(first.type), f"no audio for the first sentence yet: {first}"
        for piece in ["re you tod", "ay? I am", " fine, tha", "nks"]:
            await c.write_event(SynthesizeChunk(piece).event())
        # What Home Assistant also sends, for servers that do not stream: ignored.
        await c.write_event(Synthesize("Hello world. How are you today? I am fine, thanks").event())
        await c.write_event(SynthesizeStop().event())
        cycles, kinds = await audio(c, until=SynthesizeStopped, started=first)
        # The connection is still usable for a whole synthesis after a stream.
        await c.write_event(Synthesize("After the stream.").event())
        after, _ = await audio(c)
    return {"cycles": cycles, "kinds_after_first": kinds, "after": after}


async def leave(port, _unix):
    """Reads the first audio of a long text, then leaves."""
    text = " ".join(f"This is sentence number {i} of a long answer." for i in range(1, 21))
    c = AsyncTcpClient("127.0.0.1", port)
    await c.connect()
    await c.write_event(Synthesize(text).event())
    while not AudioChunk.is_type((await read(c)).type):
        pass
    left = time.time()
    await c.disconnect()
    return {"left_at": left}


async def errors(port, unix):
    out = {}
    async with AsyncTcpClient("127.0.0.1", port) as c:
        out["empty"] = await expect_error(c, Synthesize("   ").event(), "invalid_input")
        out["too_long"] = await expect_error(c, Synthesize("x" * 1200).event(), "text_too_long")
        out["unknown_voice"] = await expect_error(
            c, Synthesize("Hi.", SynthesizeVoice(name="nope")).event(), "unknown_voice")
        out["no_language"] = await expect_error(
            c, Synthesize("Hi.", SynthesizeVoice(language="de_DE")).event(), "unknown_voice")
        out["unknown_speaker"] = await expect_error(
            c, Synthesize("Hi.", SynthesizeVoice(name="test-multi-high", speaker="zed")).event(),
            "unknown_speaker")
        out["ssml"] = await expect_error(
            c, Synthesize("<speak>Hi.</speak", text_format="ssml").event(), "invalid_ssml")
        out["ssml_unsupported"] = await expect_error(
            c, Synthesize("<speak><audio src='x'/>Hi.</speak>", text_format="ssml").event(),
            "ssml_unsupported")
        out["no_text"] = await expect_error(c, Event("synthesize", {"voice": {}}), "invalid_input")
        out["chunk_outside"] = await expect_error(c, SynthesizeChunk("Hi.").event(), "invalid_input")
        # A stream whose text grows over the limit fails; its stop ends it quietly.
        await c.write_event(SynthesizeStart().event())
        out["stream_too_long"] = await expect_error(c, SynthesizeChunk("y" * 1200).event(),
                                                    "text_too_long")
        await c.write_event(SynthesizeChunk("More text. ").event())
        await c.write_event(SynthesizeStop().event())
        # Unknown event types are ignored, as the protocol says.
        await c.write_event(Event("transcribe", {"language": "en"}))
        await c.write_event(Event("x-vendor-thing", {"a": 1}, payload=b"\0" * 100))
        # Still usable after every refusal.
        await c.write_event(Synthesize("Still here.").event())
        out["after_errors"], _ = await audio(c)
        # SSML in a whole synthesize: a two-second break makes it longer.
        await c.write_event(Synthesize(
            "<speak>Still here.<break time='2s'/></speak>", text_format="ssml").event())
        out["ssml_audio"], _ = await audio(c)
    # A listener bound to a pipeline the server does not have.
    async with AsyncUnixClient(unix) as c:
        await c.write_event(Describe().event())
        info = Info.from_event(await read(c))
        out["missing_pipeline_description"] = info.tts[0].description
        out["unknown_pipeline"] = await expect_error(c, Synthesize("Hi.").event(),
                                                     "unknown_pipeline")
    # The shared admission queue (the server runs with one slot and no queue):
    # a client that stops reading holds the slot with its synthesis, and the
    # next request is refused at once, as HTTP's 503 is.
    async with AsyncTcpClient("127.0.0.1", port) as holder:
        await holder.write_event(Synthesize("One. Two. Three. Four. Five. Six.").event())
        while not AudioChunk.is_type((await read(holder)).type):
            pass
        async with AsyncTcpClient("127.0.0.1", port) as c:
            out["overloaded"] = await expect_error(c, Synthesize("Hi.").event(), "overloaded")
    return out


async def main():
    scenario, port = sys.argv[1], int(sys.argv[2])
    unix = sys.argv[3] if len(sys.argv) > 3 else None
    result = await globals()[scenario](port, unix)
    print(json.dumps(result))


asyncio.run(main())
