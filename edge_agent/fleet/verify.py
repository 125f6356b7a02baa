"""Archive checks before anything is unpacked: SHA-256, and an Ed25519 signature when the fleet has a key."""

from __future__ import annotations

import base64
import binascii
import hmac
from pathlib import Path

from edge_agent.errors import UpdateError
from edge_agent.runtime.manifest import sha256_file


def check_sha256(path: Path, expected: str) -> None:
    actual = sha256_file(path)
    if not hmac.compare_digest(actual, expected):
        raise UpdateError(f"sha256 mismatch: the download is {actual}, the command says {expected}")


def check_signature(path: Path, signature: str | None, public_key_file: Path | None) -> None:
    """With a fleet key every archive must be signed by it; without one a signature cannot be checked."""
    if public_key_file is None:
        if signature:
            raise UpdateError("the update is signed but fleet.public_key_file is not set: add the fleet's key")
        return
    if not signature:
        raise UpdateError("the fleet requires signed models (fleet.public_key_file) and this update has no signature")
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        from cryptography.hazmat.primitives.serialization import load_pem_public_key
    except ImportError as exc:
        raise UpdateError("signed updates need cryptography: pip install 'edge-agent[fleet]'") from exc
    key = load_pem_public_key(public_key_file.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise UpdateError(f"fleet.public_key_file {public_key_file} is not an Ed25519 public key")
    try:
        key.verify(base64.b64decode(signature, validate=True), path.read_bytes())
    except (InvalidSignature, binascii.Error, ValueError) as exc:
        raise UpdateError("signature does not match the archive and the fleet key") from exc
