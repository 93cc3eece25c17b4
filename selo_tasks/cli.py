"""The ``selo`` command line.

Each subcommand parses its options, calls one function of ``selo_tasks`` and
prints a short report. User mistakes (:class:`selo.errors.SeloError`) become
one line on stderr and exit code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback

import click

from .. import __version__
from ..errors import SeloError
from ..models.base import PRECISIONS
from ..pipeline import DEFAULT_BATCH, DEFAULT_CHUNK
from .compare import compare_cmd  # selo compare (defined with its logic)
from .options import MAX_BATCH, MAX_CHUNK, MIN_CHUNK

__all__ = ["main", "cli"]

log = logging.getLogger("selo")


class _State:
    debug = False


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="selo")
@click.option("--debug", is_flag=True, help="Show full tracebacks and debug logs.")
@click.option("-v", "--verbose", is_flag=True, help="Also log what each step does.")
def cli(debug: bool, verbose: bool) -> None:
    """Semantic localization (SeLo) on large remote-sensing rasters.

    \b
    Start here:
      selo demo                      a small synthetic AIR-SLT, end to end (~1 min)
      selo localize SCENE -q TEXT    SeLo maps for one scene and one or more sentences
      selo airslt --images DIR       the whole AIR-SLT test set, with metrics
      selo eval --maps DIR           the SeLo metrics (Rsu, Ras, Rda, Rmi) of existing maps
      selo compare RUN_A RUN_B       two or more runs of the same cases, side by side
      selo serve SCENE               an interactive map: type sentences, see them at once
    """
    _State.debug = debug
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr, force=True)
    for noisy in ("distributed", "bokeh", "tornado", "rasterio", "numcodecs"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.ERROR)
    # an embedded cluster's event loop may leave a timed-out future behind when it closes,
    # which asyncio reports (at ERROR, whenever it is collected) as a three-line traceback
    logging.getLogger("asyncio").setLevel(logging.DEBUG if debug else logging.CRITICAL)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns (and exits with) 0, 1 (internal error), 2 (user error) or 130."""
    try:
        cli.main(args=argv, prog_name="selo", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("selo: interrupted", err=True)
        code = 130
    except click.UsageError as e:
        where = (
            f"selo {e.ctx.info_name} --help"
            if e.ctx is not None and e.ctx.parent
            else "selo --help"
        )
        if _State.debug:
            e.show()
        click.echo(f"selo: error: {e.format_message()} (see {where})", err=True)
        code = e.exit_code
    except click.ClickException as e:
        click.echo(f"selo: error: {e.format_message()}", err=True)
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


class _Path(click.Path):
    """A path option: also refused, as a usage error, when the file system cannot use
    its name at all (too long, a loop of links), which Python reports as a crash."""

    def convert(self, value, param, ctx):
        value = super().convert(value, param, ctx)
        try:
            os.stat(value)
        except (FileNotFoundError, NotADirectoryError):
            pass  # made later, or said later by the command that needs it
        except OSError as e:
            shown = value if len(value) <= 60 else value[:57] + "..."
            self.fail(f"{shown!r} cannot be used as a path ({e.strerror})", param, ctx)
        return value


def _path(**kw):
    return _Path(path_type=str, **kw)


_anno_option = click.option(
    "--anno",
    type=_path(),
    default=None,
    help="Annotation file (default: the AIR-SLT anno.json shipped with selo).",
)


@cli.command("eval")
@_anno_option
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

    from .annotations import load_annotations
    from .eval import evaluate_cases, write_metrics_csv
    from .report import console, err_console, metrics_table, progress

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
        from ..errors import MapError

        raise MapError(f"{maps_dir}: no case has a usable map; nothing to score")
    write_metrics_csv(out_path, results)
    console.print(metrics_table(results, title=f"SeLo metrics of {maps_dir}"))
    if skipped:
        console.print(
            f"[yellow]{len(skipped)} case(s) skipped and left out of the means: "
            f"{', '.join(str(c.index) for c, _ in skipped)}[/yellow]"
        )
    console.print(f"per-case metrics: {out_path}")


# --- options shared by the commands that run SeLo ---------------------------------------------


def run_options(f):
    """Model, method and cluster options of localize / airslt / demo / serve."""
    options = [
        click.option(
            "--model",
            default="color",
            show_default=True,
            help="Encoder: color, openclip:ARCH, hf-clip:DIR, longclip:ARCH or a preset "
            "(see: selo models).",
        ),
        click.option(
            "--checkpoint", type=_path(), default=None, help="Local weights file of the model."
        ),
        click.option(
            "--device",
            default=None,
            help="cpu, cuda or cuda:N (default: CUDA when present, else CPU).",
        ),
        click.option(
            "--precision",
            type=click.Choice(list(PRECISIONS)),
            default=None,
            help="Encoder precision (default: bf16, or fp16, on CUDA; fp32 on CPU; "
            "--paper-compat: fp32). int8: CPU only, faster, not the published protocol.",
        ),
        click.option(
            "--method",
            type=click.Choice(["v1", "v2"]),
            default="v1",
            show_default=True,
            help="SeLo method.",
        ),
        click.option(
            "--scales",
            default=None,
            help="v1 only: window sizes in pixels, comma-separated [default: 256,512,768].",
        ),
        click.option(
            "--seed",
            type=int,
            default=None,
            help="v2 only: seed of the query word shuffles [default: 0].",
        ),
        click.option(
            "--chunk",
            type=int,
            default=DEFAULT_CHUNK,
            show_default=True,
            help=f"Dask chunk side (px), {MIN_CHUNK} to {MAX_CHUNK}.",
        ),
        click.option(
            "--batch",
            type=int,
            default=DEFAULT_BATCH,
            show_default=True,
            help=f"Windows per encoder batch, 1 to {MAX_BATCH}.",
        ),
        click.option(
            "--cache-dir",
            type=_path(),
            default=None,
            help="Embedding cache (default: ~/.cache/selo or $SELO_CACHE_DIR).",
        ),
        click.option(
            "--scheduler",
            default=None,
            help="Address of an existing Dask scheduler (e.g. tcp://host:8786).",
        ),
        click.option(
            "--gpu", is_flag=True, help="Embedded GPU cluster: one dask-cuda worker per GPU."
        ),
        click.option(
            "--workers",
            type=int,
            default=None,
            help="Embedded cluster: this many worker processes (default: threads in this process).",
        ),
        click.option(
            "--threads",
            type=int,
            default=None,
            help="Embedded cluster: threads per worker.",
        ),
        click.option(
            "--in-process",
            is_flag=True,
            help="A distributed cluster of threads in this process even for one scene "
            "(the embedded cluster's default layout; with --workers: threads, not processes).",
        ),
        click.option(
            "--profile/--no-profile",
            default=None,
            help="Write a Dask performance report, profile.html (default: on for airslt only).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _options(kw: dict, out, *, paper_compat: bool = False, profile: bool = False, **extra):
    """The run's :class:`~selo.selo_tasks.options.Options` from the shared options;
    ``profile``: write profile.html unless --no-profile."""
    from pathlib import Path

    from .options import Options
    from .report import err_console

    return Options(
        model=kw["model"],
        checkpoint=kw["checkpoint"],
        device=kw["device"],
        precision=kw["precision"],
        method=kw["method"],
        scales=kw["scales"],
        seed=kw["seed"],
        chunk=kw["chunk"],
        batch=kw["batch"],
        cache_dir=kw["cache_dir"],
        paper_compat=paper_compat,
        scheduler=kw["scheduler"],
        gpu=kw["gpu"],
        workers=kw["workers"],
        threads=kw["threads"],
        in_process=kw["in_process"],
        profile_html=Path(out) / "profile.html" if _flag(kw["profile"], profile) else None,
        show_progress=err_console.is_terminal,
        extra=extra,
    )


def _flag(value: bool | None, default: bool) -> bool:
    return default if value is None else value


@cli.command("airslt")
@click.option(
    "--images", type=_path(), required=True, help="Folder with the scenes (0.jpg ... 21.jpg)."
)
@_anno_option
@click.option(
    "--out", type=_path(), default="selo-runs/airslt", show_default=True, help="Run folder."
)
@click.option(
    "--resume",
    is_flag=True,
    help="Keep the finished cases of an earlier run in --out with the same settings.",
)
@click.option(
    "--skip-missing",
    is_flag=True,
    help="Leave out cases whose scene is missing (said in the output).",
)
@click.option(
    "--paper-compat",
    is_flag=True,
    help="Make the published code's JPEG round trips: windows before embedding, maps before eval.",
)
@click.option(
    "--plain-overlays",
    is_flag=True,
    help="Also write case_NN/overlay_plain.png, the overlay as the published code draws it.",
)
@run_options
def airslt_cmd(images, anno, out, resume, skip_missing, paper_compat, plain_overlays, **kw):
    """Run and score every case of AIR-SLT (59 cases over 22 scenes) on a Dask cluster.

    Each scene is embedded once for all its queries (and cached). Writes per case
    windows.csv, selo_map.png, overlay.png (annotated) and metrics.json; then
    metrics.csv (one row per case and the mean), run.json with the stage table,
    stages.png, scenes.png, report.html (the run on one page) and profile.html (a
    Dask performance report; --no-profile skips it). Interrupted runs continue
    with --resume.
    """
    from pathlib import Path

    from .airslt import AirsltOptions, run_airslt
    from .annotations import load_annotations
    from .report import console

    options = _options(kw, out, paper_compat=paper_compat, profile=True)
    cases = load_annotations(anno)
    files = AirsltOptions(
        images=Path(images),
        out=Path(out),
        resume=resume,
        skip_missing=skip_missing,
        plain_overlays=plain_overlays,
    )
    run = run_airslt(cases, files, options)
    _print_run(console, run, title=f"AIR-SLT, {options.method}, {kw['model']}")


def _print_run(console, run, *, title: str, baselines=None) -> None:
    from .report import metrics_table, stage_table

    console.print(metrics_table(run.results, title=f"SeLo metrics: {title}", baselines=baselines))
    console.print(stage_table(run.stages, title=f"Time per stage (total {run.wall:.1f} s wall)"))
    if run.skipped:
        idx = ", ".join(str(c.index) for c in run.skipped)
        console.print(
            f"[yellow]{len(run.skipped)} case(s) skipped (scene missing), "
            f"left out of the means: {idx}[/yellow]"
        )
    console.print(
        f"run folder: {run.out}  (report.html, metrics.csv, run.json, stages.png, "
        "case_NN/selo_map.png and overlay.png)"
    )


@cli.command("synth-airslt")
@click.argument("out", type=_path())
@click.option(
    "--scale",
    type=click.FloatRange(0.01, 1.0),
    default=1.0,
    show_default=True,
    help="Scale of scenes and polygons.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the textures.")
def synth_cmd(out, scale, seed):
    """Write a synthetic AIR-SLT: scenes of the real sizes drawn from the real annotations.

    Each case's regions are painted in the first colour its caption names, so the
    weight-free color encoder can find them. Writes OUT/images/*.jpg and OUT/anno.json
    (polygons scaled with --scale). Then:
    selo airslt --images OUT/images --anno OUT/anno.json
    """
    from .report import console, err_console, progress
    from .synth import build_synthetic_airslt

    with progress("drawing scenes", 22, enabled=err_console.is_terminal) as advance:
        built = build_synthetic_airslt(out, scale=scale, seed=seed, progress=advance)
    console.print(
        f"{len(built.cases)} cases over {len(built.sizes)} scenes in {built.root}\n"
        f"run: selo airslt --images {built.images} --anno {built.anno}"
    )


def _bands(value: str | None):
    if value is None:
        return None
    from ..errors import ParameterError

    try:
        bands = tuple(int(b) for b in value.split(","))
    except ValueError:
        raise ParameterError(
            f"--bands must be three band numbers like 4,3,2, got {value!r}"
        ) from None
    if len(bands) != 3:
        raise ParameterError(f"--bands must name exactly three bands (e.g. 4,3,2), got {value!r}")
    return bands


@cli.command("localize")
@click.argument("scene", type=_path())
@click.option(
    "-q",
    "--query",
    "queries",
    multiple=True,
    required=True,
    help="A sentence to localize (repeatable).",
)
@click.option(
    "--out", type=_path(), default="selo-runs/localize", show_default=True, help="Output folder."
)
@click.option(
    "--bands",
    default=None,
    help="Three 1-based bands to show the encoder, e.g. 4,3,2 (default: RGB).",
)
@click.option(
    "--paper-compat",
    is_flag=True,
    help="Make the published code's JPEG round trips: windows before embedding, map also as JPEG.",
)
@run_options
def localize_cmd(scene, queries, out, bands, paper_compat, **kw):
    """SeLo maps of one scene (GeoTIFF, COG, JPEG, PNG, ...) for one or more sentences.

    The scene is embedded once for all queries (and cached for later runs). Per query
    it writes windows.csv, selo_map.png, selo_map.tif (georeferenced), overlay.png and
    regions.geojson; plus run.json with the stage times, and profile.html with --profile.
    """
    from pathlib import Path

    from .localize import localize
    from .report import console, stage_table

    options = _options(kw, out, paper_compat=paper_compat)
    record = localize(Path(scene), tuple(queries), Path(out), options, bands=_bands(bands))
    console.print(
        stage_table(
            record["stages"], title=f"Time per stage (total {record['wall_seconds']:.1f} s wall)"
        )
    )
    if record["scene_info"]["crs"] is None:
        console.print("no CRS in the scene: selo_map.tif and regions.geojson use pixel coordinates")
    for o in record["outputs"]:
        console.print(f"{o['query']!r}: {o['folder']}  ({o['windows']} windows)")
    console.print(f"run record: {Path(out) / 'run.json'}")


@cli.command("demo")
@click.option(
    "--out",
    type=_path(),
    default="selo-demo",
    show_default=True,
    help="Folder for the data and the run.",
)
@run_options
def demo_cmd(out, **kw):
    """A small synthetic AIR-SLT end to end (about a minute, no downloads).

    Draws 12 AIR-SLT cases over 4 scenes at half size, runs SeLo with the weight-free
    color encoder on an embedded Dask cluster, prints the metrics next to a flat map
    and random scores, and the time per stage.
    """
    from pathlib import Path

    from .demo import run_demo
    from .report import console

    options = _options(kw, Path(out) / "run")
    run, baselines = run_demo(Path(out), options)
    _print_run(
        console,
        run,
        title=f"synthetic AIR-SLT demo, {options.method}, {kw['model']}",
        baselines=baselines,
    )
    console.print(f"the run on one page: {run.out / 'report.html'}")


@cli.command("serve")
@click.argument("targets", metavar="SCENE [SCENE ...] | RUN_DIR", nargs=-1, required=True)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; 0.0.0.0 lets other machines in (anyone who can reach it).",
)
@click.option("--port", type=int, default=8765, show_default=True, help="Port (0: any free one).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the web browser.")
@click.option(
    "--map-cache",
    type=click.IntRange(16, None),
    default=1024,
    show_default=True,
    help="MiB of finished maps kept in memory (least recently used dropped first).",
)
@click.option(
    "--anno",
    type=_path(),
    default=None,
    help="RUN_DIR only: the run's annotation file (default: the AIR-SLT anno.json).",
)
@click.option(
    "--images",
    type=_path(),
    default=None,
    help="RUN_DIR only: the scenes folder (default: the one in run.json).",
)
@run_options
def serve_cmd(targets, host, port, open_browser, map_cache, anno, images, **kw):
    """An interactive map of one or more scenes in the web browser (or of an airslt run).

    Each scene is embedded once (or read from the embedding cache), with progress in the
    terminal and the page; then every sentence typed in the page is answered from the
    embeddings: overlay tiles, attention centres, high-score regions, GeoTIFF and GeoJSON
    downloads. With an airslt run folder, browse its cases with their annotation polygons
    and metrics. Listens on 127.0.0.1 unless --host says otherwise; Ctrl-C stops.
    """
    from .report import console
    from .serve import serve

    options = _options(kw, ".")
    serve(
        targets,
        options,
        host=host,
        port=port,
        open_browser=open_browser,
        cache_bytes=map_cache * 2**20,
        anno=anno,
        images=images,
        report=lambda line: console.print(line, markup=False, highlight=False),
    )


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

    from ..models import list_presets

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


cli.add_command(compare_cmd)  # selo compare
