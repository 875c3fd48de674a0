"""The seed tutorial's label vocabulary, in its order (index = class id).

This is the one place the vocabulary is declared. Trained and exported models carry their
own ``labels`` list in their JSON; the runtime reads labels from there, not from here.
"""

from __future__ import annotations

#: The seed's 12 classes in the seed's order.
SEED_LABELS: tuple[str, ...] = (
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "unknown", "silence",
)

#: Classes that never fire a detection.
UNKNOWN = "unknown"
SILENCE = "silence"
NON_KEYWORDS: frozenset[str] = frozenset({UNKNOWN, SILENCE})

#: The ten keywords.
KEYWORDS: tuple[str, ...] = tuple(label for label in SEED_LABELS if label not in NON_KEYWORDS)
