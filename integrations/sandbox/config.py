"""What `atelier sandbox supplier` was started with, handed to the server process as JSON in the environment
(granian imports the app factory in its own worker process, so the CLI cannot pass objects)."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

from integrations.sandbox.faults import Faults

ENV_VAR = "ATELIER_SANDBOX_CONFIG"


class SandboxConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 42
    api_key: str | None = None  # None: any non-empty bearer key is accepted
    faults: Faults = Field(default_factory=Faults)  # every tenant's defaults, and what reset restores
    webhook_url: str | None = None
    webhook_secret: str | None = None

    def to_env(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_env(cls) -> SandboxConfig:
        raw = os.environ.get(ENV_VAR)
        return cls.model_validate_json(raw) if raw else cls()
