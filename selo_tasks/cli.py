"""The ``selo`` command line.

Each subcommand parses its options, calls one function of ``selo_tasks`` and
prints a short report. User mistakes (:class:`selo.errors.SeloError`) become
one line on stderr and exit code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import traceback

import click

from .. import __version__
from ..errors import SeloError
from ..pipeline import EXACT_MAX_WINDOWS, INDEX_MODES
from .options import DEFAULT_TOP, Options
from .run_folder import METRICS_CSV, REPORT, RUN_JSON
from .serve import DEFAULT_HOST, DEFAULT_MAP_CACHE_MIB, DEFAULT_PORT, MIN_MAP_CACHE_MIB

__all__ = ["main", "cli"]

log = logging.getLogger("selo")


class _State:
    debug = False
    collector_paused = False  # by main() for the process's own command, until its imports are in


def _imports_done() -> None:
    """The command's modules are imported: the cycle collector, which :func:`main` paused for
    the process's own command, starts again, leaving the modules' objects out of its passes
    (``gc.freeze``). Without a pause (``main(argv)``, a host's process) it does nothing."""
    if _State.collector_paused:
        _State.collector_paused = False
        gc.freeze()
        gc.enable()


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
      selo search SCENES -q TEXT     the best regions of many scenes, ranked together
      selo airslt --images DIR       the whole AIR-SLT test set, with metrics
      selo eval --maps DIR           the SeLo metrics (Rsu, Ras, Rda, Rmi) of existing maps
      selo compare RUN_A RUN_B       two or more runs of the same cases, side by side
      selo serve SCENES...           an interactive map: type sentences, see them at once
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
    if argv is None and gc.isenabled():  # the process's own command
        # Its imports (dask, xarray, zarr, rasterio, ...) allocate about a million objects,
        # none of them garbage, which the cycle collector would walk again and again as
        # they come: 0.1-0.2 s of a second query (benchmarks/bench_floor.py). Paused until
        # the command's modules are in (_imports_done), then those objects are left out.
        gc.disable()
        _State.collector_paused = True
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
    if argv is None:  # the process's own command: it ends here
        # Its work is done and every file it wrote is closed. Python's shutdown would
        # still run the cycle collector over every object of every module imported (dask,
        # xarray, zarr, ...) to free memory the exit frees anyway: 0.3-1 s. Frozen, those
        # objects are skipped; threads are still joined, atexit handlers run, streams
        # flushed and modules torn down as always.
        gc.freeze()
        sys.excepthook = _quiet_closed_loops(sys.excepthook)
        sys.exit(code)
    return code


def _quiet_closed_loops(hook):
    """``hook`` without the "Loop is not running" errors that fsspec raises at exit, when a
    file system's finalizer (adlfs: az:// caches and outputs) tries to close its client on
    zarr's event loop, which zarr has already stopped (zarr-python#4221, adlfs#495): the
    command's work is done and its files are written; Python would print a traceback from
    its exit handlers after every such command."""

    def quiet(kind, error, tb):
        last = tb
        while last is not None and last.tb_next is not None:
            last = last.tb_next
        closing = (
            kind is RuntimeError
            and str(error) == "Loop is not running"
            and last is not None
            and last.tb_frame.f_code.co_filename.replace(os.sep, "/").endswith("fsspec/asyn.py")
        )
        if not closing:
            hook(kind, error, tb)

    return quiet


class _Path(click.Path):
    """A path option: also refused, as a usage error, when the file system cannot use
    its name at all (too long, a loop of links, a NUL byte), which Python reports as a crash."""

    def convert(self, value, param, ctx):
        from ..pipeline.store import path_problem

        reason = path_problem(value)  # before click's own os.stat, which would crash
        if reason is not None:
            shown = value if len(value) <= 60 else value[:57] + "..."
            self.fail(f"{shown!r} cannot be used as a path ({reason})", param, ctx)
        return super().convert(value, param, ctx)


def _path(**kw):
    return _Path(path_type=str, **kw)


def _index_option(help_text: str):
    """``--index`` (selo search, selo serve): one of :data:`~selo.pipeline.INDEX_MODES`."""
    return click.option(
        "--index", "index_mode", type=click.Choice(INDEX_MODES), default=INDEX_MODES[0],
        show_default=True, help=help_text,
    )  # fmt: skip


_anno_option = click.option(
    "--anno",
    type=_path(),
    default=None,
    help="Annotation file (default: the AIR-SLT anno.json shipped with selo).",
)


@cli.command("eval")
@click.option(
    "--anno",
    type=_path(),
    default=None,
    help="Annotation file (default: a run folder's own, named in its run.json; else the "
    "AIR-SLT anno.json shipped with selo).",
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

    from .api import evaluate_run
    from .eval import maps_annotations
    from .report.terminal import console, err_console, metrics_table, progress

    _imports_done()
    cases = maps_annotations(maps_dir, anno)
    out_path = Path(out) if out else Path(maps_dir) / METRICS_CSV
    with progress("scoring maps", len(cases), enabled=err_console.is_terminal) as advance:
        scores = evaluate_run(
            maps_dir,
            anno=cases,
            images=images_dir,
            skip_missing=skip_missing,
            out=out_path,
            on_case=lambda r: advance(),
        )
    console.print(metrics_table(scores.results, title=f"SeLo metrics of {maps_dir}"))
    if scores["skipped"]:
        console.print(
            f"[yellow]{len(scores['skipped'])} case(s) skipped and left out of the means: "
            f"{', '.join(map(str, scores['skipped']))}[/yellow]"
        )
    console.print(f"per-case metrics: {out_path}")


# --- options shared by the commands that run SeLo ---------------------------------------------


def _click_option(name: str, flag, default):
    """The click option of the :class:`Options` field ``name``: its flag, help, default,
    limits and choices come from the field (the one table of options)."""
    help_text = flag.help_text(default)
    if flag.kind == "switch":
        return click.option(flag.name, name, is_flag=True, help=help_text)
    if flag.kind == "onoff":
        return click.option(f"{flag.name}/--no-{flag.name[2:]}", name, default=None, help=help_text)
    if flag.choices:
        kind = click.Choice(flag.choices)
    else:
        kind = {"path": _path(), "int": int}.get(flag.kind, str)
    return click.option(
        flag.name, name, type=kind, default=default, show_default=default is not None,
        help=help_text,
    )  # fmt: skip


def run_options(f):
    """The options every command that runs SeLo has (localize / search / airslt / demo / serve),
    generated from :class:`Options`."""
    for field, flag in reversed(list(Options.flags())):
        if flag.shared:
            f = _click_option(field.name, flag, field.default)(f)
    return f


def run_option(name: str):
    """One option of :class:`Options` that not every command has (e.g. paper_compat)."""
    field, flag = next((f, flag) for f, flag in Options.flags() if f.name == name)
    return _click_option(name, flag, field.default)


def _options(kw: dict) -> Options:
    """The run's :class:`Options` from the command's parsed options (taken out of ``kw``)."""
    from .report.terminal import err_console

    given = {f.name: kw.pop(f.name) for f, _ in Options.flags() if f.name in kw}
    options = Options(**given, show_progress=err_console.is_terminal)  # (imports dask.array)
    _imports_done()
    return options


@cli.command("airslt")
@click.option(
    "--images",
    type=_path(),
    required=True,
    help="The scenes (0.jpg ... 21.jpg): a folder, a URL prefix (s3://bucket/imgs, https://...) "
    "or a STAC ItemCollection, Catalog or Collection (items named by id).",
)
@_anno_option
@click.option(
    "--out",
    type=_path(),
    default="selo-runs/airslt",
    show_default=True,
    help="Run folder: a local folder or an s3://, gs://, az:// URL.",
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
@run_option("paper_compat")
@click.option(
    "--plain-overlays",
    is_flag=True,
    help="Also write case_NN/overlay_plain.png, the overlay as the published code draws it.",
)
@run_options
def airslt_cmd(images, anno, out, resume, skip_missing, plain_overlays, **kw):
    """Run and score every case of AIR-SLT (59 cases over 22 scenes) on a Dask cluster.

    Each scene is embedded once for all its queries (and cached). Writes per case
    windows.csv, selo_map.png, overlay.png (annotated) and metrics.json; then
    metrics.csv (one row per case and the mean), run.json with the stage table,
    stages.png, scenes.png, report.html (the run on one page) and profile.html (a
    Dask performance report; --no-profile skips it). Interrupted runs continue
    with --resume.
    """
    from .api import airslt
    from .report.terminal import console

    options = _options(kw)
    run = airslt(
        images,
        out,
        anno=anno,
        resume=resume,
        skip_missing=skip_missing,
        plain_overlays=plain_overlays,
        options=options,
    )
    _print_run(console, run, title=f"AIR-SLT, {_title(options)}")


def _title(options: Options) -> str:
    method = options.build_method().name
    return f"{method}, {options.spec.name}"


def _print_run(console, run, *, title: str, baselines=None) -> None:
    from .report.terminal import metrics_table, stage_table

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
    type=float,
    default=None,
    help="Scale of scenes and polygons, at most 1 (default: 1, the real sizes).",
)
@click.option("--seed", type=int, default=None, help="Seed of the textures (default: 0).")
def synth_cmd(out, scale, seed):
    """Write a synthetic AIR-SLT: scenes of the real sizes drawn from the real annotations.

    Each case's regions are painted in the first colour its caption names, so the
    weight-free color encoder can find them. Writes OUT/images/*.jpg and OUT/anno.json
    (polygons scaled with --scale). Then:
    selo airslt --images OUT/images --anno OUT/anno.json
    """
    from .api import synth_airslt
    from .report.terminal import console, err_console, progress

    _imports_done()
    with progress("drawing scenes", 22, enabled=err_console.is_terminal) as advance:
        given = {k: v for k, v in (("scale", scale), ("seed", seed)) if v is not None}
        built = synth_airslt(out, progress=advance, **given)
    console.print(
        f"{len(built.cases)} cases over {len(built.sizes)} scenes in {built.root}\n"
        f"run: selo airslt --images {built.images} --anno {built.anno}"
    )


def _bands(value: str | None):
    """``--bands``: three band numbers of a file (4,3,2) or three band names of a STAC
    item (red,green,blue)."""
    if value is None:
        return None
    from ..errors import ParameterError

    parts = [b.strip() for b in value.split(",")]
    if len(parts) != 3 or not all(parts):
        raise ParameterError(
            f"--bands must name exactly three bands (e.g. 4,3,2 or red,green,blue), got {value!r}"
        )
    if all(p.isdigit() for p in parts):
        return tuple(int(p) for p in parts)
    if any(p.lstrip("+-").isdigit() for p in parts):
        raise ParameterError(
            f"--bands must be three band numbers like 4,3,2 or three names like "
            f"red,green,blue, got {value!r}"
        )
    return tuple(parts)


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
    "--out",
    type=_path(),
    default="selo-runs/localize",
    show_default=True,
    help="Output folder: a local folder or an s3://, gs://, az:// URL.",
)
@click.option(
    "--bands",
    default=None,
    help="Three bands to show the encoder: 1-based numbers of a file, e.g. 4,3,2, or names "
    "of a STAC item's bands, e.g. red,green,blue (default: RGB).",
)
@click.option(
    "--asset",
    default=None,
    help="STAC item only: the asset to read (default: visual, else its red, green and blue bands).",
)
@run_option("paper_compat")
@run_option("zarr_map")
@run_options
def localize_cmd(scene, queries, out, bands, asset, **kw):
    """SeLo maps of one scene for one or more sentences.

    SCENE is a raster file (GeoTIFF, COG, JPEG, PNG, ...), a URL of one (https://,
    s3://, gs://, az://, or a GDAL /vsi path; read window by window) or a STAC item
    (JSON file or URL). The scene is embedded once for all queries (and cached for later
    runs). Per query it writes windows.csv, selo_map.png, selo_map.tif (georeferenced),
    overlay.png and regions.geojson; plus run.json with the stage times, and
    profile.html with --profile.
    """
    from ..pipeline.store import as_path
    from .api import localize_files
    from .report.terminal import console, stage_table

    options = _options(kw)
    record = localize_files(scene, queries, out, bands=_bands(bands), asset=asset, options=options)
    console.print(
        stage_table(
            record["stages"], title=f"Time per stage (total {record['wall_seconds']:.1f} s wall)"
        )
    )
    if record["scene_info"]["crs"] is None:
        console.print("no CRS in the scene: selo_map.tif and regions.geojson use pixel coordinates")
    for o in record["outputs"]:
        console.print(f"{o['query']!r}: {o['folder']}  ({o['windows']} windows)")
    console.print(f"run record: {as_path(out) / RUN_JSON}")


@cli.command("search")
@click.argument("scenes", metavar="SCENES...", nargs=-1, required=True)
@click.option(
    "-q",
    "--query",
    "queries",
    multiple=True,
    required=True,
    help="A sentence to search for (repeatable).",
)
@click.option(
    "--out", type=_path(), default="selo-runs/search", show_default=True, help="Output folder."
)
@click.option(
    "--top",
    type=click.IntRange(1, 100_000),
    default=DEFAULT_TOP,
    show_default=True,
    help="Regions per sentence, ranked across every scene.",
)
@click.option(
    "--maps",
    type=click.IntRange(0, None),
    default=0,
    show_default=True,
    help="Also write the full SeLo maps of each sentence's top N scenes (maps/).",
)
@click.option(
    "--skip-bad",
    is_flag=True,
    help="Leave out scenes that cannot be searched (listed in the output) instead of failing.",
)
@_index_option(
    "exact: every window scored; int8: int8 scores bound each scene, the scenes within "
    f"reach re-ranked exactly; auto: exact up to {EXACT_MAX_WINDOWS:,} windows."
)
@run_options
def search_cmd(scenes, queries, out, top, maps, skip_bad, index_mode, **kw):
    """The best regions of many scenes for each sentence, ranked together.

    SCENES are files, folders (their raster files), globs, URLs (https://, s3://, gs://,
    az://; a URL prefix lists its raster files) and STAC items, ItemCollections, Catalogs
    and Collections. Each scene is embedded once (and cached) and the collection indexed
    (the index is cached too); each sentence then ranks the regions of every scene by
    their peak mean cosine. Writes hits.geojson (EPSG:4326), hits.parquet (GeoParquet),
    hits.html (a gallery of the hits) and run.json; with --maps N also the SeLo maps of
    each sentence's top N scenes.
    """
    from pathlib import Path

    from .api import search
    from .report.terminal import console

    def say(line: str) -> None:
        console.print(line, markup=False, highlight=False)

    options = _options(kw)
    frame = search(
        scenes,
        queries,
        out=Path(out),
        top=top,
        maps=maps,
        skip_bad=skip_bad,
        index=index_mode,
        report=say,
        options=options,
    )
    _print_hits(console, frame, shown=min(top, 10))
    if frame["crs"].isna().any():
        console.print("some scenes have no CRS: their hits have pixel coordinates only")
    console.print(f"hits: {Path(out) / 'hits.geojson'}, hits.parquet, hits.html")


def _print_hits(console, frame, *, shown: int) -> None:
    from rich import box
    from rich.table import Table

    for _, rows in frame.groupby("query_number", sort=True):
        table = Table(title=f"{rows['query'].iloc[0]!r}", box=box.SIMPLE_HEAD)
        for column in ("rank", "score", "scene", "where"):
            table.add_column(column, justify="right" if column != "scene" else "left")
        for r in rows.head(shown).itertuples():
            where = (
                f"{r.lat:.5f}, {r.lon:.5f}"
                if r.lon == r.lon and r.lon is not None
                else f"row {r.row}, col {r.col}"
            )
            table.add_row(str(r.rank), f"{r.score:.4f}", r.scene, where)
        console.print(table)


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
    from .api import demo
    from .report.terminal import console

    options = _options(kw)
    run, baselines = demo(out, options=options)
    _print_run(
        console, run, title=f"synthetic AIR-SLT demo, {_title(options)}", baselines=baselines
    )
    console.print(f"the run on one page: {run.out / REPORT}")


@cli.command("serve")
@click.argument("targets", metavar="SCENES... | RUN_DIR", nargs=-1, required=True, type=_path())
@click.option(
    "--host",
    default=DEFAULT_HOST,
    show_default=True,
    help="Address to listen on; 0.0.0.0 lets other machines in (anyone who can reach it).",
)
@click.option(
    "--port", type=int, default=DEFAULT_PORT, show_default=True, help="Port (0: any free one)."
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the web browser.")
@click.option(
    "--map-cache",
    type=int,
    default=DEFAULT_MAP_CACHE_MIB,
    show_default=True,
    help=f"MiB of finished maps kept in memory, at least {MIN_MAP_CACHE_MIB} (least recently "
    "used dropped first).",
)
@click.option(
    "--anno",
    type=_path(),
    default=None,
    help="RUN_DIR only: the run's annotation file (default: the one named in its run.json).",
)
@click.option(
    "--images",
    type=_path(),
    default=None,
    help="RUN_DIR only: the scenes folder (default: the one in run.json).",
)
@click.option(
    "--skip-bad",
    is_flag=True,
    help="A collection: leave out scenes that cannot be searched instead of failing.",
)
@_index_option("A collection: the index of its search (as selo search --index).")
@run_options
def serve_cmd(
    targets, host, port, open_browser, map_cache, anno, images, skip_bad, index_mode, **kw
):
    """An interactive map of a scene or a collection in the web browser (or of an airslt run).

    One scene is embedded once (or read from the embedding cache), with progress in the
    terminal and the page; then every sentence typed in the page is answered from the
    embeddings: overlay tiles, attention centres, high-score regions, GeoTIFF and GeoJSON
    downloads. Several scenes, folders, globs, URL prefixes or STAC collections (as selo
    search takes them) are a collection, embedded and indexed first: georeferenced scenes
    are drawn where they are on one Web-Mercator map, a sentence lists the best regions of
    every scene, and a hit opens at its place with its scene's map (a hit of selo search:
    /#q=SENTENCE&hit=RANK). With an airslt run folder, browse its cases with their
    annotation polygons and metrics. Listens on 127.0.0.1 unless --host says otherwise;
    Ctrl-C stops.
    """
    from .api import serve
    from .report.terminal import console

    serve(
        list(targets),
        options=_options(kw),
        host=host,
        port=port,
        open_browser=open_browser,
        map_cache=map_cache,
        anno=anno,
        images=images,
        skip_bad=skip_bad,
        index=index_mode,
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
    from .metrics import RMI

    rows = list_presets()
    table = Table(title="selo encoders", box=box.SIMPLE_HEAD)
    for column in ("name", "kind", "architecture", "expected file"):
        table.add_column(column, overflow="fold")
    table.add_column(RMI.label, justify="right")
    for p in rows:
        table.add_row(p.name, p.kind, p.arch, p.filename, "" if p.rmi is None else RMI.text(p.rmi))
    console = Console()
    console.print(table)
    for p in rows:
        console.print(f"[bold]{p.name}[/bold] ({p.source}): {p.notes}", highlight=False)


@cli.command("compare")
@click.argument("runs", nargs=-1, required=True, type=_path())
@click.option(
    "--out",
    type=_path(),
    default="compare.html",
    show_default=True,
    help="The HTML page with each case's overlays side by side.",
)
@click.option("--common", is_flag=True, help="Compare only the cases every run scored identically.")
@click.option(
    "--top",
    type=click.IntRange(0),
    default=10,
    show_default=True,
    help="Cases to print (the page has all).",
)
def compare_cmd(runs, out, common, top):
    """Compare runs of the same cases: RUN_A RUN_B [RUN_C ...] (selo airslt run folders).

    Checks that the runs scored the same cases (index, image, query, polygons), prints
    the mean metrics of each run and the cases whose Rmi changed most from RUN_A, and
    writes an HTML page with each case's overlays side by side. Runs of different cases
    are refused unless --common limits the comparison to the cases they share.
    """
    from .compare import case_ranges, compare_runs, load_run
    from .report.compare_page import write_compare_html
    from .report.terminal import comparison_tables, console

    _imports_done()
    if len(runs) < 2:
        raise click.UsageError("give at least two run folders")
    comparison = compare_runs([load_run(r) for r in runs], common=common)
    for table in comparison_tables(comparison, top=top):
        console.print(table)
    if comparison.left_out:
        console.print(
            f"[yellow]{len(comparison.left_out)} case(s) not scored identically by every run, "
            f"left out: {case_ranges(comparison.left_out)}[/yellow]"
        )
    console.print(f"side by side: {write_compare_html(comparison, out)}")
