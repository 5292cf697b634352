#!/usr/bin/env python
"""Time audioprep against the serial original and the compute floor, in one run, on the same files.

For each N (clips, 30 s each, 10 genres) it measures:
  a. the serial reference: the original loop (convert the folder to gtzan.hdf5,
     then per clip two librosa.cqt calls and HDF5 writes), with the SPEC's LCN
     added so that it writes the same three arrays;
  b. 'audioprep run' from the folder to audio.hdf5 with 1 worker;
  c. the same with one worker per core;
  d. the compute floor: the pure kernels (decode, frame, CQT, LCN) over all
     clips in this process, divided by the number of cores.
and prints a Markdown table (also appended to --out with the machine and command).

    python benchmarks/bench.py --sizes 100 300 1000 --out benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
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
                y2 = y1[NA // 2:]
                Xa[g, c, :, 0, :] = y1[: NA * F].reshape(F, NA)
                Xa[g, c, :, 1, :] = y2[: NA * F].reshape(F, NA)
                for s, ys in enumerate((y1, y2)):
                    S = np.abs(librosa.cqt(ys, sr=SR, hop_length=NA, fmin=FMIN, n_bins=NS,
                                           bins_per_octave=NS // NO))[:, :-1].T
                    Xs[g, c, :, s, :] = S
                    Xn[g, c, :, s, :] = serial_lcn(S.astype(np.float64))
    return {"seconds": time.perf_counter() - t0, "convert": t_convert}


# ----------------------------------------------------------------------------
# b, c. audioprep run, watched for memory


def watch(proc: subprocess.Popen, stop: threading.Event, peaks: dict) -> None:
    main = psutil.Process(proc.pid)
    while not stop.is_set():
        try:
            procs = [main] + main.children(recursive=True)
        except psutil.NoSuchProcess:
            break
        for p in procs:
            try:
                rss = p.memory_info().rss
                kind = "worker" if "spawn_main" in " ".join(p.cmdline()) else (
                    "scheduler" if p.pid == main.pid else None)
            except psutil.Error:
                continue
            if kind:
                peaks[(kind, p.pid)] = max(peaks.get((kind, p.pid), 0), rss)
        time.sleep(0.1)


def pipeline_run(root: Path, out: Path, workers: int) -> dict:
    env = {**os.environ, "DASK_TEMPORARY_DIRECTORY": str(out)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", str(root), "-o", str(out), "--workers",
                             str(workers), "-q", "--overwrite", "--dashboard-address", "127.0.0.1:0"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop, peaks = threading.Event(), {}
    th = threading.Thread(target=watch, args=(proc, stop, peaks), daemon=True)
    th.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - t0
    stop.set()
    th.join()
    if proc.returncode != 0:
        raise SystemExit(f"audioprep run failed:\n{err}")
    summary = json.loads((out / "audio.summary.json").read_text())
    workers_mb = [v / 2**20 for (k, _), v in peaks.items() if k == "worker"]
    return {"seconds": wall, "summary": summary, "worker_mb": workers_mb,
            "scheduler_mb": max([v / 2**20 for (k, _), v in peaks.items() if k == "scheduler"], default=0)}


# ----------------------------------------------------------------------------
# d. the compute floor


def floor(root: Path, cores: int) -> dict:
    from pipeline import kernels
    from pipeline.dataset import load_clip, open_index
    from pipeline.params import Params

    p = Params()
    idx = open_index(root)
    stages = {"decode": 0.0, "frame": 0.0, "cqt": 0.0, "lcn": 0.0}
    kernels.cqt_streams(load_clip(idx.clips[0], p), sr=p.sr, na=p.na, fmin=p.fmin, ns=p.ns,
                        n_octaves=p.n_octaves, nframes=p.nframes)  # warm librosa's caches and numba
    for ref in idx.clips:
        t = time.perf_counter()
        y = load_clip(ref, p)
        t2 = time.perf_counter()
        kernels.frame_streams(y, na=p.na, nframes=p.nframes)
        t3 = time.perf_counter()
        Xs = kernels.cqt_streams(y, sr=p.sr, na=p.na, fmin=p.fmin, ns=p.ns, n_octaves=p.n_octaves,
                                 nframes=p.nframes)
        t4 = time.perf_counter()
        kernels.lcn_streams(Xs, size=p.lcn_size, sigma=p.lcn_sigma, log=p.lcn_log)
        t5 = time.perf_counter()
        for k, dt in zip(stages, (t2 - t, t3 - t2, t4 - t3, t5 - t4)):
            stages[k] += dt
    total = sum(stages.values())
    return {"seconds": total / cores, "serial": total, "stages": stages}


def check_same(a: Path, c: Path) -> float:
    """Largest |Xs difference| / clip max between the serial and the pipeline output (first clips)."""
    with h5py.File(a) as fa, h5py.File(c) as fc:
        worst = 0.0
        for g in range(min(3, fa["Xs"].shape[0])):
            x, y = fa["Xs"][g, 0], fc["Xs"][g, 0]
            worst = max(worst, float(np.abs(x - y).max() / max(np.abs(fa["Xa"][g, 0]).max(), 1e-12)))
            assert np.array_equal(fa["Xa"][g, 0], fc["Xa"][g, 0])
        return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000], help="numbers of clips N")
    ap.add_argument("--data", type=Path, default=HERE / "data", help="where datasets and outputs go")
    ap.add_argument("--cores", type=int, default=os.cpu_count(), help="workers for run c and the floor")
    ap.add_argument("--out", type=Path, help="append the results (Markdown) to this file")
    args = ap.parse_args()

    rows, details = [], []
    for n in args.sizes:
        root = dataset(args.data, n)
        work = args.data / f"out{n}"
        shutil.rmtree(work, ignore_errors=True)
        for sub in ("a", "b", "c"):
            (work / sub).mkdir(parents=True)
        print(f"N={n}: serial reference ...", file=sys.stderr)
        a = serial_reference(root, work / "a")
        print(f"N={n}: audioprep, 1 worker ...", file=sys.stderr)
        b = pipeline_run(root, work / "b", 1)
        shutil.rmtree(work / "b")  # keep the disk use bounded
        print(f"N={n}: audioprep, {args.cores} workers ...", file=sys.stderr)
        c = pipeline_run(root, work / "c", args.cores)
        diff = check_same(work / "a" / "audio.hdf5", work / "c" / "audio.hdf5")
        print(f"N={n}: compute floor ...", file=sys.stderr)
        d = floor(root, args.cores)
        shutil.rmtree(work)
        s = c["summary"]
        cons_mbs = s["hdf5_bytes"] / 1e6 / s["consolidate_seconds"] if s["consolidate_seconds"] else 0
        rows.append(
            f"| {n} | {a['seconds']:.1f} | {b['seconds']:.1f} | {c['seconds']:.1f} | {d['seconds']:.1f} "
            f"| {n / c['seconds']:.2f} | {b['seconds'] / c['seconds']:.2f} | {a['seconds'] / c['seconds']:.2f} "
            f"| {c['seconds'] / d['seconds']:.2f} | {max(b['worker_mb']):.0f} / {max(c['worker_mb']):.0f} "
            f"| {c['scheduler_mb']:.0f} | {s['hdf5_bytes'] / 1e9:.2f} | {cons_mbs:.0f} |")
        st = d["stages"]
        details.append(
            f"| {n} | {a['convert']:.1f} | " + " | ".join(f"{1e3 * v / n:.1f}" for v in st.values())
            + f" | {1e3 * (b['seconds']) / n:.1f} | {s['consolidate_seconds']:.1f} | {diff:.1e} |")
        print(rows[-1], file=sys.stderr)

    head = ("| N | a serial (s) | b 1 worker (s) | c all cores (s) | d floor (s) | clips/s (c) | b/c | a/c | c/d "
            "| worker peak MB (b / c) | scheduler peak MB | audio.hdf5 GB | consolidation MB/s |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        
    dhead = ("| N | a: convert (s) | decode ms/clip | frame ms/clip | CQT ms/clip | LCN ms/clip | b ms/clip "
             "| c: driver time writing HDF5 (s) | max Xs diff a vs c |\n|---|---|---|---|---|---|---|---|---|")
    table = head + "\n" + "\n".join(rows) + "\n\nBreakdown (floor per stage, one process):\n\n" + dhead + "\n" + \
        "\n".join(details) + "\n"
    print(table)
    if args.out:
        cpu = platform.processor() or platform.machine()
        try:
            cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line)
        except (OSError, StopIteration):
            pass
        import dask
        import zarr

        from pipeline import __version__

        with open(args.out, "a") as f:
            f.write(f"\n## Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n"
                    f"Machine: {cpu}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
                    f"{platform.system()} {platform.release()}; Python {platform.python_version()}, librosa "
                    f"{librosa.__version__}, dask {dask.__version__}, zarr {zarr.__version__}, audioprep {__version__}.\n"
                    f"Command: `python benchmarks/bench.py {' '.join(sys.argv[1:])}`\n\n{table}")


if __name__ == "__main__":
    main()
