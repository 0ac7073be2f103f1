"""Entry point of a trainer process: `python -m cloudtune.trainer.launch RUN_DIR`.

It picks the trainer for the run's model family, runs it, and always leaves `result.json` in the
run folder, so the server can tell how the run ended even if it restarted meanwhile.
SIGTERM (a cancel) ends the run as `cancelled`.
"""

from __future__ import annotations

import json
import signal
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any


class Cancelled(BaseException):
    """Raised in the trainer when SIGTERM arrives; BaseException so no `except Exception`
    in training code swallows it."""


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise Cancelled()


def _write_result(run_dir: Path, result: dict[str, Any]) -> None:
    result["finished_at"] = datetime.now(UTC).isoformat()
    tmp = run_dir / "result.tmp"
    tmp.write_text(json.dumps(result))
    tmp.replace(run_dir / "result.json")


def run(run_dir: Path) -> int:
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        config = json.loads((run_dir / "config.json").read_text())
        family = config.get("--model_family", config.get("model_family"))
        if family == "reference":
            from cloudtune.trainer.reference.train import train

            outputs = train(run_dir)
        else:
            from cloudtune.trainer.simpletuner import train_with_simpletuner

            outputs = train_with_simpletuner(run_dir)
    except Cancelled:
        print("training cancelled (SIGTERM)", flush=True)
        _write_result(run_dir, {"status": "cancelled", "error": "cancelled"})
        return 143
    except Exception as exc:
        traceback.print_exc()
        sys.stdout.flush()
        _write_result(run_dir, {"status": "failed", "error": f"{type(exc).__name__}: {exc}"})
        return 1
    _write_result(run_dir, {"status": "completed", "outputs": outputs})
    return 0


def main() -> None:
    if len(sys.argv) != 2:
        print("usage: python -m cloudtune.trainer.launch RUN_DIR", file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(run(Path(sys.argv[1])))


if __name__ == "__main__":
    main()
