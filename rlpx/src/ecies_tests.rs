//! Unit tests of `ecies`.
use super::*;
use rand::SeedableRng;

#[test]
fn roundtrip_with_auth_data() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let key = SecretKey::new(&mut rng);
    let public = PublicKey::from_secret_key_global(&key);
    let ct = encrypt(&mut rng, &public, b"hello ecies", b"ad");
    assert_eq!(ct.len(), OVERHEAD + 11);
    assert_eq!(decrypt(&key, &ct, b"ad").unwrap(), b"hello ecies");
    assert_eq!(decrypt(&key, &ct, b"xx"), Err(Error::TagMismatch));
}

#[test]
fn short_and_tampered_inputs_are_errors() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    let key = SecretKey::new(&mut rng);
    for n in 0..OVERHEAD {
        assert_eq!(decrypt(&key, &vec![4u8; n], &[]), Err(Error::TooShort(n)));
    }
    let public = PublicKey::from_secret_key_global(&key);
    let mut ct = encrypt(&mut rng, &public, b"", &[]);
    assert!(decrypt(&key, &ct, &[]).unwrap().is_empty());
    ct[70] ^= 1;
    assert_eq!(decrypt(&key, &ct, &[]), Err(Error::TagMismatch));
    ct[0] = 9;
    assert_eq!(decrypt(&key, &ct, &[]), Err(Error::InvalidPublicKey));
}
