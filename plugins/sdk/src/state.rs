//! A small, explicit encoding for the state an audio stage carries between
//! blocks: little-endian numbers and length-prefixed lists, written and read
//! in the same order. Any encoding works (the host never looks inside); this
//! one has no dependencies and fails loudly on a short or foreign state.
//!
//! ```
//! use voxpipe_plugin_sdk::state::{Reader, Writer};
//! let bytes = Writer::new().u64(7).f64(-1.5).f32s(&[0.25, 0.5]).finish();
//! let mut r = Reader::new(&bytes);
//! assert_eq!(r.u64().unwrap(), 7);
//! assert_eq!(r.f64().unwrap(), -1.5);
//! assert_eq!(r.f32s().unwrap(), vec![0.25, 0.5]);
//! r.end().unwrap();
//! ```

use crate::StageError;

/// Writes a state.
#[derive(Debug, Default)]
pub struct Writer(Vec<u8>);

impl Writer {
    pub fn new() -> Self {
        Writer(Vec::new())
    }
    pub fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn f32(mut self, v: f32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn f64(mut self, v: f64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A length-prefixed list of f32.
    pub fn f32s(mut self, v: &[f32]) -> Self {
        self = self.u64(v.len() as u64);
        for x in v {
            self.0.extend_from_slice(&x.to_le_bytes());
        }
        self
    }
    /// A length-prefixed list of f64.
    pub fn f64s(mut self, v: &[f64]) -> Self {
        self = self.u64(v.len() as u64);
        for x in v {
            self.0.extend_from_slice(&x.to_le_bytes());
        }
        self
    }
    pub fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// Reads a state written by [`Writer`]; every read fails with a plugin
/// fault when the state is shorter than asked.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StageError> {
        if self.bytes.len() < n {
            return Err(StageError::PluginFault(
                "the carried state is shorter than this plugin wrote it".into(),
            ));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, StageError> {
        Ok(self.take(1)?[0])
    }
    pub fn u64(&mut self) -> Result<u64, StageError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    pub fn f32(&mut self) -> Result<f32, StageError> {
        Ok(f32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    pub fn f64(&mut self) -> Result<f64, StageError> {
        Ok(f64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn len(&mut self, item: usize) -> Result<usize, StageError> {
        let n = self.u64()?;
        if n > (self.bytes.len() / item) as u64 {
            return Err(StageError::PluginFault(
                "the carried state holds a list longer than itself".into(),
            ));
        }
        Ok(n as usize)
    }
    pub fn f32s(&mut self) -> Result<Vec<f32>, StageError> {
        let n = self.len(4)?;
        Ok(self
            .take(n * 4)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect())
    }
    pub fn f64s(&mut self) -> Result<Vec<f64>, StageError> {
        let n = self.len(8)?;
        Ok(self
            .take(n * 8)?
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect())
    }
    /// Everything was read: a longer state is a fault too.
    pub fn end(&self) -> Result<(), StageError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(StageError::PluginFault(
                "the carried state is longer than this plugin wrote it".into(),
            ))
        }
    }
}
