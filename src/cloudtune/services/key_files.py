"""The server's two key files in its home, named for what they protect.

- `token-signing.key` signs each job's trainer-webhook token (services/tokens.py);
- `secrets-encryption.key` encrypts provider tokens and job and config secrets at rest
  (services/secrets.py), unless `CLOUDTUNE_SECRETS_KEY` gives the key.

Both must be backed up with the database (the second one is needed to read its secrets).
Homes made before the names said what they protect hold `secret.key` and `secrets.key`; a
server starting on such a home renames them once.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

TOKEN_SIGNING_KEY = "token-signing.key"
SECRETS_ENCRYPTION_KEY = "secrets-encryption.key"
# The former name of each file, one letter apart, which made them easy to mix up.
LEGACY_NAMES = {TOKEN_SIGNING_KEY: "secret.key", SECRETS_ENCRYPTION_KEY: "secrets.key"}


def key_path(home: Path, name: str) -> Path:
    """Where the key file `name` is, once a legacy file of that key has been renamed to it."""
    path = home / name
    legacy = home / LEGACY_NAMES[name]
    if legacy.exists() and not path.exists():
        try:
            # A hard link cannot replace a file: another process that renamed it first wins,
            # and its file is kept.
            os.link(legacy, path)
        except FileExistsError:
            pass
        except FileNotFoundError:  # another process renamed it meanwhile
            return path
        else:
            legacy.unlink(missing_ok=True)
            log.info("key file %s renamed to %s", legacy.name, path.name)
            return path
    if legacy.exists() and path.exists() and legacy.read_bytes() == path.read_bytes():
        legacy.unlink(missing_ok=True)  # the link above, when this process stopped before
    elif legacy.exists():
        log.warning(
            "both %s and %s are in %s; %s is used and the other is left alone",
            legacy.name,
            path.name,
            home,
            path.name,
        )
    return path
