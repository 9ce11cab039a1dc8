"""Training logs: JSON lines (appended across resumes) and TensorBoard scalars read back from the event file."""

from perception.training.logger import TrainLogger, read_log


def test_jsonl_and_tensorboard_scalars_round_trip(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = TrainLogger(tmp_path)
    for step in (1, 2, 3):
        log.log({"step": step, "epoch": 0, "lr": 1e-3, "loss_map": 10.0 / step})
    log.close()
    log = TrainLogger(tmp_path)  # a resumed run appends
    log.log({"step": 4, "epoch": 1, "lr": 1e-3, "loss_map": 2.0})
    log.close()

    records = read_log(tmp_path / "log.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    scalars = events.Scalars("train/loss_map")
    assert [(s.step, round(s.value, 4)) for s in scalars] == [(1, 10.0), (2, 5.0), (3, 3.3333), (4, 2.0)]


def test_non_main_rank_writes_nothing(tmp_path):
    log = TrainLogger(tmp_path / "w", enabled=False)
    log.log({"step": 1, "loss": 1.0})
    log.close()
    assert not (tmp_path / "w").exists()
