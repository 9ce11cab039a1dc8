"""perception.environment: the machine a run's numbers depend on (CPU model, the instruction sets that pick the
bf16 / fp32 kernels, library versions), parsed from a /proc/cpuinfo-format file."""

import json

import torch

from perception.environment import ISA_FLAGS, append_environment, cpu_info, describe, read_environment

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile amx_bf16 avx512_vnni

processor\t: 1
model name\t: Some Other CPU
flags\t\t: fpu sse2

"""


def test_cpu_info_reads_the_first_processor_block(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    name, flags = cpu_info(path)
    assert name == "Intel(R) Xeon(R) Processor"
    assert {"avx2", "amx_bf16", "avx512_vnni"} <= flags and "sse2" in flags


def test_describe_keeps_only_the_kernel_choosing_flags_in_a_fixed_order(tmp_path, monkeypatch):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    env = describe(path)
    assert env["cpu"] == "Intel(R) Xeon(R) Processor"
    assert env["isa_flags"] == ["avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"]
    assert set(env["isa_flags"]) <= set(ISA_FLAGS)
    assert env["variables"]["ONEDNN_MAX_CPU_ISA"] == "AVX2" and "ATEN_CPU_CAPABILITY" not in env["variables"]
    assert env["torch_threads"] == torch.get_num_threads()
    assert env["packages"]["torch"] == torch.__version__.split("+")[0]
    json.dumps(env)  # JSON-ready


def test_an_unreadable_cpuinfo_gives_no_flags_not_an_error(tmp_path):
    name, flags = cpu_info(tmp_path / "missing")
    assert flags == frozenset() and isinstance(name, str)


def test_append_and_read_round_trip(tmp_path):
    path = tmp_path / "work" / "environment.jsonl"
    assert read_environment(path) == []
    append_environment(path, start_step=0)
    append_environment(path, start_step=120)
    lines = read_environment(path)
    assert [e["start_step"] for e in lines] == [0, 120]
    assert lines[0]["cpu"] == describe()["cpu"]
