"""The Python driver of the behaviour suite: runs the reference or a rendered Python file.

Run as ``python -m templategen.suite.pydriver (--module NAME | --file PATH)``; it speaks
the JSON-lines protocol of docs/conformance.md on stdin/stdout. Each pattern has an
adapter module here that maps the scenario ops onto that pattern's public API.
"""
