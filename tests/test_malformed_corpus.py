"""A corpus of malformed specs and arguments: every case ends in exit 2 with one line on stderr,
never a traceback or a hang, and `check` and `simulate` agree (issue #15)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_spec_errors import GOOD as BASE

from twin.cli import main

# test_spec_errors' valid spec, with a run length, a probe and clients to mutate as well
GOOD = BASE.replace("[cluster]", "[simulation]\nyears = 2\nreplications = 2\n[cluster]") + (
    'probe = { protocol = "tcp", interval_s = 5, threshold = 1 }\n'
    "[clients]\ncount = 100\nkeepalive_s = 60\n")

# key line in GOOD -> values that must be refused there
BAD_VALUES = {
    "nodes = 3": ["true", '"3"', "0", "-1", "65", "3.5", "[3]", "{ n = 3 }", "nan"],
    "min_nodes_up = 2": ["false", "0", "4", '"2"', "2.0"],
    "years = 2": ["0", "0.0001", "-3", "1e12", "inf", "nan", "true", '"2"'],
    "replications = 2": ["1", "0", "-2", "2.5", "true", "1000000"],
    "mtbf_hours = 100": ["0", "-1", "1e-12", "inf", "nan", "true", '"100"', "[]"],
    "repair = { dist = \"exponential\", mean_s = 30 }": [
        '{ dist = "weibull", shape = 0.001, mean_s = 30 }',
        '{ dist = "lognormal", sigma = 1000, median_s = 30 }',
        '{ dist = "lognormal", sigma = 1 }', '{ dist = "gamma", shape = 0, mean_s = 3 }',
        '{ dist = "exponential", mean_s = -1 }', '{ dist = "pareto", mean_s = 3 }',
        '{ mean_s = 3 }', '{ dist = "empirical", samples_s = [] }',
        '{ dist = "weibull", shape = 0.06, scale_hours = 1e9 }', '{ dist = "deterministic" }'],
    "algorithm = \"least_connections\"": ['"fastest"', "1", "true", '""'],
    "probe = { protocol = \"tcp\", interval_s = 5, threshold = 1 }": [
        '{ protocol = "icmp" }', '{ interval_s = 0 }', '{ threshold = 0 }',
        '{ interval_s = -5 }', '{ on_down = "explode" }', '{ interval_s = "5" }'],
    "count = 100": ["-1", "1e9", "100.5", "true", '"100"'],
    "keepalive_s = 60": ["0", "-60", "1e300", "65536", "true", "inf"],
    'name = "t"': ['""', "1", "true"],
}


def _cases() -> list[tuple[str, str]]:
    out = []
    for line, values in BAD_VALUES.items():
        key = line.split(" = ", 1)[0]
        for v in values:
            out.append((f"{key} = {v}", GOOD.replace(line, f"{key} = {v}", 1)))
    out += [
        ("unknown key", GOOD + "typo_key = 1\n"),
        ("unknown table", GOOD + "[loadbalancer]\nx = 1\n"),
        ("not TOML", GOOD + "[[[\n"),
        ("empty file", ""),
        ("targets.availability = 1.5", GOOD + "[targets]\navailability = 1.5\n"),
        ("targets.availability = 0", GOOD + "[targets]\navailability = 0\n"),
        ("targets.rto_minutes = -1", GOOD + "[targets]\nrto_minutes = -1\n"),
        ("extends to a missing file", 'extends = "nope.toml"\n' + GOOD),
        ("unset without extends", 'unset = ["lb"]\n' + GOOD),
        ("calibration file missing", GOOD + '[calibration]\nfile = "nope.json"\n'),
        ("calibration use unknown", GOOD + '[calibration]\nfile = "cal-ok.json"\nuse = "magic"\n'),
        ("calibration not JSON", GOOD + '[calibration]\nfile = "cal-text.json"\n'),
        ("calibration {}", GOOD + '[calibration]\nfile = "cal-empty.json"\n'),
        ("calibration mode lacks keys", GOOD + '[calibration]\nfile = "cal-partial.json"\n'),
        ("two TTFs", GOOD.replace("mtbf_hours = 100",
                                  'mtbf_hours = 100\nttf = { dist = "exponential", mean_hours = 5 }')),
        ("tick time too short", GOOD.replace("min_nodes_up = 2", "min_nodes_up = 2\ndist_net_ticktime_s = 1")),
    ]
    return out


CASES = _cases()


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    (tmp_path / "cal-text.json").write_text("not json at all")
    (tmp_path / "cal-empty.json").write_text("{}")
    (tmp_path / "cal-partial.json").write_text(json.dumps({"modes": {"crash": {"runs": 1}}}))
    (tmp_path / "cal-ok.json").write_text(json.dumps({"modes": {}}))
    return tmp_path


def _run(argv: list[str], capsys) -> tuple[int, list[str]]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 80


@pytest.mark.parametrize(("what", "text"), CASES, ids=[c[0] for c in CASES])
def test_malformed_spec_is_refused_alike_by_check_and_simulate(what, text, spec_dir, capsys) -> None:
    path = spec_dir / "spec.toml"
    path.write_text(text, encoding="utf-8")
    c_code, c_err = _run(["check", str(path)], capsys)
    s_code, s_err = _run(["simulate", str(path), "--workers", "1"], capsys)
    assert (c_code, s_code) == (2, 2), (what, c_err, s_err)
    assert len(c_err) == 1 and c_err == s_err, (c_err, s_err)
    assert c_err[0].startswith("twin: ") and "Traceback" not in c_err[0]


def test_non_utf8_and_directory_and_missing_file(spec_dir, capsys) -> None:
    bad = spec_dir / "latin1.toml"
    bad.write_bytes(GOOD.replace('"t"', '"Zürich"').encode("latin-1"))
    for target in (bad, spec_dir, spec_dir / "missing.toml"):
        for cmd in ("check", "simulate"):
            code, err = _run([cmd, str(target)], capsys)
            assert code == 2 and len(err) == 1 and err[0].startswith("twin: "), (target, err)


ARGS = [["--seed", "-5"], ["--years", "0"], ["--years", "1e-9"], ["--years", "abc"], ["--replications", "1"],
        ["--workers", "0"], ["--dask", "foo"], ["--precision", "0"], ["--precision", "2"],
        ["--json", "/proc/forbidden/out.json"], ["--markdown", "/proc/forbidden/out.md"],
        ["--plots", "/proc/forbidden"], ["--max-replications", "0"], ["--years", "1e12"]]


@pytest.mark.parametrize("args", ARGS, ids=[" ".join(a) for a in ARGS])
def test_bad_argument_is_one_line(args, spec_dir, capsys) -> None:
    path = spec_dir / "spec.toml"
    path.write_text(GOOD)
    code, err = _run(["simulate", str(path), *args], capsys)
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0], err
    assert err[0].startswith(("twin: ", "twin simulate: ")), err


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=st.sampled_from(sorted(BAD_VALUES)),
       value=st.one_of(st.integers(-10**12, 10**12).map(str), st.floats(allow_nan=True).map(
           lambda f: repr(f).replace("inf", "inf").replace("nan", "nan")),
           st.booleans().map(lambda b: str(b).lower()), st.text(max_size=8).map(json.dumps)))
def test_any_value_gives_valid_or_one_line(line, value, spec_dir, capsys) -> None:
    """Mutated specs: `check` says valid (exit 0) or refuses in one line (exit 2), and a spec
    it calls valid is one that simulate accepts too (its size was checked)."""
    path = spec_dir / "spec.toml"
    key = line.split(" = ", 1)[0]
    path.write_text(GOOD.replace(line, f"{key} = {value}", 1), encoding="utf-8")
    code, err = _run(["check", str(path)], capsys)
    assert code in (0, 2), err
    if code == 2:
        assert len(err) == 1 and err[0].startswith("twin: "), err
