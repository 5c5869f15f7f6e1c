#!/usr/bin/env python3
"""Regenerate tests/fixtures/piper_golden.json: Piper's own phonemes and phoneme ids.

Requires `pip install piper-tts==1.8.0` (bundles its own espeak-ng 1.52 fork + data).
Usage: python scripts/piper_golden.py VOICE.onnx.json > tests/fixtures/piper_golden.json
Only the voice's JSON config is read (no ONNX model is loaded).
"""
import json
import sys

from piper.config import PiperConfig
from piper.phoneme_ids import phonemes_to_ids
from piper.voice import PiperVoice

# About 1 KB of ordinary prose; also used to time phonemization.
PARAGRAPH = (
    "The old lighthouse stood at the edge of the cliff, its white paint peeling after "
    "decades of salt and wind. Every evening, the keeper climbed the spiral stairs, "
    "counted the steps out of habit, and lit the great lamp. Ships passing in the night "
    "relied on its steady beam; without it, they would have drifted onto the rocks below. "
    "One autumn, a storm arrived earlier than anyone expected. The waves rose higher than "
    "the harbor wall, and the rain fell so hard that the village streets became rivers. "
    "Still, the light kept turning. \"Why do you stay?\" a young fisherman once asked him. "
    "The keeper smiled and answered: \"Because somebody out there is counting on me.\" "
    "Years later, when the lighthouse was replaced by an automatic beacon, the villagers "
    "gathered to thank him. He didn't say much; he simply looked at the sea, nodded, and "
    "walked home along the narrow path, where the grass was still wet with morning dew. "
    "Isn't it strange how the quietest people often carry the heaviest loads?"
)

SENTENCES = [
    "Hello world.",
    "This is a test",
    "How are you today?",
    "What a wonderful day!",
    "Hello, my name is Joe.",
    "First, second; third: fourth.",
    "I don't know, and I can't tell.",
    "It's John's car, isn't it?",
    "He said \"hello\" to me.",
    "She whispered, \"Come here!\"",
    "The cat (a tabby) slept all day.",
    "One sentence. Two sentences! Three sentences?",
    "Wait... what happened?",
    "We need three things: bread, milk, and eggs.",
    "twenty one thousand four hundred and six people came.",
    "Dr. Smith lives on Main Street.",
    "The quick brown fox jumps over the lazy dog.",
    "Mr. and Mrs. Jones went to the U.S. last year.",
    "It costs five dollars; that's cheap.",
    "Yes! No? Maybe.",
    "A well-known author wrote a thought-provoking book.",
    "Rock 'n' roll isn't dead.",
    "Is it 'single quoted' text?",
    "The end",
    "Line one.\nLine two.",
    "Paragraph one.\n\nParagraph two",
    "Hello   there,   spaced   out.",
    "Tomatoes, potatoes, onions; carrots: peas!",
    "Why? Because I said so.",
    "Read the book, then read it again.",
    "The café served crème brûlée.",
    "I live in New York City.",
    "She sells sea shells by the sea shore.",
    "Can you hear me now?!",
    "e.g. this is an example, i.e. a sample.",
    "It was the best of times, it was the worst of times.",
    "[[ h ə l oʊ ]] world.",
    "Say [[ h ə l oʊ ]], please.",
    "We're here -- or are we?",
    "Open the door (please), then close it.",
    "The city is big.",
    "The apple fell.",
    "Ski a lot, and be ever happy.",
    "I ate the orange in the evening.",
    "Sentences are hard. He is here; she isn't.",
    "For more information, call the store at four.",
    "Indeed, the idea is silly.",
    "Happy anniversary, Mary and Eve!",
    "I have 3 cats and 12 dogs, born in 1999.",
    "It’s “quoted” with curly marks — and a dash.",
    "Well… maybe not.",
    "NASA and the FBI met at 10:30 a.m.",
    "¿Qué? That's Spanish!",
    "Visit example.com or email me.",
    "She said: \"Don't go!\" He went anyway.",
    "The children's toys were everywhere; nobody cleaned up.",
    PARAGRAPH,
]


def main() -> None:
    config_path = sys.argv[1]
    with open(config_path, encoding="utf-8") as f:
        config = PiperConfig.from_dict(json.load(f))
    # PiperVoice.phonemize only touches config and espeak: no ONNX session needed.
    voice = PiperVoice(session=None, config=config)
    cases = []
    for text in SENTENCES:
        sentences = voice.phonemize(text)
        cases.append(
            {
                "text": text,
                "phonemes": ["".join(p) for p in sentences],
                "ids": [phonemes_to_ids(p, config.phoneme_id_map) for p in sentences],
            }
        )
    # One case per line keeps the fixture small and its diffs readable.
    print("{")
    print(f'"voice": {json.dumps(config.espeak_voice)}, "generator": "piper-tts 1.8.0",')
    print('"cases": [')
    print(",\n".join(json.dumps(case, ensure_ascii=False) for case in cases))
    print("]}")


if __name__ == "__main__":
    main()
