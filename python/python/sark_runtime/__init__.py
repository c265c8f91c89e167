"""The SARK policy runtime in-process.

Rego bundles (built by ``sark build``) decided in a WebAssembly sandbox with the host's
decision cache, rollout flags, native fallback and metrics: the same code as ``sark serve``,
reached through PyO3. Decisions release the GIL; the ``*_async`` methods run them on a worker
thread so they never block an event loop.

    from sark_runtime import OPAClient
    client = OPAClient("target/bundles/mcp.wasm")
    client.evaluate("mcp/gateway/decision", {"tool": "read_file", "user": {"id": "u1"}})
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from os import PathLike
from typing import Any, Iterable, Mapping, Optional, Union

from ._native import (
    BundleError,
    Client as _Client,
    EvaluationError,
    InvalidInput,
    LimitExceeded,
    PolicyCache as _PolicyCache,
    RolloutFlags,
    SarkError,
    UnknownEntrypoint,
    __version__,
    bucket,
)

__all__ = [
    "OPAClient",
    "Decision",
    "PolicyCache",
    "RolloutFlags",
    "bucket",
    "SarkError",
    "UnknownEntrypoint",
    "InvalidInput",
    "EvaluationError",
    "LimitExceeded",
    "BundleError",
    "__version__",
]

Config = Union[None, str, "PathLike[str]", Mapping[str, Any]]


@dataclass(frozen=True)
class Decision:
    """A decision and how it was made."""

    result: Any
    """The entrypoint's value; ``None`` when it is undefined."""
    decision_id: str
    """The decision's id, as the decision log records it."""
    path: str
    """``"wasm"`` (the sandbox) or ``"native"``."""
    cache_hit: bool
    shared_cache_hit: bool
    fallback_from: Optional[str]
    """Why the sandbox failed when the decision fell back to the native path."""
    canary: bool
    """Decided by the candidate bundle (policy canary)."""
    bundle: str
    """``<revision>@<content hash>`` of the bundle that decided."""
    elapsed_us: float


class OPAClient(_Client):
    """One bundle behind SARK's decision service, as ``sark serve`` runs it.

    ``OPAClient(bundle, config=None, verification_key=None)``: ``bundle`` is a built
    ``.wasm``; ``config`` is None, a YAML file or a dict in its shape; with
    ``verification_key`` every bundle, reloads included, must be signed by that key.

    The synchronous methods are the native ones (``evaluate``, ``evaluate_batch``, ``query``,
    ``reload``, ``info``, ``flags``, ``cache_stats``, ``metrics_text``): see ``_native.pyi``.
    """

    def decide(
        self,
        entrypoint: str,
        input: Any = None,
        *,
        user: Optional[str] = None,
        path: Optional[str] = None,
        bypass_cache: bool = False,
    ) -> Decision:
        """The decision with the path, cache and fallback that made it."""
        d = super().decide(entrypoint, input, user=user, path=path, bypass_cache=bypass_cache)
        return Decision(**d)

    async def evaluate_async(
        self,
        entrypoint: str,
        input: Any = None,
        *,
        user: Optional[str] = None,
        path: Optional[str] = None,
    ) -> Any:
        """``evaluate`` on a worker thread."""
        return await asyncio.to_thread(self.evaluate, entrypoint, input, user=user, path=path)

    async def evaluate_batch_async(self, entrypoint: str, inputs: Iterable[Any], **kw: Any) -> list:
        """``evaluate_batch`` on a worker thread."""
        inputs = list(inputs)
        return await asyncio.to_thread(self.evaluate_batch, entrypoint, inputs, **kw)

    async def decide_async(self, entrypoint: str, input: Any = None, **kw: Any) -> Decision:
        """:meth:`decide` on a worker thread."""
        return await asyncio.to_thread(self.decide, entrypoint, input, **kw)

    async def reload_async(self, bundle: Optional[Union[str, "PathLike[str]"]] = None) -> str:
        """``reload`` on a worker thread."""
        return await asyncio.to_thread(self.reload, bundle)


class PolicyCache(_PolicyCache):
    """A bounded cache of JSON values with a TTL per entry (SARK's decision cache)."""

    async def get_async(self, key: str, default: Any = None) -> Any:
        return self.get(key, default)

    async def set_async(self, key: str, value: Any, ttl: Optional[float] = None) -> None:
        self.set(key, value, ttl)

    async def delete_async(self, key: str) -> bool:
        return self.delete(key)

    async def clear_async(self) -> None:
        self.clear()

    async def stats_async(self) -> dict:
        return self.stats()
