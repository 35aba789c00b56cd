"""The one seam between the CLI's two modes.

Every command calls ``backend()`` and gets an object with the same methods,
returning the same wire schemas (:mod:`aimass.schemas`):

* :class:`Local` works on the home directly through the workspace (no server);
* :class:`Remote` talks to ``AIMASS_URL`` with ``AIMASS_API_KEY`` through the SDK.

So each command is written once, and ``--json`` prints the same shape in both modes.
"""

from __future__ import annotations

from aimass.cli._local import Local
from aimass.cli._remote import Remote

__all__ = ["Local", "Remote"]
