"""Plain manifests as the typed client's models.

Tests and the harness write Kubernetes objects as plain data, the way they appear in YAML
(camelCase keys), because that is how the operator's manifests and the CRDs are written.
The `kubernetes` client's API methods take its pydantic models; this converts one into the
other and, since the models forbid unknown fields, refuses a misspelt field loudly instead
of dropping it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

ModelT = TypeVar("ModelT", bound=BaseModel)


def as_model(model: type[ModelT], manifest: Mapping[str, Any]) -> ModelT:
    """`manifest` (camelCase keys, as in YAML) validated into the client's `model`."""
    return model.model_validate(dict(manifest))
