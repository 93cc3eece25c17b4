"""The ``selo`` command line.

Each subcommand parses its options, calls one function of ``selo_tasks`` and
prints a short report. User mistakes (:class:`selo.errors.SeloError`) become
one line on stderr and exit code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import logging
import sys
import traceback

import click

from selo import __version__
from selo.errors import SeloError

__all__ = ["main", "cli"]

log = logging.getLogger("selo")


class _State:
    debug = False


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="selo")
@click.option("--debug", is_flag=True, help="Show full tracebacks and debug logs.")
@click.option("--quiet", is_flag=True, help="Only print warnings and errors.")
def cli(debug: bool, quiet: bool) -> None:
    """Semantic localization (SeLo) on large remote-sensing rasters.

    \b
    Start here:
      selo demo                      a small synthetic AIR-SLT, end to end (~1 min)
      selo localize SCENE -q TEXT    SeLo maps for one scene and one or more sentences
      selo airslt --images DIR       the whole AIR-SLT test set, with metrics
      selo eval --maps DIR           the SeLo metrics (Rsu, Ras, Rda, Rmi) of existing maps
    """
    _State.debug = debug
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr, force=True)
    for noisy in ("distributed", "bokeh", "tornado", "rasterio", "numcodecs", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns (and exits with) 0, 1 (internal error), 2 (user error) or 130."""
    try:
        cli.main(args=argv, prog_name="selo", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("selo: interrupted", err=True)
        code = 130
    except click.ClickException as e:
        e.show()
        code = e.exit_code
    except click.exceptions.Exit as e:
        code = e.exit_code
    except SeloError as e:
        if _State.debug:
            traceback.print_exc()
        click.echo(f"selo: error: {e}", err=True)
        code = e.exit_code
    except KeyboardInterrupt:
        click.echo("selo: interrupted; finished work is kept (rerun with --resume)", err=True)
        code = 130
    except Exception as e:  # noqa: BLE001 - the last line of defence
        if _State.debug:
            traceback.print_exc()
        click.echo(
            f"selo: internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)",
            err=True,
        )
        code = 1
    else:
        code = 0
    if argv is None:
        sys.exit(code)
    return code


def _path(**kw):
    return click.Path(path_type=str, **kw)


@cli.command("eval")
@click.option(
    "--anno",
    type=_path(),
    default=None,
    help="Annotation file (default: the AIR-SLT anno.json shipped with selo).",
)
@click.option(
    "--maps",
    "maps_dir",
    type=_path(),
    required=True,
    help="Folder of maps: probmap_{i}.jpg/.png/.tif or {i}.png (i = case index).",
)
@click.option(
    "--images",
    "images_dir",
    type=_path(),
    default=None,
    help="Scene images; when given, each map must have its scene's size.",
)
@click.option(
    "--out",
    type=_path(),
    default=None,
    help="Write the per-case metrics CSV here (default: MAPS/metrics.csv).",
)
@click.option(
    "--skip-missing",
    is_flag=True,
    help="Skip cases without a usable map (warned, left out of the means) instead of failing.",
)
def eval_cmd(anno, maps_dir, images_dir, out, skip_missing):
    """SeLo metrics (Rsu, Rda, Ras, Rmi) of existing maps, as the published code computes them.

    Reads each case's map, scores it against the case's polygons, prints a table
    and writes a CSV with one row per case and a final mean row.
    """
    from pathlib import Path

    from selo.selo_tasks.annotations import load_annotations
    from selo.selo_tasks.evaluate import evaluate_cases, write_metrics_csv
    from selo.selo_tasks.report import console, err_console, metrics_table, progress

    cases = load_annotations(anno)
    out_path = Path(out) if out else Path(maps_dir) / "metrics.csv"
    with progress("scoring maps", len(cases), enabled=err_console.is_terminal) as advance:
        results, skipped = evaluate_cases(
            cases,
            maps_dir,
            images_dir=images_dir,
            skip_missing=skip_missing,
            on_case=lambda r: advance(),
        )
    for _case, reason in skipped:
        log.warning("skipped: %s", reason)
    if not results:
        from selo.errors import MapError

        raise MapError(f"{maps_dir}: no case has a usable map; nothing to score")
    write_metrics_csv(out_path, results)
    console.print(metrics_table(results, title=f"SeLo metrics of {maps_dir}"))
    if skipped:
        console.print(
            f"[yellow]{len(skipped)} case(s) skipped and left out of the means: "
            f"{', '.join(str(c.index) for c, _ in skipped)}[/yellow]"
        )
    console.print(f"per-case metrics: {out_path}")
