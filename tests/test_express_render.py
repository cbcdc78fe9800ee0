"""Rendering Express: every file is prettier-formatted CommonJS whose JSDoc types pass
tsc --checkJs --strict before it is written; a missing toolchain says how to get it; no
option value can break the file; string options reach it as literals node reads back
exactly; CommonJS and ES module apps both load it; the typed API keeps mistakes out."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from _express import checkjs, jsdoc_types, node_run, write_files
from _typescript import code_only
from hypothesis import given, settings
from hypothesis import strategies as st

from templategen import formatting
from templategen.engine import render
from templategen.errors import OptionError, RenderedCodeError, ToolMissingError
from templategen.quoting import identifier_problem
from templategen.registry import Registry

REGISTRY = Registry()
PATTERNS = [p for p in REGISTRY.names() if "express" in REGISTRY.get(p).languages]

#: Fragments that break naive quoting somewhere (as in test_quoting.py).
HOSTILE = [
    "'", '"', "\\", "\n", "\r\n", "\t", "\x00", "\x1b", "\x7f", "{{", "}}", "${", "`", "%s",
    "*/", "/*", "//", "\u2028", "\u2029", "\ufeff", "\u202e", "\U0001f600", "\U0010ffff",
    "é", "\\u0041", "</script>", "\a\b\f\v", "*[x]?",
]  # fmt: skip


def test_express_patterns_are_the_ones_with_templates() -> None:
    assert {"http-cache-headers", "cache-aside"} <= set(PATTERNS)


# --- the toolchain and the check ---------------------------------------------------------


def test_without_node_rendering_express_says_how_to_get_it(monkeypatch) -> None:
    monkeypatch.setattr(formatting.shutil, "which", lambda name: None)
    with pytest.raises(ToolMissingError, match=r"Node\.js 20 or newer.*npm ci") as info:
        render("http-cache-headers", "express")
    assert info.value.exit_code == 3


def test_without_npm_ci_rendering_express_says_how_to_get_it(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(formatting, "TYPESCRIPT_HARNESS", tmp_path)
    with pytest.raises(ToolMissingError, match=f"run `npm ci --ignore-scripts` in {tmp_path}"):
        render("http-cache-headers", "express")


def _fixture_pattern(tmp_path: Path, template: str) -> Registry:
    folder = tmp_path / "templates" / "broken-js"
    folder.mkdir(parents=True)
    (folder / "pattern.toml").write_text(
        'name = "broken-js"\nsummary = "A broken fixture."\nreference = "_lease"\n'
        'reference_modules = ["_lease"]\n\n[files]\nexpress = "broken.js"\n\n'
        '[[options]]\nname = "label"\ntype = "string"\ndefault = "x"\nhelp = "A label."\n',
        encoding="utf-8",
    )
    (folder / "express.js.j2").write_text(template, encoding="utf-8")
    return Registry(tmp_path / "templates")


def test_a_jsdoc_type_error_is_a_template_bug_showing_the_failing_line(tmp_path) -> None:
    registry = _fixture_pattern(
        tmp_path,
        '"use strict";\nconst label = {{ label|str }};\n/** @type {number} */\n'
        "const n = label;\nmodule.exports = { n };\n",
    )
    with pytest.raises(RenderedCodeError) as info:
        render("broken-js", "express", registry=registry)
    message = str(info.value)
    assert "does not pass tsc --checkJs --strict" in message
    assert "TS2322" in message
    assert ">>    8 | const n = label;" in message  # after the 3-line header and a blank


def test_a_syntax_error_is_a_template_bug_reported_by_prettier(tmp_path) -> None:
    registry = _fixture_pattern(tmp_path, "const label = {{ label|str }}\nconst = ;\n")
    with pytest.raises(RenderedCodeError, match="prettier cannot parse the rendered JavaScript"):
        render("broken-js", "express", registry=registry)


def test_an_unused_helper_is_a_template_bug(tmp_path) -> None:
    registry = _fixture_pattern(
        tmp_path,
        '"use strict";\nconst label = {{ label|str }};\nconst unused = 1;\n'
        "module.exports = { label };\n",
    )
    with pytest.raises(RenderedCodeError, match="TS6133"):
        render("broken-js", "express", registry=registry)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_rendered_express_is_already_formatted(pattern: str) -> None:
    text = render(pattern, "express").text
    assert formatting.check_and_format("express", text, f"express/{pattern}.js") == text


@pytest.mark.parametrize("pattern", PATTERNS)
def test_rendered_express_is_commonjs(pattern: str) -> None:
    code = code_only(render(pattern, "express").text)
    assert not re.search(r"^\s*(import|export)\b", code, re.M)
    assert re.search(r"^module\.exports = \{", code, re.M)
    assert '"use strict"' in render(pattern, "express").text


# --- names -------------------------------------------------------------------------------

_DECLARATION = re.compile(r"^(?:async )?(?:class|function\*?|const|let) ([A-Za-z_$][\w$]*)", re.M)
_REQUIRED = re.compile(r"^const \{([^}]*)\} = require\(", re.M)
_TYPEDEF_NAME = re.compile(r"@typedef\s*\{")
_TEMPLATE_NAME = re.compile(r"@template(?:\s*\{[^}]*\})?\s*\[?([A-Za-z_$][\w$]*)")


def _typedef_names(text: str) -> set[str]:
    names = set()
    for match in _TYPEDEF_NAME.finditer(text):
        depth, i = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        names.add(re.match(r"\s*([A-Za-z_$][\w$]*)", text[i:])[1])  # type: ignore[index]
    return names


def _declared(text: str) -> set[str]:
    names = set(_DECLARATION.findall(text)) | _typedef_names(text)
    names |= set(_TEMPLATE_NAME.findall(text))
    for group in _REQUIRED.findall(text):
        names.update(n.strip() for n in group.split(",") if n.strip())
    return names


def _identifier_options(pattern: str) -> list[str]:
    return [o.name for o in REGISTRY.get(pattern).options_for("express") if o.type == "identifier"]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_every_name_the_file_declares_or_requires_is_reserved(pattern: str) -> None:
    rendered = render(pattern, "express")
    names = _declared(rendered.text)
    assert {"DEFAULTS", "ConfigurationError"} <= names  # the scan sees declarations
    names -= {str(rendered.options.values[o]) for o in _identifier_options(pattern)}
    reserved = set(REGISTRY.get(pattern).reserved_names.get("express", ()))
    assert sorted(names - reserved) == []
    # CommonJS binds these in every module: a class of that name would break it.
    assert {"require", "module", "exports"} <= reserved


@pytest.mark.parametrize("pattern", PATTERNS)
def test_no_identifier_an_option_accepts_breaks_the_file(pattern: str, tmp_path: Path) -> None:
    """Each identifier of the file (code and JSDoc), as each identifier option, checks.

    The variants are the default output with the option's value replaced textually; one
    tsc run checks them all, and an unused name of our own makes sure it is not vacuous.
    """
    rendered = render(pattern, "express")
    text = rendered.text
    words = re.compile(r"(?<![.\w$])[A-Za-z_$][\w$]*")
    tokens = set(words.findall(code_only(text)))
    tokens |= {t for types in jsdoc_types(text) for t in words.findall(types)}
    tokens.add("NeverUsedAnywhere")
    spec = REGISTRY.get(pattern)
    reserved = set(spec.reserved_names.get("express", ()))
    values = {str(v) for v in rendered.options.values.values()}
    files: dict[str, str] = {}
    names: dict[str, str] = {}
    for option in _identifier_options(pattern):
        opt = spec.option(option)
        current = str(rendered.options.values[option])
        for token in sorted(tokens):
            if token == current or token in reserved or token in values:
                continue
            if identifier_problem("express", token) or (
                opt.pattern and not re.fullmatch(opt.pattern, token)
            ):
                continue
            name = f"variant{len(files)}.js"
            names[name] = f"{option}={token}"
            files[name] = re.sub(rf"\b{re.escape(current)}\b", token, text)
    assert any(v.endswith("=NeverUsedAnywhere") for v in names.values())
    broken = sorted(names[name] for name in checkjs(tmp_path, files))
    assert broken == [], "reserve these names in pattern.toml"


def test_identifier_options_refuse_names_the_file_relies_on() -> None:
    with pytest.raises(OptionError, match="defines itself"):
        render("cache-aside", "express", {"class_name": "LuaScript"})
    with pytest.raises(OptionError):
        render("http-cache-headers", "express", {"class_name": "Buffer"})


# --- literals ------------------------------------------------------------------------------

#: string option -> its field in the rendered DEFAULTS, per pattern.
DEFAULT_FIELDS: dict[str, dict[str, str]] = {
    "cache-aside": {"key_prefix": "prefix"},
    "http-cache-headers": {},  # no string options; its DEFAULTS must still be a literal
}
_DEFAULTS = re.compile(r"^const DEFAULTS = (\{.*?^\});", re.M | re.S)

_HEX = "(v) => typeof v === 'string' ? Buffer.from(v, 'utf8').toString('hex') : v"


def _defaults_read_by_node(texts: list[str], folder: Path) -> list[dict[str, object]]:
    """The DEFAULTS object of each rendered file, as node evaluates its text."""
    literals = []
    for text in texts:
        match = _DEFAULTS.search(text)
        assert match, "no `const DEFAULTS = {...};` in the rendered file"
        literals.append(match.group(1))
    write_files(folder, {})
    script = (
        "const all = [\n" + ",\n".join(f"({lit})" for lit in literals) + "\n];\n"
        f"const hex = {_HEX};\n"
        "process.stdout.write(JSON.stringify(all.map((d) => Object.fromEntries("
        "Object.entries(d).map(([k, v]) => [k, hex(v)])))));\n"
    )
    result: list[dict[str, object]] = json.loads(node_run(folder, script))
    return result


def _prefixes_of_constructed_caches(texts: list[str], folder: Path) -> list[str]:
    """Each rendered cache-aside module required by node; its cache's prefix, as hex."""
    files = {f"cache{i}.js": text for i, text in enumerate(texts)}
    write_files(folder, files)
    script = (
        "const client = { isOpen: true, sendCommand: async () => null };\n"
        f"const names = {json.dumps(sorted(files))};\n"
        "const out = names.map((name) => {\n"
        "  const { CacheAside } = require(`./${name}`);\n"
        "  return Buffer.from(new CacheAside(client).prefix, 'utf8').toString('hex');\n"
        "});\n"
        "process.stdout.write(JSON.stringify(out));\n"
    )
    result: list[str] = json.loads(node_run(folder, script))
    return [result[sorted(files).index(f"cache{i}.js")] for i in range(len(texts))]


def _check_literals(pattern: str, values: list[str], folder: Path) -> None:
    fields = DEFAULT_FIELDS[pattern]
    texts = [render(pattern, "express", dict.fromkeys(fields, value)).text for value in values]
    expected = [value.encode("utf-8", "surrogatepass").hex() for value in values]
    for value, defaults in zip(expected, _defaults_read_by_node(texts, folder), strict=True):
        for field in fields.values():
            assert defaults[field] == value, (field, value)
    if pattern == "cache-aside":
        assert _prefixes_of_constructed_caches(texts, folder / "required") == expected


@pytest.mark.slow
@pytest.mark.parametrize("pattern", PATTERNS)
def test_hostile_strings_reach_the_file_as_literals_node_reads_back(pattern, tmp_path) -> None:
    # Every fragment, together and apart (one render per value: each costs prettier+tsc).
    values = ["".join(HOSTILE), "".join(reversed(HOSTILE)), "x".join(HOSTILE)]
    assert all(len(v) <= 200 for v in values)
    _check_literals(pattern, values, tmp_path)


@pytest.mark.slow
@settings(max_examples=3, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from(HOSTILE) | st.text(min_size=1, max_size=6), min_size=1, max_size=8)
        .map("".join)
        .filter(lambda s: 1 <= len(s) <= 200 and not re.search("[\ud800-\udfff]", s)),
        min_size=2,
        max_size=2,
    )
)
def test_arbitrary_prefixes_reach_the_express_file_as_literals_node_reads_back(values) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        _check_literals("cache-aside", values, Path(tmp))


# --- loading and the API -------------------------------------------------------------------


@pytest.mark.parametrize("pattern", PATTERNS)
def test_es_module_apps_import_the_commonjs_file_by_name(pattern: str, tmp_path: Path) -> None:
    rendered = render(pattern, "express")
    write_files(tmp_path, {rendered.path.name: rendered.text})
    exported = json.loads(
        node_run(
            tmp_path,
            f"const required = Object.keys(require('./{rendered.path.name}')).sort();\n"
            "process.stdout.write(JSON.stringify(required));\n",
        )
    )
    assert exported
    imported = json.loads(
        node_run(
            tmp_path,
            f"import * as m from './{rendered.path.name}';\n"
            "process.stdout.write(JSON.stringify(Object.keys(m).filter((k) => k !== "
            "'default' && k !== 'module.exports').sort()));\n",
            name="run.mjs",
        )
    )
    assert imported == exported


@pytest.mark.parametrize("pattern", PATTERNS)
def test_public_api_never_says_any(pattern: str) -> None:
    types = jsdoc_types(render(pattern, "express").text)
    assert types
    assert [t for t in types if re.search(r"\bany\b", t)] == []


#: Code a user writes against each rendered file, type-checked with --checkJs: it must
#: pass, and each line after `@ts-expect-error` must not (the JSDoc types keep mistakes
#: out of plain JavaScript too).
API_USE = {
    "http-cache-headers": """
const express = require("express");
const {
  CacheHeadersMiddleware, CacheControl, CachePolicy, ConfigurationError, EntityTag,
  cdnCatalog, evaluatePreconditions, makeEtag, mergeVary, parseHttpDate, prefixRules,
  privateUserData, publicApi, staticAssets, surrogateKeyHeader,
} = require("./httpCacheHeaders.js");

const app = express();
app.use(
  new CacheHeadersMiddleware(
    prefixRules({
      "/static": staticAssets(),
      "/api/products": publicApi({ maxAge: 60 }),
      "/api/user": privateUserData(),
      "/api/catalog": cdnCatalog(["catalog", "products"]),
    }),
  ).handler,
);
const one = new CacheHeadersMiddleware(publicApi(), { maxBufferBytes: 1 << 16 });
app.get("/api/products/:id", one.handler, (req, res) => {
  res.json({ id: req.params.id });
});
const policy = new CachePolicy({
  cacheControl: new CacheControl({ public: true, maxAge: 60, staleIfError: 600 }),
  vary: ["Accept-Language"],
  weakEtag: true,
});
/** @type {InstanceType<typeof EntityTag>} */
const tag = makeEtag("body", { weak: true });
/** @type {304 | 412 | null} */
const outcome = evaluatePreconditions("PUT", {
  ifNoneMatch: "*",
  etag: tag,
  lastModified: parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"),
});
/** @type {string} */
const vary = mergeVary("Accept-Encoding", null, undefined);
/** @type {string} */
const keys = surrogateKeyHeader(new Set(["a", "b"]));
/** @type {Error} */
const error = new ConfigurationError("x");
/** @type {InstanceType<typeof EntityTag> | null} */
const parsed = EntityTag.parse('W/"x"');
// @ts-expect-error deltas are numbers
new CacheControl({ maxAge: "60" });
// @ts-expect-error a policy is a CachePolicy or a function of the request
new CacheHeadersMiddleware({ maxAge: 60 });
// @ts-expect-error options are typed
new CacheHeadersMiddleware(publicApi(), { maxBufferBytes: "1" });
void [policy, outcome, vary, keys, error, parsed];
""",
    "cache-aside": """
const express = require("express");
const { createClient } = require("redis");
const { CacheAside, CacheManager, CacheUnavailableError } = require("./cacheAside.js");

async function main() {
  const client = await createClient({ disableOfflineQueue: true }).connect();
  const manager = new CacheManager(client);
  const products = manager.cacheResponses({ ttl: 60, vary: ["Accept-Language"] });
  const app = express();
  app.get("/api/products/:id", products, (req, res) => {
    res.json({ id: req.params.id });
  });
  /** @type {number} */
  const dropped = await products.invalidate("/api/products/1");
  /** @type {number} */
  const all = await products.invalidateAll();
  const cache = new CacheAside(client, { ttl: 60, negativeTtl: null });
  /** @type {{ id: number }} */
  const user = await cache.get("user:1", async () => ({ id: 1 }));
  /** @type {number} */
  const count = await cache.get("n", () => 1);
  await cache.set("user:1", user, 30);
  /** @type {boolean} */
  const removed = await cache.delete("user:1");
  /** @param {number} id */
  const find = async (id, full = false) => ({ id, full });
  const cachedFind = manager.wrap(find, { prefix: "users" });
  const found = await cachedFind(1);
  /** @type {boolean} */
  const gone = await cachedFind.invalidate(1);
  /** @type {Error} */
  const down = new CacheUnavailableError("x");
  // @ts-expect-error keys are strings
  await cache.get(1, () => 1);
  // @ts-expect-error the loader's type is the value's type
  /** @type {string} */ const wrong = await cache.get("n", () => 1);
  // @ts-expect-error a wrapped function takes its own arguments
  await cachedFind("1");
  // @ts-expect-error options are typed
  manager.cacheResponses({ vary: "Accept-Language" });
  // @ts-expect-error options are typed
  new CacheAside(client, { ttl: "60" });
  void [dropped, all, count, removed, found, gone, down, wrong];
}
void main;
""",
}


@pytest.mark.parametrize("pattern", PATTERNS)
def test_public_api_types_what_users_write(pattern: str, tmp_path: Path) -> None:
    rendered = render(pattern, "express")
    errors = checkjs(tmp_path, {rendered.path.name: rendered.text, "use.js": API_USE[pattern]})
    assert errors == {}
