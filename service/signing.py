"""The server's Ed25519 key that signs audit checkpoints."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from events.audit import Checkpoint


class Signer:
    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public_bytes = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = "ed25519:" + hashlib.sha256(self.public_bytes).hexdigest()[:16]

    @classmethod
    def load(cls, seed_b64: str | None, key_file: str) -> Signer:
        """From PARLEY_SIGNING_KEY (base64 of a 32-byte seed), else from the key file, created on first use."""
        if seed_b64:
            return cls(Ed25519PrivateKey.from_private_bytes(base64.b64decode(seed_b64)))
        path = Path(key_file)
        if not path.exists():
            # written aside, then linked into place: processes starting together all read one whole key
            path.parent.mkdir(parents=True, exist_ok=True)
            aside = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
            fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(base64.b64encode(os.urandom(32)) + b"\n")
            try:
                os.link(aside, path)
            except FileExistsError:
                pass
            finally:
                aside.unlink()
        return cls(Ed25519PrivateKey.from_private_bytes(base64.b64decode(path.read_bytes().strip())))

    def derive_key(self, purpose: str) -> bytes:
        """A 32-byte key for another purpose (sealing webhook secrets), derived from the same seed."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF
        from cryptography.hazmat.primitives.serialization import (
            NoEncryption,
            PrivateFormat,
        )

        seed = self._private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(seed)

    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(self.public_bytes).decode()

    @property
    def public_key_pem(self) -> str:
        return self._private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()

    def checkpoint(self, position: int, hash_: str, recorded_at: str) -> Checkpoint:
        unsigned = Checkpoint(position=position, hash=hash_, recorded_at=recorded_at, key_id=self.key_id, signature="")
        signature = self._private.sign(unsigned.signed_bytes())
        return Checkpoint(
            position=position, hash=hash_, recorded_at=recorded_at, key_id=self.key_id,
            signature=base64.b64encode(signature).decode(),
        )


def signature_valid(checkpoint: Checkpoint, public_key_b64: str) -> bool:
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))
        key.verify(base64.b64decode(checkpoint.signature), checkpoint.signed_bytes())
    except (InvalidSignature, ValueError):
        return False
    return True
