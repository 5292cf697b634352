"""Parameter validation: each error names the value, the rule and the fix."""

import pytest

from pipeline import ParameterError, Params
from pipeline.params import C2_HZ, parse_fmin


def test_defaults_are_the_spec():
    p = Params()
    assert (p.sr, p.nsamples, p.na, p.ns, p.n_octaves) == (22050, 660000, 1024, 96, 4)
    assert p.nframes == 644 and p.bins_per_octave == 24 and p.hop_length == 1024
    assert abs(p.fmin - 65.406) < 1e-3  # C2, not the notebook's 'C3' (130.8 Hz today)
    assert p.datasets == ("Xa", "Xs", "Xn")


def test_fmin_accepts_note_names():
    assert parse_fmin("C2") == pytest.approx(C2_HZ)
    assert Params(fmin="A2").fmin == pytest.approx(110.0)
    with pytest.raises(ParameterError, match=r"fmin='H9'.*note name"):
        Params(fmin="H9")


def test_round_trip_dict():
    p = Params(na=2048, datasets="Xs,Xn", lcn_log=True)
    assert Params.from_dict(p.to_dict()) == p
    with pytest.raises(ParameterError, match="unknown parameter.*bogus"):
        Params.from_dict({"bogus": 1})


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        (dict(na=1023), r"na=1023 must be even.*try na=1024"),
        (dict(na=1028), r"na=1028 .*multiple of 2\*\*\(n_octaves-1\)=8.*try na="),
        (dict(fmin=3000.0), r"top CQT bin .*exceeds the Nyquist frequency sr/2=11025"),
        (dict(ns=95), r"ns=95 must be a multiple of n_octaves=4"),
        (dict(na=0), r"na=0 must be a whole number from 1 to \d+ \(sys.maxsize\)"),
        (dict(sr=-5), r"sr=-5 must be a whole number from 1 to 768000"),
        (dict(lcn_sigma=0.0), r"lcn_sigma=0.0 must be a number > 0"),
        (dict(lcn_size=8), r"lcn_size=8 must be odd.*try lcn_size=9"),
        (dict(datasets="Xa,Xz"), r"datasets=Xa,Xz .*Xa, Xs, Xn"),
        (dict(datasets=""), r"datasets=\(none\)"),
        (dict(nsamples=1000), r"nsamples=1000 gives no frame"),
    ],
)
def test_bad_parameters_are_refused_with_the_rule(kwargs, pattern):
    with pytest.raises(ParameterError, match=pattern):
        Params(**kwargs)


def test_parameter_error_is_a_value_error():
    with pytest.raises(ValueError):
        Params(na=3)
