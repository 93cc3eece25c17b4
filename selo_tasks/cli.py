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


@cli.command("models")
def models_cmd() -> None:
    """The encoders selo can use: spec forms and presets for known checkpoints.

    \b
    Use one with:  --model NAME [--checkpoint PATH]
    selo never downloads weights: fetch the expected file and pass its path.
    """
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from selo.models import list_presets

    rows = list_presets()
    table = Table(title="selo encoders", box=box.SIMPLE_HEAD)
    for column in ("name", "kind", "architecture", "expected file"):
        table.add_column(column, overflow="fold")
    table.add_column("Rmi", justify="right")
    for p in rows:
        rmi = f"{p.rmi:.4f}" if p.rmi is not None else ""
        table.add_row(p.name, p.kind, p.arch, p.filename, rmi)
    console = Console()
    console.print(table)
    for p in rows:
        console.print(f"[bold]{p.name}[/bold] ({p.source}): {p.notes}", highlight=False)
