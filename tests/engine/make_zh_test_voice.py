"""Write tests/fixtures/voices/test-zh.onnx.json: a Mandarin test voice.

No Chinese Piper voice is published on the registries the project can reach,
so the routing tests (tests/styles.rs) speak Chinese with this one: the
random weights of test-multi-high (tests/engine/make_test_voice.py; the
model file test-zh.onnx is a symlink to test-multi-high.onnx) under a config
that says what Piper's zh_CN voices say: espeak voice `cmn`, language zh_CN.
Piper's phoneme id map is the same for every espeak voice, Mandarin's tone
digits included, so test-multi-high's map is kept. The audio is noise-like
(random weights); what the tests check is which voice speaks, with which
phonemes.

Usage: python3 tests/engine/make_zh_test_voice.py
"""
import json
import pathlib

here = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "voices"
config = json.loads((here / "test-multi-high.onnx.json").read_text())
config["espeak"] = {"voice": "cmn"}
config["language"] = {
    "code": "zh_CN",
    "family": "zh",
    "region": "CN",
    "name_native": "简体中文",
    "name_english": "Chinese",
    "country_english": "China",
}
config["dataset"] = "test-zh"
(here / "test-zh.onnx.json").write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n")
link = here / "test-zh.onnx"
if not link.exists():
    link.symlink_to("test-multi-high.onnx")
