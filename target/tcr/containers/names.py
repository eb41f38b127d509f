"""Random docker-style container names: adjective_noun."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Callable

_ADJ = ("agile", "bold", "brave", "bright", "calm", "clever", "cool", "crisp", "eager", "fancy",
        "gentle", "happy", "jolly", "keen", "kind", "lively", "lucid", "merry", "modest", "nimble",
        "noble", "plucky", "proud", "quick", "quiet", "sharp", "shiny", "silent", "smart", "steady",
        "stoic", "sunny", "swift", "tender", "tidy", "vivid", "warm", "wise", "witty", "zen")
_NOUN = ("ant", "badger", "bee", "bison", "crane", "dingo", "dolphin", "eagle", "falcon", "ferret",
         "finch", "fox", "gecko", "heron", "ibis", "jackal", "koala", "lemur", "lynx", "marten",
         "mole", "newt", "otter", "owl", "panda", "puffin", "quail", "raven", "robin", "seal",
         "shrew", "sloth", "stoat", "swan", "tapir", "tern", "toad", "vole", "walrus", "wren")


def random_name(taken: Callable[[str], bool], cid: str) -> str:
    """A free adjective_noun name; falls back to tcr-<id8> when unlucky."""
    for _ in range(16):  # os.urandom, not random.SystemRandom: the random module costs ~0.3 MB resident
        a, n = os.urandom(2)
        name = f"{_ADJ[a % len(_ADJ)]}_{_NOUN[n % len(_NOUN)]}"
        if not taken(name):
            return name
    return f"tcr-{cid[:8]}"
