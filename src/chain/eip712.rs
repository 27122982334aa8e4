//! The EIP-712 messages users sign, shared byte for byte with the contract
//! (`contracts/src/HobExchange.sol`): the domain, `Order`, `Withdrawal` and
//! `AgentAuthorization`. Hashing and signing here are exactly what a wallet's
//! `eth_signTypedData_v4` does, so a signature made by a browser wallet from
//! [`typed_data_json`] verifies here and on-chain, and one made here verifies in both too.

use alloy::dyn_abi::{Eip712Types, Resolver};
use alloy::primitives::{Address, Signature, B256};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use alloy::sol_types::{Eip712Domain, SolStruct};
use serde_json::{json, Map, Value};

alloy::sol! {
    /// A signed order. `side` 0 buy / 1 sell; `orderType` 0 limit / 1 market (`price` is then
    /// the worst acceptable price, 0 = no bound); `timeInForce` 0 GTC, 1 IOC, 2 FOK, 3 GTD;
    /// `price` in quote ticks, `quantity` in base lots; `expiry` unix seconds, 0 = never.
    #[derive(Debug, PartialEq, Eq, Hash)]
    struct Order {
        address trader;
        uint32 market;
        uint8 side;
        uint8 orderType;
        uint8 timeInForce;
        bool postOnly;
        uint64 price;
        uint64 quantity;
        uint16 maxFeeBps;
        uint64 nonce;
        uint64 expiry;
    }

    /// The user's half of a withdrawal; only the wallet itself may sign it, never an agent.
    #[derive(Debug, PartialEq, Eq)]
    struct Withdrawal {
        address user;
        address token;
        uint256 amount;
        uint64 nonce;
        uint64 expiry;
    }

    /// The owner's consent that `agent` may sign orders for it until `expiry`.
    #[derive(Debug, PartialEq, Eq)]
    struct AgentAuthorization {
        address owner;
        address agent;
        uint64 expiry;
        uint64 nonce;
    }
}

pub const DOMAIN_NAME: &str = "hob";
pub const DOMAIN_VERSION: &str = "1";

#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("signing failed: {0}")]
    Sign(#[from] alloy::signers::Error),
    #[error("signature does not recover to any address: {0}")]
    Recover(#[from] alloy::primitives::SignatureError),
}

/// The domain every hob message is signed under: one exchange contract on one chain.
pub fn domain(chain_id: u64, exchange: Address) -> Eip712Domain {
    alloy::sol_types::eip712_domain! {
        name: DOMAIN_NAME,
        version: DOMAIN_VERSION,
        chain_id: chain_id,
        verifying_contract: exchange,
    }
}

/// The digest a wallet signs: keccak256(0x1901 || domainSeparator || hashStruct(message)).
pub fn signing_hash<T: SolStruct>(message: &T, domain: &Eip712Domain) -> B256 {
    message.eip712_signing_hash(domain)
}

/// Signs `message` with a local key (low-s, like every wallet).
pub fn sign<T: SolStruct>(
    signer: &PrivateKeySigner,
    message: &T,
    domain: &Eip712Domain,
) -> Result<Signature, SignatureError> {
    Ok(signer.sign_hash_sync(&signing_hash(message, domain))?)
}

/// The address that signed `message`. Whether that address may sign it (the trader, or one
/// of its agents) is the caller's question. Recovered through libsecp256k1
/// ([`crate::chain::recover`]): the same address and errors as alloy's own recovery, faster.
pub fn recover_signer<T: SolStruct>(
    message: &T,
    domain: &Eip712Domain,
    signature: &Signature,
) -> Result<Address, SignatureError> {
    Ok(crate::chain::recover::recover_address(signature, &signing_hash(message, domain))?)
}

/// An order with its signature, as the user (or its agent) sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedOrder {
    pub order: Order,
    pub signature: Signature,
}

impl SignedOrder {
    pub fn sign(signer: &PrivateKeySigner, order: Order, domain: &Eip712Domain) -> Result<SignedOrder, SignatureError> {
        let signature = sign(signer, &order, domain)?;
        Ok(SignedOrder { order, signature })
    }

    pub fn signer(&self, domain: &Eip712Domain) -> Result<Address, SignatureError> {
        recover_signer(&self.order, domain, &self.signature)
    }
}

/// The domain and the three message types as `eth_signTypedData_v4` expects them, for the
/// API to serve: a client adds `primaryType` and `message` and asks the wallet to sign.
pub fn signing_schema(domain: &Eip712Domain) -> Value {
    json!({ "domain": domain_json(domain), "types": types_json() })
}

/// The complete `eth_signTypedData_v4` payload for one message. Every integer in the message
/// is a decimal string: JSON numbers above 2^53 lose precision in JavaScript wallets, and
/// nonces, prices and amounts can exceed that.
pub fn typed_data_json<T: SolStruct + MessageJson>(message: &T, domain: &Eip712Domain) -> Value {
    json!({
        "domain": domain_json(domain),
        "types": types_json(),
        "primaryType": T::NAME,
        "message": message.message_json(),
    })
}

/// A message's fields as JSON for a wallet (see [`typed_data_json`]).
pub trait MessageJson {
    fn message_json(&self) -> Value;
}

impl MessageJson for Order {
    fn message_json(&self) -> Value {
        json!({
            "trader": self.trader.to_checksum(None),
            "market": self.market.to_string(),
            "side": self.side.to_string(),
            "orderType": self.orderType.to_string(),
            "timeInForce": self.timeInForce.to_string(),
            "postOnly": self.postOnly,
            "price": self.price.to_string(),
            "quantity": self.quantity.to_string(),
            "maxFeeBps": self.maxFeeBps.to_string(),
            "nonce": self.nonce.to_string(),
            "expiry": self.expiry.to_string(),
        })
    }
}

impl MessageJson for Withdrawal {
    fn message_json(&self) -> Value {
        json!({
            "user": self.user.to_checksum(None),
            "token": self.token.to_checksum(None),
            "amount": self.amount.to_string(),
            "nonce": self.nonce.to_string(),
            "expiry": self.expiry.to_string(),
        })
    }
}

impl MessageJson for AgentAuthorization {
    fn message_json(&self) -> Value {
        json!({
            "owner": self.owner.to_checksum(None),
            "agent": self.agent.to_checksum(None),
            "expiry": self.expiry.to_string(),
            "nonce": self.nonce.to_string(),
        })
    }
}

fn domain_json(domain: &Eip712Domain) -> Value {
    let mut fields = Map::new();
    if let Some(name) = &domain.name {
        fields.insert("name".into(), name.as_ref().into());
    }
    if let Some(version) = &domain.version {
        fields.insert("version".into(), version.as_ref().into());
    }
    if let Some(chain_id) = domain.chain_id {
        // A number, as wallets compare it with the connected chain's id; chain ids are small.
        fields.insert("chainId".into(), chain_id.to::<u64>().into());
    }
    if let Some(contract) = domain.verifying_contract {
        fields.insert("verifyingContract".into(), contract.to_checksum(None).into());
    }
    Value::Object(fields)
}

/// `EIP712Domain` plus the message types, generated from the `sol!` definitions above so the
/// JSON cannot drift from what is hashed.
fn types_json() -> Value {
    let mut resolver = Resolver::from_struct::<Order>();
    resolver.ingest_sol_struct::<Withdrawal>();
    resolver.ingest_sol_struct::<AgentAuthorization>();
    let mut types = Map::new();
    for (name, props) in &Eip712Types::from(&resolver) {
        let fields = props.iter().map(|p| json!({ "name": p.name(), "type": p.type_name() })).collect();
        types.insert(name.clone(), Value::Array(fields));
    }
    // The same fields `domain()` fills in, in the standard order.
    types.insert(
        "EIP712Domain".into(),
        json!([
            { "name": "name", "type": "string" },
            { "name": "version", "type": "string" },
            { "name": "chainId", "type": "uint256" },
            { "name": "verifyingContract", "type": "address" },
        ]),
    );
    Value::Object(types)
}

#[cfg(test)]
#[path = "../../unit_tests/chain/eip712.rs"]
mod tests;
