"""One options object: the click options are generated from :class:`Options`, the README
lists the same options, and every command runs the function of the Python API."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from scenes import colour_scene, write_geotiff_scene

import selo
from selo.errors import ParameterError
from selo.selo_tasks import api
from selo.selo_tasks.cli import cli
from selo.selo_tasks.options import Options

README = Path(selo.__file__).parent / "README.md"
RUN_COMMANDS = ("localize", "search", "airslt", "demo", "serve")
WITH_PAPER_COMPAT = ("localize", "airslt")


def flags() -> dict[str, tuple[object, object]]:
    """{field name: (field, flag)} of every option with a command-line flag."""
    return {f.name: (f, flag) for f, flag in Options.flags()}


def help_records(command: str) -> dict[str, tuple[str, str]]:
    """{parameter name: (its option strings, its help line)} of ``selo COMMAND --help``."""
    cmd = cli.commands[command]
    ctx = click.Context(cmd, info_name=command)
    records = {}
    for p in cmd.params:
        record = p.get_help_record(ctx)
        if record is not None:
            records[p.name] = record
    return records


@pytest.mark.parametrize("command", RUN_COMMANDS)
def test_every_option_of_options_is_a_flag_with_its_default_and_limits(command):
    records = help_records(command)
    expected = {n for n, (_, flag) in flags().items() if flag.shared}
    if command in WITH_PAPER_COMPAT:
        expected.add("paper_compat")
    assert expected <= set(records), expected - set(records)
    for name in expected:
        field, flag = flags()[name]
        opts, text = records[name]
        assert opts.startswith(flag.name), (opts, flag.name)
        if field.default is not None and flag.kind not in ("switch", "onoff"):
            assert f"[default: {field.default}]" in text, (name, text)
        limits = flag.range()
        if limits is not None:
            assert f"{limits[0]} to {limits[1]}" in text, (name, text)
        if flag.choices:
            assert f"[{'|'.join(flag.choices)}]" in opts, (name, opts)


@pytest.mark.parametrize("command", RUN_COMMANDS)
def test_the_commands_parse_exactly_the_options_fields(command):
    """No option of a command that runs SeLo shadows a field under another name."""
    records = help_records(command)
    option_names = {n for n, (o, _) in records.items() if o.split()[0] in _all_flag_names()}
    assert option_names <= set(flags())


def _all_flag_names() -> set[str]:
    return {flag.name for _, flag in flags().values()}


def test_the_readme_lists_the_shared_options():
    text = README.read_text()
    start = text.index("Options shared by `localize`, `search`, `airslt`, `demo` and `serve`:")
    paragraph = text[start : text.index("Global:", start)]
    listed = [re.findall(r"`(--[a-z-]+)", part) for part in paragraph.split(";")]
    by_group = {}
    for _, flag in flags().values():
        if flag.shared:
            by_group.setdefault(flag.group, []).append(flag.name)
    assert listed == list(by_group.values())  # the same options, groups and order


@pytest.mark.parametrize("name", [n for n, (_, f) in flags().items() if f.range() is not None])
def test_the_limits_in_the_help_are_the_limits_checked(name, run_cli, tmp_path):
    field, flag = flags()[name]
    lo, hi = flag.range()
    Options(**{name: lo}) and Options(**{name: hi})  # the ends are allowed
    for bad in (lo - 1, hi + 1):
        with pytest.raises(ParameterError, match=re.escape(f"{flag.name} must be")):
            Options(**{name: bad})
        code, _, err = run_cli("localize", tmp_path / "x.tif", "-q", "x", flag.name, bad)
        assert code == 2 and f"{flag.name} must be a whole number from {lo} to {hi}" in err


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"nonsense": 1}, "unknown option 'nonsense'"),
        ({"gpu": 1}, "--gpu is on or off"),
        ({"profile": "yes"}, "--profile is on, off or None"),
        ({"scheduler": "tcp://[::1"}, "--scheduler must be a Dask scheduler address"),
        ({"scheduler": "tcp://h:8786", "gpu": True}, "exclude each other"),
        ({"checkpoint": 3}, "--checkpoint must be a path"),
        ({"encoder": 3}, "encoder must be"),
        ({"cache": 3.5}, "cache must be"),
        ({"paper_compat": True, "precision": "fp16"}, "--paper-compat runs the encoder in fp32"),
        ({"chunk": None}, "--chunk must be"),
    ],
)
def test_from_keywords_refuses_what_cannot_work(keywords, message):
    with pytest.raises(ParameterError, match=re.escape(message)):
        Options.from_keywords(**keywords)


def test_from_keywords_changes_given_options():
    base = Options(batch=8)
    assert Options.from_keywords(base, chunk=512) == Options(batch=8, chunk=512)
    assert Options.from_keywords(base) is base
    with pytest.raises(ParameterError, match="options must be a selo.Options"):
        Options.from_keywords({"batch": 8})


def test_paper_compat_runs_the_spec_in_fp32():
    assert Options(paper_compat=True).spec.precision == "fp32"
    assert Options(precision="bf16").spec.precision == "bf16"
    spec = selo.EncoderSpec("color", precision="fp16")
    assert Options(encoder=spec).spec.precision == "fp16"  # the spec's own, unless overridden


# --- the commands call the Python API -------------------------------------------------------


class Called(ParameterError):
    """Raised by the spies: the command got as far as calling the API."""


@pytest.fixture
def spy(monkeypatch):
    """Replace an API function by one that records its arguments and stops the command."""
    calls = []

    def install(name: str):
        def record(*args, **kwargs):
            calls.append((name, args, kwargs))
            raise Called(f"{name} called")

        monkeypatch.setattr(api, name, record)
        return calls

    return install


@pytest.mark.parametrize(
    ("argv", "function", "positional"),
    [
        (["localize", "{scene}", "-q", "a", "--batch", "7", "--paper-compat"], "localize_files", 3),
        (["airslt", "--images", "{tmp}", "--out", "{tmp}/r", "--batch", "7"], "airslt", 2),
        (["demo", "--out", "{tmp}/d", "--batch", "7", "--no-profile"], "demo", 1),
        (["serve", "{scene}", "--batch", "7", "--port", "0"], "serve", 1),
    ],
)  # fmt: skip
def test_each_command_runs_the_api_function(argv, function, positional, spy, run_cli, tmp_path):
    scene = write_geotiff_scene(tmp_path / "s.tif", colour_scene((64, 64)))
    calls = spy(function)
    argv = [a.format(scene=scene, tmp=tmp_path) for a in argv]
    code, _, err = run_cli(*argv)
    assert code == 2 and f"{function} called" in err
    [(_, args, kwargs)] = calls
    assert len(args) == positional
    options = kwargs["options"]
    assert isinstance(options, Options) and options.batch == 7
    assert options.paper_compat == ("--paper-compat" in argv)
    assert options.profile is (False if "--no-profile" in argv else None)


def test_eval_runs_evaluate_run(spy, run_cli, tmp_path, small_anno):
    calls = spy("evaluate_run")
    code, _, err = run_cli("eval", "--maps", tmp_path, "--anno", small_anno)
    assert code == 2 and "evaluate_run called" in err
    [(_, args, kwargs)] = calls
    assert args == (str(tmp_path),) and len(kwargs["anno"]) == 3
    assert kwargs["out"] == tmp_path / "metrics.csv"


def test_synth_airslt_runs_the_api_function(spy, run_cli, tmp_path):
    calls = spy("synth_airslt")
    code, _, err = run_cli("synth-airslt", tmp_path / "s", "--scale", "0.5")
    assert code == 2 and "synth_airslt called" in err
    assert calls[0][2]["scale"] == 0.5 and "seed" not in calls[0][2]  # the function's default
