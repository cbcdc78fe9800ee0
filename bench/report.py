"""What a measurement returns, and how it is printed and written to RESULTS.md.

Each measurement returns a :class:`Section`: one or more :class:`Table` objects (a row
per measured case, a column per contender) and the :class:`Target` checks it made. The
writer puts the run's context (machine, versions, date, command) on top, then every
target with its measured figure and whether it is met, then the sections.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Section", "Table", "Target", "markdown_table", "results_markdown"]


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{self.title}: {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([str(c) for c in cells])


@dataclass
class Target:
    """One target of the issue: what was asked, what was measured, met or not."""

    measurement: str
    target: str
    figure: str
    met: bool | None  # None: not measurable in this run (e.g. not rendered yet)

    @property
    def status(self) -> str:
        return {True: "met", False: "**NOT MET**", None: "not measured"}[self.met]


@dataclass
class Section:
    key: str
    title: str
    about: str
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    #: Figures for the plot (see plot.py), by name.
    plot: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(columns: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(_cell(c) for c in columns) + " |"]
    lines.append("| " + " | ".join("---" for _ in columns) + " |")
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def section_markdown(section: Section, level: str = "##") -> str:
    parts = [f"{level} {section.title}", "", section.about, ""]
    for table in section.tables:
        parts += [f"**{table.title}**", "", markdown_table(table.columns, table.rows), ""]
        parts += [f"- {note}" for note in table.notes]
        if table.notes:
            parts.append("")
    return "\n".join(parts)


def targets_table(sections: list[Section]) -> str:
    rows = [[t.measurement, t.target, t.figure, t.status] for s in sections for t in s.targets]
    return markdown_table(["measurement", "target", "measured", "status"], rows)


def results_markdown(
    sections: list[Section],
    context: list[tuple[str, str]],
    preamble: str,
    not_measured: list[str],
    plot_file: str | None,
) -> str:
    parts = [
        "# Benchmark results",
        "",
        preamble,
        "",
        markdown_table(["", ""], [[k, v] for k, v in context]),
        "",
        "## Targets",
        "",
        targets_table(sections),
        "",
    ]
    if plot_file:
        parts += [f"![hit-throughput ratios and stampede loader calls]({plot_file})", ""]
    parts += [section_markdown(s) for s in sections]
    if not_measured:
        parts += ["## Not measured", ""] + [f"- {line}" for line in not_measured] + [""]
    return "\n".join(parts).rstrip() + "\n"
