"""The host-memory benchmark's table: medians per setting, the ratio to the default, and result digests."""

import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from bench_host_memory import results_digest, table  # noqa: E402


def run(setting: str, dtype: str, wall: float, faults: float, digest: str = "abc") -> dict:
    return {
        "setting": setting,
        "dtype": dtype,
        "wall_seconds": wall,
        "rows_per_forward_second": 100 / wall,
        "page_faults_per_call": faults,
        "token_budget": 4096,
        "peak_rss_mib": 1000.0 if setting == "default" else 1500.0,
        "results_digest": digest,
    }


def test_table_gives_medians_and_the_ratio_to_the_default_per_dtype():
    runs = [
        run("default", "float32", 10.0, 40000),
        run("retained", "float32", 9.0, 100),
        run("default", "float32", 12.0, 42000),
        run("retained", "float32", 9.4, 300),
        run("default", "bfloat16", 4.0, 9000),
        run("retained", "bfloat16", 4.0, 10, digest="def"),
    ]
    result = table(runs, ["float32", "bfloat16"], ["default", "retained"])
    assert result["columns"][4] == "÷ default"
    rows = result["rows"]
    assert [row[:2] for row in rows] == [
        ["float32", "glibc default"],
        ["float32", "freed memory kept, blocks over 32 MiB mapped apart"],
        ["bfloat16", "glibc default"],
        ["bfloat16", "freed memory kept, blocks over 32 MiB mapped apart"],
    ]
    assert rows[0][2] == "4096"
    assert rows[0][3] == "11.0 s (10.0, 12.0)" and rows[0][4] == "1.000"
    assert rows[1][3] == "9.2 s (9.0, 9.4)" and rows[1][4] == f"{9.2 / 11.0:.3f}"
    assert rows[0][6] == "41,000" and rows[1][6] == "200"
    assert rows[1][7] == "1,500 MiB"
    assert rows[3][8] == "def"  # a digest that differs from the default's shows in its own row


def test_the_ratio_is_to_the_first_setting_named():
    runs = [run("retained", "float32", 10.0, 100), run("retained-large-in-heap", "float32", 8.0, 10)]
    result = table(runs, ["float32"], ["retained", "retained-large-in-heap"])
    assert result["columns"][4] == "÷ retained"
    assert result["rows"][1][1] == "freed memory kept, every block in the heap (rift_fast's setting)"
    assert result["rows"][1][4] == "0.800"


@dataclass
class Result:
    status: str
    final_label_probability: float


def test_results_digest_sees_every_field_floats_included():
    same = results_digest([Result("success", 0.25)])
    assert same == results_digest([Result("success", 0.25)])
    assert same != results_digest([Result("success", 0.25 + 1e-12)])
    assert same != results_digest([Result("failed", 0.25)])


def test_the_victim_forward_timer_counts_both_models_until_removed():
    import torch
    from bench_attacks import victim_forward_timer

    class Victim:
        model = torch.nn.Linear(4, 2)
        search_model = torch.nn.Linear(4, 2).to(torch.bfloat16)

    timer = victim_forward_timer(Victim)
    Victim.model(input=torch.zeros(3, 4))
    Victim.search_model(input=torch.zeros(5, 4, dtype=torch.bfloat16))
    assert timer.calls == 2 and timer.page_faults >= 0 and timer.seconds > 0
    timer.remove()
    Victim.model(input=torch.zeros(3, 4))
    assert timer.calls == 2
    Victim.search_model = None  # a float32 victim: the model alone
    alone = victim_forward_timer(Victim)
    Victim.model(input=torch.zeros(3, 4))
    assert alone.calls == 1
