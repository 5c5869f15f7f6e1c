//! Decoding a tensor's data into f32: float32, float16, bfloat16 or double, from `raw_data`
//! (always little-endian) or from the typed repeated fields, checked against its shape.

use super::graph::{RawTensor, DT_BFLOAT16, DT_DOUBLE, DT_FLOAT, DT_FLOAT16};
use super::wire::copy_array;
use super::{OnnxError, Tensor};

pub(super) fn is_float_type(data_type: i64) -> bool {
    matches!(data_type, DT_FLOAT | DT_FLOAT16 | DT_DOUBLE | DT_BFLOAT16)
}

/// Decodes a float tensor (float32, float16, bfloat16 or double) into f32 values.
pub(super) fn decode_tensor(raw: &RawTensor<'_>, name: &str) -> Result<Tensor, OnnxError> {
    let bad = |reason: String| OnnxError::BadTensor {
        name: name.to_string(),
        reason: format!("{reason} (tensor at byte {})", raw.offset),
    };
    if raw.external {
        return Err(OnnxError::ExternalData(name.to_string()));
    }
    let dims = raw
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(format!("negative dimension {d}"))))
        .collect::<Result<Vec<usize>, _>>()?;
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("shape {dims:?} overflows")))?;
    let data = decode_values(raw, count).map_err(bad)?;
    if data.len() != count {
        return Err(bad(format!(
            "shape {dims:?} needs {count} values but the data holds {}",
            data.len()
        )));
    }
    Ok(Tensor { dims, data })
}

fn decode_values(raw: &RawTensor<'_>, count: usize) -> Result<Vec<f32>, String> {
    let width = match raw.data_type {
        DT_FLOAT => 4,
        DT_DOUBLE => 8,
        DT_FLOAT16 | DT_BFLOAT16 => 2,
        other => return Err(format!("data type {other} is not a float type")),
    };
    if let Some(bytes) = raw.raw_data {
        if bytes.len() != count * width {
            return Err(format!(
                "raw_data holds {} bytes, shape needs {count} × {width}",
                bytes.len()
            ));
        }
        // ONNX raw_data is always little-endian.
        return Ok(match raw.data_type {
            DT_FLOAT => f32s_from_le_bytes(bytes),
            DT_DOUBLE => bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(copy_array(c)) as f32)
                .collect(),
            DT_FLOAT16 => bytes
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes(copy_array(c))))
                .collect(),
            _ => bytes
                .chunks_exact(2)
                .map(|c| bf16_to_f32(u16::from_le_bytes(copy_array(c))))
                .collect(),
        });
    }
    Ok(match raw.data_type {
        DT_FLOAT => raw
            .float_data
            .iter()
            .map(|b| f32::from_le_bytes(*b))
            .collect(),
        DT_DOUBLE => raw
            .double_data
            .iter()
            .map(|b| f64::from_le_bytes(*b) as f32)
            .collect(),
        DT_FLOAT16 => raw
            .int32_data
            .iter()
            .map(|&v| f16_to_f32(v as u16))
            .collect(),
        _ => raw
            .int32_data
            .iter()
            .map(|&v| bf16_to_f32(v as u16))
            .collect(),
    })
}

/// Little-endian f32 bytes to values. On little-endian targets this is one memcpy, which keeps
/// a 63 MB voice fast to load even in unoptimized builds (the per-value loop takes ~1 s there).
fn f32s_from_le_bytes(bytes: &[u8]) -> Vec<f32> {
    let count = bytes.len() / 4;
    if cfg!(target_endian = "little") {
        let mut out = vec![0f32; count];
        // SAFETY: `out` owns `count * 4` writable bytes, `bytes` has at least as many, the two
        // allocations cannot overlap, u8 has no alignment requirement, and every bit pattern is
        // a valid f32. The byte order of the file and of the target agree (little-endian).
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr().cast::<u8>(), count * 4);
        }
        out
    } else {
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(copy_array(c)))
            .collect()
    }
}

/// IEEE 754 half precision to single precision, exact (subnormals, infinities and NaN included).
fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x3ff);
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal half: value = m × 2^-24, exactly representable in f32.
            let v = m as f32 * f32::from_bits(0x3380_0000);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// bfloat16 is the top half of an f32.
fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_decodes_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert!(f16_to_f32(0x7c00).is_infinite());
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
    }
}
