//! The protobuf wire format, decoded by hand: varints, length-delimited fields,
//! fixed32/fixed64 and packed repeated scalars. Only what the ONNX messages in `graph` need;
//! every read is bounds-checked so that a truncated or corrupt file is an
//! [`OnnxError::Malformed`] naming its byte offset, never a panic.

use super::OnnxError;

/// Protobuf wire types (the low 3 bits of a field key).
pub(super) const WIRE_VARINT: u8 = 0;
pub(super) const WIRE_FIXED64: u8 = 1;
pub(super) const WIRE_LEN: u8 = 2;
pub(super) const WIRE_FIXED32: u8 = 5;

/// A cursor over one protobuf message; `base` is the message's offset in the file, so that
/// errors report absolute positions.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

/// A field's value as it appears on the wire.
pub(super) enum Value<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Len(Reader<'a>),
    Fixed32([u8; 4]),
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    pub(super) fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub(super) fn error(&self, reason: impl Into<String>) -> OnnxError {
        OnnxError::Malformed {
            offset: self.offset(),
            reason: reason.into(),
        }
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(super) fn read_varint(&mut self) -> Result<u64, OnnxError> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(self.error("varint runs past the end of its message (truncated file?)"));
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.error("varint longer than 10 bytes"))
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], OnnxError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(self.error(format!(
                "field of {n} bytes runs past the end of its message ({} bytes left; truncated file?)",
                self.buf.len() - self.pos
            )));
        };
        let slice = &self.buf[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    /// Reads the next field: its number and value.
    pub(super) fn next_field(&mut self) -> Result<(u32, Value<'a>), OnnxError> {
        let key = self.read_varint()?;
        let field = u32::try_from(key >> 3).map_err(|_| self.error("field number out of range"))?;
        if field == 0 {
            return Err(self.error("field number 0 is invalid"));
        }
        let value = match (key & 7) as u8 {
            WIRE_VARINT => Value::Varint(self.read_varint()?),
            WIRE_FIXED64 => Value::Fixed64(self.fixed::<8>()?),
            WIRE_LEN => {
                let len = self.read_varint()?;
                let len = usize::try_from(len).map_err(|_| self.error("length out of range"))?;
                let base = self.offset();
                Value::Len(Reader::new(self.take(len)?, base))
            }
            WIRE_FIXED32 => Value::Fixed32(self.fixed::<4>()?),
            other => {
                return Err(self.error(format!("unsupported wire type {other} (groups or garbage)")))
            }
        };
        Ok((field, value))
    }

    pub(super) fn fixed<const N: usize>(&mut self) -> Result<[u8; N], OnnxError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(super) fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
}

impl<'a> Value<'a> {
    pub(super) fn wire_name(&self) -> &'static str {
        match self {
            Value::Varint(_) => "varint",
            Value::Fixed64(_) => "fixed64",
            Value::Len(_) => "length-delimited",
            Value::Fixed32(_) => "fixed32",
        }
    }
}

/// Error for a field that arrived with the wrong wire type.
pub(super) fn wrong_wire(reader: &Reader<'_>, what: &str, value: &Value<'_>) -> OnnxError {
    reader.error(format!(
        "{what} has unexpected wire type {}",
        value.wire_name()
    ))
}

pub(super) fn expect_len<'a>(
    reader: &Reader<'a>,
    what: &str,
    value: Value<'a>,
) -> Result<Reader<'a>, OnnxError> {
    match value {
        Value::Len(r) => Ok(r),
        other => Err(wrong_wire(reader, what, &other)),
    }
}

pub(super) fn expect_str<'a>(
    reader: &Reader<'a>,
    what: &str,
    value: Value<'a>,
) -> Result<&'a str, OnnxError> {
    let inner = expect_len(reader, what, value)?;
    std::str::from_utf8(inner.rest()).map_err(|_| inner.error(format!("{what} is not UTF-8")))
}

pub(super) fn expect_varint(
    reader: &Reader<'_>,
    what: &str,
    value: Value<'_>,
) -> Result<u64, OnnxError> {
    match value {
        Value::Varint(v) => Ok(v),
        other => Err(wrong_wire(reader, what, &other)),
    }
}

/// Appends a repeated int64 field, packed (one length-delimited run) or not (one varint each).
pub(super) fn push_int64s(
    reader: &Reader<'_>,
    what: &str,
    value: Value<'_>,
    out: &mut Vec<i64>,
) -> Result<(), OnnxError> {
    match value {
        // Two's complement: negative int64 are encoded as 10-byte varints.
        Value::Varint(v) => out.push(v as i64),
        Value::Len(mut packed) => {
            while !packed.at_end() {
                out.push(packed.read_varint()? as i64);
            }
        }
        other => return Err(wrong_wire(reader, what, &other)),
    }
    Ok(())
}

/// Appends a repeated fixed-width field (float, double), packed or not.
pub(super) fn push_fixed<'a, const N: usize>(
    reader: &Reader<'a>,
    what: &str,
    value: Value<'a>,
    out: &mut Vec<[u8; N]>,
) -> Result<(), OnnxError> {
    match value {
        Value::Fixed32(b) if N == 4 => out.push(copy_array(&b)),
        Value::Fixed64(b) if N == 8 => out.push(copy_array(&b)),
        Value::Len(packed) => {
            let bytes = packed.rest();
            if bytes.len() % N != 0 {
                return Err(packed.error(format!("packed {what} is not a multiple of {N} bytes")));
            }
            out.extend(bytes.chunks_exact(N).map(copy_array));
        }
        other => return Err(wrong_wire(reader, what, &other)),
    }
    Ok(())
}

pub(super) fn copy_array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}
