//! Helpers shared by the unit tests of every module: test signals, signal
//! measurements, whole-stream encoding through [`StreamEncoder`], and
//! reference decoders (minimp3 for MP3, the `ogg` reader and libopus for Ogg
//! Opus) that check the encoders' output independently.

use std::f32::consts::PI;
use std::io::Cursor;

use voxpipe_types::Audio;

use crate::ogg_opus::OPUS_FRAME;
use crate::pcm::to_i16;
use crate::{AudioFormat, StreamEncoder};

pub(crate) const RATE: u32 = 22_050;

pub(crate) fn sine(freq: f32, rate: u32, secs: f32, amp: f32) -> Audio {
    let n = (rate as f32 * secs).round() as usize;
    Audio {
        sample_rate: rate,
        channels: 1,
        samples: (0..n)
            .map(|i| amp * (2.0 * PI * freq * i as f32 / rate as f32).sin())
            .collect(),
    }
}

/// The standard test input: 1 s of 440 Hz at 22050 Hz, mono.
pub(crate) fn input() -> Audio {
    sine(440.0, RATE, 1.0, 0.5)
}

pub(crate) fn stereo_input() -> Audio {
    let a = sine(440.0, RATE, 1.0, 0.5);
    let b = sine(660.0, RATE, 1.0, 0.3);
    Audio {
        sample_rate: RATE,
        channels: 2,
        samples: a
            .samples
            .iter()
            .zip(&b.samples)
            .flat_map(|(x, y)| [*x, *y])
            .collect(),
    }
}

pub(crate) fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
}

pub(crate) fn db(ratio: f32) -> f32 {
    20.0 * ratio.log10()
}

/// Normalised correlation of `a[lag..]` with `b` over `len` samples.
pub(crate) fn corr_at(a: &[f32], b: &[f32], lag: usize, len: usize) -> f32 {
    let a = &a[lag..lag + len];
    let b = &b[..len];
    let ab: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let aa: f32 = a.iter().map(|x| x * x).sum();
    let bb: f32 = b.iter().map(|x| x * x).sum();
    ab / (aa * bb).sqrt().max(1e-12)
}

/// Best lag of `reference` inside `decoded` (lags 0..max_lag).
pub(crate) fn best_lag(
    decoded: &[f32],
    reference: &[f32],
    max_lag: usize,
    len: usize,
) -> (usize, f32) {
    (0..max_lag)
        .filter(|lag| lag + len <= decoded.len())
        .map(|lag| (lag, corr_at(decoded, reference, lag, len)))
        .fold((0, f32::MIN), |best, c| if c.1 > best.1 { c } else { best })
}

pub(crate) fn expected_i16(audio: &Audio) -> Vec<i16> {
    audio.samples.iter().map(|&s| to_i16(s)).collect()
}

pub(crate) fn stream_all(format: AudioFormat, audio: &Audio, chunks: &[usize]) -> Vec<u8> {
    let mut enc = StreamEncoder::new(format, audio.sample_rate, audio.channels).unwrap();
    let mut out = enc.header();
    let mut pos = 0;
    for &c in chunks {
        let end = (pos + c).min(audio.samples.len());
        out.extend(enc.push(&audio.samples[pos..end]).unwrap());
        pos = end;
    }
    out.extend(enc.push(&audio.samples[pos..]).unwrap());
    out.extend(enc.finish().unwrap());
    out
}

/// Decodes with minimp3: (rate, channels, interleaved samples, frames).
pub(crate) fn decode_mp3(bytes: &[u8]) -> (u32, usize, Vec<f32>, Vec<usize>) {
    let mut dec = minimp3::Decoder::new(Cursor::new(bytes));
    let (mut rate, mut ch, mut pcm, mut frames) = (0, 0, Vec::new(), Vec::new());
    loop {
        match dec.next_frame() {
            Ok(f) => {
                rate = f.sample_rate as u32;
                ch = f.channels;
                assert_eq!(f.layer, 3);
                frames.push(f.data.len());
                pcm.extend(f.data.iter().map(|&s| s as f32 / 32768.0));
            }
            Err(minimp3::Error::Eof) => break,
            Err(e) => panic!("mp3 decode: {e:?}"),
        }
    }
    (rate, ch, pcm, frames)
}

/// (encoder delay, padding) from the LAME tag in the first frame.
pub(crate) fn lame_tag(bytes: &[u8]) -> Option<(usize, usize)> {
    let head = &bytes[..bytes.len().min(200)];
    let info = head.windows(4).position(|w| w == b"Info" || w == b"Xing")?;
    let lame = info + head[info..].windows(4).position(|w| w == b"LAME")?;
    let d = &bytes[lame + 21..lame + 24];
    let delay = ((d[0] as usize) << 4) | (d[1] as usize >> 4);
    let padding = (((d[1] & 0x0F) as usize) << 8) | d[2] as usize;
    Some((delay, padding))
}

/// Standard MP3 decoder delay (hybrid filterbank), added to the LAME
/// tag's encoder delay by gapless decoders.
pub(crate) const MP3_DECODER_DELAY: usize = 529;

pub(crate) struct OggOpus {
    pub(crate) channels: usize,
    pub(crate) pre_skip: usize,
    pub(crate) input_rate: u32,
    tags: Vec<u8>,
    /// (packet, page granule, last in stream)
    packets: Vec<(Vec<u8>, u64, bool)>,
}

/// Checks page-level structure with raw bytes and the `ogg` reader.
pub(crate) fn parse_ogg_opus(bytes: &[u8]) -> OggOpus {
    assert_eq!(&bytes[..4], b"OggS");
    // First page: BOS flag, granule 0, a single 19-byte OpusHead packet.
    assert_eq!(bytes[5], 0x02, "BOS flag");
    assert_eq!(&bytes[6..14], &[0; 8], "head granule");
    assert_eq!((bytes[26], bytes[27]), (1, 19), "one segment of 19 bytes");
    assert_eq!(&bytes[28..36], b"OpusHead");
    let second = 28 + 19;
    assert_eq!(&bytes[second..second + 4], b"OggS");

    let mut r = ogg::reading::PacketReader::new(Cursor::new(bytes));
    let head = r.read_packet_expected().unwrap();
    assert!(head.first_in_stream() && head.last_in_page());
    let d = &head.data;
    assert_eq!(&d[..8], b"OpusHead");
    assert_eq!(d[8], 1, "version");
    let out = OggOpus {
        channels: d[9] as usize,
        pre_skip: u16::from_le_bytes([d[10], d[11]]) as usize,
        input_rate: u32::from_le_bytes([d[12], d[13], d[14], d[15]]),
        tags: {
            let t = r.read_packet_expected().unwrap();
            assert!(t.last_in_page(), "OpusTags ends its page");
            t.data
        },
        packets: {
            let mut v = Vec::new();
            while let Some(p) = r.read_packet().unwrap() {
                v.push((p.data.clone(), p.absgp_page(), p.last_in_stream()));
            }
            v
        },
    };
    assert_eq!(&out.tags[..8], b"OpusTags");
    assert_eq!(d[18], 0, "mapping family");
    out
}

/// Decodes all packets, applies pre-skip and end trimming.
pub(crate) fn decode_opus(o: &OggOpus) -> Vec<f32> {
    let layout = if o.channels == 1 {
        opus::Channels::Mono
    } else {
        opus::Channels::Stereo
    };
    let mut dec = opus::Decoder::new(48_000, layout).unwrap();
    let mut pcm = Vec::new();
    let mut buf = vec![0.0f32; 5760 * o.channels];
    let mut prev_granule = 0;
    for (p, granule, _) in &o.packets {
        assert!(*granule >= prev_granule, "granules must not decrease");
        prev_granule = *granule;
        let n = dec.decode_float(p, &mut buf, false).unwrap();
        assert_eq!(n, OPUS_FRAME);
        pcm.extend_from_slice(&buf[..n * o.channels]);
    }
    let (_, final_granule, eos) = o.packets.last().unwrap();
    assert!(eos, "EOS on last page");
    let end = *final_granule as usize * o.channels;
    assert!(end <= pcm.len(), "final granule beyond decoded data");
    pcm.truncate(end);
    pcm.drain(..o.pre_skip * o.channels);
    pcm
}
