"""Secrets at rest (provider tokens, job and config secrets): Fernet encryption with a key from
the environment (`CLOUDTUNE_SECRETS_KEY`) or the key file `secrets-encryption.key` in the home
folder (mode 600; see services/key_files.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from cloudtune.services.key_files import SECRETS_ENCRYPTION_KEY, key_path
from cloudtune.settings import Settings


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        if settings.secrets_key is not None:
            return cls(settings.secrets_key.get_secret_value().encode())
        return cls(_load_or_create(key_path(settings.home, SECRETS_ENCRYPTION_KEY)))

    @staticmethod
    def new_key() -> bytes:
        return Fernet.generate_key()

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str | None:
        """None when the ciphertext was made with another key (the key file was replaced)."""
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            return None

    def seal_secrets(self, secrets: list[tuple[tuple[str | int, ...], Any]]) -> str:
        """Encrypt secrets with where they sat in a config (see domain.training)."""
        return self.encrypt(json.dumps([[list(path), value] for path, value in secrets]))

    def open_secrets(self, ciphertext: str) -> list[tuple[tuple[str | int, ...], Any]]:
        """The secrets of `seal_secrets`; none when the key changed since (they are lost, and
        the job or config needs them sent again)."""
        plaintext = self.decrypt(ciphertext)
        if plaintext is None:
            return []
        return [(tuple(path), value) for path, value in json.loads(plaintext)]


def _load_or_create(path: Path) -> bytes:
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key
