"""Free-form JSON documents: what users write and we keep as written (trainer configs,
provider settings, cost-limit changes before they are checked). A named alias, so a reader
sees where a dict is a document and not a result that should have been a type."""

from __future__ import annotations

from typing import Any, TypeAlias

JsonObject: TypeAlias = dict[str, Any]
