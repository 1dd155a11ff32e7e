"""Flag definitions the flag tests share."""

from __future__ import annotations

from typing import Any

NEW_UI: dict[str, Any] = {
    "type": "boolean",
    "variants": {"on": True, "off": False},
    "default_variant": "off",
    "rules": [
        {"when": {"tenant": ["acme"]}, "variant": "on"},
        {"when": {"attributes": {"plan": ["pro"]}}, "variant": "on", "percentage": 50},
    ],
}
