//! A piece of a page's bytes, held as they are or packed (LZ4).
//!
//! The store keeps every block of exposition text it serves; at a million
//! series those blocks are the page itself, 85 MB. Above a size the store
//! chooses, blocks are kept packed (metrics text packs about 5:1) and
//! unpacked only where their bytes are needed: a plain scrape unpacks each
//! chunk as it is written, the gzip body only the runs that changed.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;

/// Shortest text worth packing: below it the saving is a few bytes and the
/// unpacking a fixed cost per chunk.
const MIN_PACKED: usize = 256;

/// Exposition bytes, plain or packed. Cloning shares the buffer.
#[derive(Clone, Default)]
pub struct Chunk {
    /// The bytes as held: the text itself, or its LZ4 block.
    stored: Bytes,
    /// Length of the text.
    len: usize,
    packed: bool,
}

impl Chunk {
    /// `text` as it is.
    pub fn plain(text: Bytes) -> Chunk {
        Chunk {
            len: text.len(),
            stored: text,
            packed: false,
        }
    }

    /// `text` packed, or as it is when packing would not save a quarter of
    /// it (or it is too short to bother).
    pub fn pack(text: &Bytes) -> Chunk {
        if text.len() < MIN_PACKED {
            return Chunk::plain(text.clone());
        }
        let packed = lz4_flex::compress(text);
        if packed.len() > text.len() / 4 * 3 {
            return Chunk::plain(text.clone());
        }
        Chunk {
            stored: Bytes::from(packed),
            len: text.len(),
            packed: true,
        }
    }

    /// This chunk packed (a copy of the handle when it already is).
    pub fn packed(&self) -> Chunk {
        if self.packed {
            self.clone()
        } else {
            Chunk::pack(&self.stored)
        }
    }

    /// Length of the text in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the chunk is held packed.
    pub fn is_packed(&self) -> bool {
        self.packed
    }

    /// Bytes held in memory for it.
    pub fn stored_len(&self) -> usize {
        self.stored.len()
    }

    /// The text: shared when plain, unpacked into a new buffer when packed.
    pub fn bytes(&self) -> Bytes {
        if self.packed {
            Bytes::from(self.unpack())
        } else {
            self.stored.clone()
        }
    }

    /// The text, borrowed when plain.
    pub fn text(&self) -> Cow<'_, [u8]> {
        if self.packed {
            Cow::Owned(self.unpack())
        } else {
            Cow::Borrowed(&self.stored)
        }
    }

    /// Appends the text to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        if self.packed {
            let at = out.len();
            out.resize(at + self.len, 0);
            let n = lz4_flex::decompress_into(&self.stored, &mut out[at..])
                .expect("a chunk unpacks to the text it was packed from");
            assert_eq!(n, self.len, "a chunk unpacks to its length");
        } else {
            out.extend_from_slice(&self.stored);
        }
    }

    /// Whether `self` and `other` hold the same buffer (the same text,
    /// without reading it).
    pub fn same_buffer(&self, other: &Chunk) -> bool {
        self.packed == other.packed
            && self.stored.len() == other.stored.len()
            && self.stored.as_ptr() == other.stored.as_ptr()
    }

    /// Where the held buffer starts: the identity of [`Self::same_buffer`].
    pub fn buffer_id(&self) -> usize {
        self.stored.as_ptr() as usize
    }

    fn unpack(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        self.write_to(&mut out);
        out
    }
}

impl From<Bytes> for Chunk {
    fn from(text: Bytes) -> Chunk {
        Chunk::plain(text)
    }
}

impl From<Vec<u8>> for Chunk {
    fn from(text: Vec<u8>) -> Chunk {
        Chunk::plain(Bytes::from(text))
    }
}

impl From<&'static str> for Chunk {
    fn from(text: &'static str) -> Chunk {
        Chunk::plain(Bytes::from_static(text.as_bytes()))
    }
}

/// Equal when the texts are (packed or not).
impl PartialEq for Chunk {
    fn eq(&self, other: &Chunk) -> bool {
        self.len == other.len && (self.same_buffer(other) || self.text() == other.text())
    }
}

impl Eq for Chunk {}

impl fmt::Debug for Chunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.packed {
            write!(
                f,
                "Chunk(packed {} → {} bytes)",
                self.len,
                self.stored.len()
            )
        } else {
            write!(f, "Chunk({:?})", self.stored)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(series: usize) -> Bytes {
        let mut s = String::new();
        for i in 0..series {
            s.push_str(&format!(
                "http_requests_total{{app=\"app{:04}\",route=\"/api/v1/items{i}\"}} {}\n",
                i % 7,
                i * 31
            ));
        }
        Bytes::from(s)
    }

    #[test]
    fn a_packed_chunk_gives_back_its_text_every_way() {
        let text = page(200);
        let c = Chunk::pack(&text);
        assert!(c.is_packed());
        assert!(
            c.stored_len() * 3 < text.len(),
            "metrics text packs well: {} of {}",
            c.stored_len(),
            text.len()
        );
        assert_eq!(c.len(), text.len());
        assert_eq!(c.bytes(), text);
        assert_eq!(&*c.text(), &text[..]);
        let mut out = b"before ".to_vec();
        c.write_to(&mut out);
        assert_eq!(&out[7..], &text[..]);
        assert_eq!(c, Chunk::plain(text.clone()));
        assert_eq!(c.packed(), c);
        assert!(c.packed().same_buffer(&c));
    }

    #[test]
    fn short_or_random_text_stays_plain() {
        let short = Bytes::from_static(b"up 1\n");
        assert!(!Chunk::pack(&short).is_packed());
        // Bytes that do not repeat do not pack.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let noise = Bytes::from(noise);
        let c = Chunk::pack(&noise);
        assert!(!c.is_packed());
        assert!(c.same_buffer(&Chunk::plain(noise)));
    }

    #[test]
    fn buffers_are_told_apart_by_identity_and_texts_by_content() {
        let a = Chunk::pack(&page(100));
        let b = Chunk::pack(&page(100));
        assert!(!a.same_buffer(&b), "two packings are two buffers");
        assert_eq!(a, b, "of the same text");
        assert_ne!(a, Chunk::pack(&page(101)));
        assert!(format!("{a:?}").contains("packed"));
    }
}
