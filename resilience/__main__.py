"""
The ``resilience`` command line.

- ``python -m resilience explain saas-litellm``: the SaaS LiteLLM profile's
  retry table, timeout map and worst-case schedule.
- ``python -m resilience demo [--seed N] [--workflows N] [--workers N] [--time-scale X]``:
  job workflows against a faulty emulator of the SaaS LiteLLM API, run with the
  API docs' helpers and with the profile, side by side (needs requests).
"""

from __future__ import annotations

import argparse
import sys

PROFILES = ("saas-litellm",)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m resilience")
    commands = parser.add_subparsers(dest="command", metavar="{explain,demo}")
    explain = commands.add_parser(
        "explain",
        help="print a profile's tables and schedule",
        description=(
            "Print a profile's retry table, its timeout map, its breakers and bulkhead, "
            "and the worst-case schedule of one request."
        ),
    )
    explain.add_argument(
        "profile",
        choices=PROFILES,
        metavar="PROFILE",
        help=f"the profile to explain: {', '.join(PROFILES)} (the SaaS LiteLLM API's)",
    )
    commands.add_parser("demo", help="the SaaS LiteLLM demo", add_help=False)
    if args[:1] == ["demo"]:
        from resilience.profiles.saas_litellm.demo import main as demo

        return demo(args[1:])
    parsed = parser.parse_args(args)
    if parsed.command == "explain":
        from resilience.profiles.saas_litellm import explain as explain_profile

        print(explain_profile())
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
