//! Regenerate engine/joe_checksums.txt with `python3 tests/engine/reference_checksums.py voices/en_US-joe-medium.onnx` (pip install onnx).
//! Checks of the ONNX weight reader on the real voice (en_US-joe-medium).
//! Set VOICE_ONNX to use another copy of the file.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;
use voxpipe_engine::onnx::{
    hyperparameters, read_weights, weights_from_bytes, OnnxError, ResBlockKind, Weights,
};

fn voice_path() -> PathBuf {
    std::env::var_os("VOICE_ONNX")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../voices/en_US-joe-medium.onnx")
        })
}

fn weights() -> &'static Weights {
    static W: OnceLock<Weights> = OnceLock::new();
    W.get_or_init(|| read_weights(&voice_path()).expect("voice reads"))
}

#[test]
fn counts() {
    let w = weights();
    assert_eq!(w.initializer_count(), 401);
    assert_eq!(w.node_count(), 2755);
    // 366 float initializers − 17 float graph constants + dp.flows.0.logs (folded exp).
    assert_eq!(w.len(), 350);
    assert_eq!(w.skipped().len(), 16, "{:?}", w.skipped());
    assert!(w.skipped().iter().all(|s| s.starts_with('/')));
    // 15.65 M parameters per the notes (dp.flows.0.logs replaces its folded constant).
    println!("parameters: {}", w.parameter_count());
    assert!((15_600_000..15_700_000).contains(&w.parameter_count()));
    assert!(w.names().all(|n| !n.contains('/') && !n.contains("::")));
}

#[test]
fn key_shapes() {
    let w = weights();
    let shape = |n: &str| w.get(n).expect(n).dims.clone();
    assert_eq!(shape("enc_p.emb.weight"), [256, 192]);
    assert_eq!(shape("enc_p.encoder.attn_layers.0.emb_rel_k"), [1, 9, 96]);
    assert_eq!(shape("dec.conv_pre.weight"), [256, 192, 7]);
    assert_eq!(shape("dec.ups.0.weight"), [256, 128, 16]);
    assert_eq!(shape("flow.flows.0.enc.in_layers.0.weight"), [384, 192, 5]);
    assert_eq!(
        shape("flow.flows.6.enc.res_skip_layers.3.weight"),
        [192, 192, 1]
    );
    assert_eq!(shape("dp.flows.0.logs"), [2, 1]);
    assert!(!w.contains("sid"));
    // All 32 folded WaveNet convs were renamed.
    let flow_weights = w
        .names()
        .filter(|n| {
            n.starts_with("flow.flows.") && n.contains("_layers.") && n.ends_with(".weight")
        })
        .count();
    assert_eq!(flow_weights, 32);
}

#[test]
fn folded_logs_matches_notes() {
    let logs = &weights().get("dp.flows.0.logs").expect("logs").data;
    // Notes: exp(−logs) = [0.9785, 1.0511].
    assert!(((-logs[0]).exp() - 0.9785).abs() < 1e-4);
    assert!(((-logs[1]).exp() - 1.0511).abs() < 1e-4);
}

#[test]
fn missing_weight_names_itself() {
    let err = weights()
        .get("enc_q.pre.weight")
        .expect_err("absent in exports");
    assert!(err.to_string().contains("enc_q.pre.weight"), "{err}");
}

#[test]
fn values_match_python_onnx() {
    let reference = include_str!("engine/joe_checksums.txt");
    let w = weights();
    let mut checked = 0;
    for line in reference.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (name, dims) = (f[0], f[1]);
        let t = w.get(name).expect(name);
        let want_dims: Vec<usize> = dims.split(',').map(|d| d.parse().unwrap()).collect();
        assert_eq!(t.dims, want_dims, "{name}");
        let sum: f64 = t.data.iter().map(|&v| f64::from(v)).sum();
        let sumsq: f64 = t.data.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        let want_sum: f64 = f[2].parse().unwrap();
        let want_sumsq: f64 = f[3].parse().unwrap();
        // numpy sums pairwise, we sum sequentially: equal to ~1e-12 relative.
        assert!(
            (sum - want_sum).abs() <= 1e-9 * want_sumsq.sqrt().max(1.0),
            "{name}: sum {sum} vs {want_sum}"
        );
        assert!(
            (sumsq - want_sumsq).abs() <= 1e-9 * want_sumsq,
            "{name}: sumsq {sumsq} vs {want_sumsq}"
        );
        for (i, hex) in f[4..].iter().enumerate() {
            let bits = u32::from_str_radix(hex, 16).unwrap();
            assert_eq!(t.data[i].to_bits(), bits, "{name}[{i}]");
        }
        checked += 1;
    }
    assert_eq!(checked, 23);
}

#[test]
fn hyperparameters_of_medium_voice() {
    let h = hyperparameters(weights()).expect("hyper");
    println!("{h:#?}");
    assert_eq!(h.n_vocab, 256);
    assert_eq!(h.hidden_channels, 192);
    assert_eq!(h.inter_channels, 192);
    assert_eq!(h.filter_channels, 768);
    assert_eq!(h.n_heads, 2);
    assert_eq!(h.n_layers, 6);
    assert_eq!(h.kernel_size, 3);
    assert_eq!(h.window_size, 4);
    assert_eq!(h.duration.filter_channels, 192);
    assert_eq!(h.duration.kernel_size, 3);
    assert_eq!(h.duration.ddsconv_dilations, [1, 3, 9]);
    assert_eq!(h.duration.conv_flow_indices, [3, 5, 7]);
    assert_eq!(h.duration.num_bins, 10);
    assert_eq!(h.flow.coupling_indices, [0, 2, 4, 6]);
    assert_eq!(h.flow.n_layers, 4);
    assert_eq!(h.flow.kernel_size, 5);
    assert_eq!(h.flow.dilation_rate, 1);
    assert_eq!(h.decoder.upsample_initial_channel, 256);
    assert_eq!(h.decoder.upsample_rates, [8, 8, 4]);
    assert!(h.decoder.rates_from_graph);
    assert_eq!(h.decoder.upsample_kernel_sizes, [16, 16, 8]);
    assert_eq!(h.decoder.resblock_kind, ResBlockKind::Two);
    assert_eq!(h.decoder.resblock_kernel_sizes, [3, 5, 7]);
    assert_eq!(
        h.decoder.resblock_dilation_sizes,
        [vec![1, 2], vec![2, 6], vec![3, 12]]
    );
    assert_eq!(h.decoder.hop_length, 256);
    assert_eq!((h.gin_channels, h.n_speakers), (0, 0));
    // Cross-check: the padding Piper uses, (k − u) / 2, is what the graph says.
    let ups = weights().conv_attrs("dec.ups.0.weight").expect("attrs");
    assert_eq!(ups.pads, [4, 4]);
    assert_eq!(ups.op_type, "ConvTranspose");
    let sep = weights()
        .conv_attrs("dp.convs.convs_sep.2.weight")
        .expect("attrs");
    assert_eq!((sep.group, sep.dilations[0], sep.pads[0]), (192, 9, 9));
}

/// Reading the weights costs little more than reading the file: a generous
/// ratio measured in one run (not a wall-clock bound), so a reader that went
/// quadratic or copied every tensor many times fails on any machine.
#[test]
fn read_costs_a_small_multiple_of_reading_the_file() {
    let plain = (0..3)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(std::fs::read(voice_path()).expect("voice reads"));
            start.elapsed()
        })
        .min()
        .unwrap();
    let parsed = (0..3)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(read_weights(&voice_path()).expect("voice reads"));
            start.elapsed()
        })
        .min()
        .unwrap();
    println!("fs::read {plain:?}, read_weights {parsed:?}");
    assert!(
        parsed < plain * 30,
        "read_weights {parsed:?} vs fs::read {plain:?}"
    );
}

/// Every tensor's shape, sum and sum of squares, as recorded in
/// tests/engine/joe_tensors.txt (all 350 tensors; `values_match_python_onnx`
/// checks a sample against Python's onnx independently). Regenerate after an
/// intended change with `VOXPIPE_BLESS=1 cargo test --release -p voxpipe-engine
/// --test engine_weights every_tensor`.
#[test]
fn every_tensor_matches_the_recorded_list() {
    let w = weights();
    let mut out = String::new();
    for (name, t) in w.iter() {
        // Sums in f64, sequentially: the same bits on every run.
        let sum: f64 = t.data.iter().map(|&v| f64::from(v)).sum();
        let sumsq: f64 = t.data.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        out.push_str(&format!("{name} {:?} {sum:e} {sumsq:e}\n", t.dims));
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/engine/joe_tensors.txt");
    if std::env::var_os("VOXPIPE_BLESS").is_some() {
        std::fs::write(&path, &out).expect("write joe_tensors.txt");
    }
    let recorded = std::fs::read_to_string(&path).expect("joe_tensors.txt");
    assert_eq!(out.lines().count(), 350);
    for (got, want) in out.lines().zip(recorded.lines()) {
        assert_eq!(got, want);
    }
    assert_eq!(out.lines().count(), recorded.lines().count());
}

#[test]
fn truncated_and_corrupt_files_give_errors() {
    let bytes = std::fs::read(voice_path()).expect("voice reads");
    // Truncations at many points, including inside raw_data and at the very end.
    let n = bytes.len();
    for cut in [0, 1, 2, 10, 1000, n / 3, n / 2, n - 100, n - 1] {
        match weights_from_bytes(&bytes[..cut]) {
            Err(OnnxError::Malformed { .. }) | Err(OnnxError::NoGraph) => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    let err = weights_from_bytes(&bytes[..n / 2]).expect_err("half a file");
    println!("{err}");
    assert!(err.to_string().contains("truncated"), "{err}");
    // Random garbage and a flipped length prefix must not panic either.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut garbage = vec![0u8; 4096];
    for b in &mut garbage {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *b = state as u8;
    }
    assert!(weights_from_bytes(&garbage).is_err());
    let mut corrupt = bytes.clone();
    for i in (0..2000).step_by(7) {
        corrupt[i] = 0xff;
    }
    assert!(weights_from_bytes(&corrupt).is_err());
    // A missing file names its path.
    let err = read_weights(std::path::Path::new("/nonexistent/voice.onnx")).expect_err("no file");
    assert!(err.to_string().contains("/nonexistent/voice.onnx"), "{err}");
}

/// The multi-speaker, high-quality test voice (tests/engine/make_test_voice.py), exported
/// by a newer torch than joe: its deduplicated LayerNorm gammas (`Identity` aliases) and
/// its partly folded `exp(-logs)` are read, and every shape-derived setting is its own.
#[test]
fn hyperparameters_of_multi_speaker_high_test_voice() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/voices/test-multi-high.onnx");
    let w = read_weights(&path).expect("test voice reads");
    // Shared by 30 LayerNorms in the file, exposed under each of their names.
    for name in [
        "enc_p.encoder.norm_layers_1.0.gamma",
        "enc_p.encoder.norm_layers_2.2.gamma",
        "dp.flows.7.convs.norms_2.2.gamma",
    ] {
        assert_eq!(w.get(name).expect(name).dims, [16]);
    }
    // dp.flows.0.logs comes from `-logs` feeding /dp/flows.0/Exp, not from a folded exp.
    assert_eq!(w.get("dp.flows.0.logs").expect("logs").dims, [2, 1]);
    assert!(w.names().all(|n| !n.contains('/') && !n.contains("::")));
    let h = hyperparameters(&w).expect("hyper");
    assert_eq!((h.hidden_channels, h.inter_channels), (16, 8));
    assert_eq!((h.filter_channels, h.n_heads, h.n_layers), (48, 2, 3));
    assert_eq!(h.decoder.upsample_rates, [8, 8, 2, 2]);
    assert_eq!(h.decoder.upsample_initial_channel, 16);
    assert_eq!(h.decoder.resblock_kind, ResBlockKind::One);
    assert_eq!(h.decoder.resblock_kernel_sizes, [3, 7, 11]);
    assert_eq!(h.decoder.resblock_dilation_sizes, vec![vec![1, 3, 5]; 3]);
    assert_eq!((h.gin_channels, h.n_speakers), (8, 3));
}
