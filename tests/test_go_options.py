"""Go options at the option level: names Go cannot take are refused, strings survive.

Every Go keyword and predeclared identifier (listed here from the Go specification, not
taken from templategen/quoting.py) is refused as a package or class name, before
anything is rendered, with a message naming the option. String options go through a
whole render (filters, template, gofmt) and a real Go build: the compiled constant is
the input, byte for byte.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_quoting import HOSTILE_PARTS, texts

from templategen.cli import cli
from templategen.engine import render
from templategen.errors import OptionError
from templategen.registry import Registry
from templategen.suite.gotarget import GO_HARNESS, go_environment

GO_PATTERNS = [p for p in Registry().names() if "go" in Registry().get(p).languages]

# https://go.dev/ref/spec#Keywords and #Predeclared_identifiers
GO_KEYWORDS = """
break case chan const continue default defer else fallthrough for func go goto if
import interface map package range return select struct switch type var
""".split()  # noqa: SIM905 - laid out as the specification lists them
GO_PREDECLARED = """
any bool byte comparable complex64 complex128 error float32 float64 int int8 int16
int32 int64 rune string uint uint8 uint16 uint32 uint64 uintptr
true false iota nil
append cap clear close complex copy delete imag len make max min new panic print
println real recover
""".split()  # noqa: SIM905


@pytest.mark.parametrize("pattern", GO_PATTERNS)
@pytest.mark.parametrize("word", GO_KEYWORDS + GO_PREDECLARED)
def test_go_keywords_and_predeclared_names_are_refused_as_package_name(pattern, word):
    with pytest.raises(OptionError) as info:
        render(pattern, "go", {"package_name": word})
    message = str(info.value)
    assert message.startswith(f"option package_name: {word!r} is a")
    assert "Go keyword" in message or "predeclared Go" in message


@pytest.mark.parametrize("pattern", GO_PATTERNS)
@pytest.mark.parametrize("word", GO_KEYWORDS + GO_PREDECLARED + ["Any", "String"])
def test_go_keywords_and_predeclared_names_are_refused_as_class_names(pattern, word):
    # Capitalized class names are what Go exports; a keyword or predeclared name never
    # is one, and a capitalized lookalike is a fine Go name.
    names = [o.name for o in Registry().get(pattern).options_for("go") if "class_name" in o.name]
    for option in names:
        if word[0].isupper():
            render(pattern, "go", {option: word})
            continue
        with pytest.raises(OptionError, match=f"option {option}: {word!r} does not match"):
            render(pattern, "go", {option: word})


@pytest.mark.parametrize("pattern", GO_PATTERNS)
def test_names_the_go_template_defines_are_refused_as_class_names(pattern):
    spec = Registry().get(pattern)
    for name in spec.reserved_names["go"]:
        with pytest.raises(OptionError, match=r"is a name the .* template defines itself"):
            render(pattern, "go", {"class_name": name})


def test_cli_refuses_a_go_keyword_as_package_name_with_exit_2():
    result = CliRunner().invoke(cli, ["render", "cache-aside", "-l", "go", "--set",
                                      "package_name=func"])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "package_name" in result.output and "Go keyword" in result.output


def test_the_package_name_option_names_the_package():
    rendered = render("cache-aside", "go", {"package_name": "usercache"})
    assert "\npackage usercache\n" in rendered.text


# --- strings through a real Go build --------------------------------------------------

valid_strings = texts.filter(lambda s: 1 <= len(s) <= 200)


def go_constants(prefixes: list[str], tmp: Path) -> list[str]:
    """Render cache-aside once per prefix, build them into one program, and return the
    bytes (hex) of each package's DefaultConfig().Prefix as Go sees it."""
    go = shutil.which("go")
    if go is None:
        pytest.fail("go is not on PATH; install Go from https://go.dev/dl")
    for name in ("go.mod", "go.sum"):
        shutil.copyfile(GO_HARNESS / name, tmp / name)
    imports, prints = [], []
    for i, prefix in enumerate(prefixes):
        rendered = render("cache-aside", "go", {"key_prefix": prefix, "package_name": f"p{i}"})
        (tmp / f"p{i}").mkdir()
        (tmp / f"p{i}" / "cache_aside.go").write_text(rendered.text, encoding="utf-8")
        imports.append(f'\t"templategen.local/driver/p{i}"\n')
        prints.append(f'\tfmt.Printf("%x\\n", p{i}.DefaultConfig().Prefix)\n')
    main = (
        'package main\n\nimport (\n\t"fmt"\n\n' + "".join(imports) + ")\n\n"
        "func main() {\n" + "".join(prints) + "}\n"
    )
    (tmp / "main.go").write_text(main, encoding="utf-8")
    build = subprocess.run(
        [go, "build", "-o", "constants", "."], cwd=tmp, env=go_environment(),
        capture_output=True, text=True,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(tmp / "constants")], capture_output=True, text=True, check=True)
    return run.stdout.split()


@pytest.mark.slow
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prefixes=st.lists(valid_strings, min_size=12, max_size=12))
@example(prefixes=["".join(HOSTILE_PARTS), *HOSTILE_PARTS[:11]])
def test_string_options_compile_into_go_constants_equal_to_the_input(prefixes, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("go-strings")
    assert go_constants(prefixes, tmp) == [p.encode("utf-8").hex() for p in prefixes]
