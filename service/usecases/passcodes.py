"""Key rotation for data encrypted at rest: customers' passcodes and suppliers' secrets."""

from __future__ import annotations

from dataclasses import dataclass

from service.secrets import PasscodeCipher
from service.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class Rotated:
    passcodes: int
    suppliers: int


async def rotate_data_keys(uow: UnitOfWork, cipher: PasscodeCipher) -> Rotated:
    """After a new key is put first in ATELIER_PASSCODE_KEYS, re-encrypt everything under it. Once it has
    run, the old keys can be removed from the setting."""
    stored = await uow.jobs.stored_passcodes()
    for job_id, ciphertext in stored:
        await uow.jobs.replace_passcode(job_id, cipher.rotate(ciphertext))
    secrets = await uow.suppliers.stored_secrets()
    for supplier_id, credentials, webhook_secrets in secrets:
        await uow.suppliers.replace_secrets(
            supplier_id,
            cipher.rotate(credentials) if credentials else None,
            cipher.rotate(webhook_secrets) if webhook_secrets else None,
        )
    return Rotated(len(stored), len(secrets))
