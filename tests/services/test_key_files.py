"""The two key files say what they protect, and a home made under the old names is renamed."""

from __future__ import annotations

from pathlib import Path

from cloudtune.services.key_files import SECRETS_ENCRYPTION_KEY, TOKEN_SIGNING_KEY, key_path
from cloudtune.services.secrets import SecretBox
from cloudtune.services.tokens import TokenSigner
from cloudtune.settings import Settings


def test_a_new_home_gets_both_keys_under_their_new_names(tmp_path: Path) -> None:
    home = tmp_path / "home"
    TokenSigner.from_home(home)
    SecretBox.from_settings(Settings(home=home))
    assert sorted(p.name for p in home.iterdir()) == [SECRETS_ENCRYPTION_KEY, TOKEN_SIGNING_KEY]
    for name in (SECRETS_ENCRYPTION_KEY, TOKEN_SIGNING_KEY):
        assert (home / name).stat().st_mode & 0o777 == 0o600


def test_an_old_home_is_renamed_and_its_keys_still_work(tmp_path: Path) -> None:
    old_home = tmp_path / "old"
    TokenSigner.from_home(old_home)
    SecretBox.from_settings(Settings(home=old_home))
    token = TokenSigner.from_home(old_home).job_token("job1")
    sealed = SecretBox.from_settings(Settings(home=old_home)).encrypt("r8_token")
    # As a server before the rename left it.
    (old_home / TOKEN_SIGNING_KEY).rename(old_home / "secret.key")
    (old_home / SECRETS_ENCRYPTION_KEY).rename(old_home / "secrets.key")

    assert TokenSigner.from_home(old_home).check_job_token("job1", token)
    assert SecretBox.from_settings(Settings(home=old_home)).decrypt(sealed) == "r8_token"
    assert sorted(p.name for p in old_home.iterdir()) == [
        SECRETS_ENCRYPTION_KEY,
        TOKEN_SIGNING_KEY,
    ]


def test_a_new_file_is_never_replaced_by_an_old_one(tmp_path: Path) -> None:
    (tmp_path / TOKEN_SIGNING_KEY).write_text("new")
    (tmp_path / "secret.key").write_text("old")
    assert key_path(tmp_path, TOKEN_SIGNING_KEY).read_text() == "new"
    assert (tmp_path / "secret.key").read_text() == "old"  # left for its owner to look at


def test_a_rename_cut_short_is_finished(tmp_path: Path) -> None:
    (tmp_path / "secrets.key").write_text("key")
    (tmp_path / SECRETS_ENCRYPTION_KEY).hardlink_to(tmp_path / "secrets.key")
    assert key_path(tmp_path, SECRETS_ENCRYPTION_KEY).read_text() == "key"
    assert not (tmp_path / "secrets.key").exists()
