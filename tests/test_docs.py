"""The deployment guide explains every setting the server reads."""

from __future__ import annotations

from pathlib import Path

from m2m.settings import Settings

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "deployment.md"


def test_every_setting_is_explained_in_the_deployment_guide() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    missing = [
        f"M2M_{name.upper()}"
        for name in Settings.model_fields
        if f"`M2M_{name.upper()}`" not in text
    ]
    assert missing == []
