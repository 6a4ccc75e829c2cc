"""The results page, benchmarks/RESULTS.md and the README's tables are rendered from the measurement records,
and the check fails, naming the file, when a rendered file no longer matches its records."""

import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import render_results  # noqa: E402


def record(measurement, date, figure="1.0 s", **extra):
    table = {"caption": "c.", "columns": ["method", "time"], "rows": [["standard", figure]]}
    return {
        "measurement": measurement,
        "title": f"The {measurement}",
        "date": date,
        "command": "python bench.py",
        "commit": "abc1234",
        "machine": "a CPU",
        "tables": [table],
        "notes": [],
        **extra,
    }


def write_records(folder, *records):
    folder.mkdir(parents=True, exist_ok=True)
    for number, data in enumerate(records):
        (folder / f"{number:02d}-{data['measurement']}.json").write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture
def copied_tree(tmp_path, monkeypatch):
    """A copy of the README, the docs and the records, with the renderer pointed at it."""
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copytree(ROOT / "benchmarks" / "results", tmp_path / "benchmarks" / "results")
    shutil.copy(ROOT / "benchmarks" / "RESULTS.md", tmp_path / "benchmarks" / "RESULTS.md")
    monkeypatch.setattr(render_results, "ROOT", tmp_path)
    monkeypatch.setattr(render_results, "RECORDS_DIR", tmp_path / "benchmarks" / "results")
    monkeypatch.setattr(render_results, "RESULTS_PAGE", tmp_path / "docs" / "results.md")
    monkeypatch.setattr(render_results, "RESULTS_INDEX", tmp_path / "benchmarks" / "RESULTS.md")
    return tmp_path


def test_committed_files_equal_their_rendering():
    assert render_results.main(["--check"]) == 0


def test_the_readme_headline_table_comes_from_the_newest_default_run():
    records = render_results.current_records()
    default = records["default-run"].data
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for row in default["tables"][0]["rows"]:
        assert "| " + " | ".join(row) + " |" in readme
    assert f"code `{default['commit']}`" in readme


def _newest_default_run(tree):
    """(path, record) of the newest default-run record of ``tree`` (file names start with the date)."""
    path = sorted((tree / "benchmarks" / "results").glob("*-default-run.json"))[-1]
    return path, json.loads(path.read_text(encoding="utf-8"))


def test_a_changed_figure_fails_the_check_naming_each_stale_file(copied_tree, capsys):
    path, data = _newest_default_run(copied_tree)
    data["tables"][0]["rows"][0][-1] = "9.9 min"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert render_results.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "docs/results.md differs" in out
    assert "README.md differs" in out
    assert render_results.main([]) == 0
    assert "| " + " | ".join(data["tables"][0]["rows"][0]) + " |" in (copied_tree / "README.md").read_text()
    assert render_results.main(["--check"]) == 0


def test_a_hand_edit_of_a_rendered_table_fails_the_check(copied_tree, capsys):
    _, data = _newest_default_run(copied_tree)
    figure = data["tables"][0]["rows"][0][1]
    page = copied_tree / "docs" / "results.md"
    text = page.read_text(encoding="utf-8")
    assert figure in text
    page.write_text(text.replace(figure, "70.7% [0.0, 100.0]", 1), encoding="utf-8")
    assert render_results.main(["--check"]) == 1
    assert "docs/results.md differs" in capsys.readouterr().out


def test_the_newest_record_of_a_measurement_is_current(tmp_path):
    write_records(
        tmp_path,
        record("step", "2026-11-30", "2.0 s"),
        record("step", "2026-12-01", "1.5 s"),
        record("step", "before 2026-11-30", "3.0 s"),
        record("other", "before 2026-11-30", "4.0 s"),
    )
    current = render_results.current_records(tmp_path)
    assert list(current) == ["other", "step"]
    assert current["step"].data["tables"][0]["rows"] == [["standard", "1.5 s"]]
    assert current["other"].data["date"] == "before 2026-11-30"


def test_a_record_dated_before_a_day_sorts_before_that_day(tmp_path):
    write_records(tmp_path, record("step", "2026-11-30", "2.0 s"), record("step", "before 2026-11-30", "3.0 s"))
    assert render_results.current_records(tmp_path)["step"].data["date"] == "2026-11-30"


def test_two_records_of_one_measurement_on_one_date_are_refused(tmp_path):
    write_records(tmp_path, record("step", "2026-11-30"), record("step", "2026-11-30"))
    with pytest.raises(render_results.RecordError, match="two records of 'step' dated 2026-11-30"):
        render_results.current_records(tmp_path)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"date": "30.11.2026"}, "date '30.11.2026' is not YYYY-MM-DD"),
        ({"topic": "misc"}, "topic 'misc' is not one of"),
        ({"tables": []}, "no table"),
    ],
)
def test_a_bad_record_is_refused_naming_its_file(tmp_path, change, message):
    write_records(tmp_path, {**record("step", "2026-11-30"), **change})
    with pytest.raises(render_results.RecordError, match=message) as caught:
        render_results.current_records(tmp_path)
    assert "00-step.json" in str(caught.value)


def test_a_record_without_its_command_or_a_ragged_table_is_refused(tmp_path):
    data = record("step", "2026-11-30")
    del data["command"]
    write_records(tmp_path / "a", data)
    with pytest.raises(render_results.RecordError, match="missing field.*command"):
        render_results.current_records(tmp_path / "a")
    data = record("step", "2026-11-30")
    data["tables"][0]["rows"].append(["ascc"])
    write_records(tmp_path / "b", data)
    with pytest.raises(render_results.RecordError, match="2 columns but a row of 1"):
        render_results.current_records(tmp_path / "b")


def test_a_marker_renders_chosen_columns_and_refuses_unknown_names(tmp_path):
    write_records(tmp_path, record("step", "2026-12-01", "1.5 s"))
    records = render_results.current_records(tmp_path)
    text = "before\n<!-- results: step columns=time -->\nold\n<!-- /results -->\nafter\n"
    filled = render_results.fill_markers(text, records, Path("page.md"))
    assert filled.startswith("before\n<!-- results: step columns=time -->\nc.\n\n| time |\n| ---: |\n| 1.5 s |\n")
    assert "code `abc1234`" in filled and filled.endswith("<!-- /results -->\nafter\n")
    with pytest.raises(render_results.RecordError, match="page.md: marker names measurement 'gone'"):
        render_results.fill_markers(text.replace("step", "gone"), records, Path("page.md"))
    with pytest.raises(render_results.RecordError, match="no column"):
        render_results.fill_markers(text.replace("time", "speed"), records, Path("page.md"))
    with pytest.raises(render_results.RecordError, match="asks for table 1 of 'step', which has 1"):
        render_results.fill_markers(text.replace("columns=time", "table=1"), records, Path("page.md"))
