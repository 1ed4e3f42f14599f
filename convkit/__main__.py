"""python -m convkit info | bench [options]"""
from __future__ import annotations

import argparse
import json
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m convkit")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_info = sub.add_parser("info", help="versions, how convkit._C was built, threads, backends per device")
    p_info.add_argument("--json", action="store_true", help="print JSON instead of text")
    p_bench = sub.add_parser("bench", help="time the backends side by side against torch")
    from .bench import add_arguments
    add_arguments(p_bench)
    args = parser.parse_args(argv)
    if args.cmd == "info":
        from ._info import format_info, info
        print(json.dumps(info(), indent=2) if args.json else format_info(info()))
        return 0
    from .bench import run
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
