"""The web UI: one HTML shell and small ES modules, served as files (no build step). Every
page speaks to the same HTTP API the CLI and SDK use; nothing here reaches a service."""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"

# Every answer of the UI carries these: scripts and styles only from this server (no inline
# code, no eval), no framing, no sniffing, no referrer leaving for another site.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
