"""One replay end to end (what ``perception replay`` runs): open the input, resolve its topics, run the
:class:`Replayer` into OUT, write the latency summary (``<OUT>.summary.json``), score keyframes
(``<OUT>.metrics.json`` + ``<OUT>_eval/``), render and assemble a video. See ``perception/cli/replay.py``."""

import json
import os
from pathlib import Path

from perception.data.scene_stream import load_nuscenes
from perception.replay.bagio import BagWriter
from perception.replay.convert import keyframe_gt
from perception.replay.render import FrameRenderer, video_writer_available, write_video
from perception.replay.replay import Replayer
from perception.replay.scoring import ReplayScorer, samples_by_stamp


def sidecar(out, suffix):
    """``<OUT without .mcap>`` + ``suffix``: the files written beside OUT."""
    out = Path(out)
    stem = out.with_suffix("") if out.suffix == ".mcap" else out
    return Path(str(stem) + suffix)


def replay(source, predictor, out, options, fmt="mcap", overwrite=False, render_dir=None, video=None,
           dataroot=None, version=None, score=True, progress=True, log=print):
    """Replay ``source`` (a :mod:`perception.replay.sources` source) through ``predictor`` into ``out``.

    Returns a dict: ``summary`` (the stats dict, also ``<OUT>.summary.json``), ``metrics`` (or None),
    ``out``, ``pngs``, ``video``. ``dataroot`` / ``version``: GT for scoring and drawing when the input does
    not name them (``/nuscenes/sample``)."""
    sinks = []
    scorer = ReplayScorer(sidecar(out, "_eval"), dataroot, version) if score else None
    if scorer is not None:
        sinks.append(scorer)
    renderer = None
    if render_dir or video:
        if video and video_writer_available():
            raise RuntimeError(video_writer_available())
        renderer = FrameRenderer(render_dir or sidecar(out, "_frames"), gt_lookup=_gt_lookup(dataroot, version),
                                 occ3d=predictor.model.head.occ is None or predictor.model.head.occ.frame == "ego")
        sinks.append(renderer)
    replayer = Replayer(predictor, source, None, options, sinks=sinks, log=log)  # TopicError before any output
    if dataroot and not replayer.roles.topic_of("sample"):  # keyframes found by their LiDAR stamps
        replayer.samples.update(samples_by_stamp(dataroot, version or "v1.0-trainval"))
    writer = replayer.writer = BagWriter(out, fmt, overwrite=overwrite)
    try:
        stats = replayer.run(progress=progress)
    finally:
        writer.close()  # closed properly whatever happened: what was written stays readable
    summary_path = sidecar(out, ".summary.json")
    extra = {"input": getattr(source, "name", ""), "output": str(out), "output_messages": dict(writer.counts),
             "input_problems": list(getattr(source, "problems", []))}
    stats.write_json(summary_path, **extra)
    for line in stats.lines():
        log(line)
    log(f"latency summary written to {summary_path}")
    result = {"summary": stats.as_dict(**extra), "metrics": None, "out": str(out), "pngs": [], "video": None}
    if scorer is not None:
        metrics = scorer.finish()
        if metrics is not None:
            path = sidecar(out, ".metrics.json")
            with open(path, "w") as f:
                json.dump(metrics, f, indent=1)
            log(f"{metrics['num_frames_scored']} keyframes scored: metrics written to {path} "
                f"(report in {scorer.work_dir})")
        result["metrics"] = metrics
    if renderer is not None:
        result["pngs"] = renderer.pngs
        log(f"{len(renderer.pngs)} frames rendered into {renderer.out_dir}")
        if video:
            result["video"] = str(write_video(renderer.pngs, video))
            log(f"video written to {video}")
    return result


def _gt_lookup(dataroot, version):
    """``sample info -> (boxes, labels)`` from the sample's dataroot (or ``dataroot``), None when unknown."""
    cache = {}

    def lookup(info):
        root = dataroot or info.get("dataroot")
        ver = version or info.get("version") or "v1.0-trainval"
        if not root or not os.path.isdir(root):
            return None
        if (root, ver) not in cache:
            cache[(root, ver)] = load_nuscenes(root, ver)

        return keyframe_gt(cache[(root, ver)], info["sample_token"])

    return lookup
