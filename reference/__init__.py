"""The Python reference implementation of every caching pattern, one module per pattern.

Importable as ``templategen.reference``; each module's docstring states its guarantees,
failure modes and what it does not try to do. Errors: :mod:`.errors`.
"""
