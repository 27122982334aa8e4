//! Signer recovery through libsecp256k1 (the `secp256k1` crate, C, with precomputed tables),
//! which recovers a key several times faster than alloy's default backend, k256 (pure Rust).
//! Every signed order is recovered once on the order path, so this is the server's largest
//! single CPU cost per order.
//!
//! The result must be exactly what alloy recovers, errors included, so the rules are alloy's:
//! a high `s` is first normalised to `n - s` with the parity flipped (alloy accepts both
//! forms, as `ecrecover` does), the recovery id is the parity (0 or 1), and the address is the
//! last 20 bytes of keccak256 of the uncompressed key. Any signature libsecp256k1 refuses
//! (r or s zero or out of range, no curve point for r) is handed to alloy's k256 path, so the
//! typed error and its text are alloy's own, and a malformed signature costs what it did
//! before.

use alloy::primitives::{Address, Signature, B256};
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message, SECP256K1};

/// The address whose key made `signature` over the 32-byte digest `prehash`; the same answer,
/// and the same error, as `signature.recover_address_from_prehash(prehash)`.
pub fn recover_address(signature: &Signature, prehash: &B256) -> Result<Address, alloy::primitives::SignatureError> {
    match recover_fast(signature, prehash) {
        Some(address) => Ok(address),
        // Refused by libsecp256k1: alloy decides, so the error is exactly the one it gives.
        None => signature.recover_address_from_prehash(prehash),
    }
}

/// The EIP-191 (`personal_sign`) variant: the same as `signature.recover_address_from_msg(msg)`.
pub fn recover_address_from_msg(
    signature: &Signature,
    msg: impl AsRef<[u8]>,
) -> Result<Address, alloy::primitives::SignatureError> {
    recover_address(signature, &alloy::primitives::eip191_hash_message(msg))
}

fn recover_fast(signature: &Signature, prehash: &B256) -> Option<Address> {
    let sig = signature.normalized_s();
    let mut compact = [0u8; 64];
    compact[..32].copy_from_slice(&sig.r().to_be_bytes::<32>());
    compact[32..].copy_from_slice(&sig.s().to_be_bytes::<32>());
    let recid = if sig.v() { RecoveryId::One } else { RecoveryId::Zero };
    let recoverable = RecoverableSignature::from_compact(&compact, recid).ok()?;
    let key = SECP256K1.recover_ecdsa(Message::from_digest(prehash.0), &recoverable).ok()?;
    // Byte 0 of the uncompressed form is the 0x04 tag; the address hashes the 64 after it.
    Some(Address::from_raw_public_key(&key.serialize_uncompressed()[1..]))
}

#[cfg(test)]
#[path = "../../unit_tests/chain/recover.rs"]
mod tests;
