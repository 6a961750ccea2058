"""The child of tests/test_runner.py: ``python -m tests.runner_child --sleep|--fail|--sigkill SPEC``."""

import json
import os
import signal
import sys
import time


def main(flag: str, spec_path: str) -> int:
    with open(spec_path) as f:
        spec = json.load(f)
    if flag == "--sleep":
        time.sleep(spec["seconds"])
    elif flag == "--fail":
        print("some output first", flush=True)
        print(f"ValueError: {spec['text']}", file=sys.stderr, flush=True)
        return 3
    elif flag == "--sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
