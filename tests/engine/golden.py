"""Golden references for the candle VITS port, produced with ONNX Runtime.

Usage: golden.py VOICE.onnx SENTENCES.json OUT_DIR [--sid N] [--extra NAME ...]

SENTENCES.json: {"sentences": [{"text": ..., "ids": [...]}, ...]}.
Runs the voice with scales = [0, 1, 0] (noise_scale = noise_w = 0), which makes
ONNX Runtime's output deterministic. The graph is modified to also output the
duration predictor's ceil (`/Ceil_output_0`, frames per phoneme), so w_ceil can be
compared exactly. Writes OUT_DIR/sNN.f32 (little-endian f32 audio) and
OUT_DIR/manifest.json (ids, durations, sample count, sha256, wall time).
Runs twice and fails unless the two runs are bit-identical.
"""
import argparse, hashlib, json, os, time
import numpy as np
import onnx
import onnxruntime as ort

CEIL = "/Ceil_output_0"

def add_outputs(model, names):
    """Expose intermediate tensors as extra graph outputs (type left to inference)."""
    for name in names:
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    return model

def make_session(voice, extra):
    model = add_outputs(onnx.load(voice), [CEIL] + extra)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(os.environ.get("ORT_THREADS", "1"))
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])

def run_once(sess, ids, length_scale, sid, extra):
    feeds = {
        "input": np.array([ids], dtype=np.int64),
        "input_lengths": np.array([len(ids)], dtype=np.int64),
        "scales": np.array([0.0, length_scale, 0.0], dtype=np.float32),
    }
    # Multi-speaker voices take the speaker id as a fourth input.
    if any(i.name == "sid" for i in sess.get_inputs()):
        feeds["sid"] = np.array([sid], dtype=np.int64)
    t0 = time.perf_counter()
    outs = sess.run(["output", CEIL] + extra, feeds)
    wall = time.perf_counter() - t0
    return outs[0].reshape(-1).astype("<f4"), outs[1].reshape(-1), outs[2:], wall

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("voice"); ap.add_argument("sentences"); ap.add_argument("out_dir")
    ap.add_argument("--length-scale", type=float, default=1.0)
    ap.add_argument("--sid", type=int, default=0, help="speaker id (multi-speaker voices)")
    ap.add_argument("--extra", nargs="*", default=[], help="intermediate tensors to dump (.npy)")
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    sentences = json.load(open(a.sentences))["sentences"]
    sess = make_session(a.voice, a.extra)
    manifest = {"voice": os.path.basename(a.voice), "sample_rate": 22050, "sid": a.sid,
                "scales": [0.0, a.length_scale, 0.0], "sentences": []}
    for i, s in enumerate(sentences):
        audio, ceil, extras, wall = run_once(sess, s["ids"], a.length_scale, a.sid, a.extra)
        audio2, ceil2, _, _ = run_once(sess, s["ids"], a.length_scale, a.sid, a.extra)
        if audio.tobytes() != audio2.tobytes() or not np.array_equal(ceil, ceil2):
            raise SystemExit(f"sentence {i}: two runs differ; not a usable golden reference")
        fname = f"s{i:02d}.f32"
        audio.tofile(os.path.join(a.out_dir, fname))
        for name, arr in zip(a.extra, extras):
            np.save(os.path.join(a.out_dir, f"s{i:02d}_{name.strip('/').replace('/', '_')}.npy"), arr)
        manifest["sentences"].append({
            "text": s.get("text", ""), "ids": s["ids"], "audio": fname,
            "samples": int(audio.size), "durations": [int(d) for d in ceil],
            "sha256": hashlib.sha256(audio.tobytes()).hexdigest(),
            "ort_wall_s": wall, "rtf": wall / (audio.size / 22050),
        })
        print(f"s{i:02d}: {len(s['ids'])} ids -> {audio.size} samples, "
              f"{int(ceil.sum())} frames, {wall*1000:.1f} ms, bit-identical x2")
    json.dump(manifest, open(os.path.join(a.out_dir, "manifest.json"), "w"),
              ensure_ascii=False, indent=1)

if __name__ == "__main__":
    main()
