"""Per-job secrets derived from one server key, so none has to be stored anywhere.

A job's trainer-webhook token is HMAC(server key, job id): the server can recompute it after a
restart (to hand to a re-queued trainer) and check it without a table of tokens. The key lives
in the home folder, `token-signing.key`, with mode 600 (see services/key_files.py).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cloudtune.services.key_files import TOKEN_SIGNING_KEY, key_path


class TokenSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def from_home(cls, home: Path) -> TokenSigner:
        return cls(load_or_create_key(key_path(home, TOKEN_SIGNING_KEY)))

    def sign(self, message: str) -> str:
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()

    def job_token(self, job_id: str) -> str:
        return "ctj_" + self.sign(f"trainer-webhook:{job_id}")

    def check_job_token(self, job_id: str, token: str | None) -> bool:
        if not token:
            return False
        return hmac.compare_digest(self.job_token(job_id), token)


def load_or_create_key(path: Path) -> bytes:
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    # O_EXCL: two processes starting at once must not both write a key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as f:
        f.write(key.hex())
    return key
