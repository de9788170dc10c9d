//! Small pseudo-random helpers: payload bytes, name suffixes and secrets.

use std::fmt::Write as _;

use identity_core::Clock;

/// A splitmix64 generator. Fast and reproducible for a given seed; used for demo payloads and
/// container-name suffixes, where unpredictability does not matter. Secrets come from
/// [`random_secret`], which uses the operating system's generator.
#[derive(Clone, Debug)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator starting at `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A generator seeded from the wall clock and the process id, so that two runs (or two
    /// tests in one process) pick different container names.
    pub fn from_time(clock: &dyn Clock) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = clock
            .now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        // Truncation keeps the fast-moving low bits, which is all a seed needs.
        #[allow(
            clippy::cast_possible_truncation,
            reason = "low bits are enough for a seed"
        )]
        let seed = (nanos as u64)
            ^ (u64::from(std::process::id()) << 32)
            ^ COUNTER
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `len` pseudo-random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// `len` lower-case letters and digits, valid in a container name.
    pub fn suffix(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        (0..len)
            .map(|_| {
                let i = usize::try_from(self.next_u64() % ALPHABET.len() as u64).unwrap_or(0);
                char::from(ALPHABET[i])
            })
            .collect()
    }
}

/// 32 hex characters from the operating system's secure generator (ring), for the local
/// managed-identity endpoint's `X-IDENTITY-HEADER` secret.
///
/// # Errors
/// When the operating system's generator fails.
pub fn random_secret() -> Result<String, std::io::Error> {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut buf = [0u8; 16];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| std::io::Error::other("the system random generator failed"))?;
    let mut out = String::with_capacity(32);
    for b in buf {
        let _ = write!(out, "{b:02x}");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_bytes() {
        assert_eq!(SplitMix::new(7).bytes(100), SplitMix::new(7).bytes(100));
        assert_ne!(SplitMix::new(7).bytes(100), SplitMix::new(8).bytes(100));
        assert_eq!(SplitMix::new(1).bytes(13).len(), 13);
    }

    #[test]
    fn suffixes_are_lower_case_alphanumeric() {
        let s = SplitMix::new(42).suffix(12);
        assert_eq!(s.len(), 12);
        assert!(
            s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
    }

    #[test]
    fn secrets_are_32_hex_characters_and_differ() {
        let a = random_secret().unwrap();
        let b = random_secret().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
