"""The behaviour suite: one language-neutral description of each pattern's behaviour.

Scenarios live beside each pattern's templates (``templates/<pattern>/scenarios.json``);
the runner plays them through a *driver* — a small program per language that speaks the
JSON-lines protocol of docs/conformance.md — against a real Redis, and checks every
expectation itself. The same scenarios run against the reference, every rendered
Python option set, and (later) TypeScript and Go.
"""
