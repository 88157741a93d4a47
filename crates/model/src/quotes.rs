//! One pass over a JSON line, sixteen bytes at a time, before it is parsed: where its quotes are,
//! and whether it has a backslash, a control byte or a non-ASCII byte anywhere.
//!
//! A line without a backslash has no escaped quote, so each string ends at the next quote, found
//! in the bit map with one `trailing_zeros` however long the string is. The scanners of verify
//! and replay walked every string eight bytes at a time instead (`json_ascii_run`, a call and a
//! tail per string): the map took 4.5% off replay and under 2% off verify, whose cost was the
//! walk's dependency chain (bench/FINDINGS.md, round 15). A line with a backslash is left to
//! that walk.

/// Bit `i % 64` of word `i / 64` is set when byte `i` of the line is `"`.
pub struct QuoteMap<'a> {
    words: &'a [u64],
    /// The line has a `\\` somewhere: quotes may be escaped, so the map says nothing of where
    /// strings end.
    pub backslash: bool,
    /// The line has a byte below 0x20 somewhere (never in canonical JSON, nor in a string
    /// of any JSON).
    pub control: bool,
    /// The line has a byte above 0x7f somewhere (valid JSON has one only inside a string).
    pub non_ascii: bool,
}

/// Words needed for a line of `len` bytes.
fn quote_words(len: usize) -> usize {
    len.div_ceil(64)
}

/// Runs `f` with the map of `line`, kept on the stack for lines up to 1 KiB (most records) and
/// in a heap buffer for longer ones.
pub fn with_quote_map<R>(line: &[u8], f: impl FnOnce(&QuoteMap<'_>) -> R) -> R {
    let mut small = [0u64; 16];
    let mut large = Vec::new();
    let words = if quote_words(line.len()) <= small.len() {
        &mut small[..]
    } else {
        large.resize(quote_words(line.len()), 0);
        &mut large[..]
    };
    f(&QuoteMap::new(line, words))
}

impl<'a> QuoteMap<'a> {
    /// Classifies `line` into `words` (at least [`quote_words`] of its length; panics if fewer).
    fn new(line: &[u8], words: &'a mut [u64]) -> QuoteMap<'a> {
        let words = &mut words[..quote_words(line.len())];
        let mut flags = Flags::default();
        let (blocks, tail) = line.as_chunks::<64>();
        for (w, block) in words.iter_mut().zip(blocks) {
            *w = classify(block, &mut flags);
        }
        if !tail.is_empty() {
            // Padded with a byte that is none of the four kinds.
            let mut block = [b' '; 64];
            block[..tail.len()].copy_from_slice(tail);
            if let Some(w) = words.last_mut() {
                *w = classify(&block, &mut flags);
            }
        }
        QuoteMap {
            words,
            backslash: flags.backslash,
            control: flags.control,
            non_ascii: flags.non_ascii,
        }
    }

    /// The first quote at or after byte `from`.
    #[inline]
    pub fn next_quote(&self, from: usize) -> Option<usize> {
        let mut k = from / 64;
        let mut w = *self.words.get(k)? & (u64::MAX << (from % 64));
        loop {
            if w != 0 {
                return Some(k * 64 + w.trailing_zeros() as usize);
            }
            k += 1;
            w = *self.words.get(k)?;
        }
    }
}

#[derive(Default)]
struct Flags {
    backslash: bool,
    control: bool,
    non_ascii: bool,
}

/// The quote bits of one 64-byte block; the other kinds are or-ed into `flags`.
#[cfg(target_arch = "x86_64")]
#[inline]
fn classify(block: &[u8; 64], flags: &mut Flags) -> u64 {
    // SAFETY: SSE2 is part of the x86-64 baseline: every x86-64 CPU has it.
    unsafe { classify_sse2(block, flags) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn classify_sse2(block: &[u8; 64], flags: &mut Flags) -> u64 {
    use std::arch::x86_64::{
        __m128i, _mm_andnot_si128, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128,
        _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8, _mm_setzero_si128,
    };
    let quote = _mm_set1_epi8(b'"' as i8);
    let bs = _mm_set1_epi8(b'\\' as i8);
    let space = _mm_set1_epi8(0x20);
    let (mut any_bs, mut any_ctl, mut high) = (_mm_setzero_si128(), _mm_setzero_si128(), 0);
    let mut word = 0u64;
    for (j, lane) in block.chunks_exact(16).enumerate() {
        // SAFETY: `lane` is 16 readable bytes; the load has no alignment requirement.
        let x = unsafe { _mm_loadu_si128(lane.as_ptr().cast::<__m128i>()) };
        word |= u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(x, quote)) as u16) << (16 * j);
        any_bs = _mm_or_si128(any_bs, _mm_cmpeq_epi8(x, bs));
        // Signed: below 0x20 is a control byte or (negative) a byte above 0x7f; the latter's
        // own sign bit takes it out again.
        any_ctl = _mm_or_si128(any_ctl, _mm_andnot_si128(x, _mm_cmplt_epi8(x, space)));
        high |= _mm_movemask_epi8(x);
    }
    flags.backslash |= _mm_movemask_epi8(any_bs) != 0;
    flags.control |= _mm_movemask_epi8(any_ctl) != 0;
    flags.non_ascii |= high != 0;
    word
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn classify(block: &[u8; 64], flags: &mut Flags) -> u64 {
    classify_bytes(block, flags)
}

/// The byte-at-a-time classification, for other architectures and as the tests' reference.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn classify_bytes(block: &[u8; 64], flags: &mut Flags) -> u64 {
    let mut word = 0;
    for (j, &c) in block.iter().enumerate() {
        word |= u64::from(c == b'"') << j;
        flags.backslash |= c == b'\\';
        flags.control |= c < 0x20;
        flags.non_ascii |= c > 0x7f;
    }
    word
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(line: &[u8]) -> (Vec<usize>, bool, bool, bool) {
        let quotes = (0..line.len()).filter(|&i| line[i] == b'"').collect();
        (
            quotes,
            line.contains(&b'\\'),
            line.iter().any(|&c| c < 0x20),
            line.iter().any(|&c| c > 0x7f),
        )
    }

    /// Every byte value at every offset of lines around the block and lane sizes: the quotes
    /// found one by one and the three flags agree with a byte-at-a-time reading.
    #[test]
    fn the_map_agrees_with_a_byte_at_a_time_reading() {
        for len in [0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 200] {
            for at in 0..len {
                for c in 0..=255u8 {
                    let mut line: Vec<u8> = (0..len).map(|i| b"ab\"c"[i % 4]).collect();
                    line[at] = c;
                    let mut words = vec![0; quote_words(len)];
                    let map = QuoteMap::new(&line, &mut words);
                    let (quotes, bs, ctl, hi) = reference(&line);
                    assert_eq!(
                        (map.backslash, map.control, map.non_ascii),
                        (bs, ctl, hi),
                        "{len} {at} {c}"
                    );
                    let mut found = Vec::new();
                    let mut from = 0;
                    while let Some(q) = map.next_quote(from) {
                        found.push(q);
                        from = q + 1;
                    }
                    assert_eq!(found, quotes, "{len} {at} {c}");
                    let mut flags = Flags::default();
                    let mut block = [b' '; 64];
                    let n = line.len().min(64);
                    block[..n].copy_from_slice(&line[..n]);
                    let bits = classify_bytes(&block, &mut flags);
                    assert_eq!(bits, words_of(&line), "{len} {at} {c}");
                }
            }
        }
    }

    fn words_of(line: &[u8]) -> u64 {
        (0..line.len().min(64)).fold(0, |w, i| w | (u64::from(line[i] == b'"') << i))
    }
}
