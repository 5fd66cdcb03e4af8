//! The fuzz's seeded randomness (by seed, batch and role).

/// xorshift64*, seeded through splitmix64.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True one time in `n`.
    pub(super) fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    pub(super) fn pick<T: Clone>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize].clone()
    }

    /// An index into `weights`, chosen by weight.
    pub(super) fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut r = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if r < u64::from(w) {
                return i;
            }
            r -= u64::from(w);
        }
        0
    }

    /// An "interesting" integer: edges, small numbers, or anything.
    pub(super) fn int(&mut self) -> i64 {
        match self.below(4) {
            0 => self.pick(&[
                0,
                1,
                -1,
                2,
                -2,
                3,
                7,
                8,
                63,
                64,
                65,
                127,
                128,
                255,
                256,
                1023,
                1024,
                4095,
                4096,
                4097,
                65534,
                65535,
                65536,
                i64::from(i32::MAX),
                i64::from(i32::MIN),
                i64::from(u32::MAX),
                1 << 32,
                i64::MAX,
                i64::MIN,
            ]),
            1 => self.below(8) as i64,
            2 => self.below(70_000) as i64 - 1000,
            _ => self.next() as i64,
        }
    }

    /// Random bytes of a random length, from 0 to more than a page.
    pub(super) fn bytes(&mut self) -> Vec<u8> {
        let len = match self.below(6) {
            0 => self.pick(&[0usize, 1, 2, 4095, 4096, 4097, 8192, 65536]),
            1 => self.below(300) as usize,
            _ => self.below(24) as usize,
        };
        let printable = self.one_in(2);
        (0..len)
            .map(|_| {
                if printable {
                    self.pick(b"0123456789 -abcdeghinorstvwxyz\n,=\t")
                } else {
                    self.next() as u8
                }
            })
            .collect()
    }
}

/// Runs the body of a forked child: a panic (a fuzzer bug) ends the child
/// with exit code 99 instead of unwinding into the parent's code.
pub(super) fn child(f: impl FnOnce() -> i32) -> i32 {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(99)
}

/// The seed of one process of one batch.
pub(super) fn sub_seed(seed: u64, batch: u64, role: u64) -> u64 {
    Rng::new(seed ^ batch.wrapping_mul(0x1000_0001) ^ role.wrapping_mul(0x7777_0000_0001)).next()
}
