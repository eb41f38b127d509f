"""sha256 without OpenSSL: hashlib loads libcrypto (~3.7 MB resident) for a hash Python has built in.

The daemon needs sha256 for `image verify` and for stable interface names; the built-in module
(`_sha2` on 3.12+, `_sha256` before) gives identical digests.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any



def sha256(data: bytes = b"") -> Any:
    try:
        from _sha2 import sha256 as impl  # type: ignore[import-not-found]  # Python >= 3.12
    except ImportError:
        try:
            from _sha256 import sha256 as impl  # type: ignore[import-not-found,no-redef]
        except ImportError:  # a Python built without the builtin hashes
            from hashlib import sha256 as impl  # type: ignore[no-redef]
    return impl(data)
