//! Unit tests of `src/chain/tools.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;

#[test]
fn a_missing_install_tells_the_user_to_run_make_tools() {
    let root = Path::new("/nonexistent-hob-root");
    let err = resolve_anvil(None, root).unwrap_err();
    assert_eq!(err, ToolError::AnvilNotInstalled(root.join(ANVIL_IN_REPO)));
    assert!(err.to_string().contains("run `make tools`"), "{err}");
}

#[test]
fn the_override_wins_and_must_exist() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let found = resolve_anvil(Some(file.path().into()), Path::new("/nonexistent-hob-root")).unwrap();
    assert_eq!(found, file.path());

    let missing = PathBuf::from("/nonexistent-hob-root/anvil");
    let err = resolve_anvil(Some(missing.clone().into()), &repo_root()).unwrap_err();
    assert_eq!(err, ToolError::AnvilOverrideMissing(missing));
}

#[test]
fn an_empty_override_is_ignored() {
    let root = Path::new("/nonexistent-hob-root");
    assert_eq!(resolve_anvil(Some(OsString::new()), root), Err(ToolError::AnvilNotInstalled(root.join(ANVIL_IN_REPO))));
}
