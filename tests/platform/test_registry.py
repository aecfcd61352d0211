"""The one generic registry: names, versions, problem codes, plugins by entry point, test scratch."""

from __future__ import annotations

import logging
import sys
import textwrap

import pytest

from egocrowd import registry
from egocrowd.bench.metrics import METRICS  # before any scratch(): what a plugin adds to it is then taken back
from egocrowd.errors import InvalidInput
from egocrowd.registry import Registry, scratch


def test_register_get_names_and_a_clash_refused():
    things: Registry[object] = Registry("test.thing")

    @things.register("b", version=2, description="Bee")
    def bee():
        """ignored: the description wins"""

    @things.register("a")
    def ay():
        """First line.

        More."""

    assert things.names() == ["b", "a"]  # registration order (QC checks run, metrics print in it)
    assert [(e.name, e.version, e.description) for e in things.entries()] == [
        ("b", 2, "Bee"),
        ("a", "1", "First line."),
    ]
    assert things.get("a").obj is ay and "a" in things and "c" not in things
    things.register("a")(ay)  # the same thing again (a module imported twice) is no clash
    with pytest.raises(InvalidInput) as info:
        things.register("a")(bee)
    assert info.value.code == "test.duplicate_thing"
    with pytest.raises(InvalidInput) as info:
        things.get("c")
    assert info.value.code == "test.unknown_thing"
    assert "(known: a, b)" in info.value.message and info.value.extra["known"] == ["a", "b"]


def test_built_ins_are_imported_at_the_first_lookup_only(monkeypatch, tmp_path):
    (tmp_path / "egocrowd_test_builtins.py").write_text(
        textwrap.dedent("""
        from tests.platform.test_registry import LAZY
        LAZY.add("built_in", object())
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    global LAZY
    LAZY = Registry("test.lazy", builtins="egocrowd_test_builtins")
    assert "egocrowd_test_builtins" not in sys.modules
    try:
        assert LAZY.names() == ["built_in"]
    finally:
        sys.modules.pop("egocrowd_test_builtins", None)


def test_plugins_load_once_and_a_broken_one_is_logged_not_fatal(monkeypatch, tmp_path, caplog, scratch_registries):
    """Third parties register through the ``egocrowd.plugins`` entry-point group of a real
    (installed-on-sys.path) distribution; one plugin that raises must not stop the other."""
    dist = tmp_path / "egocrowd_test_plugins-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: egocrowd-test-plugins\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[egocrowd.plugins]\ngood = egocrowd_test_plugin_good\nbroken = egocrowd_test_plugin_broken\n"
    )
    (tmp_path / "egocrowd_test_plugin_good.py").write_text(
        textwrap.dedent("""
        from egocrowd.bench.metrics import metric

        @metric("test_plugin_metric", version="7", description="from a plugin")
        def test_plugin_metric(corpus, config):
            return {"sessions": corpus.n_sessions}
    """)
    )
    (tmp_path / "egocrowd_test_plugin_broken.py").write_text("raise RuntimeError('this plugin is broken')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    try:
        fresh: Registry[object] = Registry("test.fresh")  # its first lookup loads the plugins
        with caplog.at_level(logging.ERROR, logger="egocrowd.plugins"):
            assert fresh.names() == []
        assert METRICS.get("test_plugin_metric").version == "7"
        assert "could not load egocrowd plugin broken" in caplog.text
        assert registry.load_plugins() == []  # once only
    finally:
        for name in ("egocrowd_test_plugin_good", "egocrowd_test_plugin_broken"):
            sys.modules.pop(name, None)


def test_scratch_removes_what_was_registered_inside():
    from egocrowd.bench.metrics import METRICS, metric
    from egocrowd.pipeline.stages import STAGES, stage

    before = METRICS.names(), STAGES.names()
    with scratch():
        metric("test_scratch_metric", version="1")(lambda corpus, config: None)
        stage("test_scratch_stage", "1", prepare=None, apply=None)(lambda inputs: inputs)
        METRICS.remove("sessions")
        assert "test_scratch_metric" in METRICS and "test_scratch_stage" in STAGES and "sessions" not in METRICS
    assert (METRICS.names(), STAGES.names()) == before


def test_every_plugin_kind_uses_the_one_registry():
    from egocrowd.bench.metrics import METRICS
    from egocrowd.bench.policies import POLICIES
    from egocrowd.bench.sim import CHORES, ENVIRONMENTS
    from egocrowd.media.qc import CHECKS
    from egocrowd.pipeline.executors import EXECUTORS
    from egocrowd.pipeline.stages import STAGES

    expected = {
        STAGES: "probe",
        EXECUTORS: "process",
        CHECKS: "too_dark",
        METRICS: "sessions",
        ENVIRONMENTS: "household",
        POLICIES: "oracle",
    }
    for reg, name in expected.items():
        assert isinstance(reg, Registry) and name in reg.names()
        assert reg.get(name).version not in (None, "")
    assert isinstance(CHORES, Registry) and CHORES.names()


def test_built_ins_first_loaded_inside_scratch_survive_it(monkeypatch, tmp_path):
    (tmp_path / "egocrowd_test_builtins2.py").write_text(
        textwrap.dedent("""
        from tests.platform.test_registry import LATE
        LATE.add("built_in", object())
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    global LATE
    LATE = Registry("test.late", builtins="egocrowd_test_builtins2")
    try:
        with scratch():
            LATE.add("test_only", object())
        assert LATE.names() == ["built_in"]
    finally:
        sys.modules.pop("egocrowd_test_builtins2", None)
