"""Rendering TypeScript: every file is prettier-formatted and passes tsc --strict before it
is written; a missing toolchain says how to get it; no option value can break the file;
string options reach it as literals node reads back exactly; the API is typed, no `any`."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from _typescript import code_only, node_run, tsc
from hypothesis import given, settings
from hypothesis import strategies as st

from templategen import formatting
from templategen.engine import render
from templategen.errors import OptionError, RenderedCodeError, ToolMissingError
from templategen.quoting import identifier_problem
from templategen.registry import Registry

REGISTRY = Registry()
PATTERNS = [p for p in REGISTRY.names() if "typescript" in REGISTRY.get(p).languages]

#: Fragments that break naive quoting somewhere (as in test_quoting.py).
HOSTILE = [
    "'", '"', "\\", "\n", "\r\n", "\t", "\x00", "\x1b", "\x7f", "{{", "}}", "${", "`", "%s",
    "*/", "/*", "//", "\u2028", "\u2029", "\ufeff", "\u202e", "\U0001f600", "\U0010ffff",
    "é", "\\u0041", "</script>", "\a\b\f\v",
]  # fmt: skip


def test_typescript_patterns_are_the_ones_with_templates() -> None:
    assert {"cache-aside", "stampede-lock", "early-refresh"} <= set(PATTERNS)


# --- the toolchain ---------------------------------------------------------------------


def test_without_node_rendering_typescript_says_how_to_get_it(monkeypatch) -> None:
    monkeypatch.setattr(formatting.shutil, "which", lambda name: None)
    with pytest.raises(ToolMissingError, match=r"Node\.js 20 or newer.*npm ci") as info:
        render("cache-aside", "typescript")
    assert info.value.exit_code == 3


def test_without_npm_ci_rendering_typescript_says_how_to_get_it(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(formatting, "TYPESCRIPT_HARNESS", tmp_path)
    with pytest.raises(ToolMissingError, match=f"run `npm ci --ignore-scripts` in {tmp_path}"):
        render("cache-aside", "typescript")


def test_harness_pins_every_package_exactly() -> None:
    harness = formatting.TYPESCRIPT_HARNESS
    package = json.loads((harness / "package.json").read_text(encoding="utf-8"))
    lock = json.loads((harness / "package-lock.json").read_text(encoding="utf-8"))
    wanted = package["devDependencies"]
    assert set(wanted) >= {"redis", "typescript", "prettier", "express", "@types/express"}
    for name, version in wanted.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} is not pinned: {version}"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version


def _fixture_pattern(tmp_path: Path, template: str) -> Registry:
    folder = tmp_path / "templates" / "broken-ts"
    folder.mkdir(parents=True)
    (folder / "pattern.toml").write_text(
        'name = "broken-ts"\nsummary = "A broken fixture."\nreference = "_lease"\n'
        'reference_modules = ["_lease"]\n\n[files]\ntypescript = "broken.ts"\n\n'
        '[[options]]\nname = "label"\ntype = "string"\ndefault = "x"\nhelp = "A label."\n',
        encoding="utf-8",
    )
    (folder / "typescript.ts.j2").write_text(template, encoding="utf-8")
    return Registry(tmp_path / "templates")


def test_a_type_error_is_a_template_bug_showing_the_failing_line(tmp_path) -> None:
    registry = _fixture_pattern(
        tmp_path, "export const label: string = {{ label|str }};\nexport const n: number = label;\n"
    )
    with pytest.raises(RenderedCodeError) as info:
        render("broken-ts", "typescript", registry=registry)
    message = str(info.value)
    assert "does not pass tsc --strict" in message
    assert "TS2322" in message
    assert ">>    6 | export const n: number = label;" in message  # after the 3-line header


def test_a_syntax_error_is_a_template_bug_reported_by_prettier(tmp_path) -> None:
    registry = _fixture_pattern(tmp_path, "export const label = {{ label|str }}\nconst = ;\n")
    with pytest.raises(RenderedCodeError, match="prettier cannot parse"):
        render("broken-ts", "typescript", registry=registry)


def test_an_unused_helper_is_a_template_bug(tmp_path) -> None:
    registry = _fixture_pattern(
        tmp_path, "export const label = {{ label|str }};\nconst unused = 1;\n"
    )
    with pytest.raises(RenderedCodeError, match="TS6133"):
        render("broken-ts", "typescript", registry=registry)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_rendered_typescript_is_already_formatted(pattern: str) -> None:
    text = render(pattern, "typescript").text
    assert formatting.check_and_format("typescript", text, f"typescript/{pattern}.ts") == text


# --- names -------------------------------------------------------------------------------

_DECLARATION = re.compile(
    r"^(?:export )?(?:async )?(?:class|function|const|let|interface|type) ([A-Za-z_$][\w$]*)", re.M
)
_IMPORT = re.compile(r"^import \{([^}]*)\} from", re.M)


def _identifier_options(pattern: str) -> list[str]:
    return [
        o.name for o in REGISTRY.get(pattern).options_for("typescript") if o.type == "identifier"
    ]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_every_name_the_file_declares_or_imports_is_reserved(pattern: str) -> None:
    rendered = render(pattern, "typescript")
    names = set(_DECLARATION.findall(rendered.text))
    for group in _IMPORT.findall(rendered.text):
        names.update(n.strip().removeprefix("type ").strip() for n in group.split(",") if n.strip())
    names -= {str(rendered.options.values[o]) for o in _identifier_options(pattern)}
    reserved = set(REGISTRY.get(pattern).reserved_names.get("typescript", ()))
    assert sorted(names - reserved) == []


@pytest.mark.parametrize("pattern", PATTERNS)
def test_no_identifier_an_option_accepts_breaks_the_file(pattern: str, tmp_path: Path) -> None:
    """Each identifier of the file, used as each identifier option, compiles or is refused.

    The variants are the default output with the option's value replaced textually (what
    a render with that value gives, up to line breaks): one tsc run checks them all. A
    name the file does not use is always among them, so the check is never vacuous when
    every name of the file an option would accept is reserved.
    """
    rendered = render(pattern, "typescript")
    tokens = set(re.findall(r"(?<![.\w$])[A-Za-z_$][\w$]*", code_only(rendered.text)))
    spec = REGISTRY.get(pattern)
    reserved = set(spec.reserved_names.get("typescript", ()))
    files: dict[str, str] = {}
    names: dict[str, str] = {}
    for option in _identifier_options(pattern):
        opt = spec.option(option)
        current = str(rendered.options.values[option])
        for token in sorted(tokens | {current + "Renamed"}):
            if token == current or token in reserved or identifier_problem("typescript", token):
                continue
            if opt.pattern and not re.fullmatch(opt.pattern, token):
                continue
            if token in {str(v) for v in rendered.options.values.values()}:
                continue  # two identifier options may not share a value
            # Numbered files: names differing only in case would clash on some disks.
            name = f"variant{len(files)}.ts"
            names[name] = f"{option}={token}"
            files[name] = re.sub(rf"\b{re.escape(current)}\b", token, rendered.text)
    assert files
    broken = sorted(names[name] for name in tsc(tmp_path, files))
    assert broken == [], "reserve these names in pattern.toml"


def test_every_typescript_keyword_is_refused_or_a_valid_class_name(tmp_path: Path) -> None:
    """The scanner keywords of TypeScript: those tsc rejects as a class name are refused."""
    keywords = (  # noqa: SIM905 - a word list reads best as words
        "abstract accessor any as assert asserts async await bigint boolean break case catch "
        "class const constructor continue debugger declare default defer delete do else enum "
        "export extends false finally for from function get global if implements import in "
        "infer instanceof interface intrinsic is keyof let module namespace never new null "
        "number object of out override package private protected public readonly require "
        "return satisfies set static string super switch symbol this throw true try type "
        "typeof undefined unique unknown using var void while with yield"
    ).split()
    accepted = [k for k in keywords if identifier_problem("typescript", k) is None]
    files = {
        f"k_{k}.ts": f"export class {k} {{}}\nexport const made = new {k}();\n" for k in accepted
    }
    assert tsc(tmp_path, files) == {}, accepted
    # The reserved words of strict-mode JavaScript can never be names.
    for word in ("break", "class", "enum", "implements", "let", "static", "yield", "await"):
        assert identifier_problem("typescript", word) is not None


# --- literals ------------------------------------------------------------------------------

#: string option -> its field in the rendered DEFAULTS, per pattern.
DEFAULT_FIELDS = {
    "cache-aside": {"key_prefix": "prefix"},
    "stampede-lock": {"key_prefix": "prefix", "lock_prefix": "lockPrefix"},
    "early-refresh": {"key_prefix": "prefix", "lock_prefix": "lockPrefix"},
    "http-cache-headers": {},  # no string options; its DEFAULTS must still be a literal
    "tag-invalidation": {"key_prefix": "prefix"},
    "version-invalidation": {"key_prefix": "prefix"},
    "write-through": {"key_prefix": "prefix"},
    "write-behind": {"key_prefix": "prefix"},
}
_DEFAULTS = re.compile(r"^const DEFAULTS = (\{.*?^\}) as const;", re.M | re.S)


def _defaults_read_by_node(texts: list[str], folder: Path) -> list[dict[str, object]]:
    """The DEFAULTS object of each rendered file, as node evaluates its text."""
    literals = []
    for text in texts:
        match = _DEFAULTS.search(text)
        assert match, "no `const DEFAULTS = {...} as const;` in the rendered file"
        literals.append(match.group(1))
    script = (
        "const all = [\n" + ",\n".join(f"({lit})" for lit in literals) + "\n];\n"
        "process.stdout.write(JSON.stringify(all.map((d) => Object.fromEntries("
        "Object.entries(d).map(([k, v]) => [k, typeof v === 'string' ? "
        "Buffer.from(v, 'utf8').toString('hex') : v])))));\n"
    )
    result: list[dict[str, object]] = json.loads(node_run(folder, script))
    return result


def _check_literals(pattern: str, values: list[str], folder: Path) -> None:
    fields = DEFAULT_FIELDS[pattern]
    texts = []
    for value in values:
        given = {option: value for option in fields}
        texts.append(render(pattern, "typescript", given).text)
    for value, defaults in zip(values, _defaults_read_by_node(texts, folder), strict=True):
        for field in fields.values():
            assert defaults[field] == value.encode("utf-8", "surrogatepass").hex(), (field, value)


@pytest.mark.slow
@pytest.mark.parametrize("pattern", PATTERNS)
def test_hostile_strings_reach_the_file_as_literals_node_reads_back(pattern, tmp_path) -> None:
    # Every fragment, together and apart (one render per value: each costs prettier+tsc).
    values = ["".join(HOSTILE), "".join(reversed(HOSTILE)), "x".join(HOSTILE)]
    assert all(len(v) <= 200 for v in values)
    _check_literals(pattern, values, tmp_path)


@pytest.mark.slow
@settings(max_examples=2, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from(HOSTILE) | st.text(min_size=1, max_size=6), min_size=1, max_size=8)
        .map("".join)
        .filter(lambda s: 1 <= len(s) <= 200 and not re.search("[\ud800-\udfff]", s)),
        min_size=3,
        max_size=3,
    )
)
def test_arbitrary_prefixes_reach_the_file_as_literals_node_reads_back(values) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        _check_literals("cache-aside", values, Path(tmp))


# --- the API -------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", PATTERNS)
def test_public_api_never_says_any(pattern: str) -> None:
    code = code_only(render(pattern, "typescript").text)
    assert not re.search(r"\bany\b", code)


#: Code a user writes against each rendered file: it must compile, and each line after
#: `@ts-expect-error` must not (the types keep mistakes out).
API_USE = {
    "http-cache-headers": """
import express, { type Request } from "express";
import {
  CacheHeadersMiddleware, CacheControl, CachePolicy, ConfigurationError, EntityTag,
  cdnCatalog, evaluatePreconditions, makeEtag, mergeVary, parseHttpDate, prefixRules,
  privateUserData, publicApi, staticAssets, surrogateKeyHeader,
} from "./httpCacheHeaders.js";

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
const byRequest = new CacheHeadersMiddleware((req: Request) =>
  req.query.fresh ? privateUserData() : null,
);
app.use(byRequest.handler);
const policy = new CachePolicy({
  cacheControl: new CacheControl({ public: true, maxAge: 60, staleIfError: 600 }),
  vary: ["Accept-Language"],
  surrogateKeys: ["products"],
  surrogateControl: new CacheControl({ maxAge: 3600 }),
  weakEtag: true,
});
const tag: EntityTag = makeEtag("body", { weak: true });
const parsed: EntityTag | null = EntityTag.parse('W/"x"');
const outcome: 304 | 412 | null = evaluatePreconditions("PUT", {
  ifNoneMatch: "*",
  etag: tag,
  lastModified: parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"),
});
const vary: string = mergeVary("Accept-Encoding", null, undefined);
const keys: string = surrogateKeyHeader(new Set(["a", "b"]));
const error: Error = new ConfigurationError("x");
// @ts-expect-error deltas are numbers
new CacheControl({ maxAge: "60" });
// @ts-expect-error directives are the known ones
new CacheControl({ maxage: 60 });
// @ts-expect-error a policy is a CachePolicy or a function of the request
new CacheHeadersMiddleware({ maxAge: 60 });
// @ts-expect-error the lookup gives a policy
new CacheHeadersMiddleware(() => "public");
void [policy, parsed, outcome, vary, keys, error];
""",
    "cache-aside": """
import { createClient } from "redis";
import { CacheAside, CacheManager, type CachedFunction } from "./cacheAside.js";

interface User { id: number; name: string }
const client = await createClient().connect();
const cache = new CacheAside(client, { ttl: 60, negativeTtl: null });
const user: User = await cache.get("user:1", async (): Promise<User> => ({ id: 1, name: "a" }));
const count: number = await cache.get("n", () => 1);
await cache.set("user:1", user, 30);
const removed: boolean = await cache.delete("user:1");
const many: number = await cache.deletePattern("user:*");
const manager = new CacheManager(client);
const name: string = await manager.cacheAside("k", async () => "v", { ttl: 5 });
const find = async (id: number, full = false): Promise<User> => ({ id, name: String(full) });
const cachedFind: CachedFunction<[id: number, full?: boolean], User> = manager.wrap(find);
const found: User = await cachedFind(1);
const dropped: boolean = await cachedFind.invalidate(1);
const all: number = await cachedFind.invalidateAll();
const byKey = manager.wrap(find, { keyBuilder: (id) => id, prefix: "users" });
await byKey(2, true);
// RESP2 clients fit too.
new CacheAside(await createClient({ RESP: 2 }).connect());
// @ts-expect-error keys are strings
await cache.get(1, () => 1);
// @ts-expect-error the loader's type is the value's type
const wrong: string = await cache.get("n", () => 1);
// @ts-expect-error a wrapped function takes its own arguments
await cachedFind("1");
// @ts-expect-error options are typed
new CacheAside(client, { ttl: "60" });
void [count, removed, many, name, found, dropped, all, wrong];
""",
    "stampede-lock": """
import { createClient } from "redis";
import { StampedeLockCache, LockTimeoutError, CacheError } from "./stampedeLock.js";

const client = await createClient().connect();
const cache = new StampedeLockCache(client, { lockTimeout: 5, waitTimeout: 20 });
const report: { rows: number[] } = await cache.cacheWithLock(
  "report", async () => ({ rows: [1] }), 300);
const ran: string | null = await cache.distributedLock(
  "job", async (acquired) => (acquired ? "ran" : null));
const timeout: CacheError = new LockTimeoutError("x");
new StampedeLockCache(await createClient({ RESP: 2 }).connect());
// @ts-expect-error the loader's type is the value's type
const wrong: string = await cache.cacheWithLock("n", () => 1);
// @ts-expect-error the body gets whether the lock was acquired
await cache.distributedLock("job", (acquired: string) => acquired);
void [report, ran, timeout, wrong];
""",
    "early-refresh": """
import { createClient } from "redis";
import { EarlyRefreshCache } from "./earlyRefresh.js";

const client = await createClient().connect();
const cache = new EarlyRefreshCache(client, { background: true, clock: Date.now });
const price: number = await cache.getWithRefresh("price", async () => 4.5, 60, 1.5);
new EarlyRefreshCache(await createClient({ RESP: 2 }).connect());
// @ts-expect-error the loader's type is the value's type
const wrong: string = await cache.getWithRefresh("n", () => 1);
// @ts-expect-error options are typed
new EarlyRefreshCache(client, { background: "yes" });
void [price, wrong];
""",
    "tag-invalidation": """
import { createClient } from "redis";
import { TaggedCache, CacheUnavailableError, type CacheError } from "./tagInvalidation.js";

interface Product { sku: string; price: number }
const client = await createClient().connect();
const cache = new TaggedCache(client, { prefix: "shop", drainBatch: 100 });
await cache.setWithTags("p:1", { sku: "a", price: 1 }, 300, ["products", "brand:x"]);
await cache.setWithTags("p:2", null, 0.5, new Set(["products"]));
const product: Product | undefined = await cache.get<Product>("p:1");
const orDefault: Product | null = (await cache.get<Product>("p:9")) ?? null;
const tags: Set<string> = await cache.getTags("p:1");
const deleted: number = await cache.invalidateTags("brand:x", "products");
const none: number = await cache.invalidateTags();
const existed: boolean = await cache.delete("p:1");
const down: CacheError = new CacheUnavailableError("x");
new TaggedCache(await createClient({ RESP: 2 }).connect());
// @ts-expect-error tags are an iterable of strings
await cache.setWithTags("p:3", 1, 60, "products");
// @ts-expect-error a miss is undefined: the type says so
const sure: Product = await cache.get<Product>("p:1");
// @ts-expect-error tags are separate arguments
await cache.invalidateTags(["products"]);
// @ts-expect-error options are typed
new TaggedCache(client, { drainBatch: "10" });
void [product, orDefault, tags, deleted, none, existed, down, sure];
""",
    "version-invalidation": """
import { createClient } from "redis";
import { VersionedCache, type VersionedLookup } from "./versionInvalidation.js";

interface User { id: number; name: string }
const client = await createClient().connect();
const cache = new VersionedCache(client, { prefix: "app", ttl: 60 });
const user: User = await cache.getOrLoad("user", "1", async () => ({ id: 1, name: "a" }));
const short: number = await cache.getOrLoad("n", "1", () => 1, 5);
const hit: VersionedLookup<User> = await cache.lookup<User>("user", "1");
if (hit.found) {
  const name: string = hit.value.name;
  void name;
} else {
  const written: boolean = await cache.set("user", "1", user, { version: hit.version });
  void written;
}
const maybe: User | undefined = await cache.get<User>("user", "1");
await cache.set("user", "2", null, { ttl: 30 });
const version: bigint = await cache.incrementVersion("user");
const current: bigint = await cache.getVersion("user");
new VersionedCache(await createClient({ RESP: 2 }).connect());
// @ts-expect-error versions are bigints: a number would round above 2^53
await cache.set("user", "1", user, { version: 3 });
// @ts-expect-error a miss has no value: narrow on found first
void hit.value;
// @ts-expect-error the loader's type is the value's type
const wrong: string = await cache.getOrLoad("n", "1", () => 1);
// @ts-expect-error options are typed
new VersionedCache(client, { ttl: "60" });
void [user, short, maybe, version, current, wrong];
""",
    "write-through": """
import { createClient } from "redis";
import {
  MemoryStore, StoreError, WriteThroughCache, type Row, type Store,
} from "./writeThrough.js";

interface User { name: string; tags?: string[] }
class UserTable implements Store<User> {
  async get(id: string): Promise<Row<User> | null> {
    return { id, data: { name: id }, version: 1n };
  }
  async upsert(id: string, data: User): Promise<Row<User>> { return { id, data, version: 2n }; }
  async delete(id: string): Promise<bigint | null> { return id === "" ? null : 3n; }
}
const client = await createClient().connect();
const users = new WriteThroughCache(client, new UserTable(), { ttl: 60, negativeTtl: 5 });
const row: Row<User> = await users.set("ada", { name: "Ada" });
const version: bigint = row.version;
const found: Row<User> | null = await users.get("ada");
const existed: boolean = await users.delete("ada");
const memory = new WriteThroughCache<number[]>(client, new MemoryStore(), { failOpen: false });
await memory.set("n", [1, 2]);
const failure: Error = new StoreError("disk full");
new WriteThroughCache(await createClient({ RESP: 2 }).connect(), new MemoryStore<User>());
// @ts-expect-error the data is the store's row type
await users.set("bob", { nom: "Bob" });
// @ts-expect-error a miss is null: the type says so
const sure: Row<User> = await users.get("ada");
// @ts-expect-error versions are bigints
const rounded: number = row.version;
// @ts-expect-error options are typed
new WriteThroughCache(client, new MemoryStore(), { negativeTtl: "5" });
void [version, found, existed, failure, sure, rounded];
""",
    "write-behind": """
import { createClient } from "redis";
import {
  FlushTimeoutError, MemoryStore, WriteBehindCache, type CacheError, type Row, type Store,
  type WriteBehindStats,
} from "./writeBehind.js";

interface User { name: string }
class UserTable implements Store<User> {
  async get(id: string): Promise<Row<User> | null> {
    return { id, data: { name: id }, version: 1n };
  }
  async upsertMany(rows: ReadonlyArray<Row<User>>): Promise<number> { return rows.length; }
}
const client = await createClient().connect();
const users = new WriteBehindCache(client, new UserTable(), {
  batchSize: 50, readLimit: 5000, claimIdle: 60,
});
await users.start();
const row: Row<User> = await users.set("u:1", { name: "Ada" });
const version: bigint = row.version;
const latest: Row<User> | null = await users.get("u:1");
await users.flush(5);
const stats: WriteBehindStats = await users.stats();
const depth: number = stats.queueDepth;
await users.stop(10);
const late: CacheError = new FlushTimeoutError("x");
const memory = new WriteBehindCache<number>(client, new MemoryStore(), { stream: "q" });
await memory.set("n", 1);
new WriteBehindCache(await createClient({ RESP: 2 }).connect(), new MemoryStore<User>());
// @ts-expect-error the data is the store's row type
await users.set("u:2", { nom: "Bob" });
// @ts-expect-error a row nobody wrote is null: the type says so
const sure: Row<User> = await users.get("u:1");
// @ts-expect-error options are typed
new WriteBehindCache(client, new MemoryStore(), { batchSize: "10" });
void [version, latest, depth, late, sure];
""",
}


@pytest.mark.parametrize("pattern", PATTERNS)
def test_public_api_types_what_users_write(pattern: str, tmp_path: Path) -> None:
    rendered = render(pattern, "typescript")
    errors = tsc(tmp_path, {rendered.path.name: rendered.text, "use.ts": API_USE[pattern]})
    assert errors == {}


def test_identifier_options_refuse_names_the_file_relies_on() -> None:
    with pytest.raises(OptionError, match="defines itself"):
        render("cache-aside", "typescript", {"class_name": "TextDecoder"})


def test_harness_node_modules_are_not_in_git() -> None:
    ignored = shutil.which("git")
    assert ignored is not None
    import subprocess

    out = subprocess.run(
        ["git", "check-ignore", "-q", str(formatting.TYPESCRIPT_HARNESS / "node_modules")],
        cwd=formatting.TYPESCRIPT_HARNESS,
    )
    assert out.returncode == 0
