//! Unpredictable numbers for jitter and identifiers, from std's per-process random hash keys.
//! Nothing here needs cryptographic strength, so no RNG crate is pulled in for it.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// A random 64-bit number. Each `RandomState::new()` gets fresh keys (seeded from the OS once
/// per thread, then incremented), so successive calls differ.
pub fn random_u64() -> u64 {
    RandomState::new().build_hasher().finish()
}

/// `words` random 64-bit numbers as lowercase hex (16 digits each).
pub fn random_hex(words: usize) -> String {
    (0..words)
        .map(|_| format!("{:016x}", random_u64()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successive_values_differ() {
        let values: std::collections::HashSet<u64> = (0..1000).map(|_| random_u64()).collect();
        assert_eq!(values.len(), 1000);
        assert_eq!(random_hex(2).len(), 32);
    }
}
