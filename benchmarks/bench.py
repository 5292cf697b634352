#!/usr/bin/env python
"""Time audioprep against the serial original and the script a user would write, in one run, on the same files.

First the disk's sustained write rate (--disk-mb MB written and fdatasync'ed).
For each N (clips, 30 s each, 10 genres), the rows the comparison rests on:
  e against c, alternating (e c e c ..., --pairs times, 3 by default), each
  timed until its output is on disk (a sync before and after each), once with
  all arrays and once with Xs and Xn only (the script skipping Xa too); the
  medians, the range of the pair ratios, the bytes each wrote, audioprep's
  physical floor (max of the kernels' and writes' CPU / cores and its bytes /
  the disk's rate), the cores it kept busy, and what the disk made writers wait
  (dirty pages against the kernel's limit from /proc/vmstat, /proc/pressure/io).
Then (not with --quick) the other runs:
  a. the serial original: the notebook's loop (convert the folder to gtzan.hdf5,
     then per clip two librosa.cqt calls and HDF5 writes), with the LCN of docs/numerics.md
     added so that it writes the same three arrays;
  e. the peer: the short script a user would write instead: joblib.Parallel
     over the clips (decode, two librosa.cqt calls, the separable LCN), the
     parent writing each result into one HDF5 file as it arrives;
  b. 'audioprep run' from the folder to audio.hdf5 with 1 worker;
  c. the same with one worker per core;
  d. the floor: audioprep's stages (decode, frame, CQT, LCN and the writes a
     worker does) over all clips in this process, CPU divided by the number of cores.
It checks that a, c and e wrote the same arrays (every clip), and prints a
Markdown table (appended to --out with the machine and the command).
It reads the CPU time of every process of each audioprep run from /proc (the
driver, which holds the scheduler and the client; each worker; any other).
--scale-sizes runs audioprep on 1-s clips and reports each process's CPU per
clip as the slope between sizes, the driver's ceiling in clips/s that this
implies, memory, and the store's files per clip.

    python benchmarks/bench.py --sizes 300 1000 --scale-sizes 500 2000 20000 --out benchmarks/RESULTS.md
    python benchmarks/bench.py --sizes 20 --quick --disk-mb 256     # a smoke check: about 2 minutes
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import librosa
import numpy as np
import psutil
import soundfile as sf
from scipy import ndimage

HERE = Path(__file__).resolve().parent
SR, NSAMPLES, NA, NS, NO = 22050, 660000, 1024, 96, 4
FMIN = 65.40639132514966
ARRAYS = ("Xa", "Xs", "Xn")


# ----------------------------------------------------------------------------
# data


def dataset(data: Path, n: int) -> Path:
    """A GTZAN-style folder of n clips (10 genres), linking the files of one shared pool."""
    from pipeline.synth import synth_dataset

    per = n // 10
    pool = data / "pool"
    synth_dataset(pool, genres=10, clips=max(per, 1), seed=0, progress=sys.stderr.isatty())
    root = data / f"n{n}" / "genres"
    if not root.exists():
        for gdir in sorted((pool / "genres").iterdir()):
            (root / gdir.name).mkdir(parents=True)
            for f in sorted(gdir.iterdir())[:per]:
                (root / gdir.name / f.name).symlink_to(f)
    return root


# ----------------------------------------------------------------------------
# a. the serial original, ported: convert, then loop


def serial_lcn(S):
    r = np.arange(9) - 4
    w = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / 8.0)
    w /= w.sum()
    ones = ndimage.correlate(np.ones_like(S), w, mode="constant")
    v = S - ndimage.correlate(S, w, mode="constant") / ones
    sd = np.sqrt(ndimage.correlate(v * v, w, mode="constant") / ones)
    c = sd.mean()
    return np.zeros_like(S) if c == 0 else v / np.maximum(sd, c)


def serial_reference(root: Path, out: Path) -> dict:
    t0 = time.perf_counter()
    genres = sorted(d.name for d in root.iterdir())
    nclips = len(list((root / genres[0]).iterdir()))
    gtzan = out / "gtzan.hdf5"
    with h5py.File(gtzan, "w") as f:  # the conversion step
        for genre in genres:
            d = f.create_dataset(genre, (NSAMPLES, nclips), dtype="float32")
            for c, name in enumerate(sorted((root / genre).iterdir())):
                y, _ = sf.read(name, dtype="float32")
                d[:, c] = y[:NSAMPLES]
        f.attrs.update({"Ngenres": len(genres), "Nclips": nclips, "sr": SR, "Nsamples": NSAMPLES})
    t_convert = time.perf_counter() - t0
    F = min(NSAMPLES // NA, int(np.floor(NSAMPLES / NA - 0.5)))
    with h5py.File(gtzan, "r") as src, h5py.File(out / "audio.hdf5", "w") as dst:
        G = len(genres)
        Xa = dst.create_dataset("Xa", (G, nclips, F, 2, NA), dtype="float32")
        Xs = dst.create_dataset("Xs", (G, nclips, F, 2, NS), dtype="float32")
        Xn = dst.create_dataset("Xn", (G, nclips, F, 2, NS), dtype="float32")
        for g, genre in enumerate(genres):
            for c in range(nclips):
                y1 = src[genre][:, c]
                y2 = y1[NA // 2 :]
                Xa[g, c, :, 0, :] = y1[: NA * F].reshape(F, NA)
                Xa[g, c, :, 1, :] = y2[: NA * F].reshape(F, NA)
                for s, ys in enumerate((y1, y2)):
                    S = np.abs(librosa.cqt(ys, sr=SR, hop_length=NA, fmin=FMIN, n_bins=NS, bins_per_octave=NS // NO))[
                        :, :-1
                    ].T
                    Xs[g, c, :, s, :] = S
                    Xn[g, c, :, s, :] = serial_lcn(S.astype(np.float64))
    return {"seconds": time.perf_counter() - t0, "convert": t_convert}


# ----------------------------------------------------------------------------
# e. the peer: the short script a user would write instead (joblib over the clips)


def peer_clip(path: str, names=ARRAYS):
    """One clip as a user's script computes it: decode, frame (unless Xa is not wanted), two librosa.cqt calls,
    separable LCN."""
    y1, _ = sf.read(path, dtype="float32")
    y1 = y1[:NSAMPLES]
    y2 = y1[NA // 2 :]
    F = min(NSAMPLES // NA, int(np.floor(NSAMPLES / NA - 0.5)))
    xa = np.stack([y1[: NA * F].reshape(F, NA), y2[: NA * F].reshape(F, NA)], axis=1) if "Xa" in names else None
    xs = np.stack(
        [
            np.abs(librosa.cqt(y, sr=SR, hop_length=NA, fmin=FMIN, n_bins=NS, bins_per_octave=NS // NO))[:, :-1].T
            for y in (y1, y2)
        ],
        axis=1,
    )
    r = np.arange(9) - 4
    g = np.exp(-(r**2) / 8.0)
    g /= g.sum()

    def smooth(x):
        return ndimage.correlate1d(ndimage.correlate1d(x, g, axis=0, mode="constant"), g, axis=1, mode="constant")

    xn = np.empty_like(xs)
    for s in range(2):
        S = xs[:, s].astype(np.float64)
        ones = smooth(np.ones_like(S))
        v = S - smooth(S) / ones
        sd = np.sqrt(smooth(v * v) / ones)
        c = sd.mean()
        xn[:, s] = 0 if c <= 1e-6 * np.abs(S).max() else v / np.maximum(sd, c)
    return [a for name, a in zip(ARRAYS, (xa, xs, xn)) if name in names]


def peer(root: Path, out: Path, cores: int, names=ARRAYS) -> dict:
    """joblib.Parallel over the clips; the parent writes each result into one HDF5 file as it arrives."""
    from joblib import Parallel, delayed

    t0 = time.perf_counter()
    genres = sorted(d.name for d in root.iterdir())
    files = [(g, c, str(f)) for g, genre in enumerate(genres) for c, f in enumerate(sorted((root / genre).iterdir()))]
    nclips = max(c for _, c, _ in files) + 1
    F = min(NSAMPLES // NA, int(np.floor(NSAMPLES / NA - 0.5)))
    with h5py.File(out / "audio.hdf5", "w") as f:
        d = {
            name: f.create_dataset(name, (len(genres), nclips, F, 2, n), dtype="float32", chunks=(1, 1, F, 2, n))
            for name, n in (("Xa", NA), ("Xs", NS), ("Xn", NS))
            if name in names
        }
        results = Parallel(n_jobs=cores, return_as="generator")(delayed(peer_clip)(p, names) for _, _, p in files)
        for (g, c, _), arrays in zip(files, results):
            for name, a in zip(d, arrays):
                d[name][g, c] = a
        f.attrs["labels"] = np.array([s.encode() for s in genres])
    return {"seconds": time.perf_counter() - t0}


# ----------------------------------------------------------------------------
# b, c. audioprep run, watched for memory


def classify(p, main_pid: int) -> str:
    """driver (it holds the scheduler and the client), forkserver (the warm parent the workers fork from),
    worker (a Dask worker process: spawned, or forked from the forkserver) or other."""
    if p.pid == main_pid:
        return "driver"
    cmd = " ".join(p.cmdline())
    if "spawn_main" in cmd:
        return "worker"
    if "forkserver import main" in cmd:
        return "forkserver" if p.ppid() == main_pid else "worker"
    return "other"


def watch(proc: subprocess.Popen, stop: threading.Event, peaks: dict, cpu: dict) -> None:
    """Sample the resident memory and the CPU time (user + system) of every process of the run."""
    main = psutil.Process(proc.pid)
    kinds: dict = {}
    while not stop.is_set():
        try:
            procs = [main] + main.children(recursive=True)
        except psutil.NoSuchProcess:
            break
        for p in procs:
            try:
                kind = kinds.get(p.pid) or classify(p, main.pid)
                if kind != "other":  # a child is 'other' until its exec: look again next time
                    kinds[p.pid] = kind
                with p.oneshot():
                    rss = p.memory_info().rss
                    t = p.cpu_times()
                peaks[(kind, p.pid)] = max(peaks.get((kind, p.pid), 0), rss)
                cpu[(kind, p.pid)] = t.user + t.system  # the last reading before the process ends
            except psutil.Error:
                continue
        time.sleep(0.05)


def pipeline_run(root: Path, out: Path, workers: int, extra=(), overwrite: bool = True) -> dict:
    env = {**os.environ, "DASK_TEMPORARY_DIRECTORY": str(out)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "run",
            str(root),
            "-o",
            str(out),
            "--workers",
            str(workers),
            "-q",
            *(["--overwrite"] if overwrite else []),
            "--dashboard-address",
            "127.0.0.1:0",
            *extra,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stop, peaks, cpu = threading.Event(), {}, {}
    th = threading.Thread(target=watch, args=(proc, stop, peaks, cpu), daemon=True)
    th.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - t0
    stop.set()
    th.join()
    if proc.returncode != 0:
        raise SystemExit(f"audioprep run failed:\n{err}")
    summary = json.loads((out / "audio.summary.json").read_text())
    workers_mb = [v / 2**20 for (k, _), v in peaks.items() if k == "worker"]
    zarr = out / "audio.zarr"
    return {
        "seconds": wall,
        "summary": summary,
        "worker_mb": workers_mb,
        "scheduler_mb": max([v / 2**20 for (k, _), v in peaks.items() if k == "driver"], default=0),
        "cpu": {
            kind: sum(v for (k, _), v in cpu.items() if k == kind)
            for kind in ("driver", "worker", "forkserver", "other")
        },
        "store_entries": sum(1 for _ in zarr.rglob("*")) if zarr.exists() else 0,
        "array_bytes": summary["bytes_written"],
    }


def hdf5_extra(out: Path, summary: dict) -> float:
    """How much audio.hdf5 holds beyond its arrays, in % of the arrays' bytes."""
    with h5py.File(out / "audio.hdf5") as f:
        arrays = sum(f[n].size * 4 for n in ("Xa", "Xs", "Xn") if n in f)
    return 100.0 * (summary.get("output_bytes", summary.get("hdf5_bytes", 0)) - arrays) / arrays


# ----------------------------------------------------------------------------
# d. the compute floor


def floor(root: Path, cores: int, params=None, limit: int | None = None, scratch: Path | None = None) -> dict:
    """audioprep's stages over the clips in this process: decode, frame, CQT, LCN, and (with ``scratch``)
    the writes a worker does, into a Zarr store and a temporary audio.hdf5.  CPU seconds per stage."""
    from pipeline import graph
    from pipeline.inputs import open_index
    from pipeline.output import hdf5, zarr_store
    from pipeline.output.layout import make_attrs
    from pipeline.output.store import store_writer
    from pipeline.params import Params
    from pipeline.worker_setup import one_blosc_thread

    one_blosc_thread()  # as a worker encodes
    p = params or Params()
    idx = open_index(root)
    clips = idx.clips[:limit] if limit else idx.clips
    stages = {"decode": 0.0, "frame": 0.0, "cqt": 0.0, "lcn": 0.0}
    target = None
    if scratch is not None:
        stages["write"] = 0.0
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        zarr_store.create_store(scratch / "audio.zarr", idx, p, make_attrs(idx, p, created="floor"))
        slots = hdf5.create(scratch / "audio.hdf5", {n: p.shape(n, idx.ngenres, idx.nclips) for n in p.datasets})
        target = store_writer(scratch / "audio.zarr", "floor", slots)
    order = graph.stages_for(p)
    graph.compute(graph.load(clips[0], p), p, order)  # warm librosa's caches and numba, as a worker's warm-up does
    clock = time.process_time

    @contextlib.contextmanager
    def meter(stage):
        t = clock()
        yield
        stages[stage] += clock() - t

    for ref in clips:
        with meter("decode"):
            y = graph.load(ref, p)
        arrays = graph.compute(y, p, order, meter)  # the stages a task runs, timed the same way
        if target is not None:
            with meter("write"):
                graph.write(ref, arrays, target)
    if scratch is not None:
        shutil.rmtree(scratch)
    total = sum(stages.values())
    return {"seconds": total / cores, "serial": total, "stages": stages, "clips": len(clips)}


def check_same(a: Path, c: Path, e: Path) -> str:
    """Compare the serial (a) and the peer (e) outputs with audioprep's (c): every clip, every array.
    Xs differences are relative to each clip's maximum (docs/numerics.md, section 3), the others absolute."""
    out = []
    with h5py.File(a) as fa, h5py.File(c) as fc, h5py.File(e) as fe:
        for name in ("Xa", "Xs", "Xn"):
            G, C = fc[name].shape[:2]
            worst_a = worst_e = 0.0
            for g in range(G):
                for k in range(C):
                    x = fc[name][g, k]
                    scale = float(np.abs(fe[name][g, k]).max()) or 1.0 if name == "Xs" else 1.0
                    worst_a = max(worst_a, float(np.abs(fa[name][g, k] - x).max()) / scale)
                    worst_e = max(worst_e, float(np.abs(fe[name][g, k] - x).max()) / scale)
            out.append(
                f"{name} {'=' if worst_a == 0 else f'{worst_a:.1e}'}/{'=' if worst_e == 0 else f'{worst_e:.1e}'}"
            )
    return ", ".join(out)


def startup(workers: int) -> str:
    """Each worker's CPU until it is ready for its first clip (imports and CQT plan), with the workers forked from
    a warm forkserver (the default) and spawned from scratch (audioprep.warm-start: false)."""
    rows = []
    for warm in (True, False):
        # a fresh process each time: a process starts its forkserver once
        code = (
            f"import sys, psutil, dask.config; dask.config.set({{'audioprep.warm-start': {warm}, "
            f"'audioprep.workers': {workers}}})\n"
            "from pipeline.cluster.connect import ClusterSpec, Connection\n"
            "from pipeline.params import Params\nfrom pipeline.worker_setup import Warmup\n"
            "if __name__ == '__main__':\n"
            "    with Connection(ClusterSpec(kind='local', warm=Params())) as conn:\n"
            "        conn.client.register_plugin(Warmup(Params()))\n"
            "        me = psutil.Process()\n"
            "        out = {'driver': sum(me.cpu_times()[:2])}\n"
            "        pids = set(conn.client.run(__import__('os').getpid).values())\n"
            "        for ch in me.children(recursive=True):\n"
            "            kind = 'worker' if ch.pid in pids else "
            "('forkserver' if 'forkserver' in ' '.join(ch.cmdline()) "
            "else 'other')\n"
            "            out.setdefault(kind, []).append(sum(ch.cpu_times()[:2]))\n"
            "        print(__import__('json').dumps(out))\n"
        )
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".py", prefix="audioprep-bench-") as script:  # a fresh name
            script.write(code)
            script.flush()
            got = json.loads(
                subprocess.run([sys.executable, script.name], capture_output=True, text=True, check=True)
                .stdout.strip()
                .splitlines()[-1]
            )
        w = got.get("worker", [])
        rows.append(
            f"| {'forked warm (default)' if warm else 'spawned (warm-start: false)'} | {workers} "
            f"| {sum(got.get('forkserver', [0])):.2f} | {min(w):.2f} to {max(w):.2f} | {sum(w):.2f} "
            f"| {got['driver']:.2f} |"
        )
    return (
        "| how workers start | workers | forkserver CPU (s, once a node) | each worker's CPU until ready (s) "
        "| all workers (s) | driver CPU to ready (s) |\n|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )


def write_parts(root: Path, scratch: Path, n: int = 100) -> str:
    """What the write stage's parts cost, per clip, on n computed clips: encoding each array (lz4 with bit-shuffle,
    the store's codec, against the alternatives), writing the encoded chunk files, pwrite of the clip's bytes into a
    laid-out file, and a plain pwrite loop of the same bytes (the page cache's limit on this machine)."""
    from numcodecs import blosc

    from pipeline import graph
    from pipeline.inputs import open_index
    from pipeline.params import Params

    p = Params()
    clips = open_index(root).clips[:n]
    n = len(clips)
    arrays = [graph.compute(graph.load(ref, p), p, graph.stages_for(p)) for ref in clips]
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    clock = time.process_time
    rows = []
    raw = sum(a.nbytes for arr in arrays for a in arr.values()) / n
    blosc.use_threads = False  # one blosc thread, as in a worker
    for label, cname, level, shuffle in (
        ("lz4 9 + bit-shuffle (the store's)", b"lz4", 9, blosc.BITSHUFFLE),
        ("lz4 1 + bit-shuffle", b"lz4", 1, blosc.BITSHUFFLE),
        ("lz4 1, no shuffle", b"lz4", 1, blosc.NOSHUFFLE),
        ("lz4 1 + byte shuffle", b"lz4", 1, blosc.SHUFFLE),
        ("zstd 1 + bit-shuffle", b"zstd", 1, blosc.BITSHUFFLE),
    ):
        t = clock()
        enc = [
            {k: blosc.compress(np.ascontiguousarray(a), cname, level, shuffle, typesize=4) for k, a in arr.items()}
            for arr in arrays
        ]
        t_enc = clock() - t
        t0, w0 = clock(), time.perf_counter()
        for i, e in enumerate(enc):
            for k, data in e.items():
                (scratch / f"{k}.{i}").write_bytes(data)
        t_files, w_files = clock() - t0, time.perf_counter() - w0
        size = sum(len(d) for e in enc for d in e.values()) / n
        rows.append(
            f"| encode: {label} | {1e3 * t_enc / n:.2f} | {size / 1e6:.2f} MB ({100 * size / raw:.0f} %) "
            f"| chunk files: {1e3 * t_files / n:.2f} CPU, {1e3 * w_files / n:.2f} wall |"
        )
        for f in scratch.iterdir():
            f.unlink()
    blobs = [b"".join(np.ascontiguousarray(a).tobytes() for a in arr.values()) for arr in arrays]

    def fresh_file(fill) -> tuple:
        """CPU and wall seconds of ``fill(fd)`` into a new file of the clips' size (new page-cache pages)."""
        fd = os.open(scratch / f"slots-{len(rows)}.bin", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, int(raw * n))
            t0, w0 = clock(), time.perf_counter()
            fill(fd)
            return clock() - t0, time.perf_counter() - w0
        finally:
            os.close(fd)

    def slots(fd):  # as Slots.write does: one pwrite an array
        for i, arr in enumerate(arrays):
            off = int(i * raw)
            for a in arr.values():
                os.pwrite(fd, np.ascontiguousarray(a), off)
                off += a.nbytes

    def plain(fd):  # the limit: one plain pwrite of the same bytes a clip
        for i, b in enumerate(blobs):
            os.pwrite(fd, b, int(i * raw))

    t_slots, w_slots = fresh_file(slots)
    rows.append("")
    t_plain, w_plain = fresh_file(plain)
    rows.pop()
    shutil.rmtree(scratch)
    rows.append(
        f"| pwrite into audio.hdf5's slots (one call an array) | {1e3 * t_slots / n:.2f} | {raw / 1e6:.2f} MB "
        f"| wall {1e3 * w_slots / n:.2f} |"
    )
    rows.append(
        f"| plain pwrite loop of the same bytes (page-cache limit) | {1e3 * t_plain / n:.2f} "
        f"| {raw / 1e6:.2f} MB | wall {1e3 * w_plain / n:.2f}, {raw * n / w_plain / 1e9:.2f} GB/s |"
    )
    return (
        "| part (per 30-s clip, "
        + str(n)
        + " clips) | CPU ms/clip | bytes a clip | files |\n|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n"
    )


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line)
    except (OSError, StopIteration):
        pass
    import dask
    import zarr

    from pipeline import __version__

    return (
        f"Machine: {cpu}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}, librosa "
        f"{librosa.__version__}, dask {dask.__version__}, zarr {zarr.__version__}, audioprep {__version__}."
    )


def reading(path: Path, blocks: int = 2000, frames: int = 64, name: str = "Xn", reps: int = 3) -> dict:
    """Training reads: ``blocks`` shuffled (frames, 2, n) blocks of ``name``, through FrameBlocks and through
    plain h5py slices ``X[g, c, f:f + frames]`` of the same blocks (page cache warm; best of ``reps``)."""
    import h5py
    import numpy as np

    from pipeline.output import FrameBlocks

    fb = FrameBlocks(path, name, frames=frames)
    order = np.random.default_rng(0).permutation(len(fb))
    picks = [order[k % len(order)] for k in range(blocks)]
    best = {"h5py": float("inf"), "FrameBlocks": float("inf")}
    with h5py.File(path, "r") as f:
        X = f[name]
        for i in picks:  # warm the page cache, and check the two agree
            g, c, s = fb.index[i]
            assert np.array_equal(fb[i][0], X[g, c, s : s + frames])
        for _ in range(reps):
            t = time.perf_counter()
            for i in picks:
                g, c, s = fb.index[i]
                X[g, c, s : s + frames]
            best["h5py"] = min(best["h5py"], time.perf_counter() - t)
            t = time.perf_counter()
            for i in picks:
                fb[i]
            best["FrameBlocks"] = min(best["FrameBlocks"], time.perf_counter() - t)
    fb.close()
    mb = blocks * frames * 2 * fb.shape[-1] * 4 / 1e6
    return {k: {"blocks_per_s": blocks / v, "mb_per_s": mb / v} for k, v in best.items()}


def reading_table(path: Path) -> str:
    r = reading(path)
    ratio = r["FrameBlocks"]["blocks_per_s"] / r["h5py"]["blocks_per_s"]
    return (
        "| reader (2000 shuffled 64-frame blocks of Xn) | blocks/s | MB/s |\n|---|---|---|\n"
        + "\n".join(f"| {k} | {v['blocks_per_s']:,.0f} | {v['mb_per_s']:,.0f} |" for k, v in r.items())
        + f"\n\nFrameBlocks reads at **{100 * ratio:.0f} %** of plain h5py's rate ({path.name}, "
        f"{path.stat().st_size / 1e6:.0f} MB).\n"
    )


# ----------------------------------------------------------------------------
# the disk: its sustained write rate, what a run writes, and what it makes writers wait


def disk_rate(where: Path, mb: int) -> float:
    """The disk's sustained write rate in MB/s: ``mb`` MB of incompressible bytes written and fdatasync'ed into a new
    file under ``where`` (what ``dd if=/dev/urandom of=F bs=64M count=N conv=fdatasync`` measures, without
    urandom's cost; every 4 KiB page differs from every other, so nothing can be deduplicated)."""
    block = 64 * 2**20
    buf = np.random.default_rng(0).integers(0, 256, block, dtype=np.uint8)
    pages = buf.reshape(-1, 4096)
    path = where / "disk-rate.bin"
    where.mkdir(parents=True, exist_ok=True)
    os.sync()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    n = max(1, mb * 2**20 // block)
    try:
        t = time.perf_counter()
        for i in range(n):
            pages[:, :8] = np.frombuffer(np.int64(i).tobytes(), np.uint8)
            view = memoryview(buf)
            while view:
                view = view[os.write(fd, view) :]
        os.fdatasync(fd)
        secs = time.perf_counter() - t
    finally:
        os.close(fd)
        path.unlink()
    return n * block / 1e6 / secs


def written(path: Path) -> int:
    """Bytes a command left under ``path`` (allocated blocks, as the disk must write them)."""
    return sum(f.lstat().st_blocks * 512 for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def _vmstat() -> dict:
    with open("/proc/vmstat") as f:
        return {k: int(v) for k, v in (line.split() for line in f)}


def _psi_io() -> tuple:
    """Seconds some task / every task waited on I/O since boot (/proc/pressure/io); (nan, nan) without PSI."""
    try:
        with open("/proc/pressure/io") as f:
            tot = {line.split()[0]: int(line.rsplit("total=", 1)[1]) for line in f}
        return tot["some"] / 1e6, tot["full"] / 1e6
    except (OSError, KeyError, ValueError, IndexError):
        return float("nan"), float("nan")


class IOWatch:
    """What a command makes writers wait for the disk, from /proc every 50 ms while it runs: the peak of dirty and
    writeback pages (/proc/vmstat nr_dirty + nr_writeback) against the kernel's dirty limit (nr_dirty_threshold),
    the seconds spent past the point where the kernel starts to throttle writers (halfway between
    nr_dirty_background_threshold and nr_dirty_threshold: balance_dirty_pages), and the seconds some task and
    every task of the machine waited on I/O (/proc/pressure/io)."""

    def __enter__(self):
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.stop, self.peak, self.throttled, self.limit = threading.Event(), 0, 0.0, 0
        self.psi0 = _psi_io()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        last = time.perf_counter()
        while not self.stop.is_set():
            v = _vmstat()
            dirty = v.get("nr_dirty", 0) + v.get("nr_writeback", 0)
            self.limit = v.get("nr_dirty_threshold", 0)
            now = time.perf_counter()
            if dirty > (self.limit + v.get("nr_dirty_background_threshold", 0)) / 2:
                self.throttled += now - last
            last = now
            self.peak = max(self.peak, dirty)
            self.stop.wait(0.05)

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        psi1 = _psi_io()
        self.result = {
            "dirty_peak_gb": self.peak * self.page / 1e9,
            "dirty_limit_gb": self.limit * self.page / 1e9,
            "throttled_s": self.throttled,
            "io_some_s": psi1[0] - self.psi0[0],
            "io_full_s": psi1[1] - self.psi0[1],
        }


def on_disk(fn, *args, **kw) -> dict:
    """``fn(*args, **kw)`` timed until its output is on disk: a ``sync`` before (untimed: earlier commands' pages)
    and one after (timed: audioprep fsyncs audio.hdf5, the script does not), watched by :class:`IOWatch`."""
    os.sync()
    with IOWatch() as io:
        t = time.perf_counter()
        r = fn(*args, **kw)
        os.sync()
        r["seconds"] = time.perf_counter() - t
    r["io"] = io.result
    return r


def check_pair(c: Path, e: Path, names) -> str:
    """The largest difference of audioprep's output from the script's, every clip (Xs: of each clip's maximum)."""
    out = []
    with h5py.File(c) as fc, h5py.File(e) as fe:
        for name in names:
            G, C = fc[name].shape[:2]
            worst = 0.0
            for g in range(G):
                for k in range(C):
                    x, y = fc[name][g, k], fe[name][g, k]
                    scale = float(np.abs(y).max()) or 1.0 if name == "Xs" else 1.0
                    worst = max(worst, float(np.abs(x - y).max()) / scale)
            out.append(f"{name} {'=' if worst == 0 else f'{worst:.1e}'}")
    return ", ".join(out)


def alternating(root: Path, work: Path, cores: int, names, pairs: int) -> dict:
    """The script (e) and audioprep (c) alternating, e c e c ..., ``pairs`` times, each timed until its output is
    on disk; the outputs of the last pair are compared and left in ``work/e``, ``work/c``."""
    extra = [] if tuple(names) == ARRAYS else ["--datasets", ",".join(names)]
    runs = {"e": [], "c": []}
    for k in range(pairs):
        for who in ("e", "c"):
            out = work / who
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            print(
                f"  pair {k + 1}/{pairs}: {'the joblib script' if who == 'e' else 'audioprep'} ({','.join(names)}) ...",
                file=sys.stderr,
            )
            r = on_disk(peer, root, out, cores, names) if who == "e" else on_disk(pipeline_run, root, out, cores, extra)
            r["bytes"] = written(out)
            runs[who].append(r)
    ratios = [e["seconds"] / c["seconds"] for e, c in zip(runs["e"], runs["c"])]
    med = {w: float(np.median([r["seconds"] for r in rs])) for w, rs in runs.items()}
    return {
        "e": med["e"],
        "c": med["c"],
        "ratio": float(np.median(ratios)),
        "ratios": ratios,
        "runs": runs,
        "last_c": runs["c"][-1],
        "same": check_pair(work / "c" / "audio.hdf5", work / "e" / "audio.hdf5", names),
    }


def pair_row(n: int, names, p: dict, floor_cpu: float, rate: float, cores: int) -> str:
    """One row of the pairs table: medians, the range of the pair ratios, bytes, the floor, the disk waits."""
    c = p["last_c"]
    c_bytes = float(np.median([r["bytes"] for r in p["runs"]["c"]]))
    e_bytes = float(np.median([r["bytes"] for r in p["runs"]["e"]]))
    fl_cpu, fl_disk = floor_cpu / cores, c_bytes / 1e6 / rate
    fl = max(fl_cpu, fl_disk)
    io = {w: {k: float(np.median([r["io"][k] for r in p["runs"][w]])) for k in c["io"]} for w in ("c", "e")}
    busy = sum(c["cpu"].values()) / c["seconds"]
    return (
        f"| {n} | {','.join(names)} | {len(p['ratios'])} | {p['e']:.1f} | {p['c']:.1f} | **{p['ratio']:.2f}** "
        f"({min(p['ratios']):.2f} to {max(p['ratios']):.2f}) | {e_bytes / 1e9:.2f} / {c_bytes / 1e9:.2f} "
        f"| {fl_cpu:.1f} / {fl_disk:.1f} = **{fl:.1f}** | {p['c'] / fl:.2f} | {busy:.2f} of {cores} "
        f"| {io['c']['dirty_peak_gb']:.1f} / {io['c']['dirty_limit_gb']:.1f} "
        f"| {io['e']['throttled_s']:.1f} / {io['c']['throttled_s']:.1f} "
        f"| {io['e']['io_some_s']:.1f} / {io['c']['io_some_s']:.1f} | {p['same']} |"
    )


PAIR_HEAD = (
    "| N | arrays | pairs | e script (s) | c audioprep (s) | e/c, median of the pairs (range) "
    "| written GB (e / c) | c's floor (s): CPU of kernels+writes / cores, bytes / disk rate = max "
    "| c / floor | c: cores busy | c: dirty+writeback peak / limit (GB) "
    "| s writers throttled (e / c) | s some task waited on I/O (e / c) | c vs e, every clip |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def full(args) -> str:
    rate = disk_rate(args.data, args.disk_mb)
    ratios = {k: open(f"/proc/sys/vm/{k}").read().strip() for k in ("dirty_ratio", "dirty_background_ratio")}
    disk = (
        f"Disk: **{rate:.0f} MB/s** sustained ({args.disk_mb} MB written and fdatasync'ed under {args.data}, "
        f"before the runs); vm.dirty_ratio {ratios['dirty_ratio']} %, "
        f"vm.dirty_background_ratio {ratios['dirty_background_ratio']} %.\n\n"
    )
    pair_rows, rows, details, coord, read, quick_details = [], [], [], [], "", []
    from pipeline.params import Params

    for n in args.sizes:
        root = dataset(args.data, n)
        work = args.data / f"out{n}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        print(f"N={n}: d, the floor (kernels and writes in one process) ...", file=sys.stderr)
        d = floor(root, args.cores, scratch=work / "floor")
        d_xsn = floor(root, args.cores, params=Params(datasets=("Xs", "Xn")), limit=min(n, 100), scratch=work / "floor")
        print(f"N={n}: the joblib script (e) and audioprep (c) alternating, all arrays ...", file=sys.stderr)
        pa = alternating(root, work / "pairs", args.cores, ARRAYS, args.pairs)
        pair_rows.append(pair_row(n, ARRAYS, pa, d["serial"] / d["clips"] * n, rate, args.cores))
        print(pair_rows[-1], file=sys.stderr)
        e, c = {"seconds": pa["e"]}, dict(pa["last_c"], seconds=pa["c"])
        if not args.quick:
            for sub in ("a", "b", "plain"):
                (work / sub).mkdir(parents=True)
            print(f"N={n}: a, the serial original ...", file=sys.stderr)
            a = on_disk(serial_reference, root, work / "a")
            print(f"N={n}: b, audioprep with 1 worker ...", file=sys.stderr)
            b = on_disk(pipeline_run, root, work / "b", 1)
            shutil.rmtree(work / "b")  # keep the disk use bounded
            print(f"N={n}: c with --precision exact ...", file=sys.stderr)
            cx = on_disk(pipeline_run, root, work / "cx", args.cores, extra=["--precision", "exact"])
            same_exact = check_same(
                work / "a" / "audio.hdf5", work / "cx" / "audio.hdf5", work / "pairs" / "e" / "audio.hdf5"
            )
            shutil.rmtree(work / "cx")
            print(f"N={n}: c without TLS ...", file=sys.stderr)
            plain = on_disk(pipeline_run, root, work / "plain", args.cores, extra=["--no-tls"])
            shutil.rmtree(work / "plain")
            same = check_same(
                work / "a" / "audio.hdf5", work / "pairs" / "c" / "audio.hdf5", work / "pairs" / "e" / "audio.hdf5"
            )
            extra = hdf5_extra(work / "pairs" / "c", c["summary"])
            dx = floor(root, args.cores, params=Params(precision="exact"), limit=min(n, 100))
            read = reading_table(work / "pairs" / "c" / "audio.hdf5")
        shutil.rmtree(work / "pairs")
        print(f"N={n}: the joblib script (e) and audioprep (c) alternating, Xs and Xn only ...", file=sys.stderr)
        px = alternating(root, work / "pairs", args.cores, ("Xs", "Xn"), args.pairs)
        pair_rows.append(pair_row(n, ("Xs", "Xn"), px, d_xsn["serial"] / d_xsn["clips"] * n, rate, args.cores))
        print(pair_rows[-1], file=sys.stderr)
        shutil.rmtree(work)
        quick_details.append(
            f"| {n} | " + " | ".join(f"{1e3 * v / d['clips']:.1f}" for v in d["stages"].values()) + " |"
        )
        if args.quick:
            continue
        s = c["summary"]
        rows.append(
            f"| {n} | {a['seconds']:.1f} | {e['seconds']:.1f} | {b['seconds']:.1f} | {c['seconds']:.1f} "
            f"| {d['seconds']:.1f} | {n / c['seconds']:.1f} | **{a['seconds'] / c['seconds']:.2f}** "
            f"| **{e['seconds'] / c['seconds']:.2f}** | **{b['seconds'] / c['seconds']:.2f}** "
            f"| {c['seconds'] / d['seconds']:.2f} | {max(b['worker_mb']):.0f} / {max(c['worker_mb']):.0f} "
            f"| {c['scheduler_mb']:.0f} | {plain['seconds']:.1f} "
            f"({100 * (c['seconds'] / plain['seconds'] - 1):+.0f} %) "
            f"| {cx['seconds']:.1f} | {e['seconds'] / cx['seconds']:.2f} |"
        )
        st = d["stages"]
        details.append(
            f"| {n} | "
            + " | ".join(f"{1e3 * v / n:.1f}" for v in st.values())
            + f" | {1e3 * dx['stages']['cqt'] / dx['clips']:.1f} / {1e3 * dx['stages']['lcn'] / dx['clips']:.1f} "
            f"| {1e3 * c['seconds'] / n:.1f} | {s['consolidate_seconds']:.2f} | {same} | {same_exact} |"
        )
        cpu = c["cpu"]
        coord.append(
            f"| {n} | {cpu['driver']:.1f} | {cpu['worker']:.1f} | {cpu['forkserver']:.1f} "
            f"| {cpu['other']:.1f} | {d['serial']:.1f} "
            f"| {1e3 * (cpu['worker'] - d['serial']) / n:.1f} | {extra:.3f} % "
            f"| {c['store_entries'] / n:.2f} |"
        )
        print(rows[-1], file=sys.stderr)
    head = (
        "| N | a serial (s) | e joblib script (s) | b audioprep 1 worker (s) | c audioprep (s) | d floor (s) "
        "| clips/s (c) | a/c | e/c | b/c | c/d | worker peak MB (b / c) | driver peak MB (c) "
        "| c without TLS (s) (TLS cost) | c --precision exact (s) | e/c exact |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    dhead = (
        "| N | decode ms/clip | frame ms/clip | CQT ms/clip | LCN ms/clip | writes ms/clip "
        "| exact: CQT / LCN ms/clip | c: wall ms/clip "
        "| c: final step (s) | max diff of a / e from c (Xs: of each clip's max; = bit-identical) "
        "| the same for c --precision exact |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|"
    )
    chead = (
        "| N | c: driver CPU (s) | c: workers CPU (s) | c: forkserver CPU (s) | c: other processes CPU (s) "
        "| d: kernels + writes CPU (s) "
        "| workers beyond d, ms/clip | audio.hdf5 beyond its arrays | store files+folders per clip |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    pairs = (
        "The joblib script (e) and audioprep (c) alternating, e c e c ..., each timed until its output is on "
        "disk (a `sync` before and after each); medians:\n\n"
        + disk
        + PAIR_HEAD
        + "\n"
        + "\n".join(pair_rows)
        + "\n\nBreakdown (d: audioprep's stages in one process, CPU per clip, all arrays):\n\n"
    )
    if args.quick:
        return pairs + dhead.split("| exact:")[0] + "|\n|---|---|---|---|---|---|\n" + "\n".join(quick_details) + "\n"
    parts = write_parts(dataset(args.data, args.sizes[-1]), args.data / "write-parts")
    return (
        pairs.rsplit("\n\nBreakdown", 1)[0]
        + "\n\nThe other runs (e and c: the medians above):\n\n"
        + head
        + "\n"
        + "\n".join(rows)
        + "\n\nBreakdown (d: audioprep's stages in one process, CPU per clip):\n\n"
        + dhead
        + "\n"
        + "\n".join(details)
        + "\n\nCPU of every process of c (read from /proc every 50 ms):\n\n"
        + chead
        + "\n"
        + "\n".join(coord)
        + f"\n\nTraining reads from c's audio.hdf5 (N={args.sizes[-1]}):\n\n"
        + read
        + "\n\nThe write stage's parts:\n\n"
        + parts
        + "\n\nWorker start-up (CPU of each process until the workers are ready):\n\n"
        + startup(args.cores)
        + "\n"
        + startup(2 * args.cores)
    )


def scale(args, layout: str = "grid") -> str:
    """Short clips (1 s, --nsamples 22050): the CPU each process spends per clip, as slopes between sizes."""
    from pipeline.params import Params
    from pipeline.synth import synth_dataset

    runs, rows = [], []
    for n in args.scale_sizes:
        pool = args.data / f"scale{n}"
        root = synth_dataset(pool, genres=10, clips=n // 10, seconds=1.0, seed=1, progress=sys.stderr.isatty())
        out = args.data / f"scale-out{n}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        print(f"scale N={n}: audioprep on 1-s clips, {layout} layout ...", file=sys.stderr)
        c = pipeline_run(root, out, args.cores, extra=["--nsamples", "22050", "--layout", layout])
        c["extra"] = hdf5_extra(out, c["summary"])
        shutil.rmtree(out)
        runs.append((n, c, root))
        rows.append(
            f"| {n} | {c['seconds']:.1f} | {1e3 * c['seconds'] / n:.2f} | {c['cpu']['driver']:.2f} "
            f"| {c['cpu']['worker']:.2f} | {c['cpu']['other'] + c['cpu']['forkserver']:.2f} "
            f"| {c['scheduler_mb']:.0f} "
            f"| {max(c['worker_mb']):.0f} | {c['store_entries'] / n:.2f} | {c['extra']:.2f} % |"
        )
        print(rows[-1], file=sys.stderr)
    fl = floor(runs[0][2], 1, params=Params(nsamples=22050), limit=1000, scratch=args.data / "scale-floor")
    per_clip_floor = 1e3 * fl["serial"] / fl["clips"]
    slopes = []
    for (n1, c1, _), (n2, c2, _) in zip(runs, runs[1:]):
        ms = {k: 1e3 * (c2["cpu"][k] - c1["cpu"][k]) / (n2 - n1) for k in ("driver", "worker", "other")}
        ms["other"] += 1e3 * (c2["cpu"]["forkserver"] - c1["cpu"]["forkserver"]) / (n2 - n1)
        slopes.append(
            f"| {n1} -> {n2} | **{ms['driver']:.2f}** | {ms['worker']:.2f} | {ms['other']:.2f} "
            f"| **{ms['worker'] - per_clip_floor:.2f}** | {1e3 / max(ms['driver'], 1e-3):,.0f} "
            f"| {(c2['store_entries'] - c1['store_entries']) / (n2 - n1):.2f} |"
        )
    return (
        "| N (1-s clips) | c audioprep (s) | wall ms/clip | driver CPU (s) | workers CPU (s) | other CPU (s) "
        "| driver peak MB | worker peak MB | store entries per clip | audio.hdf5 beyond arrays |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
        + "\n".join(rows)
        + f"\n\nCPU per clip as the slope between sizes (d for 1-s clips, kernels and writes in one process: "
        f"{per_clip_floor:.2f} ms a clip; "
        + ", ".join(f"{k} {1e3 * v / fl['clips']:.2f}" for k, v in fl["stages"].items())
        + "):\n\n"
        "| sizes | driver ms/clip | workers ms/clip | other ms/clip | workers beyond d, ms/clip "
        "| driver ceiling (clips/s) | store entries per added clip |\n|---|---|---|---|---|---|---|\n"
        + "\n".join(slopes)
        + "\n"
    )


def grow(args) -> str:
    """An input grown by 1 %: N 1-s clips in the clip layout, then the same command once N/100 files were added
    (only they computed: the others' chunks linked into the new store), and a fresh run of the grown input."""
    from pipeline.synth import synth_dataset

    n, more = args.grow, max(1, args.grow // 1000)  # files added a genre (10 genres): 1 % of N
    pool = args.data / f"grow{n}"
    shutil.rmtree(pool, ignore_errors=True)
    root = synth_dataset(pool, genres=10, clips=n // 10, seconds=1.0, seed=2, progress=sys.stderr.isatty())
    out, fresh = args.data / f"grow-out{n}", args.data / f"grow-fresh{n}"
    extra = ["--nsamples", "22050", "--layout", "clips"]
    rows = []

    def row(what, c, clips):
        s = c["summary"]
        reused = (s.get("input_changes") or {}).get("reused", "")
        rows.append(
            f"| {what} | {clips} | {s['computed']} | {reused} | {c['seconds']:.1f} | {c['cpu']['driver']:.2f} "
            f"| {1e3 * c['cpu']['driver'] / clips:.2f} | {c['cpu']['worker']:.2f} | {c['scheduler_mb']:.0f} "
            f"| {c['store_entries'] / clips:.2f} | {hdf5_extra(c['out'], s):.3f} % |"
        )
        print(rows[-1], file=sys.stderr)

    for path in (out, fresh):
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
    print(f"grow N={n}: the first run ...", file=sys.stderr)
    row("first run, N clips", {**pipeline_run(root, out, args.cores, extra=extra), "out": out}, n)
    synth_dataset(pool, genres=10, clips=n // 10 + more, seconds=1.0, seed=2)
    print(f"grow N={n}: the same command, {10 * more} files added ...", file=sys.stderr)
    grown = pipeline_run(root, out, args.cores, extra=extra, overwrite=False)
    row(f"the same command, {10 * more} files added", {**grown, "out": out}, n + 10 * more)
    print(f"grow N={n}: a fresh run of the grown input ...", file=sys.stderr)
    row(
        "a fresh run of the grown input",
        {**pipeline_run(root, fresh, args.cores, extra=extra), "out": fresh},
        n + 10 * more,
    )
    same = same_arrays(out / "audio.hdf5", fresh / "audio.hdf5")
    for path in (out, fresh):
        shutil.rmtree(path)
    return (
        "| run (1-s clips, clip layout) | clips | computed | reused | wall (s) | driver CPU (s) | driver ms a clip "
        "| workers CPU (s) | driver peak MB | store entries per clip | audio.hdf5 beyond arrays |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + f"\n\nThe grown run's arrays against "
        f"the fresh run's: {same}.\n"
    )


def same_arrays(a: Path, b: Path, rows: int = 1000) -> str:
    """Whether two audio.hdf5 files hold the same arrays and per-clip values, compared block by block."""
    with h5py.File(a) as fa, h5py.File(b) as fb:
        names = sorted(k for k in fa if isinstance(fa[k], h5py.Dataset))
        if names != sorted(k for k in fb if isinstance(fb[k], h5py.Dataset)):
            return "different arrays"
        for k in names:
            x, y = fa[k], fb[k]
            if x.shape != y.shape:
                return f"{k} differs in shape"
            blocks = [()] if x.ndim == 0 else [slice(i, i + rows) for i in range(0, x.shape[0], rows)]
            if not all(np.array_equal(x[at], y[at]) for at in blocks):
                return f"{k} differs"
    return "identical, every array bit for bit"


#: tracks.csv's columns as fma_metadata.zip holds them: (group, field), under the index column track_id.
FMA_COLUMNS = (
    [
        ("album", f)
        for f in "comments date_created date_released engineer favorites id information listens producer tags title "
        "tracks type".split()
    ]
    + [
        ("artist", f)
        for f in "active_year_begin active_year_end associated_labels bio comments date_created favorites id latitude "
        "location longitude members name related_projects tags website wikipedia_page".split()
    ]
    + [("set", "split"), ("set", "subset")]
    + [
        ("track", f)
        for f in "bit_rate comments composer date_created date_recorded duration favorites genre_top genres genres_all "
        "information interest language_code license listens lyricist number publisher tags title".split()
    ]
)
FMA_GENRES = (
    "Blues Classical Country Easy_Listening Electronic Experimental Folk Hip-Hop Instrumental International Jazz "
    "Old-Time_/_Historic Pop Rock Soul-RnB Spoken".replace("_", " ").split()
)


def fma_tree(root: Path, n: int) -> Path:
    """A synthetic FMA download of ``n`` tracks under ``root`` (made once): ``fma_metadata/tracks.csv`` with
    tracks.csv's 52 columns under its two header rows and the track_id row, quoted HTML bios holding commas,
    quotes and newlines, the subsets in FMA's proportions (small 8,000, medium 25,000 of 106,574), genre_top
    for small and medium and for a third of large (as FMA: 49,598 of 106,574); ``fma_large/<3 digits>/<6-digit
    id>.mp3``, each a copy of one 0.1-s 44.1-kHz stereo MP3 (LAME, with its Xing header: what a header read
    touches), and its ``checksums``.  Returns the fma_large folder."""
    import csv
    import hashlib

    folder, done = root / "fma_large", root / ".built"
    if done.exists():
        return folder
    shutil.rmtree(root, ignore_errors=True)
    (root / "fma_metadata").mkdir(parents=True)
    rng = np.random.default_rng(5)
    template = root / "template.mp3"
    y = 0.1 * rng.standard_normal((4410, 2)).astype(np.float32)
    sf.write(template, y, 44100, format="MP3")
    data = template.read_bytes()
    sha1 = hashlib.sha1(data).hexdigest()
    small, medium = round(n * 8000 / 106574), round(n * 25000 / 106574)
    ids = [i + i // 2 + 2 for i in range(n)]  # FMA's ids have gaps
    with open(root / "fma_metadata" / "tracks.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["", *(g for g, _ in FMA_COLUMNS)])
        w.writerow(["", *(k for _, k in FMA_COLUMNS)])
        w.writerow(["track_id"] + [""] * len(FMA_COLUMNS))
        for i, tid in enumerate(ids):
            subset = "small" if i < small else "medium" if i < medium else "large"
            labelled = i < medium or i % 3 == 0
            genre = FMA_GENRES[i % len(FMA_GENRES)] if labelled else ""
            bio = (
                f'<p>Formed in Nowhere, 19{tid % 100:02d}, "the band" plays <b>everything</b>,\nloudly, '
                + "and, with friends, far too long. " * (1 + tid % 40)
                + "</p>\n<p>Second paragraph, with a comma.</p>"
            )
            split = "training" if i % 10 < 8 else "validation" if i % 10 == 8 else "test"
            row = {
                ("artist", "bio"): bio,
                ("set", "split"): split,
                ("set", "subset"): subset,
                ("track", "genre_top"): genre,
                ("track", "genres"): f"[{i % 160}]",
                ("track", "genres_all"): f"[{i % 160}, {i % 7}]",
                ("track", "title"): f'Track "{tid}", take 2',
                ("album", "title"): f"Album, vol. {tid // 10}",
                ("track", "duration"): "30",
            }
            w.writerow([tid, *(row.get(c, "") for c in FMA_COLUMNS)])
    lines = []
    for tid in ids:
        rel = f"{tid:06d}"[:3] + f"/{tid:06d}.mp3"
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
        lines.append(f"{sha1}  {rel}\n")
    (folder / "checksums").write_text("".join(lines))
    (folder / "README.txt").write_text("FMA: A Dataset For Music Analysis (synthetic, for bench.py)\n")
    done.touch()
    return folder


def _drop_pages(paths) -> None:
    """Evict the files' data pages from the page cache (theirs only), so the next read goes to the disk."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _measured(fn, before=None) -> dict:
    """``fn()`` twice: timed (wall and this process's CPU), then under tracemalloc (its peak, and what its result
    still holds); ``before`` runs ahead of each (untimed)."""
    import gc
    import tracemalloc

    if before:
        before()
    gc.collect()
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    out = {"wall": time.perf_counter() - w0, "cpu": time.process_time() - c0}
    if before:
        before()
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    result = fn()
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del result
    return {**out, "peak": peak - base, "held": held - base}


def index_scale(args) -> str:
    """Indexing and pre-flight of a synthetic FMA download of ``--index-rows`` tracks, in this process: the
    driver's wall time, CPU and peak memory for each of the functions a run calls for them."""
    from pipeline.inputs import open_index, preflight
    from pipeline.inputs.base import HEADER_THREADS
    from pipeline.params import Params

    n = args.index_rows
    print(f"index N={n}: building the synthetic FMA tree (once) ...", file=sys.stderr)
    folder = fma_tree(args.data / f"fma-index-{n}", n)
    meta = folder.parent / "fma_metadata" / "tracks.csv"
    params = Params(mono=True, resample=True, pad_short=True, layout="clips")
    index = open_index(folder, layout="clips")
    assert len(index.clips) == n and not index.problems, (len(index.clips), index.problems[:1])
    files = [ref.source for ref in index.clips]
    steps = [
        ("indexing: `open_index(fma_large, layout='clips')`", lambda: open_index(folder, layout="clips"), None),
        (
            "indexing with `--verify` (checksums read)",
            lambda: open_index(folder, layout="clips", verify=True),
            None,
        ),
        (
            "pre-flight: `preflight(index, params, threads=1)` (before: one after the other)",
            lambda: preflight(index, params, threads=1),
            None,
        ),
        (
            f"pre-flight: `preflight(index, params)` ({HEADER_THREADS} threads, as a run)",
            lambda: preflight(index, params),
            None,
        ),
        (
            "pre-flight, one thread, each file's pages dropped first",
            lambda: preflight(index, params, threads=1),
            lambda: _drop_pages(files),
        ),
        (
            f"pre-flight, {HEADER_THREADS} threads, each file's pages dropped first",
            lambda: preflight(index, params),
            lambda: _drop_pages(files),
        ),
        ("identity: `index.fingerprint()` (a stat a file)", lambda: _fresh_fingerprint(index), None),
    ]
    rows, total, load = [], 0.0, os.getloadavg()[0]
    for name, fn, before in steps:
        print(f"index N={n}: {name} ...", file=sys.stderr)
        m = _measured(fn, before)
        if "dropped" not in name and "verify" not in name and "threads=1" not in name:
            total += m["cpu"]
        rows.append(
            f"| {name} | {m['wall']:.2f} | {m['cpu']:.2f} | **{1e3 * m['cpu'] / n:.3f}** "
            f"| {m['peak'] / 2**20:.1f} | {m['peak'] / n:,.0f} | {m['held'] / 2**20:.1f} |"
        )
        print(rows[-1], file=sys.stderr)
    return (
        f"\n### Indexing and pre-flight at {n} rows\n\n"
        f"A synthetic FMA download (`bench.py --index-rows {n}`): `fma_large` holding {n} MP3s of 0.1 s "
        f"(44.1 kHz stereo, LAME with its Xing header: what a header read touches), its `checksums`, and "
        f"`fma_metadata/tracks.csv` of {n} rows ({meta.stat().st_size / 1e6:.0f} MB: the 52 columns under the "
        "two header rows and the track_id row, quoted HTML bios with commas, quotes and newlines), subsets and "
        "genre_top in FMA's proportions; the clip layout. Each step once in this process, timed (wall, CPU of "
        "the process), then again under tracemalloc for its peak (Python and numpy allocations above the "
        'start) and what its result still holds; "pages dropped": each MP3\'s cached pages evicted first '
        "(`posix_fadvise`), so its header is read from the disk (its inode stays cached). The budget: 1 ms of "
        "driver CPU a clip.\n\n"
        "| step (the function the run calls) | wall s | CPU s | CPU ms a clip | peak MB | peak bytes a clip "
        "| held after, MB |\n|---|---|---|---|---|---|---|\n"
        + "\n".join(rows)
        + f"\n\nIndexing, pre-flight (cached, as a run) and identity together: {1e3 * total / n:.3f} ms of driver "
        f"CPU a clip. Load average (1 min) {load:.1f} before the steps, {os.getloadavg()[0]:.1f} after, on "
        f"{os.cpu_count()} cores.\n"
    )


def _fresh_fingerprint(index):
    """``index.fingerprint()`` on a fresh copy (its stats are cached once a run)."""
    import dataclasses

    return dataclasses.replace(index).fingerprint()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[300, 1000], help="numbers of 30-s clips N")
    ap.add_argument(
        "--scale-sizes",
        type=int,
        nargs="*",
        default=[],
        help="numbers of 1-s clips for the scale benchmark, e.g. 1000 20000",
    )
    ap.add_argument("--data", type=Path, default=HERE / "data", help="where datasets and outputs go")
    ap.add_argument("--cores", type=int, default=os.cpu_count(), help="workers for c, e and the floor")
    ap.add_argument("--out", type=Path, help="append the results (Markdown) to this file")
    ap.add_argument("--pairs", type=int, default=3, help="alternating pairs (script, audioprep) a row (default 3)")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="only the floor and the alternating pairs (no serial loop, 1 worker, exact, no-TLS, reads, "
        "write parts or start-up runs)",
    )
    ap.add_argument(
        "--disk-mb",
        type=int,
        default=4096,
        help="MB written (and fdatasync'ed) to measure the disk's sustained rate (default 4096)",
    )
    ap.add_argument(
        "--scale-layouts",
        nargs="*",
        default=["grid", "clips"],
        choices=["grid", "clips"],
        help="layouts of the scale benchmark (default both)",
    )
    ap.add_argument(
        "--grow", type=int, metavar="N", help="time a clip-layout run of N 1-s clips grown by 1 %% (e.g. 20000)"
    )
    ap.add_argument("--startup", action="store_true", help="only time the workers' start-up (warm and spawned)")
    ap.add_argument(
        "--index-rows",
        type=int,
        metavar="N",
        help="only time indexing and pre-flight of a synthetic FMA download of N tracks (e.g. 100000), in one "
        "process: the driver's time and peak memory a clip",
    )
    ap.add_argument(
        "--read",
        type=Path,
        metavar="AUDIO_HDF5",
        help="only time training reads (FrameBlocks against plain h5py) of an existing audio.hdf5",
    )
    args = ap.parse_args()
    args.data = args.data.resolve()

    text = ""
    if args.startup:
        text += "Worker start-up:\n\n" + startup(args.cores) + "\n" + startup(2 * args.cores)
        args.sizes = []
    if args.read:
        text += "Training reads:\n\n" + reading_table(args.read.resolve())
        args.sizes = []
    if args.index_rows:
        text += index_scale(args)
        args.sizes = []
    if args.sizes:
        text += full(args)
    for layout in args.scale_layouts if args.scale_sizes else ():
        text += f"\nScale (short clips, {layout} layout):\n\n" + scale(args, layout)
    if args.grow:
        text += "\nAn input grown by 1 % (the same command again):\n\n" + grow(args)
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(
                f"\n## Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n{machine()}\n"
                f"Command: `python benchmarks/bench.py {' '.join(sys.argv[1:])}`\n\n{text}"
            )


if __name__ == "__main__":
    main()
