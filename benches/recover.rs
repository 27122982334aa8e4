//! Signer recovery of one signed order, as the order path does it: alloy's default backend
//! (k256, pure Rust) against libsecp256k1 (`hob::chain::recover`), plus the EIP-712 signing
//! hash both start from.
//!
//! `cargo bench --bench recover`.

use alloy::primitives::{address, B256};
use alloy::signers::local::PrivateKeySigner;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use hob::chain::eip712::{domain, signing_hash, Order, SignedOrder};
use hob::chain::recover::recover_address;

fn bench(c: &mut Criterion) {
    let signer = PrivateKeySigner::from_bytes(&B256::repeat_byte(7)).expect("a valid scalar");
    let domain = domain(31_337, address!("0x5FbDB2315678afecb367f032d93F642f64180aa3"));
    let order = Order {
        trader: signer.address(),
        market: 1,
        side: 0,
        orderType: 0,
        timeInForce: 0,
        postOnly: false,
        price: 10_000,
        quantity: 5,
        maxFeeBps: 30,
        nonce: 42,
        expiry: 0,
    };
    let signed = SignedOrder::sign(&signer, order, &domain).expect("signing");
    let prehash = signing_hash(&signed.order, &domain);
    c.bench_function("eip712 signing hash (Order)", |b| b.iter(|| signing_hash(black_box(&signed.order), &domain)));
    c.bench_function("recover k256 (alloy default)", |b| {
        b.iter(|| black_box(&signed.signature).recover_address_from_prehash(black_box(&prehash)))
    });
    c.bench_function("recover libsecp256k1 (chain::recover)", |b| {
        b.iter(|| recover_address(black_box(&signed.signature), black_box(&prehash)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
