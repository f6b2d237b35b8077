"""The report card's two ends (nanochat/report.py does the work): `reset` at the start of a run, `generate`
(report/report.md and its plots) at the end; between the two, every stage logs its section.
"""

import argparse

from nanochat.report import DEFAULT_GPU_HOUR_RATE, get_report


def main(argv=None):
    p = argparse.ArgumentParser(description="Start or assemble the report card in $NANOCHAT_BASE_DIR/report")
    commands = p.add_subparsers(dest="command", required=True)
    commands.add_parser("reset", help="forget the previous run's report; record the start time and system info")
    generate = commands.add_parser("generate", help="write report.md: system, summary table, sections, plots")
    generate.add_argument("--gpu-hour-rate", type=float, default=DEFAULT_GPU_HOUR_RATE,
                          help="$ per GPU-hour for the cost estimate (ignored on a CPU-only run)")
    args = p.parse_args(argv)
    report = get_report()
    if args.command == "reset":
        path = report.reset()
        print(f"report reset: recorded the run start in {path}")
    else:
        if args.gpu_hour_rate < 0:
            p.error(f"--gpu-hour-rate must be >= 0, got {args.gpu_hour_rate}")
        path = report.generate(args.gpu_hour_rate)
        print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
