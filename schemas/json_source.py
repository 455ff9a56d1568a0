"""Settings that hold JSON either inline or as a path to a JSON file.

Signing keys (``LIENTHONG_SIGNING_KEYS``) and gateway credentials
(``LIENTHONG_GATEWAY_CREDENTIALS``) are both given this way, so one reader
gives both the same rules and the same error wording.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json_source(source: str | Path, noun: str, error: type[Exception]) -> Any:
    """The JSON of ``source``: inline when it starts with ``{``, else read from that file.

    ``noun`` names the setting in messages; ``error`` is raised with a message that
    says what was wrong (unreadable file, invalid JSON), never the secret itself.
    """
    text = source.strip() if isinstance(source, str) else ""
    if isinstance(source, Path) or not text.startswith("{"):
        path = Path(source).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise error(f"cannot read {noun} file {path}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{noun} are not valid JSON (line {exc.lineno})") from None
