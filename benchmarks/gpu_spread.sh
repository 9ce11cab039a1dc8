#!/usr/bin/env bash
# Run-to-run spread of the GPU speed numbers, and the training step time of `tiny` on the GPU (docs/benchmarks.md,
# "On a GPU"). `perception bench` fp32 for `tiny` (a trained checkpoint: the refiner sees its box count) and
# `nuscenes_full` (random weights), RUNS times each, the two configs alternating so that a drift of the machine
# shows in both; then `perception train configs/tiny.py` for STEPS steps on a synthetic dataroot (step time from
# its log.jsonl, the first 5 steps left out). Usage: benchmarks/gpu_spread.sh OUT_DIR TINY_CHECKPOINT [RUNS] [STEPS]
set -u
out=${1:?usage: benchmarks/gpu_spread.sh OUT_DIR TINY_CHECKPOINT [RUNS] [STEPS]}
ckpt=${2:?a trained tiny checkpoint}
runs=${3:-3}
steps=${4:-60}
mkdir -p "$out"
py=${PYTHON:-python3}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
for i in $(seq 1 "$runs"); do
  for cfg in tiny nuscenes_full; do
    ck=(); frames=20; [ "$cfg" = tiny ] && ck=(--checkpoint "$ckpt") && frames=30
    timeout 150 "$py" -m perception.cli.main bench "configs/$cfg.py" "${ck[@]}" --frames $frames --device cuda \
        --no-flops --json "$out/${cfg}_fp32_run$i.json" > /dev/null 2>&1 || echo "bench $cfg run $i failed"
  done
done
"$py" - "$out" "$runs" <<'EOF'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
for cfg in ("tiny", "nuscenes_full"):
    rows = []
    for i in range(1, runs + 1):
        try:
            d = json.load(open(f"{out}/{cfg}_fp32_run{i}.json"))
        except OSError:
            continue
        rows.append((d["latency_ms"]["median_ms"], d["stages"].get("preprocess", {}).get("median_ms"), d["fps"]))
    e2e = [r[0] for r in rows]
    print(cfg, "runs", len(rows), "end-to-end median ms per run", [round(v, 1) for v in e2e],
          "preprocess", [round(r[1], 1) if r[1] else None for r in rows],
          "mean %.1f std %.1f" % (statistics.mean(e2e), statistics.stdev(e2e)) if len(e2e) > 1 else "")
EOF
data=/tmp/gpu_train_synth
timeout 200 "$py" -m perception.cli.main synth --out "$data" --scenes 2 --samples-per-scene 10 --seed 0 --workers 8 \
    > /dev/null 2>&1 || echo "synth failed"
timeout 300 "$py" -m perception.cli.main train configs/tiny.py --dataroot "$data" --device cuda --max-steps "$steps" \
    --work-dir /tmp/gpu_train_tiny --cfg-options train.log_interval=1 train.workers=4 > "$out/train_tiny.txt" 2>&1 \
    || echo "train failed: $(tail -n 3 "$out/train_tiny.txt")"
"$py" - /tmp/gpu_train_tiny/log.jsonl <<'EOF'
import json, statistics, sys
log = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
t = [r["time_s"] for r in log]
d = sorted(b - a for a, b in zip(t[5:], t[6:]))
print("tiny training on cuda: steps", log[-1]["step"], "median s/step %.3f" % statistics.median(d),
      "p90 %.3f" % d[int(0.9 * (len(d) - 1))], "last loss %.2f" % log[-1]["loss"])
EOF
