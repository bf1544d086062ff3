"""The presets, one YAML file each in ``presets/`` (its name is the preset's name).

A preset is a set of :class:`~analysis.config.schema.StudyConfig` overrides; its comments say why
each value was chosen. ``embedded`` is the default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

PRESET_DIR = Path(__file__).resolve().parent / "presets"
PRESETS: dict[str, dict[str, Any]] = {
    p.stem: yaml.safe_load(p.read_text(encoding="utf-8")) or {} for p in sorted(PRESET_DIR.glob("*.yaml"))
}
