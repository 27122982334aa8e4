//! Who is logged in, in signed mode: login challenges waiting for a signature, the session
//! tokens handed out for them, and the agent keys each wallet authorised.
//!
//! All three live in memory and are bounded (`[auth]` limits). A restart logs everyone out
//! and forgets agent authorisations: clients log in and submit their `AgentAuthorization`
//! again. Nothing here is part of the exchange's state (orders and balances never depend on
//! it), so losing it costs a round trip, never money.

use std::collections::HashMap;
use std::sync::Mutex;

use alloy::primitives::{Address, Signature};
use alloy::sol_types::Eip712Domain;

use crate::api::error::ApiError;
use crate::chain::eip712::{recover_signer, AgentAuthorization};
use crate::chain::recover::recover_address_from_msg;
use crate::config::AuthConfig;
use crate::domain::UserId;

/// A challenge waiting to be signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub user: UserId,
    pub message: String,
    pub expires_at_ms: u64,
}

/// A logged-in caller: the wallet it acts for, and the agent key that logged in for it (an
/// agent session may trade, never withdraw).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub user: UserId,
    pub agent: Option<Address>,
    pub expires_at_ms: u64,
}

/// Most `AgentAuthorization` nonces remembered per owner; past it, further authorisations
/// are refused (a bound on memory; an owner needs a handful of agents, not thousands).
pub const MAX_AGENT_NONCES: usize = 1_024;

/// One owner's agent keys (by expiry, unix seconds) and the authorisation nonces it used.
/// A nonce is good once per owner, as in the contract's `authorizeAgentBySig`, so the same
/// authorisation can be forwarded on-chain.
#[derive(Clone, Debug, Default)]
struct Grants {
    expiry_s: HashMap<Address, u64>,
    nonces: std::collections::HashSet<u64>,
}

pub struct Sessions {
    limits: AuthConfig,
    challenges: Mutex<HashMap<String, Challenge>>,
    sessions: Mutex<HashMap<String, Session>>,
    agents: Mutex<HashMap<UserId, Grants>>,
}

/// A fresh unguessable token: 256 bits from the operating system's CSPRNG, in hex. Without an
/// OS random source no token can be safe: the request is refused (503), the server stays up.
fn random_token() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| ApiError::unavailable("no_randomness", format!("the host's random source failed: {e}")))?;
    Ok(alloy::hex::encode(bytes))
}

/// Unlocks, carrying on past a poisoned lock: every update here is a single insert or
/// remove, so a panic elsewhere cannot leave a map half-changed.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Sessions {
    pub fn new(limits: AuthConfig) -> Sessions {
        Sessions { limits, challenges: Mutex::default(), sessions: Mutex::default(), agents: Mutex::default() }
    }

    /// A new login challenge for `user`: the text to sign (EIP-191 `personal_sign`) names the
    /// user, the chain, a random nonce and when it stops being accepted.
    pub fn challenge(&self, user: UserId, chain_id: u64, now_ms: u64) -> Result<(String, Challenge), ApiError> {
        let nonce = random_token()?;
        let expires_at_ms = now_ms.saturating_add(self.limits.challenge_ttl_ms);
        let message = format!(
            "hob login\n\nAddress: {}\nChain ID: {chain_id}\nNonce: {nonce}\nExpires at (ms): {expires_at_ms}",
            alloy::primitives::Address::from(user.0).to_checksum(None)
        );
        let challenge = Challenge { user, message, expires_at_ms };
        let mut challenges = lock(&self.challenges);
        if challenges.len() >= self.limits.max_challenges {
            challenges.retain(|_, c| c.expires_at_ms > now_ms);
        }
        if challenges.len() >= self.limits.max_challenges {
            return Err(ApiError::unavailable(
                "too_many_challenges",
                format!("{} login challenges are waiting; retry shortly", challenges.len()),
            ));
        }
        challenges.insert(nonce.clone(), challenge.clone());
        Ok((nonce, challenge))
    }

    /// Answers a challenge: the signature must recover to the challenge's user or to an agent
    /// it authorised. A challenge is used once, whatever the outcome.
    pub fn login(&self, nonce: &str, signature: &Signature, now_ms: u64) -> Result<(String, Session), ApiError> {
        let challenge = lock(&self.challenges)
            .remove(nonce)
            .ok_or_else(|| ApiError::unauthorized_code("unknown_challenge", "no such challenge (or it was used)"))?;
        if challenge.expires_at_ms <= now_ms {
            return Err(ApiError::unauthorized_code("challenge_expired", "the challenge expired; ask for a new one"));
        }
        let signer = recover_address_from_msg(signature, challenge.message.as_bytes()).map_err(|e| {
            ApiError::unauthorized_code("bad_signature", format!("the signature recovers nothing: {e}"))
        })?;
        let user = challenge.user;
        let agent = if signer == Address::from(user.0) {
            None
        } else if self.is_agent(user, signer, now_ms / 1_000) {
            Some(signer)
        } else {
            return Err(ApiError::unauthorized_code(
                "wrong_signer",
                format!("signed by {signer}, which is neither {user} nor an agent it authorised"),
            ));
        };
        let session = Session { user, agent, expires_at_ms: now_ms.saturating_add(self.limits.session_ttl_ms) };
        let token = random_token()?;
        let mut sessions = lock(&self.sessions);
        if sessions.len() >= self.limits.max_sessions {
            sessions.retain(|_, s| s.expires_at_ms > now_ms);
        }
        if sessions.len() >= self.limits.max_sessions {
            return Err(ApiError::unavailable("too_many_sessions", "the session table is full; retry later"));
        }
        sessions.insert(token.clone(), session.clone());
        Ok((token, session))
    }

    /// The live session a token names.
    pub fn session(&self, token: &str, now_ms: u64) -> Result<Session, ApiError> {
        let mut sessions = lock(&self.sessions);
        match sessions.get(token) {
            Some(s) if s.expires_at_ms > now_ms => Ok(s.clone()),
            Some(_) => {
                sessions.remove(token);
                Err(ApiError::unauthorized_code("session_expired", "the session expired; log in again"))
            }
            None => Err(ApiError::unauthorized("unknown session token; log in (POST /api/v1/auth/login)")),
        }
    }

    /// Records `owner`'s signed consent that `authorization.agent` may trade for it. Only the
    /// owner's own signature counts (never another agent's), the authorisation must not have
    /// expired, and its nonce must not have been used by this owner before, so an old
    /// authorisation cannot be replayed to extend or restore an agent.
    pub fn authorize_agent(
        &self,
        owner: UserId,
        authorization: &AgentAuthorization,
        signature: &Signature,
        domain: &Eip712Domain,
        now_s: u64,
    ) -> Result<(), ApiError> {
        if authorization.owner != Address::from(owner.0) {
            return Err(ApiError::forbidden(
                "not_owner",
                format!("the authorisation's owner {} is not the logged-in user {owner}", authorization.owner),
            ));
        }
        if authorization.agent == authorization.owner || authorization.agent == Address::ZERO {
            return Err(ApiError::bad_request("invalid_agent", "the agent must be another, non-zero address"));
        }
        if authorization.expiry <= now_s {
            return Err(ApiError::bad_request("authorization_expired", "the authorisation's expiry has passed"));
        }
        let signer = recover_signer(authorization, domain, signature)
            .map_err(|e| ApiError::unauthorized_code("bad_signature", e.to_string()))?;
        if signer != authorization.owner {
            return Err(ApiError::forbidden(
                "wrong_signer",
                format!("signed by {signer}; only the owner {} may authorise an agent", authorization.owner),
            ));
        }
        let mut agents = lock(&self.agents);
        let grants = agents.entry(owner).or_default();
        if grants.nonces.contains(&authorization.nonce) {
            return Err(ApiError::conflict("nonce_used", "this owner already used this authorisation nonce"));
        }
        if grants.nonces.len() >= MAX_AGENT_NONCES {
            return Err(ApiError::unprocessable(
                "too_many_authorizations",
                format!("at most {MAX_AGENT_NONCES} agent authorisations per user"),
            ));
        }
        if !grants.expiry_s.contains_key(&authorization.agent) {
            grants.expiry_s.retain(|_, expiry_s| *expiry_s > now_s);
            if grants.expiry_s.len() >= self.limits.max_agents_per_user {
                return Err(ApiError::unprocessable(
                    "too_many_agents",
                    format!("at most {} agent keys per user", self.limits.max_agents_per_user),
                ));
            }
        }
        grants.nonces.insert(authorization.nonce);
        grants.expiry_s.insert(authorization.agent, authorization.expiry);
        Ok(())
    }

    /// Whether `agent` may sign orders for `owner` now.
    pub fn is_agent(&self, owner: UserId, agent: Address, now_s: u64) -> bool {
        lock(&self.agents).get(&owner).and_then(|g| g.expiry_s.get(&agent)).is_some_and(|&expiry_s| expiry_s > now_s)
    }
}

/// Milliseconds since the Unix epoch, by the wall clock (expiries are wall-clock times the
/// client also reads).
pub fn now_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[path = "../../unit_tests/api/sessions.rs"]
mod tests;
