"""Regenerate console/profiles/data/vllm_args.json from a real vLLM.

Usage: python scripts/gen_vllm_catalogue.py [PYTHON_WITH_VLLM]
(default: the managed CPU runtime, ~/.local/share/vllm-console/runtimes/cpu/bin/python).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from console import paths  # noqa: E402

PROBE = ROOT / "console" / "profiles" / "vllm_probe.py"
OUT = ROOT / "console" / "profiles" / "data" / "vllm_args.json"


def main() -> int:
    python = sys.argv[1] if len(sys.argv) > 1 else str(paths.runtimes_dir() / "cpu/bin/python")
    done = subprocess.run([python, str(PROBE)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        print(f"error: {python} could not build vLLM's serve parser", file=sys.stderr)
        return 1
    data = json.loads(done.stdout)
    OUT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {OUT} (vLLM {data['vllm_version']}, {len(data['options'])} options)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
