"""What a user asks a backfill for (CLI flags or the state machine's input), validated, and the run it is."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stripe_middleware.backfill.resources import Resource, resolve_types
from stripe_middleware.shared.errors import RejectedError

PLATFORM, ALL = "platform", "all"
ACCOUNT = re.compile(r"^acct_[A-Za-z0-9]+$")


@dataclass(frozen=True)
class BackfillOptions:
    types: tuple[Resource, ...]
    accounts: tuple[str, ...] = (PLATFORM,)  # "platform", acct_ ids, or "all" (platform + every connected)
    created_gte: int | None = None
    created_lte: int | None = None
    restart: str = ""  # any new value starts a new run instead of resuming the last one

    @classmethod
    def from_request(cls, request: Mapping[str, Any]) -> BackfillOptions:
        """`{"types": [...], "accounts": [...], "created_gte": int, "created_lte": int, "restart": str}`."""
        unknown = sorted(set(request) - {"types", "accounts", "created_gte", "created_lte", "restart"})
        if unknown:
            raise RejectedError("invalid_options", f"unknown backfill options {unknown}")
        accounts = tuple(request.get("accounts") or (PLATFORM,))
        bad = [a for a in accounts if a not in (PLATFORM, ALL) and not ACCOUNT.match(str(a))]
        if bad:
            raise RejectedError("invalid_account", f"accounts are platform, all or acct_ ids, not {bad}")
        gte, lte = request.get("created_gte"), request.get("created_lte")
        for name, value in (("created_gte", gte), ("created_lte", lte)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise RejectedError("invalid_created", f"{name} must be a unix timestamp, not {value!r}")
        if gte is not None and lte is not None and gte > lte:
            raise RejectedError("invalid_created", "created_gte is after created_lte")
        return cls(
            types=resolve_types(list(request.get("types") or [])),
            accounts=accounts,
            created_gte=gte,
            created_lte=lte,
            restart=str(request.get("restart") or ""),
        )

    def to_request(self) -> dict[str, Any]:
        return {
            "types": [r.name for r in self.types],
            "accounts": list(self.accounts),
            "created_gte": self.created_gte,
            "created_lte": self.created_lte,
            "restart": self.restart,
        }

    @property
    def run_id(self) -> str:
        """Same options, same run: running the same command again resumes it (or finds it complete)."""
        digest = hashlib.sha256(json.dumps(self.to_request(), sort_keys=True).encode()).hexdigest()
        return f"bf_{digest[:16]}"
