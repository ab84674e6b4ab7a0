"""`python -m health [check|watch] [--json]`: the health probe, and the watchdog around it.

Usage::

    python -m health            # one line per problem (or "healthy"); exit 0 healthy, 1 unhealthy,
                                # 2 a setting is missing or malformed
    python -m health --json     # the same as JSON
    python -m health watch      # probe, and send one Telegram message when the state changed;
                                # exit 0 done, 1 Telegram refused (retried next run), 2 a setting
"""

from __future__ import annotations

import argparse
import json
import sys

from health.probe import HealthReport, probe_environment
from resources.errors import ConfigError, SourceError


def print_report(report: HealthReport, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    elif report.healthy:
        print(
            f"healthy: daemon heartbeats, runs and sources within their bounds "
            f"({report.checked_at:%Y-%m-%d %H:%M:%S} UTC)"
        )
    else:
        for line in report.problems:
            print(line)


def check(args: argparse.Namespace) -> int:
    report = probe_environment()
    print_report(report, args.json)
    return report.exit_code


def watch(args: argparse.Namespace) -> int:
    from definitions import resources
    from health.watchdog import exclusive, state_file, watch

    try:
        path = state_file()
        with exclusive(path) as alone:
            if not alone:
                print("another watchdog is running: nothing done")
                return 0
            report = probe_environment()
            if report.misconfigured:
                print_report(report, args.json)
                return 2
            result = watch(report, path, resources["telegram"])
    except ConfigError as exc:
        print(exc.message, file=sys.stderr)
        return 2
    except SourceError as exc:
        print(
            f"{exc.message} The state stays as it was; the next run tries again.", file=sys.stderr
        )
        return 1
    print_report(report, args.json)
    sent = result.message.splitlines()[0] if result.message else None
    print(f"sent: {sent}" if sent else "no change: nothing sent")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m health")
    parser.add_argument("command", nargs="?", choices=["check", "watch"], default="check")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    return {"check": check, "watch": watch}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
