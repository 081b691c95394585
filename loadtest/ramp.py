"""Find the highest load that still meets the target: one load run per fleet size, in turn.

    python -m loadtest.ramp --gateways 50 100 150 200 300 --duration 90

Analysts and API clients scale with the fleet (20 and 5 per 200 gateways, at least 1 each).
Stops at the first size that misses the target; prints one line per size and the answer.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from loadtest.stack import ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.ramp", allow_abbrev=False)
    parser.add_argument("--gateways", type=int, nargs="+", default=[50, 100, 150, 200, 300])
    parser.add_argument("--duration", type=float, default=90)
    parser.add_argument("--keep-going", action="store_true", help="do not stop at a miss")
    args, rest = parser.parse_known_args(argv)
    best = None
    for gateways in args.gateways:
        analysts = max(1, gateways // 10)
        clients = max(1, gateways // 40)
        (ROOT / "loadtest" / "out").mkdir(parents=True, exist_ok=True)
        out = Path(tempfile.mkdtemp(prefix=f"ramp-{gateways}-", dir=ROOT / "loadtest" / "out"))
        command = [
            sys.executable,
            "-m",
            "loadtest",
            f"--gateways={gateways}",
            f"--analysts={analysts}",
            f"--api-clients={clients}",
            f"--duration={args.duration}",
            f"--out={out}",
            "--quiet",
            *rest,
        ]
        subprocess.run(command, cwd=ROOT, check=False, timeout=args.duration + 900)
        if not (out / "report.json").exists():
            print(f"{gateways:4} gateways: the run failed, see {out}", flush=True)
            break
        report = json.loads((out / "report.json").read_text())
        totals, target = report["totals"], report["target"]
        met = all(target.values())
        print(
            f"{gateways:4} gateways {analysts:3} analysts {clients:2} clients: "
            f"{totals['rps']:6} req/s, runner PATCH p50 {totals['runner_patch_p50_ms']} ms "
            f"p99 {totals['runner_patch_p99_ms']} ms, 5xx {totals['5xx']}, "
            f"transport errors {totals['transport']}, server CPU "
            f"{report['cpu']['server_cpu_ms_per_request']} ms/request, load average "
            f"{report['load_average']['after'][0]:.1f}, problems "
            f"{report['database_check'].get('problems', 0)} -> {'MET' if met else 'missed'}"
            f"  ({out})",
            flush=True,
        )
        if met:
            best = gateways
        elif not args.keep_going:
            break
    print(f"highest load meeting the target: {best} gateways" if best else "no size met it")
    return 0 if best else 1


if __name__ == "__main__":
    sys.exit(main())
