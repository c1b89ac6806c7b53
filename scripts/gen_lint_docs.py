"""Write docs/lint-rules.md from the lint rules (run after changing a rule)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's console, not an installed one

from console.profiles.lint import rules_markdown  # noqa: E402

if __name__ == "__main__":
    target = ROOT / "docs" / "lint-rules.md"
    target.write_text(rules_markdown(), encoding="utf-8")
    print(f"wrote {target}")
