"""``selo localize`` of a remote scene (loopback HTTP and S3) against the same file on disk.

Writes the synthetic benchmark scene (``_common.make_scene``) as a Cloud-Optimized
GeoTIFF, serves it from an HTTP server with Range support and from moto's S3 server (both
from tests/servers.py, each in its own process on 127.0.0.1, counting the bytes they
send), then times ``python -m selo localize`` on the local path, the ``http://`` URL and
the ``s3://`` URL, and the ``s3://`` URL with the embedding cache and the output folder in
the same S3 server too (``--cache-dir s3://…``, ``--out s3://…``: what a cluster without a
shared disk runs): a first query (empty embedding cache: the scene is read and embedded)
and a second query (cached embeddings: only headers should be fetched, plus the cache
entry itself when it is in S3). Runs are
interleaved (local, http, s3, then again) and the best of ``--repeat`` is kept. Loopback
costs no network time: what remains is what selo and GDAL add over a local read
(requests, the header checks, identity requests).

    python benchmarks/bench_remote.py [--size 10000] [--repeat 2] [--workdir /tmp/selo-bench]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import uuid
from pathlib import Path

from _common import BENCHMARKS_MD, make_scene, run_selo, stamp, write_section
from servers import RangeServer, S3Server

HEADING = "Remote scenes: HTTP and S3 against a local file"
ALL_S3 = "s3, cache and out in S3"
QUERIES = ("a white plane parked on a gray airport", "green trees")


def make_cog(workdir: Path, size: int) -> Path:
    import rasterio.shutil

    cog = workdir / f"remote-{size}.cog.tif"
    if not cog.exists():
        plain = make_scene(workdir / f"scene-{size}.tif", size)
        partial = cog.with_suffix(".partial.tif")
        rasterio.shutil.copy(plain, partial, driver="COG", compress="deflate", blocksize=512)
        partial.rename(cog)
    return cog


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "selo-bench")
    parser.add_argument("--out", type=Path, default=BENCHMARKS_MD)
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    cog = make_cog(args.workdir, args.size)
    size = cog.stat().st_size
    www = args.workdir / "www"
    www.mkdir(exist_ok=True)
    served = www / cog.name
    if not served.exists():
        os.link(cog, served)
    results: dict[str, list[tuple[float, int, float, int]]] = {}
    scene_bytes = 0  # of the second query with the cache in S3: what it read of the scene
    with RangeServer(www) as http, S3Server() as s3:
        import boto3

        os.environ.update(
            AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
            AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=s3.endpoint,
        )  # fmt: skip
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        client = boto3.client("s3", endpoint_url=s3.endpoint)
        client.create_bucket(Bucket=bucket)
        client.upload_file(str(cog), bucket, cog.name)
        sources = {
            "local": (str(cog), None),
            "http": (http.url(cog.name), http),
            "s3": (f"s3://{bucket}/{cog.name}", s3),
            ALL_S3: (f"s3://{bucket}/{cog.name}", s3),
        }
        for repeat in range(args.repeat):
            for name, (location, server) in sources.items():
                cache = args.workdir / f"cache-remote-{name}"
                in_s3 = name == ALL_S3  # a new cache prefix per repeat: an empty cache
                runs = []
                for i, query in enumerate(QUERIES):
                    if server is not None:
                        server.reset()
                    out = args.workdir / f"remote-{name}-{i}"
                    if in_s3:
                        out = f"s3://{bucket}/out-{repeat}-{i}"
                        cache = f"s3://{bucket}/cache-{repeat}"
                    command = ["localize", location, "-q", query, "--out", str(out)]
                    wall, _, _ = run_selo(command, cache=cache, fresh=i == 0 and not in_s3)
                    runs.append((wall, server.bytes_sent() if server else 0))
                    if in_s3 and i == 1:
                        scene_bytes = server.bytes_sent(cog.name)
                results.setdefault(name, []).append((*runs[0], *runs[1]))
                print(name, results[name][-1], flush=True)
    best = {name: min(rows) for name, rows in results.items()}
    local_first, _, local_second, _ = best["local"]
    lines = [
        f"A {args.size:,}² synthetic scene as a COG ({size / 2**20:.0f} MiB, 512-pixel tiles, "
        "DEFLATE, overviews) read by `selo localize` from disk, from an HTTP server with Range "
        "requests and from moto's S3 server, both on 127.0.0.1 in their own processes "
        "(tests/servers.py); default scales, `color` encoder, threads in one process; the "
        f"last row with `--cache-dir` and `--out` in the same S3 server ({ALL_S3!r}: the "
        "embeddings, staged copies and every output file are objects there). First "
        "query: empty embedding cache; second query: another sentence on the cached "
        f"embeddings. Best of {args.repeat} interleaved runs; bytes are the body bytes the "
        "server sent (GET answers: uploads are not counted).",
        "",
        "| source | first query s | × local | bytes fetched | × file | second query s | "
        "× local | bytes fetched |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, (first, first_bytes, second, second_bytes) in best.items():
        fetched = f"{first_bytes / 2**20:.1f} MiB" if name != "local" else "-"
        share = f"{first_bytes / size:.2f}" if name != "local" else "-"
        again = f"{second_bytes / 2**10:.0f} KiB" if name != "local" else "-"
        lines.append(
            f"| {name} | {first:.1f} | {first / local_first:.2f} | {fetched} | {share} | "
            f"{second:.1f} | {second / local_second:.2f} | {again} |"
        )
    second = best[ALL_S3][3]
    lines += [
        "",
        f"The second query of {ALL_S3!r} fetched {scene_bytes / 2**10:.0f} KiB of the scene "
        f"(its header chunk) and {(second - scene_bytes) / 2**10:.0f} KiB of the cache's "
        "objects (the embedding entry, the scene's kept preview, the key index).",
        "",
        stamp("bench_remote.py", argv),
    ]
    write_section(HEADING, "\n".join(lines), args.out)


if __name__ == "__main__":
    main()
