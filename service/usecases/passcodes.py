"""Key rotation for stored passcodes: re-encrypt every one under the newest key."""

from __future__ import annotations

from service.secrets import PasscodeCipher
from service.uow import UnitOfWork


async def rotate_passcodes(uow: UnitOfWork, cipher: PasscodeCipher) -> int:
    """After a new key is put first in ATELIER_PASSCODE_KEYS; returns how many were re-encrypted.
    Once it has run, the old keys can be removed from the setting."""
    stored = await uow.jobs.stored_passcodes()
    for job_id, ciphertext in stored:
        await uow.jobs.replace_passcode(job_id, cipher.rotate(ciphertext))
    return len(stored)
