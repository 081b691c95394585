"""The Prefect comparison (never run in CI itself): without Prefect it skips cleanly, and its
verdicts follow the figures of the rounds."""

from bench import peer_prefect
from bench.peer_prefect import OURS, PREFECT


def test_without_prefect_it_says_how_to_install_it_and_skips(tmp_path, capsys, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("nothing is started or seeded when Prefect is missing")

    monkeypatch.setattr(peer_prefect, "ensure_postgres", must_not_run)
    monkeypatch.setattr(peer_prefect, "PrefectServer", must_not_run)
    out = tmp_path / "peer.json"

    code = peer_prefect.main(["--prefect-venv", str(tmp_path / "venv"), "--out", str(out)])

    printed = capsys.readouterr().out
    assert code == 0
    assert "skipped" in printed
    assert "python -m bench.peer_prefect --install" in printed
    assert not out.exists()


def _figures(rate: float, p99: float, lines: int = 1) -> dict[str, float]:
    return {
        "rate": rate,
        "lines_per_s": rate * lines,
        "p50_ms": p99 / 2,
        "p99_ms": p99,
        "cpu_ms": 1000 / rate,
        "unexpected_status": 0,
        "socket_errors": 0,
        "load": 1.0,
    }


def _round(append: tuple[float, float], batch: float, listing: float) -> dict:
    return {
        "append one line": {OURS: _figures(*append), PREFECT: _figures(100, 400)},
        "append 100 lines": {OURS: _figures(batch, 50, 100), PREFECT: _figures(10, 900, 100)},
        "list 50": {OURS: _figures(listing, 30), PREFECT: _figures(20, 300)},
    }


def test_targets_are_medians_of_ratios_within_each_round():
    # Rounds 1 and 2 meet every target, round 3 misses them all: the medians meet them.
    rounds = [_round((600, 20), 120, 200), _round((550, 30), 110, 180), _round((90, 500), 5, 20)]

    summary = peer_prefect.summarize(rounds)
    text = peer_prefect.report(summary, {"before": [1.0, 1.0, 1.0], "after": [2.0, 2.0, 2.0]})

    assert summary["append one line"]["x_rate"] == 5.5
    assert summary["append one line"][OURS]["rate_range"] == [90, 600]
    assert "- append one line: req/s 5.5x Prefect's (>= 5x): met" in text
    assert "- append one line: Prefect's p99 over ours 13.3x (>= 10x): met" in text
    assert "- append 100 lines: lines/s 11.0x Prefect's (>= 10x): met" in text
    assert "- list 50: req/s 9.0x Prefect's (>= 8x): met" in text
    assert "before: 1.00, 1.00, 1.00; after: 2.00, 2.00, 2.00" in text


def test_a_target_missed_in_most_rounds_is_not_met():
    rounds = [_round((300, 100), 50, 100), _round((350, 90), 60, 120), _round((900, 5), 500, 400)]

    text = peer_prefect.report(
        peer_prefect.summarize(rounds), {"before": [0, 0, 0], "after": [0, 0, 0]}
    )

    assert "- append one line: req/s 3.5x Prefect's (>= 5x): NOT met" in text
    assert "- append one line: Prefect's p99 over ours 4.4x (>= 10x): NOT met" in text
    assert "- append 100 lines: lines/s 6.0x Prefect's (>= 10x): NOT met" in text
    assert "- list 50: req/s 6.0x Prefect's (>= 8x): NOT met" in text
