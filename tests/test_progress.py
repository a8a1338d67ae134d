"""The plain-text progress lines: when they are printed, and the rate and time left they show
(known answers with a fake clock)."""

import io

from eisbach_lib.progress import Progress, format_seconds


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_format_seconds():
    assert format_seconds(0) == "0:00"
    assert format_seconds(59.6) == "1:00"
    assert format_seconds(3725) == "1:02:05"


def test_rate_and_time_left_are_the_mean_since_start():
    clock, out = Clock(), io.StringIO()
    p = Progress(total=100, desc="render", stream=out, clock=clock)
    for _ in range(40):
        clock.t += 0.25  # 4 steps a second
        p.update()
    # 40 steps in 10 s: 4/s; 60 left: 15 s
    assert p.rate() == 4.0
    assert p.line() == "render: 40/100 (40%) | 4 it/s | elapsed 0:10 | left ~0:15"


def test_slow_steps_show_seconds_per_step_and_postfix():
    clock = Clock()
    p = Progress(total=10, desc="run", unit="step", stream=io.StringIO(), clock=clock)
    clock.t += 8
    p.update(2)
    p.set_postfix(loss="0.1234")
    assert p.line() == "run: 2/10 (20%) | 4 s/step | elapsed 0:08 | left ~0:32 | loss=0.1234"


def test_lines_at_tenths_heartbeat_and_end_only():
    clock, out = Clock(), io.StringIO()
    p = Progress(total=1000, desc="x", stream=out, clock=clock, first_s=5, min_gap_s=1, heartbeat_s=30)
    for _ in range(1000):  # 1000 steps at 0.125 s: 125 s in all
        clock.t += 0.125
        p.update()
    p.close()
    lines = out.getvalue().splitlines()
    counts = [int(line.split(": ")[1].split("/")[0]) for line in lines]
    # first line at 5 s (step 40), then each new tenth (100, 200, ... 900), then the end line
    assert counts[0] == 40
    assert counts[1:10] == list(range(100, 901, 100))
    assert counts[-1] == 1000 and lines[-1].endswith("done")
    assert len(lines) == 11


def test_heartbeat_without_a_new_tenth():
    clock, out = Clock(), io.StringIO()
    p = Progress(total=100, desc="slow", stream=out, clock=clock, first_s=5, heartbeat_s=30)
    for _ in range(5):  # 5 steps of 20 s: no tenth boundary is crossed after the first line
        clock.t += 20
        p.update()
    # lines at 20 s (first), then 4 % = no new tenth until 10 steps: the heartbeat fires every >= 30 s
    times = [line.split("elapsed ")[1].split(" ")[0] for line in out.getvalue().splitlines()]
    assert times == ["0:20", "1:00", "1:40"]


def test_short_loop_is_silent_and_disable_silences():
    clock, out = Clock(), io.StringIO()
    for _ in Progress(range(50), desc="quick", stream=out, clock=clock):
        clock.t += 0.02  # 1 s in all
    assert out.getvalue() == ""
    clock2, out2 = Clock(), io.StringIO()
    for _ in Progress(range(50), desc="off", stream=out2, clock=clock2, disable=True):
        clock2.t += 1
    assert out2.getvalue() == ""


def test_resumed_steps_do_not_count_toward_the_rate():
    clock = Clock()
    p = Progress(total=300, initial=200, desc="resume", stream=io.StringIO(), clock=clock)
    clock.t += 10
    p.update(20)
    assert p.rate() == 2.0  # 20 new steps in 10 s, not 220
    assert "left ~0:40" in p.line()
