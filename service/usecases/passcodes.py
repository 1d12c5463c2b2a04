"""Key rotation for data encrypted at rest: customers' passcodes and tracking links, suppliers' secrets."""

from __future__ import annotations

from dataclasses import dataclass

from service.persistence.tracking import TrackingRepository
from service.secrets import PasscodeCipher
from service.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class Rotated:
    passcodes: int
    suppliers: int
    tracking_links: int = 0


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
    # The links' tokens too (their hashes, hence the links themselves, do not change).
    links = TrackingRepository(uow.connection)
    tokens = await links.stored_ciphertexts()
    for job_id, ciphertext in tokens:
        await links.replace_ciphertext(job_id, cipher.rotate(ciphertext))
    return Rotated(len(stored), len(secrets), len(tokens))
