"""Which server-side paths an import may read: only inside ``AIMASS_IMPORT_DIRS``."""

from __future__ import annotations

import os
from pathlib import Path

from aimass.errors import InvalidArgument, NotFound, PermissionDenied
from aimass.settings import Settings

__all__ = ["allowed_path"]


def allowed_path(settings: Settings, text: str) -> Path:
    """``text`` as a real path inside one of ``settings.import_dirs``, else an error.

    Symlinks and ``..`` are resolved before the check, so neither can lead
    outside; a path outside the directories is refused without saying whether
    it exists.
    """
    roots = [Path(os.path.realpath(d)) for d in settings.import_dirs]
    if not roots:
        raise PermissionDenied(
            "this server imports no files by path; upload the content instead, or have "
            "the operator set AIMASS_IMPORT_DIRS"
        )
    if "\x00" in text:
        raise InvalidArgument("the path contains a NUL byte")
    candidate = Path(text) if Path(text).is_absolute() else roots[0] / text
    real = Path(os.path.realpath(candidate))
    if not any(os.path.commonpath([root, real]) == str(root) for root in roots):
        raise PermissionDenied(
            f"{text[:200]!r} is outside the directories this server may import from "
            f"({', '.join(str(r) for r in roots)})",
        )
    if not real.exists():
        raise NotFound(f"{text[:200]!r} does not exist", path=text[:200])
    return real
