//! Little binary encoders for what vigil keeps in RocksDB: big-endian integers, length-prefixed
//! strings and byte strings. The layouts built from these are written down in `docs/format.md`.
//!
//! Decoding never panics: a short or malformed buffer is an error that says what was expected.

/// Appends encoded values to a byte vector.
#[derive(Debug, Default)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Self {
        Encoder::default()
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// A `u32` length, then the bytes.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u32(v.len() as u32);
        self.buf.extend_from_slice(v);
        self
    }

    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads values back from a byte slice; every read says what it was reading when it fails.
#[derive(Debug)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

pub type DecodeResult<T> = std::result::Result<T, String>;

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Decoder { buf, pos: 0 }
    }

    fn take(&mut self, n: usize, what: &str) -> DecodeResult<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            return Err(format!(
                "truncated while reading {what}: needed {n} bytes at offset {}, {} left",
                self.pos,
                self.buf.len() - self.pos
            ));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> DecodeResult<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub fn u8(&mut self, what: &str) -> DecodeResult<u8> {
        Ok(self.take(1, what)?[0])
    }

    pub fn u32(&mut self, what: &str) -> DecodeResult<u32> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub fn u64(&mut self, what: &str) -> DecodeResult<u64> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    pub fn i64(&mut self, what: &str) -> DecodeResult<i64> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    pub fn bytes(&mut self, what: &str) -> DecodeResult<&'a [u8]> {
        let len = self.u32(what)? as usize;
        self.take(len, what)
    }

    pub fn str(&mut self, what: &str) -> DecodeResult<&'a str> {
        let bytes = self.bytes(what)?;
        std::str::from_utf8(bytes).map_err(|e| format!("{what} is not UTF-8: {e}"))
    }

    /// Fails if bytes are left over, which means the layout is not the one expected.
    pub fn finish(&self, what: &str) -> DecodeResult<()> {
        if self.pos != self.buf.len() {
            return Err(format!(
                "{} unexpected trailing bytes after {what}",
                self.buf.len() - self.pos
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut e = Encoder::new();
        e.u8(7)
            .u32(42)
            .u64(u64::MAX)
            .i64(-5)
            .str("pod-ä")
            .bytes(&[1, 2, 3]);
        let buf = e.finish();
        let mut d = Decoder::new(&buf);
        assert_eq!(d.u8("a"), Ok(7));
        assert_eq!(d.u32("b"), Ok(42));
        assert_eq!(d.u64("c"), Ok(u64::MAX));
        assert_eq!(d.i64("d"), Ok(-5));
        assert_eq!(d.str("e"), Ok("pod-ä"));
        assert_eq!(d.bytes("f"), Ok(&[1u8, 2, 3][..]));
        assert!(d.finish("all").is_ok());
    }

    #[test]
    fn truncation_is_an_error_that_names_the_field() {
        let mut e = Encoder::new();
        e.str("namespace");
        let buf = e.finish();
        for cut in 0..buf.len() {
            let err = Decoder::new(&buf[..cut]).str("pod name").unwrap_err();
            assert!(err.contains("pod name"), "{err}");
        }
    }

    #[test]
    fn invalid_utf8_is_reported() {
        let mut e = Encoder::new();
        e.bytes(&[0xff, 0xfe]);
        let buf = e.finish();
        let err = Decoder::new(&buf).str("cluster").unwrap_err();
        assert!(err.contains("cluster is not UTF-8"), "{err}");
    }
}
