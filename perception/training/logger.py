"""Training logs: one JSON object per line in ``W/log.jsonl`` plus TensorBoard when it is installed."""

import json
import warnings
from pathlib import Path


class TrainLogger:
    """Writes ``{"step", "epoch", "lr", "loss", <each named loss>...}`` records (only on the main process).

    Records are appended, so a resumed run continues the same file. TensorBoard scalars go to ``W/tb``
    when ``torch.utils.tensorboard`` imports (it needs the ``tensorboard`` package).
    """

    def __init__(self, work_dir, enabled: bool = True):
        self.enabled = enabled
        self.path = Path(work_dir) / "log.jsonl"
        self.tb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            from torch.utils.tensorboard import SummaryWriter  # optional: tensorboard is no install requirement

            self.tb = SummaryWriter(str(Path(work_dir) / "tb"))
        except ImportError:
            warnings.warn("TensorBoard not installed: logging to log.jsonl only", stacklevel=2)

    def log(self, record: dict):
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for key, value in record.items():
                if key not in ("step", "epoch") and isinstance(value, (int, float)):
                    self.tb.add_scalar(f"train/{key}", value, record["step"])

    def close(self):
        if self.tb is not None:
            self.tb.close()


def read_log(path) -> list:
    """All records of a ``log.jsonl`` file."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
