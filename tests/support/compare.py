"""Test helpers: compare outputs with the serial reference and with each other."""

from __future__ import annotations

import h5py
import numpy as np
import zarr

VOLATILE = ("created",)


def read_hdf5(path):
    """Every dataset (coordinates too, strings decoded) and every attribute of an audio.hdf5."""
    with h5py.File(path, "r") as f:
        arrays = {k: (f[k].asstr()[...] if h5py.check_string_dtype(f[k].dtype) else f[k][...]) for k in f.keys()}
        attrs = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in f.attrs.items()}
    return arrays, attrs


def assert_matches_reference(path, reference, datasets=("Xa", "Xs", "Xn")):
    ref, labels = reference
    arrays, attrs = read_hdf5(path)
    assert [s.decode() for s in attrs["labels"]] == labels
    for name in datasets:
        got, want = arrays[name], ref[name]
        assert got.shape == want.shape and got.dtype == np.float32, name
        if name == "Xa":
            assert np.array_equal(got, want)
        elif name == "Xs":
            # docs/numerics.md: within 1e-5 of each clip's maximum
            for g in range(want.shape[0]):
                for c in range(want.shape[1]):
                    tol = 1e-5 * np.abs(want[g, c]).max()
                    assert np.abs(got[g, c] - want[g, c]).max() <= tol, (g, c)
        else:
            assert np.abs(got - want).max() <= 1e-4
    assert arrays["valid"].all()


def assert_same_output(a, b, ignore=VOLATILE):
    """Two audio.hdf5 files hold identical arrays and attributes (timestamps aside)."""
    xa, aa = read_hdf5(a)
    xb, ab = read_hdf5(b)
    assert sorted(xa) == sorted(xb)
    for k in xa:
        assert np.array_equal(xa[k], xb[k]), k
    for k in ignore:
        aa.pop(k, None), ab.pop(k, None)
    assert aa == ab


def assert_zarr_equals_hdf5(zarr_path, hdf5_path):
    root = zarr.open_group(str(zarr_path), mode="r")
    arrays, attrs = read_hdf5(hdf5_path)
    for k, v in arrays.items():
        z = root[k][...]
        if v.dtype == object:  # coordinate labels: strings in both
            z, v = [str(x) for x in z], [str(x) for x in v]
        assert np.array_equal(z, v), k
    zattrs = dict(root.attrs)
    assert zattrs["labels"] == [s.decode() for s in attrs.pop("labels")]
    zattrs.pop("labels")
    for k, v in zattrs.items():
        assert attrs[k] == v, k
    assert set(zattrs) == set(attrs)


def read_zarr(path):
    """Every array (coordinates too, strings as str) and every attribute of an audio.zarr, as :func:`read_hdf5`
    gives them of an audio.hdf5 (``labels`` as str)."""
    root = zarr.open_group(str(path), mode="r")
    arrays = {}
    for name, a in root.arrays():
        v = a[...]
        arrays[name] = (
            np.asarray([str(x) for x in v.ravel()], dtype=object).reshape(v.shape) if v.dtype.kind in "OUT" else v
        )
    return arrays, dict(root.attrs)
