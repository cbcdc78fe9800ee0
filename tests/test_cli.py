"""The command line, through click's CliRunner and through the real console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from templategen import __version__
from templategen.cli import cli

FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE = Path(__file__).parent.parent / "reference"
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


def run(*args: str, root: Path | None = FIXTURES / "templates", **kw: object) -> Result:
    prefix = ["--templates-dir", str(root)] if root else []
    return CliRunner().invoke(cli, [*prefix, *args], **kw)  # type: ignore[arg-type]


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


# --- help and version ----------------------------------------------------------------------


def test_version_prints_the_package_version():
    result = run("--version", root=None)
    assert result.exit_code == 0
    assert __version__ in result.output


def _help_texts(command: click.Command) -> list[str]:
    summary = (command.help or "").strip().split("\n\n")[0]
    texts = [summary, (command.help or "").strip()]
    texts += [p.help or "" for p in command.params if isinstance(p, click.Option) and not p.hidden]
    return texts


def test_every_command_and_option_has_sentence_case_help_ending_in_a_period():
    commands = [cli, *cli.commands.values()]  # type: ignore[attr-defined]
    assert {c.name for c in commands} >= {"list", "describe", "show", "render", "verify"}
    for command in commands:
        for text in _help_texts(command):
            if text.startswith("Show the version") or text.startswith("Show this message"):
                continue
            assert text and text[0].isupper() and text.endswith("."), (command.name, text)


# --- list, describe, show ------------------------------------------------------------------


def test_list_shows_every_pattern_with_its_languages():
    result = run("list", root=None)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["pattern", "python", "typescript", "go", "express"]
    assert [line.split()[0] for line in lines[1:]] == ALL_PATTERNS


def test_list_json_is_patterns_by_languages():
    data = json.loads(run("list", "--json").output)
    assert data["languages"] == ["python", "typescript", "go", "express"]
    assert data["patterns"] == [
        {
            "name": "greeting",
            "summary": "Greets people; exists only to exercise the engine.",
            "languages": ["python"],
        }
    ]


def test_describe_shows_summary_options_and_languages():
    result = run("describe", "greeting")
    assert result.exit_code == 0
    assert "greeting: Greets people" in result.output
    assert "Languages: python" in result.output
    assert "  retries (int, default 3)" in result.output
    assert "Allowed: an integer from 0 to 10." in result.output
    assert "hmac_key_env (string, python only" in result.output


def test_describe_json_lists_each_option_with_type_default_allowed_and_help():
    data = json.loads(run("describe", "greeting", "--json").output)
    assert data["languages"] == ["python"]
    mode = next(o for o in data["options"] if o["name"] == "mode")
    assert mode["type"] == "choice"
    assert mode["default"] == "plain"
    assert mode["choices"] == ["plain", "fancy", "pythonic"]
    assert mode["allowed"].startswith("one of plain, fancy, pythonic")
    assert mode["help"] == "How the greeting is decorated."


def test_show_prints_the_reference_source():
    result = run("show", "greeting")
    assert result.exit_code == 0
    assert result.output == (REFERENCE / "_lease.py").read_text(encoding="utf-8")


def test_show_prints_a_real_pattern_reference_then_the_modules_it_is_built_from():
    result = run("show", "cache-aside", root=None)
    assert result.exit_code == 0
    main = (REFERENCE / "cache_aside.py").read_text(encoding="utf-8")
    lease = (REFERENCE / "_lease.py").read_text(encoding="utf-8")
    assert result.output == main + "\n# ---- templategen/reference/_lease.py ----\n\n" + lease


def test_show_http_cache_headers_includes_its_middleware_module():
    result = run("show", "http-cache-headers", root=None)
    assert result.exit_code == 0
    assert "class CacheHeadersMiddleware" in result.output
    assert "# ---- templategen/reference/http_cache_middleware.py ----" in result.output


# --- render --------------------------------------------------------------------------------


def test_render_one_pattern_writes_the_code_to_stdout():
    result = run("render", "greeting", "-l", "python", "--set", "greeting=Hi ")
    assert result.exit_code == 0
    assert result.stdout.startswith("# Generated by templategen")
    assert 'GREETING = "Hi "\n' in result.stdout


def test_render_to_a_directory_writes_dir_language_file(tmp_path):
    result = run("render", "greeting", "-l", "python", "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    written = tmp_path / "python" / "greeting.py"
    assert written.read_text(encoding="utf-8").startswith("# Generated by templategen")
    assert files_under(tmp_path) == ["python", "python/greeting.py"]
    again = run("render", "greeting", "-l", "python", "-o", str(tmp_path))
    assert again.exit_code == 0
    assert "unchanged" in again.output


def test_render_refuses_to_overwrite_a_changed_file_without_force(tmp_path):
    run("render", "greeting", "-l", "python", "-o", str(tmp_path))
    target = tmp_path / "python" / "greeting.py"
    target.write_text("# my edits\n")
    refused = run("render", "greeting", "-l", "python", "-o", str(tmp_path))
    assert refused.exit_code == 1
    assert "--force" in refused.stderr
    assert target.read_text() == "# my edits\n"
    forced = run("render", "greeting", "-l", "python", "-o", str(tmp_path), "--force")
    assert forced.exit_code == 0
    assert target.read_text().startswith("# Generated by templategen")


def test_dry_run_says_what_would_change_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    result = run("render", "greeting", "-l", "python", "-o", str(out), "--dry-run")
    assert result.exit_code == 1  # like `black --check`: the directory is not up to date
    assert f"would create: {out / 'python' / 'greeting.py'}" in result.output
    assert not out.exists()
    run("render", "greeting", "-l", "python", "-o", str(out))
    clean = run("render", "greeting", "-l", "python", "-o", str(out), "--dry-run")
    assert clean.exit_code == 0
    assert "unchanged" in clean.output


def test_render_all_writes_every_pattern_in_every_language(tmp_path):
    result = run("render", "--all", "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert files_under(tmp_path) == ["python", "python/greeting.py"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["render", "greting", "-l", "python"], "did you mean 'greeting'?"),
        (["render", "greeting", "-l", "pyhton"], "did you mean 'python'?"),
        (["render", "greeting", "-l", "go"], "greeting has no go template yet"),
        (["render", "greeting"], "-l/--lang is required"),
        (["render", "-l", "python"], "give a PATTERN"),
        (["render", "greeting", "-l", "python", "--set", "retries"], "'retries' is not NAME=VALUE"),
        (["render", "greeting", "-l", "python", "--set", "=3"], "is not NAME=VALUE"),
        (["render", "greeting", "-l", "python", "--set", "retries=99"], "is out of range"),
        (["render", "greeting", "greeting", "-l", "python"], "several files need -o"),
        (["render", "--all"], "--all needs -o/--out DIR"),
        (["render", "--all", "--set", "retries=1", "-o", "x"], "--all renders defaults only"),
        (["render", "greeting", "-l", "python", "--dry-run"], "need -o/--out"),
        (["describe", "greting"], "did you mean 'greeting'?"),
        (["verify", "greting"], "did you mean 'greeting'?"),
    ],
)
def test_usage_errors_exit_2_with_a_message(args, message):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_unknown_option_exits_2_naming_the_allowed_options():
    result = run("render", "greeting", "-l", "python", "--set", "retrys=1")
    assert result.exit_code == 2
    assert "unknown option 'retrys' for greeting (did you mean 'retries'?)" in result.stderr
    assert "options for python: key_prefix, greeting, ttl, retries" in result.stderr


def test_unwritable_output_directory_exits_2_and_leaves_no_files(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    for out in (blocker, blocker / "sub"):
        result = run("render", "greeting", "-l", "python", "-o", str(out))
        assert result.exit_code == 2, result.output
        assert f"cannot write to {out}" in result.stderr
    assert files_under(tmp_path) == ["a-file"]


def test_template_bug_exits_1_with_the_numbered_rendered_text():
    result = run("render", "bad-output", "-l", "python", root=FIXTURES / "broken_templates")
    assert result.exit_code == 1
    assert ">>    8 | def thing(:" in result.stderr
    assert "Traceback" not in result.output


# --- verify --------------------------------------------------------------------------------


def test_verify_without_scenarios_fails_and_never_says_passed(redis_url):
    result = run("verify", "greeting", "--redis-url", redis_url)
    assert result.exit_code == 1
    assert "skipped greeting (python): greeting has no behaviour scenarios yet" in result.output
    assert "passed" not in result.output.lower()


def test_verify_json_report_is_not_passed(redis_url):
    result = run("verify", "--json", "--redis-url", redis_url)
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["passed"] is False
    assert [(r["pattern"], r["language"], r["status"]) for r in data["results"]] == [
        ("greeting", "python", "skipped")
    ]


def test_verify_starts_a_private_redis_when_no_url_is_given():
    result = run("verify", "greeting", env={"REDIS_URL": None})
    assert result.exit_code == 1
    assert "skipped greeting (python)" in result.output


def test_verify_without_redis_exits_3_saying_how_to_get_it(tmp_path):
    result = run("verify", "greeting", env={"REDIS_URL": None, "PATH": str(tmp_path)})
    assert result.exit_code == 3
    assert "redis-server is not on PATH" in result.stderr
    assert "apt-get install redis-server" in result.stderr


def test_verify_invalid_option_exits_2_before_starting_redis(tmp_path):
    result = run("verify", "--set", "retries=x", env={"REDIS_URL": None, "PATH": str(tmp_path)})
    assert result.exit_code == 2
    assert "option retries: 'x' is not an integer" in result.stderr


# --- the real console script ---------------------------------------------------------------


def console_script() -> str:
    return str(Path(sys.executable).parent / "templategen")


def test_console_script_renders_and_reports_errors_without_tracebacks():
    root = ["--templates-dir", str(FIXTURES / "templates")]
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    version = subprocess.run([console_script(), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and __version__ in version.stdout
    rendered = subprocess.run(
        [console_script(), *root, "render", "greeting", "-l", "python", "--set", "greeting=é\n"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert rendered.returncode == 0, rendered.stderr
    assert 'GREETING = "é\\n"\n' in rendered.stdout
    bad = subprocess.run(
        [console_script(), *root, "render", "greting", "-l", "python"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert "did you mean 'greeting'?" in bad.stderr
    assert "Traceback" not in bad.stderr
