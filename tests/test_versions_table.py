"""One version table (#20.4): every DHIS2 version difference lives in versions.py.

The table (``versions.FEATURES``) names each feature, its first (and last) version
and what it is; the doctor's authority table, its "lacks" list and the CLI's
``doctor --need`` names are derived from it, and no other module compares version
numbers itself (the stand-in keeps its own server-side table and is exempt).
"""
import ast
import os
import sys

import pytest

from dhis2maint import cli, versions
from dhis2maint.doctor import FEATURE_AUTHORITIES, authority_checks, lacking_features
from dhis2maint.versions import Version, parse_version

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "dhis2maint")
# The stand-in plays DHIS2: its own server-side version table, kept in testing.py/_standin_*.
EXEMPT = ("versions.py", "testing.py")


def _int(node):
    """The int a literal node holds, else None (Python 3.7 parses ints as ast.Num;
    ast.Num is deprecated from 3.8 on, so only 3.7 asks for it)."""
    if sys.version_info < (3, 8):
        value = getattr(node, "n", None) if isinstance(node, ast.Num) else None
    else:
        value = node.value if isinstance(node, ast.Constant) else None
    return value if type(value) is int else None


def _version_tuple(node):
    return (isinstance(node, ast.Tuple) and len(node.elts) >= 2
            and all(_int(e) is not None for e in node.elts) and _int(node.elts[0]) == 2)


def _minor_slice(node):
    """``version[:2]`` or ``tuple(version[:2])``."""
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "tuple" and node.args:
        node = node.args[0]
    return (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice)
            and node.slice.lower is None and _int(node.slice.upper) == 2)


def _name(node):
    return (node.id if isinstance(node, ast.Name) else
            node.attr if isinstance(node, ast.Attribute) else "").lower()


def _version_name(node):
    return _name(node) == "minor" or "version" in _name(node)


def version_comparisons(source):
    """(line, text) of each ``<``/``<=``/``>``/``>=`` on a DHIS2 version in ``source``:
    against a literal ``(2, NN)``, on a ``[:2]`` slice, or on a name like
    ``minor``/``server_version``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare) or not any(
                isinstance(op, (ast.Lt, ast.LtE, ast.Gt, ast.GtE)) for op in node.ops):
            continue
        sides = [node.left] + list(node.comparators)
        if any("schema" in _name(s) for s in sides):
            continue  # the history file's schema version, not DHIS2's
        if any("version_info" in _name(s) for s in sides):
            continue  # Python's own version (sys.version_info), not DHIS2's
        if any(_version_tuple(s) or _minor_slice(s) or _version_name(s) for s in sides):
            line = source.splitlines()[node.lineno - 1].strip()
            found.append((node.lineno, line))
    return found


def test_no_version_comparison_outside_versions_py():
    offenders = []
    for name in sorted(os.listdir(PACKAGE)):
        if not name.endswith(".py") or name in EXEMPT or name.startswith("_standin_"):
            continue
        with open(os.path.join(PACKAGE, name), encoding="utf-8") as f:
            source = f.read()
        offenders += ["{}:{}: {}".format(name, line, text)
                      for line, text in version_comparisons(source)]
    assert offenders == [], "compare versions through dhis2maint.versions:\n" + "\n".join(
        offenders)


@pytest.mark.parametrize("code", [
    "if tuple(self.server_version[:2]) >= (2, 41): pass",
    "ok = minor < (2, 37)",
    "x = version[:2] < first",
    "y = versions.ANALYTICS_PARAMETERS[name] > (2, 36)",
    "z = (2, 38) <= v",
])
def test_the_scan_sees_each_shape(code):
    assert version_comparisons(code)


def test_the_scan_leaves_other_comparisons_alone():
    assert version_comparisons("a = version > SCHEMA_VERSION\nb = count >= 2\n"
                               "c = (1, 2) < t\nd = server_version == (2, 41)") == []


def test_each_feature_has_a_range_and_one_line_description():
    assert len(versions.FEATURES) >= 30
    for name, feature in versions.FEATURES.items():
        assert feature.name == name
        assert feature.kind in ("api", "detail", "task")
        assert feature.description and "\n" not in feature.description
        assert len(feature.first) == 2 and (feature.gone is None or feature.gone > feature.first)
    assert set(versions.AUTHORITIES) == {f.name for f in versions.task_features()}


@pytest.mark.parametrize("version, feature, expected", [
    ((2, 40, 3), "job_heartbeat", False), ((2, 41, 0), "job_heartbeat", True),
    ((2, 36), "running_job_types", False), ((2, 37, 1), "running_job_types", True),
    ((2, 41, 9), "integrity_flattened_report", True), ((2, 42), "integrity_flattened_report", False),
    ((2, 41, 3), "validation_max_results", False), ((2, 41, 4), "validation_max_results", True),
    ((2, 42, 0), "validation_max_results", False), ((2, 42, 1), "validation_max_results", True),
])
def test_supports(version, feature, expected):
    assert versions.supports(version, feature) is expected


def test_snapshot_counts_as_the_previous_patch():
    snapshot = parse_version("2.42.1-SNAPSHOT")
    assert isinstance(snapshot, Version) and snapshot.snapshot
    assert not versions.supports(snapshot, "validation_max_results")
    assert versions.version_text(snapshot) == "2.42.1-SNAPSHOT"


def test_doctor_and_cli_derive_from_the_table():
    tasks = versions.task_features()
    assert [row[0] for row in FEATURE_AUTHORITIES] == [f.name.replace("_", " ") for f in tasks]
    assert [row[1] for row in FEATURE_AUTHORITIES] == [f.description for f in tasks]
    assert cli._feature_names() == tuple(row[0] for row in FEATURE_AUTHORITIES)
    # a task feature the version lacks is skipped by the doctor
    cancel = {c.name: c for c in authority_checks(["ALL"], (2, 40))}["authority: job cancel"]
    assert cancel.status == "skip"
    assert lacking_features((2, 36)) == [f.description for f in versions.lacking((2, 36))]


def test_doctor_need_help_lists_the_table_names(capsys):
    with pytest.raises(SystemExit):
        cli.main(["doctor", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "validation result deletion" in text and "job cancel" in text


def test_analytics_parameters():
    assert versions.analytics_parameters_to_check(["lastYears", "skipOutliers"]) == ["skipOutliers"]
    versions.require_analytics_parameter((2, 41, 1), "skipValidationResult")
    with pytest.raises(Exception, match="skipValidationResult needs DHIS2 2.41.1"):
        versions.require_analytics_parameter(parse_version("2.41.1-SNAPSHOT"),
                                             "skipValidationResult")


def test_job_configuration_messages_keep_the_snapshot():
    # scheduler._version_text printed (2, 40, 0) as "2.40.0": a SNAPSHOT build lost its name
    from dhis2maint import Session
    from dhis2maint.errors import ConflictError, UnsupportedServerError
    from dhis2maint.models import FollowUp
    from dhis2maint.testing import Dhis2StandIn

    with Dhis2StandIn(version="2.40-SNAPSHOT") as srv, \
            Session(srv.url, auth=("admin", "district"), retries=0) as session:
        with pytest.raises(ConflictError, match="DHIS2 2.40-SNAPSHOT would accept") as info:
            session.run_job_configuration("UsrPredict1")  # disabled
        assert info.value.follow_ups == (
            FollowUp("enable_job_configuration", (("job_id", "UsrPredict1"),), "enable it first"),)
        with pytest.raises(UnsupportedServerError, match="this server runs 2.40-SNAPSHOT"):
            session.cancel_job(job_id="UsrPredict1")
        assert not [r for r in srv.requests if r.method == "POST"]
