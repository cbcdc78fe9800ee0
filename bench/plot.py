"""The one picture: hit-throughput ratios, and stampede loader calls per contender."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .harness import Summary
from .report import Section

__all__ = ["plot"]


def plot(sections: list[Section], path: Path) -> bool:
    """Draw what the sections measured into ``path``; False if they hold neither figure."""
    figures = {k: v for s in sections for k, v in s.plot.items()}
    throughput: dict[str, Summary] | None = figures.get("throughput")
    # The rendered TypeScript and Go, each against its own client's floor, join the panel.
    for language in ("TypeScript", "Go"):
        other = figures.get(f"throughput ({language})")
        if other:
            throughput = {**(throughput or {}), **other}
    stampede: dict[tuple[int, int, str], Summary] | None = figures.get("stampede")
    if not throughput and not stampede:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in (throughput, stampede) if p]
    heights = [max(5.5, 0.28 * len(throughput or {}) + 1.5), 5.5][: len(panels)]
    if not throughput:
        heights = [5.5]
    fig, axes = plt.subplots(
        len(panels),
        1,
        figsize=(11, sum(heights)),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    row = 0
    if throughput:
        _throughput(axes[row][0], throughput)
        row += 1
    if stampede:
        _stampede(axes[row][0], stampede)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _throughput(ax: Any, data: dict[str, Summary]) -> None:
    names = list(data)
    medians = [data[n].median for n in names]
    errors = [
        [data[n].median - data[n].low for n in names],
        [data[n].high - data[n].median for n in names],
    ]
    colors = [_color(n) for n in names]
    ax.barh(names, medians, xerr=errors, color=colors, capsize=3)
    ax.axvline(0.95, color="tab:red", linestyle="--", label="target 0.95× floor")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.invert_yaxis()
    ax.set_xlabel(
        "hit throughput ÷ floor (median, min–max); libraries, TypeScript and Go "
        "against their own floor"
    )
    ax.set_title("2. Hit throughput, one caller, 1 KB JSON")
    ax.legend(loc="lower right")


def _color(name: str) -> str:
    for marker, color in (
        ("(reference)", "tab:blue"),
        ("(rendered)", "tab:cyan"),
        ("(TypeScript)", "tab:orange"),
        ("(Go)", "tab:green"),
    ):
        if marker in name:
            return color
    return "tab:gray"  # a library


def _stampede(ax: Any, data: dict[tuple[int, int, str], Summary]) -> None:
    contenders = list(dict.fromkeys(c for _, _, c in data))
    configs = sorted({(p, ms) for p, ms, _ in data})
    width = 0.8 / len(configs)
    for i, (processes, loader_ms) in enumerate(configs):
        values = [data[(processes, loader_ms, c)].median for c in contenders]
        xs = [x + i * width for x in range(len(contenders))]
        ax.bar(xs, values, width, label=f"{processes} process(es), loader {loader_ms} ms")
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(contenders))])
    ax.set_xticklabels(contenders, rotation=20, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("loader calls for 50 callers (median, log scale)")
    ax.axhline(1, color="tab:red", linestyle="--", linewidth=0.8)
    ax.set_title("3. Stampede: loader calls per cold key (target 1)")
    ax.legend(fontsize=8, ncol=2)
