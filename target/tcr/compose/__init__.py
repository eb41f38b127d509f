"""`tcr compose`, client side: spec (parse, validate), plan (pure), apply (RPC), cli (argv).

Imported only by the `compose` command, never by the daemon or the plain client (docs/architecture.md).
"""
