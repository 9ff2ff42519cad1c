"""The public API is exactly what ``runback.__all__`` lists."""

from __future__ import annotations

import runback


def test_the_public_names_are_pinned() -> None:
    assert set(runback.__all__) == {
        "DEFAULT_RETRY_POLICY",
        "ApiError",
        "AsyncClient",
        "Client",
        "ConfigError",
        "DeliveryStatus",
        "Model",
        "ModelError",
        "ModelRegistry",
        "RetryPolicy",
        "RunContext",
        "RunStatus",
        "RunbackError",
        "SchemaTooNewError",
        "StoreError",
        "SyncRunContext",
        "TransportError",
        "UrlPolicy",
        "UrlRefusedError",
        "VerificationError",
        "Verified",
        "Verifier",
        "__version__",
        "verify",
    }


def test_every_public_name_exists() -> None:
    for name in runback.__all__:
        assert hasattr(runback, name), name
