import io

import pytest

from core.progress import Progress, format_seconds


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_format_seconds():
    assert format_seconds(0) == "0s"
    assert format_seconds(59.9) == "59s"
    assert format_seconds(61) == "1m01s"
    assert format_seconds(3723) == "1h02m03s"
    with pytest.raises(ValueError, match="seconds"):
        format_seconds(-1)


def test_prints_at_most_every_interval_with_a_linear_eta():
    clock, out = FakeClock(), io.StringIO()
    p = Progress(10, "fine-tuning", every=30, unit="runs", stream=out, clock=clock)
    clock.t += 10
    assert not p.update()  # 10 s < 30 s: silent
    clock.t += 20
    assert p.update()  # 30 s since start: 2 done in 30 s, 8 left -> 120 s
    assert out.getvalue() == "fine-tuning: 2/10 runs, elapsed 30s, eta 2m00s\n"
    clock.t += 29
    assert not p.update()
    clock.t += 1
    assert p.update(2)  # 5 done in 60 s -> 5 left at 12 s each
    assert out.getvalue().splitlines()[-1] == "fine-tuning: 5/10 runs, elapsed 1m00s, eta 1m00s"


def test_the_last_unit_always_prints_once():
    clock, out = FakeClock(), io.StringIO()
    p = Progress(3, "scoring", stream=out, clock=clock)
    p.update(2)
    clock.t += 1
    assert p.update()
    assert out.getvalue() == "scoring: 3/3, elapsed 1s, eta 0s\n"
    assert not p.update(0)  # finished: no second final line before the interval
    assert p.done == 3


def test_eta_counts_only_units_done_here():
    clock, out = FakeClock(), io.StringIO()
    p = Progress(100, "steps", every=5, stream=out, clock=clock, done=50)
    assert p.remaining() is None and p.line().endswith("eta ?")
    clock.t += 10
    p.update(10)  # 10 in 10 s, 40 left
    assert p.remaining() == pytest.approx(40.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"total": -1}, "total"),
        ({"total": 1.5}, "total"),
        ({"total": 3, "every": 0}, "every"),
        ({"total": 3, "done": 4}, "done"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Progress(**kwargs)
    with pytest.raises(ValueError, match="n must be"):
        Progress(3).update(-1)
