"""Schemathesis hooks of tests/openapi.rs (SCHEMATHESIS_HOOKS=hooks).

The fuzz run bounds the text it generates (`text`, `input`, and the other free
text fields) so that a run stays short on a 2-core machine: a long text at
speed 0.25 is minutes of audio. Only the copy schemathesis loads is changed;
the served document keeps the server's real limits (`max_text_chars`).
"""

import os

import schemathesis

MAX_TEXT = int(os.environ.get("VOXPIPE_FUZZ_MAX_TEXT", "32"))

# (schema, field) pairs of free text a synthesis runs on.
TEXT_FIELDS = [
    ("TtsRequest", "text"),
    ("TtsRequest", "instruct"),
    ("SpeechRequest", "input"),
    ("SpeechRequest", "instructions"),
]


@schemathesis.hook
def before_load_schema(context, raw_schema):
    schemas = raw_schema["components"]["schemas"]
    for schema, field in TEXT_FIELDS:
        prop = schemas[schema]["properties"][field]
        prop["maxLength"] = min(prop.get("maxLength", MAX_TEXT), MAX_TEXT)
