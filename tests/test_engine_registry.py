"""The registry: the real eight pattern.toml files, and malformed ones refused by name."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from templategen.context import lua_scripts
from templategen.errors import PatternDefinitionError
from templategen.languages import LANGUAGES
from templategen.options import resolve_options
from templategen.registry import Registry

ALL_PATTERNS = [
    "cache-aside",
    "early-refresh",
    "http-cache-headers",
    "stampede-lock",
    "tag-invalidation",
    "version-invalidation",
    "write-behind",
    "write-through",
]
REDIS_PATTERNS = [p for p in ALL_PATTERNS if p != "http-cache-headers"]
REAL = Registry()


def test_all_eight_patterns_load():
    assert REAL.names() == ALL_PATTERNS
    for spec in REAL.all():
        assert spec.summary.endswith(".")
        assert spec.files["python"].suffix == ".py"


@pytest.mark.parametrize("pattern", ALL_PATTERNS)
def test_defaults_are_valid_in_every_language(pattern):
    spec = REAL.get(pattern)
    for language in LANGUAGES:
        resolved = resolve_options(
            spec.options,
            {},
            pattern=pattern,
            language=language,
            reserved_names=spec.reserved_names.get(language, ()),
        )
        for option in spec.options_for(language):
            assert resolved.values[option.name] == option.default
            if option.min is not None and option.max is not None:
                assert option.min <= option.default <= option.max  # type: ignore[operator]


@pytest.mark.parametrize("pattern", REDIS_PATTERNS)
def test_redis_patterns_have_prefix_ttl_names_and_serializer_options(pattern):
    spec = REAL.get(pattern)
    names = {o.name: o for o in spec.options}
    assert names["key_prefix"].type == "string"
    # Tag invalidation takes the TTL on every set_with_tags call, as the design does.
    if pattern != "tag-invalidation":
        assert names["ttl"].unit == "seconds"
    assert names["class_name"].type == "identifier"
    serializer = names["serializer"]
    assert serializer.choices == ("json", "msgpack", "pickle")
    assert all(
        "pickle" not in serializer.choices_for(lang) for lang in LANGUAGES if lang != "python"
    )
    # The pickle HMAC key is never an option value: only the variable it is read from.
    assert names["hmac_key_env"].languages == ("python",)
    assert not any(n == "key" or n.endswith("hmac_key") for n in names)


@pytest.mark.parametrize(
    ("pattern", "knobs"),
    [
        ("cache-aside", {"negative_ttl", "jitter", "lease_ttl"}),
        ("write-behind", {"flush_interval", "batch_size"}),
        ("stampede-lock", {"lock_timeout"}),
        ("early-refresh", {"beta"}),
        ("tag-invalidation", {"drain_batch"}),
        ("http-cache-headers", {"max_age", "stale_while_revalidate", "class_name"}),
    ],
)
def test_each_pattern_has_its_own_knobs(pattern, knobs):
    assert knobs <= {o.name for o in REAL.get(pattern).options}


def test_listed_languages_are_exactly_the_templates_present():
    for spec in REAL.all():
        for name, language in LANGUAGES.items():
            present = spec.folder.joinpath(language.template).is_file()
            assert (name in spec.languages) == present


def test_patterns_with_templates_have_their_reference_and_lua():
    for spec in REAL.all():
        if spec.languages:
            assert importlib.util.find_spec(f"templategen.reference.{spec.reference}")
            lua_scripts(spec)  # raises when a reference module is missing


# --- malformed pattern.toml -------------------------------------------------------------

GOOD = """
name = "demo"
summary = "A demo."
reference = "_lease"
[files]
python = "demo.py"
[[options]]
name = "ttl"
type = "float"
default = 1.0
unit = "seconds"
min = 0.001
max = 10
help = "Seconds."
"""


def load(tmp_path: Path, text: str, template: bool = True) -> None:
    folder = tmp_path / "demo"
    folder.mkdir(exist_ok=True)
    (folder / "pattern.toml").write_text(text)
    if template:
        (folder / "python.py.j2").write_text("X = 1\n")
    Registry(tmp_path).get("demo")


def test_a_well_formed_pattern_loads(tmp_path):
    load(tmp_path, GOOD)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("", "colour = 1\n"), "unknown keys colour"),
        (('name = "demo"', 'name = "other"'), "name must be the kebab-case folder name"),
        (('summary = "A demo."', 'summary = "no period"'), "summary must be one sentence"),
        (('python = "demo.py"', 'python = "../demo.py"'), "must be a relative path"),
        (('python = "demo.py"', 'go = "demo.go"'), "[files] needs an output name for python"),
        (('type = "float"', 'type = "decimal"'), "type must be one of string, int"),
        (
            ("default = 1.0", "default = 11.0"),
            "default is invalid: option ttl: 11.0 is out of range",
        ),
        (('help = "Seconds."', 'help = "Seconds"'), "help must be a sentence ending in a period"),
        (('name = "ttl"', 'name = "TTL"'), "name must be snake_case"),
        (('unit = "seconds"', 'unit = "hours"'), "unit must be one of seconds"),
        (("max = 10", "max = 10\nchoices = []"), "unknown keys for a float option: choices"),
        (("max = 10", "max = 10\nlanguages = ['cobol']"), "unknown languages ['cobol']"),
        (('name = "demo"', 'name = "demo'), "not valid TOML"),
    ],
)
def test_malformed_pattern_toml_is_refused_naming_the_file(tmp_path, change, message):
    old, new = change
    # A key added at the top level goes first: after GOOD it would land in [[options]].
    text = GOOD.replace(old, new, 1) if old else new + GOOD
    with pytest.raises(PatternDefinitionError) as info:
        load(tmp_path, text)
    assert str(info.value).startswith("demo/pattern.toml")
    assert message in str(info.value)


def test_an_option_clashing_with_a_derived_name_is_refused(tmp_path):
    clash = GOOD + '[[options]]\nname = "ttl_ms"\ntype = "int"\ndefault = 1\nmin = 0\nmax = 9\n'
    clash += 'help = "Clashes."\n'
    with pytest.raises(PatternDefinitionError, match="'ttl_ms' is used twice"):
        load(tmp_path, clash)


def test_an_identifier_default_reserved_in_one_language_is_refused(tmp_path):
    ident = GOOD + '[[options]]\nname = "class_name"\ntype = "identifier"\ndefault = "nil"\n'
    ident += 'help = "A name."\n'
    with pytest.raises(
        PatternDefinitionError, match="option class_name: 'nil' is a predeclared Go"
    ):
        load(tmp_path, ident)


def test_language_choices_must_be_a_subset(tmp_path):
    choice = GOOD + (
        '[[options]]\nname = "codec"\ntype = "choice"\ndefault = "a"\nchoices = ["a", "b"]\n'
        'help = "A codec."\n[options.language_choices]\ngo = ["c"]\n'
    )
    with pytest.raises(PatternDefinitionError, match=r"language_choices\.go must be a subset"):
        load(tmp_path, choice)
