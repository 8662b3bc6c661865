//! Randomness from the OS for seeds, keys and ids. A failure leaves zeros: a predictable
//! scan order or query id is a nuisance, not a reason to refuse a scan.

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    let _ = getrandom::getrandom(&mut b);
    b
}

pub fn random_u64() -> u64 {
    u64::from_le_bytes(random_bytes())
}
