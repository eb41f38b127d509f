"""The shapes of names, ids, tags and digests, checked with str methods instead of `re`.

`re` costs tcrd ~1 MB resident (re itself, and enum, functools and collections, which nothing else
in tcrd needs) for about twenty anchored character-class patterns (docs/profile.md). Each function
names the regular expression it stands for; test/unit/test_syntax.py checks them against it.
Only ASCII counts: where a pattern had `\\d` (which also matches other scripts' digits), these
accept 0-9 only.
"""

from __future__ import annotations

DIGITS = "0123456789"
LOWER = "abcdefghijklmnopqrstuvwxyz"
ALNUM = DIGITS + LOWER + LOWER.upper()
HEX = DIGITS + "abcdef"
NAME_CHARS = ALNUM + "_.-"


def only(text: str, chars: str) -> bool:
    """Every character of text is one of chars (true for '')."""
    return not text.strip(chars)


def word(text: str, first: str, rest: str, max_len: int) -> bool:
    """^[first][rest]{0,max_len-1}$"""
    return 0 < len(text) <= max_len and text[0] in first and only(text[1:], rest)


def name(text: str, max_len: int = 128) -> bool:
    """^[A-Za-z0-9][A-Za-z0-9_.-]{0,max_len-1}$: container, volume and network names, keys."""
    return word(text, ALNUM, NAME_CHARS, max_len)


def hex_id(text: str, min_len: int = 16, max_len: int = 16) -> bool:
    """^[0-9a-f]{min_len,max_len}$"""
    return min_len <= len(text) <= max_len and only(text, HEX)


def number(text: str) -> bool:
    """^[0-9]+$ (ASCII digits only, unlike str.isdigit)."""
    return bool(text) and only(text, DIGITS)


def octal_mode(text: str) -> bool:
    """^[0-7]{1,4}$"""
    return 0 < len(text) <= 4 and only(text, "01234567")


def tag(text: str) -> bool:
    """^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"""
    return word(text, ALNUM + "_", NAME_CHARS, 128)


def digest(text: str) -> bool:
    """^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$ (OCI: algorithm:encoded)."""
    algo, colon, encoded = text.partition(":")
    if not colon or len(encoded) < 32 or not only(encoded, ALNUM + "=_-"):
        return False
    return _separated(algo, DIGITS + LOWER, ".+_-", ())


def _separated(text: str, chars: str, seps: str, extra: tuple) -> bool:
    """Runs of chars, one separator character between two runs (or one of extra: '__', '--'...)."""
    if not text or text[0] not in chars or text[-1] not in chars or not only(text, chars + seps):
        return False
    i = 0
    while i < len(text):
        if text[i] in chars:
            i += 1
            continue
        j = i
        while text[j] not in chars:  # the last character is in chars: this stops
            j += 1
        if j - i > 1 and text[i:j] not in extra:
            return False
        i = j
    return True


def repo_component(text: str) -> bool:
    """^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$ (one path component of a repository name)."""
    if text[:1] == "-" or text[-1:] == "-":
        return False
    # a run of dashes is one separator: what lies between the runs has no dash
    return bool(text) and all(_separated(p, DIGITS + LOWER, "._", ("__",)) for p in text.split("-") if p)


def path_of(text: str, chars: str) -> bool:
    """^[chars]+(?:/[chars]+)*$"""
    return bool(text) and all(p and only(p, chars) for p in text.split("/"))


def dotted(text: str, first: str, rest: str) -> bool:
    """^[first]+(\\.[rest]+)+$ (a sysctl key)."""
    parts = text.split(".")
    return len(parts) > 1 and all(parts) and only(parts[0], first) and all(only(p, rest) for p in parts[1:])


def leading_ints(text: str, most: int) -> list:
    """The numbers at the start of text separated by single dots, at most `most` of them:
    '6.1.0-13-amd64' -> [6, 1, 0] (re.match(r'(\\d+)\\.(\\d+)(?:\\.(\\d+))?') for most=3)."""
    out = []
    for part in text.split(".", most):
        n = 0
        while n < len(part) and part[n] in DIGITS:
            n += 1
        if not n:
            break
        out.append(int(part[:n]))
        if n < len(part) or len(out) == most:
            break
    return out
