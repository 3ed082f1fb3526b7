//! BLAKE2b (RFC 7693), unkeyed, for the conn.log uid (tcptrace/report/zeek.py hashes with
//! Python's `hashlib.blake2b(digest_size=12)`). One hash per Zeek connection written: a
//! plain implementation, not a dependency.

const IV: [u64; 8] = [
    0x6a09e667f3bcc908,
    0xbb67ae8584caa73b,
    0x3c6ef372fe94f82b,
    0xa54ff53a5f1d36f1,
    0x510e527fade682d1,
    0x9b05688c2b3e6c1f,
    0x1f83d9abfb41bd6b,
    0x5be0cd19137e2179,
];

/// RFC 7693 section 2.7: the message word schedule of each of the 12 rounds.
const SIGMA: [[usize; 16]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
    [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
    [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
    [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
    [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
    [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
    [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
    [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
    [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
];

fn mix(v: &mut [u64; 16], a: usize, b: usize, c: usize, d: usize, x: u64, y: u64) {
    v[a] = v[a].wrapping_add(v[b]).wrapping_add(x);
    v[d] = (v[d] ^ v[a]).rotate_right(32);
    v[c] = v[c].wrapping_add(v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(24);
    v[a] = v[a].wrapping_add(v[b]).wrapping_add(y);
    v[d] = (v[d] ^ v[a]).rotate_right(16);
    v[c] = v[c].wrapping_add(v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(63);
}

/// RFC 7693 section 3.2, F.
fn compress(h: &mut [u64; 8], block: &[u8; 128], count: u128, last: bool) {
    let m: [u64; 16] = std::array::from_fn(|i| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&block[8 * i..8 * i + 8]);
        u64::from_le_bytes(word)
    });
    let mut v = [0u64; 16];
    v[..8].copy_from_slice(h);
    v[8..].copy_from_slice(&IV);
    v[12] ^= count as u64;
    v[13] ^= (count >> 64) as u64;
    if last {
        v[14] = !v[14];
    }
    for round in 0..12 {
        let s = &SIGMA[round % 10];
        mix(&mut v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
        mix(&mut v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
        mix(&mut v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
        mix(&mut v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
        mix(&mut v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
        mix(&mut v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
        mix(&mut v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
        mix(&mut v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
    }
    for i in 0..8 {
        h[i] ^= v[i] ^ v[i + 8];
    }
}

/// The unkeyed BLAKE2b digest of `message`, `N` bytes long (1..=64).
pub fn blake2b<const N: usize>(message: &[u8]) -> [u8; N] {
    assert!((1..=64).contains(&N), "BLAKE2b digests are 1 to 64 bytes");
    let mut h = IV;
    h[0] ^= 0x0101_0000 ^ N as u64; // parameter block: digest length, no key, fanout 1, depth 1
    let mut count: u128 = 0;
    let mut chunks = message.chunks(128).peekable();
    if chunks.peek().is_none() {
        compress(&mut h, &[0u8; 128], 0, true);
    }
    while let Some(chunk) = chunks.next() {
        let mut block = [0u8; 128];
        block[..chunk.len()].copy_from_slice(chunk);
        count += chunk.len() as u128;
        compress(&mut h, &block, count, chunks.peek().is_none());
    }
    let mut bytes = [0u8; 64];
    for (i, word) in h.iter().enumerate() {
        bytes[8 * i..8 * i + 8].copy_from_slice(&word.to_le_bytes());
    }
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn matches_hashlib() {
        // hashlib.blake2b(message, digest_size=12).hexdigest()
        assert_eq!(hex(&blake2b::<12>(b"")), "b8e1dda3ac0aa3820ad2990b");
        assert_eq!(hex(&blake2b::<12>(b"abc")), "48b4f1f9042a2d5033b382b5");
        assert_eq!(
            hex(&blake2b::<12>(b"10.0.0.1|40000|10.0.0.2|80|tcp|1.500000")),
            "56ebe8b3455ac0fb533ae32c"
        );
        assert_eq!(
            hex(&blake2b::<12>(&[b'x'; 200])),
            "07470b918212d42a2dee349a"
        );
    }

    #[test]
    fn rfc7693_appendix_a() {
        let digest = blake2b::<64>(b"abc");
        assert_eq!(hex(&digest[..16]), "ba80a53f981c4d0d6a2797b69f12f6e9");
    }
}
