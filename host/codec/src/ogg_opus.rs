//! Ogg Opus (RFC 7845): libopus at 48 kHz in 20 ms packets, framed in Ogg
//! pages by the `ogg` crate. Other input rates are resampled to 48 kHz; the
//! OpusHead records the original rate and the encoder's lookahead as
//! pre-skip, and the final granule position trims the end padding.

use crate::pcm::clip;
use crate::resample::Resampler;
use crate::EncodeError;

const OPUS_RATE: u32 = 48_000;
/// 20 ms frames.
pub(crate) const OPUS_FRAME: usize = 960;
const OPUS_MAX_PACKET: usize = 4000;
/// Single logical stream per file, so any serial works; fixed for
/// reproducible output.
const OGG_SERIAL: u32 = 0x766f_7870;

pub(crate) struct OpusState {
    enc: opus::Encoder,
    resampler: Option<Resampler>,
    writer: ogg::writing::PacketWriter<'static, Vec<u8>>,
    ch: usize,
    pre_skip: u64,
    /// 48 kHz frames not yet encoded (interleaved).
    pending: Vec<f32>,
    /// 48 kHz frames received so far.
    frames_in: u64,
    packets: u64,
}

fn opus_err(e: opus::Error) -> EncodeError {
    EncodeError::Codec(format!("opus: {e}"))
}

impl OpusState {
    /// Returns the state and the OpusHead + OpusTags pages.
    pub(crate) fn new(rate: u32, channels: u16) -> Result<(Self, Vec<u8>), EncodeError> {
        let layout = if channels == 1 {
            opus::Channels::Mono
        } else {
            opus::Channels::Stereo
        };
        let mut enc =
            opus::Encoder::new(OPUS_RATE, layout, opus::Application::Audio).map_err(opus_err)?;
        enc.set_bitrate(opus::Bitrate::Bits(32_000 * channels as i32))
            .map_err(opus_err)?;
        let pre_skip = enc.get_lookahead().map_err(opus_err)?.max(0) as u64;

        // RFC 7845 §5.1 identification header, channel mapping family 0.
        let mut head = Vec::with_capacity(19);
        head.extend_from_slice(b"OpusHead");
        head.push(1);
        head.push(channels as u8);
        head.extend_from_slice(&(pre_skip as u16).to_le_bytes());
        head.extend_from_slice(&rate.to_le_bytes()); // original input rate
        head.extend_from_slice(&0i16.to_le_bytes()); // output gain
        head.push(0);
        // §5.2 comment header.
        let vendor = opus::version().as_bytes();
        let comment = b"ENCODER=voxpipe";
        let mut tags = Vec::new();
        tags.extend_from_slice(b"OpusTags");
        tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        tags.extend_from_slice(vendor);
        tags.extend_from_slice(&1u32.to_le_bytes());
        tags.extend_from_slice(&(comment.len() as u32).to_le_bytes());
        tags.extend_from_slice(comment);

        let mut writer = ogg::writing::PacketWriter::new(Vec::new());
        let end_page = ogg::writing::PacketWriteEndInfo::EndPage;
        for packet in [head, tags] {
            writer
                .write_packet(packet, OGG_SERIAL, end_page, 0)
                .map_err(|e| EncodeError::Codec(format!("ogg: {e}")))?;
        }
        let header = std::mem::take(writer.inner_mut());
        let resampler =
            (rate != OPUS_RATE).then(|| Resampler::new(rate, OPUS_RATE, channels as usize));
        Ok((
            OpusState {
                enc,
                resampler,
                writer,
                ch: channels as usize,
                pre_skip,
                pending: Vec::new(),
                frames_in: 0,
                packets: 0,
            },
            header,
        ))
    }

    fn feed(&mut self, at48k: Vec<f32>) {
        self.frames_in += (at48k.len() / self.ch) as u64;
        if self.pending.is_empty() {
            self.pending = at48k;
        } else {
            self.pending.extend(at48k);
        }
    }

    /// Encodes `count` frames from `pending` (zero-padded when short).
    fn encode_packets(&mut self, count: usize) -> Result<Vec<Vec<u8>>, EncodeError> {
        let flen = OPUS_FRAME * self.ch;
        let mut packets = Vec::with_capacity(count);
        let mut frame = vec![0.0f32; flen];
        let mut used = 0;
        for _ in 0..count {
            let avail = (self.pending.len() - used).min(flen);
            frame[..avail].copy_from_slice(&self.pending[used..used + avail]);
            frame[avail..].fill(0.0);
            used += avail;
            packets.push(
                self.enc
                    .encode_vec_float(&frame, OPUS_MAX_PACKET)
                    .map_err(opus_err)?,
            );
        }
        self.pending.drain(..used);
        Ok(packets)
    }

    /// Writes packets; the last one ends a page (or the stream), so the
    /// returned bytes are whole Ogg pages.
    fn write(
        &mut self,
        packets: Vec<Vec<u8>>,
        last_granule: Option<u64>,
    ) -> Result<Vec<u8>, EncodeError> {
        use ogg::writing::PacketWriteEndInfo as End;
        let n = packets.len();
        for (i, packet) in packets.into_iter().enumerate() {
            self.packets += 1;
            let is_last = i + 1 == n;
            let (info, granule) = match (is_last, last_granule) {
                (true, Some(g)) => (End::EndStream, g),
                (true, None) => (End::EndPage, self.packets * OPUS_FRAME as u64),
                _ => (End::NormalPacket, self.packets * OPUS_FRAME as u64),
            };
            self.writer
                .write_packet(packet, OGG_SERIAL, info, granule)
                .map_err(|e| EncodeError::Codec(format!("ogg: {e}")))?;
        }
        Ok(std::mem::take(self.writer.inner_mut()))
    }

    pub(crate) fn push(&mut self, samples: &[f32]) -> Result<Vec<u8>, EncodeError> {
        let clipped: Vec<f32> = samples.iter().map(|&s| clip(s)).collect();
        let at48k = match &mut self.resampler {
            Some(r) => r.process(&clipped),
            None => clipped,
        };
        self.feed(at48k);
        let count = self.pending.len() / (OPUS_FRAME * self.ch);
        if count == 0 {
            return Ok(Vec::new());
        }
        let packets = self.encode_packets(count)?;
        self.write(packets, None)
    }

    pub(crate) fn finish(&mut self) -> Result<Vec<u8>, EncodeError> {
        if let Some(r) = &mut self.resampler {
            let tail = r.flush();
            self.feed(tail);
        }
        // Enough packets to cover pre-skip + all input (the encoder's
        // lookahead must be flushed out), and at least one to carry EOS.
        let end = self.pre_skip + self.frames_in;
        let total = end.div_ceil(OPUS_FRAME as u64).max(self.packets + 1);
        let packets = self.encode_packets((total - self.packets) as usize)?;
        // The final granule position trims the padding (RFC 7845 §4.4).
        self.write(packets, Some(end))
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::{
        corr_at, db, decode_opus, input, parse_ogg_opus, rms, stereo_input, stream_all, RATE,
    };
    use crate::{encode, resample, AudioFormat, StreamEncoder};
    use voxpipe_types::Audio;

    fn check_opus(bytes: &[u8], a: &Audio) {
        let o = parse_ogg_opus(bytes);
        assert_eq!(o.channels, a.channels as usize);
        assert_eq!(o.input_rate, a.sample_rate);
        assert!(
            o.pre_skip > 0 && o.pre_skip < 4000,
            "pre-skip {}",
            o.pre_skip
        );
        let pcm = decode_opus(&o);
        let ch = o.channels;
        let reference = resample(a, 48_000);
        assert_eq!(pcm.len(), reference.samples.len(), "duration");
        assert_eq!(pcm.len() / ch, 48_000);
        for c in 0..ch {
            let got: Vec<f32> = pcm.iter().skip(c).step_by(ch).copied().collect();
            let want: Vec<f32> = reference
                .samples
                .iter()
                .skip(c)
                .step_by(ch)
                .copied()
                .collect();
            // Pre-skip applied correctly: aligned with no lag.
            let corr = corr_at(&got, &want, 0, want.len());
            assert!(corr > 0.95, "channel {c}: corr {corr}");
            let level = db(rms(&got[480..got.len() - 480]) / rms(&want[480..want.len() - 480]));
            assert!(level.abs() < 1.0, "channel {c}: level {level} dB");
        }
    }

    #[test]
    fn ogg_opus_round_trips() {
        for a in [input(), stereo_input()] {
            let bytes = encode(&a, AudioFormat::Opus).unwrap();
            check_opus(&bytes, &a);
            // ~32 kbit/s per channel: well under 16-bit PCM size.
            assert!(
                bytes.len() < 10_000 * a.channels as usize,
                "{} bytes",
                bytes.len()
            );
        }
    }

    #[test]
    fn ogg_opus_stream_decodes() {
        for a in [input(), stereo_input()] {
            let mut enc = StreamEncoder::new(AudioFormat::Opus, RATE, a.channels).unwrap();
            let header = enc.header();
            assert_eq!(&header[28..36], b"OpusHead");
            let mut out = header;
            let mut pages_per_push = Vec::new();
            let ch = a.channels as usize;
            for chunk in a.samples.chunks(ch * 3001) {
                let bytes = enc.push(chunk).unwrap();
                // Each non-empty push yields whole pages.
                if !bytes.is_empty() {
                    assert_eq!(&bytes[..4], b"OggS");
                }
                pages_per_push.push(bytes.len());
                out.extend(bytes);
            }
            out.extend(enc.finish().unwrap());
            assert!(
                pages_per_push.iter().filter(|&&n| n > 0).count() >= 5,
                "{pages_per_push:?}"
            );
            check_opus(&out, &a);
        }
        // Tiny chunks and an empty stream are still valid.
        let a = input();
        let bytes = stream_all(AudioFormat::Opus, &a, &[1; 50]);
        check_opus(&bytes, &a);
        let empty = Audio {
            sample_rate: RATE,
            channels: 1,
            samples: vec![],
        };
        let o = parse_ogg_opus(&encode(&empty, AudioFormat::Opus).unwrap());
        assert!(decode_opus(&o).is_empty());
    }
}
