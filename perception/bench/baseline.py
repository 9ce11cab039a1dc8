"""The speed regression guard: ``benchmarks/speed_baseline.json`` holds the last recorded numbers per config.

Layout: ``{"tolerance": 0.2, "entries": [{"config": "tiny", "machine_kind": ..., "device": "cpu", "threads": 2,
"backend": "torch", "fp16": false, "bf16": false, "latency_ms": median, "fps": ..., "stages": {stage: median ms},
"recorded": date, "torch": version, "note": ...}]}``. :func:`check` compares a bench result with the entry
of the same config, machine kind, device, threads, backend and precision and flags a median latency more
than ``tolerance`` (20 %) above it. A flag is a warning, never a failure: the machines are shared and noisy.
"""

import datetime
import json
import os

DEFAULT_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            "benchmarks", "speed_baseline.json")
TOLERANCE = 0.2


def config_name(config):
    return os.path.splitext(os.path.basename(str(config)))[0]


def _key(result):
    return {"config": config_name(result["config"]), "machine_kind": result["device_name"], "device": result["device"],
            "threads": int(result["threads"]), "backend": result["backend"], "fp16": bool(result["fp16"]),
            "bf16": bool(result.get("bf16", False))}


def load(path=DEFAULT_PATH):
    if not os.path.isfile(path):
        return {"tolerance": TOLERANCE, "entries": []}
    with open(path) as f:
        return json.load(f)


def find(baseline, result):
    key = _key(result)
    for entry in baseline.get("entries", []):
        # Entries recorded before the bf16 key existed ran without it.
        if all(entry.get(k, False if k == "bf16" else None) == v for k, v in key.items()):
            return entry
    return None


def check(result, path=DEFAULT_PATH):
    """``{'status': 'ok' | 'slower' | 'no_baseline', 'message', ...}`` for a bench result."""
    baseline = load(path)
    tolerance = float(baseline.get("tolerance", TOLERANCE))
    entry = find(baseline, result)
    now = result["latency_ms"]["median_ms"]
    if entry is None:
        key = _key(result)
        return {"status": "no_baseline",
                "message": f"no baseline for {key} in {path} (record one with --update-baseline)"}
    ratio = now / entry["latency_ms"]
    out = {"status": "ok", "ratio": ratio, "baseline_ms": entry["latency_ms"], "now_ms": now,
           "recorded": entry.get("recorded")}
    if ratio > 1 + tolerance:
        slower = []
        for stage, ms in (entry.get("stages") or {}).items():
            cur = result["stages"].get(stage, {}).get("median_ms")
            if cur is not None and ms > 1.0 and cur > (1 + tolerance) * ms:
                slower.append(f"{stage} {ms:.1f} -> {cur:.1f} ms")
        out["status"] = "slower"
        out["slower_stages"] = slower
        out["message"] = (f"WARNING: median latency {now:.1f} ms is {100 * (ratio - 1):.0f} % above the baseline "
                          f"{entry['latency_ms']:.1f} ms ({entry.get('recorded')}; more than {100 * tolerance:.0f} %)"
                          + (f"; slower stages: {', '.join(slower)}" if slower else "")
                          + ". Not a failure: shared machines are noisy, rerun before trusting it.")
    else:
        out["message"] = (f"median latency {now:.1f} ms vs baseline {entry['latency_ms']:.1f} ms "
                          f"({100 * (ratio - 1):+.0f} %, within {100 * tolerance:.0f} %)")
    return out


def update(result, path=DEFAULT_PATH, note=""):
    """Record ``result`` as the baseline of its key (replacing the previous entry)."""
    baseline = load(path)
    entry = find(baseline, result)
    new = {**_key(result), "latency_ms": round(result["latency_ms"]["median_ms"], 2), "fps": round(result["fps"], 3),
           "stages": {k: round(v["median_ms"], 2) for k, v in result["stages"].items()},
           "frames": result["frames"], "torch": result["torch"], "recorded": datetime.date.today().isoformat(),
           "note": note}
    entries = [e for e in baseline.get("entries", []) if e is not entry]
    entries.append(new)
    baseline["entries"] = entries
    baseline.setdefault("tolerance", TOLERANCE)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(baseline, f, indent=1, sort_keys=False)
        f.write("\n")
    return new
