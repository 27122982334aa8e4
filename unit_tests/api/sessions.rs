//! Unit tests of `src/api/sessions.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;

fn sessions() -> Sessions {
    Sessions::new(AuthConfig { challenge_ttl_ms: 1_000, session_ttl_ms: 5_000, ..AuthConfig::default() })
}

#[test]
fn a_signed_challenge_logs_in_once_and_the_session_expires() {
    let s = sessions();
    let key = PrivateKeySigner::random();
    let user = UserId(key.address().into_array());
    let (nonce, challenge) = s.challenge(user, 31_337, 10_000).unwrap();
    let signature = key.sign_message_sync(challenge.message.as_bytes()).unwrap();
    let (token, session) = s.login(&nonce, &signature, 10_500).unwrap();
    assert_eq!((session.user, session.agent, session.expires_at_ms), (user, None, 15_500));
    assert_eq!(s.session(&token, 15_499).unwrap().user, user);
    assert_eq!(s.session(&token, 15_500).unwrap_err().code, "session_expired");
    assert_eq!(s.login(&nonce, &signature, 10_600).unwrap_err().code, "unknown_challenge", "used once");
}

#[test]
fn a_late_or_foreign_answer_is_refused() {
    let s = sessions();
    let key = PrivateKeySigner::random();
    let user = UserId(key.address().into_array());
    let (nonce, challenge) = s.challenge(user, 31_337, 10_000).unwrap();
    let signature = key.sign_message_sync(challenge.message.as_bytes()).unwrap();
    assert_eq!(s.login(&nonce, &signature, 11_000).unwrap_err().code, "challenge_expired");
    let (nonce, challenge) = s.challenge(user, 31_337, 10_000).unwrap();
    let other = PrivateKeySigner::random().sign_message_sync(challenge.message.as_bytes()).unwrap();
    assert_eq!(s.login(&nonce, &other, 10_001).unwrap_err().code, "wrong_signer");
}
