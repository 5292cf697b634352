"""The numerical parameters of the pipeline (the numerical contract: docs/numerics.md).

One frozen dataclass holds everything that changes the numbers written to the
output; anything that does not (workers, cluster, progress bars) lives in
``dask.config`` (see :mod:`pipeline.config`).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field

from .arrays import ARRAYS, DATASETS  # the output arrays, in the order they are written
from .exceptions import ParameterError

#: C2 in scientific pitch notation (A4 = 440 Hz).  The original notebook wrote
#: 'C3' because the librosa of its day numbered octaves one higher.
C2_HZ = 440.0 * 2.0 ** ((-33) / 12.0)


def parse_fmin(value) -> float:
    """Return ``value`` in Hz; accepts a number or a note name such as ``'C2'``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        raise ParameterError(
            f"fmin={value!r} is neither a frequency in Hz nor a note name; give e.g. --fmin 65.406 or --fmin C2"
        )
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    import librosa

    try:
        return float(librosa.note_to_hz(text))
    except Exception:
        raise ParameterError(
            f"fmin={text!r} is neither a frequency in Hz nor a note name; give e.g. --fmin 65.406 or --fmin C2"
        ) from None


def _param(default, help: str, *, doc: str, option: str | None = None, shown: str | None = None, ingest: bool = False):
    """A field of :class:`Params` with everything written about it in one place.

    ``help`` is the one-line help of the command-line option and of the
    commented YAML; ``doc`` the numpydoc type spec of the docstring; ``option``
    the option's name where it is not ``--<name>``; ``shown`` the default as
    ``--help`` shows it; ``ingest`` whether ``audioprep ingest`` takes it too.
    """
    meta = {"help": help, "doc": doc, "option": option, "shown": shown, "ingest": ingest}
    return field(default=default, metadata=meta)


def option_name(f) -> str:
    """The command-line option of a :class:`Params` field: ``--pad-short``, or the one its metadata names."""
    return f.metadata["option"] or "--" + f.name.replace("_", "-")


def choice_values(f) -> tuple:
    """The values of a choice field, from its doc (``{"grid", "clips"}`` -> ``("grid", "clips")``); ``()``
    for any other field."""
    doc = f.metadata.get("doc") or ""
    return tuple(v.strip().strip('"') for v in doc.strip("{}").split(",")) if doc.startswith("{") else ()


#: The highest sample rate: the highest any audio format carries (DXD and 768 kHz PCM).
MAX_SR = 768000
MAX_SR_WHY = "768 kHz is the highest rate audio formats carry"
#: na must be a multiple of 2**(n_octaves-1), and na is at most sys.maxsize.
MAX_OCTAVES = 63
MAX_OCTAVES_WHY = "na must be a multiple of 2**(n_octaves-1), below sys.maxsize"

#: Where the kept span of a longer clip lies: from ``offset`` seconds (start), or in the middle (center).
CROPS = ("start", "center")
#: How the output holds the clips: a (genre, clip) grid, or one row a clip (docs/output.md).
LAYOUTS = ("grid", "clips")


@dataclass(frozen=True)
class Params:
    """Numerical parameters; the defaults are GTZAN's (docs/numerics.md, "Parameters").

    Everything that changes the numbers written to the output is a field here,
    and only here: the command-line options, the commented YAML of ``audioprep
    config`` and the output's attributes are derived from the fields.
    """

    sr: int = _param(22050, "sample rate in Hz every clip must have (or is resampled to)", doc="int > 0", ingest=True)
    nsamples: int = _param(
        660000,
        "samples kept per clip; longer clips are truncated, shorter are bad input (or zero-padded: --pad-short)",
        doc="int > 0",
        ingest=True,
    )
    na: int = _param(
        1024, "samples per frame, also the CQT hop; even, a multiple of 2**(n_octaves-1)", doc="int > 0, even"
    )
    ns: int = _param(96, "CQT bins", doc="int > 0, a multiple of n_octaves")
    n_octaves: int = _param(
        4, "octaves the CQT bins span (ns // n_octaves bins per octave)", doc="int > 0", option="--octaves"
    )
    fmin: float = _param(
        C2_HZ, "lowest CQT bin in Hz, or a note name (C2 = 65.406 Hz)", doc="float > 0", shown="C2 = 65.406 Hz"
    )
    lcn_size: int = _param(9, "LCN Gaussian window taps, time and frequency (odd)", doc="int > 0, odd")
    lcn_sigma: float = _param(2.0, "LCN window standard deviation in taps", doc="float > 0")
    lcn_log: bool = _param(False, "normalize log(1 + S) instead of S", doc="bool")
    datasets: tuple = _param(
        DATASETS,
        f"arrays to write, comma-separated: any of {', '.join(DATASETS)}",
        doc="tuple of str",
        shown=",".join(DATASETS),
    )
    resample: bool = _param(
        False, "resample clips at another rate to sr instead of rejecting them", doc="bool", ingest=True
    )
    mono: bool = _param(False, "down-mix multi-channel clips instead of rejecting them", doc="bool", ingest=True)
    precision: str = _param(
        "float32",
        "how the CQT and LCN compute: float32 (a float32 STFT and LCN, within 1e-6 "
        "of the clip's maximum of librosa.cqt) or exact (librosa.cqt's bits, a "
        "float64 LCN)",
        doc='{"float32", "exact"}',
    )
    pad_short: bool = _param(
        False,
        "zero-pad clips shorter than nsamples instead of rejecting them (each "
        "slot's true length is the 'samples' coordinate)",
        doc="bool",
        ingest=True,
    )
    offset: float = _param(
        0.0,
        "seconds into each clip where the kept Nsamples start (what comes before is "
        "skipped, not decoded; each slot's start is the 'start' array)",
        doc="float >= 0",
        ingest=True,
    )
    crop: str = _param(
        "start",
        "which Nsamples of a longer clip to keep: from --offset (start) or the middle (center)",
        doc='{"start", "center"}',
        ingest=True,
    )
    layout: str = _param(
        "grid",
        "how the output holds the clips: grid (genre x clip slots, genres of equal size or --pad) or clips "
        "(one row a clip with its label, no padding: genres of any size, unlabelled or tagged clips)",
        doc='{"grid", "clips"}',
    )

    def __post_init__(self):
        # Every value passes its type's rule (a config file's "false" is False, "abc" is refused), and types are
        # normalized so that equal parameters compare and hash equal.
        from . import checks

        rules = {int: checks.whole(1, sys.maxsize, why="sys.maxsize"), float: checks.number(), bool: checks.flag()}
        special = {
            "offset": checks.number(at_least=0.0),
            "sr": checks.whole(1, MAX_SR, why=MAX_SR_WHY),
            "n_octaves": checks.whole(1, MAX_OCTAVES, why=MAX_OCTAVES_WHY),
        }
        for f in dataclasses.fields(self):
            rule = special.get(f.name) or rules.get(type(f.default))
            if rule is not None and f.name != "fmin":
                where = f"{option_name(f)} or params.{f.name}"
                object.__setattr__(self, f.name, rule(f.name, getattr(self, f.name), where))
        object.__setattr__(self, "fmin", parse_fmin(self.fmin))
        from .kernels import PRECISIONS

        object.__setattr__(
            self, "precision", checks.choice(PRECISIONS)("precision", self.precision, "--precision or params.precision")
        )
        object.__setattr__(self, "crop", checks.choice(CROPS)("crop", self.crop, "--crop or params.crop"))
        object.__setattr__(self, "layout", checks.choice(LAYOUTS)("layout", self.layout, "--layout or params.layout"))
        ds = self.datasets
        if isinstance(ds, str):
            ds = [d.strip() for d in ds.split(",") if d.strip()]
        if not isinstance(ds, (list, tuple)) or not all(isinstance(d, str) for d in ds):
            raise ParameterError(
                f"datasets={ds!r} must be a comma-separated list of {', '.join(DATASETS)}; e.g. --datasets Xs,Xn"
            )
        object.__setattr__(self, "datasets", tuple(ds))
        self.validate()

    # -- derived values -------------------------------------------------
    @property
    def nframes(self) -> int:
        """Frames per stream: ``min(floor(N/na), floor(N/na - 0.5))``."""
        from .kernels import nframes_for

        return nframes_for(self.nsamples, self.na)

    @property
    def bins_per_octave(self) -> int:
        return self.ns // self.n_octaves

    @property
    def hop_length(self) -> int:
        return self.na

    def shape(self, name: str, ngenres: int, nclips: int) -> tuple:
        """The 5-D shape of dataset ``name``."""
        return (ngenres, nclips, self.nframes, 2, ARRAYS[name].size(self))

    def clip_shape(self, name: str) -> tuple:
        """The shape of one clip of dataset ``name``: ``(Nframes, 2, size)``."""
        return self.shape(name, 1, 1)[2:]

    def clip_bytes(self, names=None) -> int:
        """Bytes one clip takes in the arrays ``names`` (default: the datasets written), float32."""
        return sum(4 * math.prod(self.shape(n, 1, 1)) for n in (names or self.datasets))

    # -- validation -----------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`ParameterError` naming the value, the rule and the fix."""
        if self.na % 2:
            raise ParameterError(
                f"na={self.na} must be even so that the overlapped stream starts at na // 2; try na={self.na + 1}"
            )
        if self.ns % self.n_octaves:
            raise ParameterError(
                f"ns={self.ns} must be a multiple of n_octaves={self.n_octaves} "
                f"(equal bins per octave); try ns={self.n_octaves * max(1, round(self.ns / self.n_octaves))}"
            )
        step = 2 ** (self.n_octaves - 1)
        if self.na % step:
            good = step * max(1, round(self.na / step))
            raise ParameterError(
                f"na={self.na} is also the CQT hop, which must be a multiple of "
                f"2**(n_octaves-1)={step} for a {self.n_octaves}-octave CQT; try na={good}"
            )
        if not (math.isfinite(self.fmin) and self.fmin > 0):
            raise ParameterError(f"fmin={self.fmin!r} must be a positive frequency in Hz (C2 = 65.406)")
        if self.lcn_size % 2 == 0:
            raise ParameterError(
                f"lcn_size={self.lcn_size} must be odd so the window has a centre tap; try lcn_size={self.lcn_size + 1}"
            )
        if self.nframes < 1:
            raise ParameterError(
                f"nsamples={self.nsamples} gives no frame of na={self.na} samples in both streams; "
                f"needs nsamples >= {3 * self.na // 2}"
            )
        self._check_memory()
        if self.lcn_size > 2 * max(self.nframes, self.ns) + 1:
            most = 2 * max(self.nframes, self.ns) + 1
            raise ParameterError(
                f"lcn_size={self.lcn_size} is wider than the spectrogram ({self.nframes} frames, {self.ns} bins): "
                f"beyond {most} taps the window reaches past it from every point and changes nothing; give "
                f"--lcn-size {most if most % 2 else most - 1} or less"
            )
        if self.offset * self.sr > sys.maxsize:
            raise ParameterError(
                f"offset={self.offset:g} s is {self.offset * self.sr:.3g} samples at sr={self.sr}, "
                f"beyond sys.maxsize ({sys.maxsize}); give a smaller --offset"
            )
        if self.crop == "center" and self.offset:
            raise ParameterError(
                f"offset={self.offset:g} and crop=center both say where the kept span starts; "
                "give --offset SECONDS or --crop center, not both"
            )
        unknown = [d for d in self.datasets if d not in DATASETS]
        if unknown or not self.datasets or len(set(self.datasets)) != len(self.datasets):
            raise ParameterError(
                f"datasets={','.join(self.datasets) or '(none)'} must be a non-empty list without "
                f"repeats of {', '.join(DATASETS)}; e.g. --datasets Xs,Xn"
            )
        self._check_nyquist()

    def clip_memory(self) -> float:
        """About the bytes one clip needs in a worker: its samples (decoded and kept), every array a stage
        computes (float64 where precision is exact), and the CQT's top-octave filters and STFT.  Arithmetic only:
        nothing is allocated (a float, as absurd values may exceed any integer type)."""
        nframes = max(1, self.nframes)
        samples = 8.0 * self.nsamples
        arrays = sum(8.0 * nframes * 2 * ARRAYS[n].size(self) for n in DATASETS)
        bpo = self.ns / self.n_octaves
        q = 1.0 / (2.0 ** (1.0 / bpo) - 1.0)  # the filters' quality factor
        longest = q * self.sr / (self.fmin * 2.0 ** (self.n_octaves - 1))  # the top octave's lowest filter
        n_fft = 2.0 ** math.ceil(math.log2(max(2.0, longest))) if longest < 1e300 else math.inf
        plan = 16.0 * bpo * n_fft  # its complex filters (before they are sparsified)
        stft = 8.0 * (n_fft / 2 + 1) * (self.nsamples / self.na + 1)
        return samples + arrays + plan + stft

    def _check_memory(self) -> None:
        from .checks import machine_memory

        need, have = self.clip_memory(), machine_memory()
        if need > have:
            about = f"about {need / 2**30:.3g} GiB" if math.isfinite(need) else "more memory than any machine has"
            raise ParameterError(
                f"one clip would need {about} in a worker with nsamples={self.nsamples}, "
                f"na={self.na}, ns={self.ns}, n_octaves={self.n_octaves}, fmin={self.fmin:g} (its samples, frames, "
                f"CQT filters and arrays), more than this machine's {have / 2**30:.1f} GiB; give a smaller "
                "--nsamples, --na or --ns, or a higher --fmin"
            )

    def _check_nyquist(self) -> None:
        from .pitch import cqt_cutoff, cqt_frequencies

        freqs = cqt_frequencies(self.ns, fmin=self.fmin, bins_per_octave=self.bins_per_octave)
        cutoff = cqt_cutoff(freqs) if self.ns > 1 else float(freqs[0])
        nyquist = self.sr / 2
        if cutoff > nyquist:
            top = float(freqs.max())
            raise ParameterError(
                f"the top CQT bin ({top:.1f} Hz, filter reaching {cutoff:.1f} Hz) exceeds the "
                f"Nyquist frequency sr/2={nyquist:g} Hz; lower fmin={self.fmin:.3f}, ns={self.ns} "
                "or raise sr"
            )

    # -- (de)serialisation ----------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["datasets"] = list(self.datasets)
        if d["layout"] == "grid":  # the grid's outputs (and their resume) stay those of before the clip layout
            del d["layout"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Params:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ParameterError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        return cls(**d)

    def replace(self, **changes) -> Params:
        return dataclasses.replace(self, **changes)


def _parameters_section() -> str:
    lines = ["", "    Parameters", "    ----------"]
    for f in dataclasses.fields(Params):
        text = f.metadata["help"]
        lines += [f"    {f.name} : {f.metadata['doc']}", f"        {text[0].upper()}{text[1:]}."]
    return "\n".join(lines) + "\n"


assert Params.__doc__ is not None  # @dataclass gives a class one (its signature) where it has none (python -OO)
Params.__doc__ += _parameters_section()
