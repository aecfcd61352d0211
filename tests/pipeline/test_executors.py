"""Executors: inline and process pool give the same results; exceptions come back intact."""

from __future__ import annotations

import pytest

from egocrowd.errors import InvalidInput, MediaError
from egocrowd.media import call_bounded
from egocrowd.pipeline.executors import InlineExecutor, ProcessExecutor, executor_names, get_executor, register_executor


def square(x: int) -> int:
    return x * x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise MediaError("three is unreadable", code="video.truncated", clip=x)
    if x == 4:
        raise ValueError("four")
    return x


def probe_duration(path: str) -> float:
    from egocrowd.media import probe

    return probe(path).duration_s


@pytest.fixture(scope="module")
def pool():
    with get_executor("process", max_workers=2) as ex:
        yield ex


def test_registered_by_name():
    assert {"inline", "process"} <= set(executor_names())
    assert isinstance(get_executor("inline"), InlineExecutor)
    with pytest.raises(InvalidInput) as info:
        get_executor("ray-someday")
    assert info.value.code == "pipeline.unknown_executor" and "inline, process" in info.value.message


def test_default_pool_has_one_process_per_core():
    import os

    ex = ProcessExecutor()
    try:
        assert ex.workers == (os.cpu_count() or 1)
    finally:
        ex.shutdown()


@pytest.mark.parametrize("name", ["inline", "process"])
def test_same_results_and_progress(name, pool):
    ex = pool if name == "process" else get_executor("inline")
    seen = []
    out = ex.map(square, range(12), progress=lambda done, total: seen.append((done, total)))
    assert out == [x * x for x in range(12)]
    assert seen[-1] == (12, 12) and [d for d, _ in seen] == list(range(1, 13))
    assert ex.submit(square, 7).result() == 49


@pytest.mark.parametrize("name", ["inline", "process"])
def test_exceptions_come_back_with_their_codes(name, pool):
    ex = pool if name == "process" else get_executor("inline")
    with pytest.raises(MediaError) as info:
        ex.submit(fail_on_three, 3).result()
    assert info.value.code == "video.truncated" and info.value.extra == {"clip": 3}
    out = ex.map(fail_on_three, range(6), return_exceptions=True)
    assert out[:3] == [0, 1, 2] and out[5] == 5
    assert isinstance(out[3], MediaError) and out[3].code == "video.truncated"
    assert isinstance(out[4], ValueError) and str(out[4]) == "four"
    with pytest.raises(MediaError):  # without return_exceptions the first failure is raised
        ex.map(fail_on_three, range(6))


def test_real_media_job_runs_the_same_in_both(pool, qc_media):
    paths = [str(qc_media[n]) for n in ("good", "bikes", "tiny")]
    inline = get_executor("inline").map(probe_duration, paths, return_exceptions=True)
    pooled = pool.map(probe_duration, paths, return_exceptions=True)
    assert inline[:2] == pooled[:2] and inline[1] == pytest.approx(10.0)
    assert inline[2].code == pooled[2].code == "video.too_short"


def test_inline_insists_on_picklable_jobs():
    with pytest.raises(AttributeError, match="Can't pickle local object"):
        get_executor("inline").submit(lambda: 1).result()
    assert get_executor("inline", check_picklable=False).submit(lambda: 1).result() == 1


def test_a_new_executor_is_one_registration(scratch_registries):
    @register_executor("test-echo")
    class Echo(InlineExecutor):
        pass

    assert get_executor("test-echo").map(square, [2, 3]) == [4, 9]
    assert "test-echo" in executor_names()


def test_call_bounded_kills_runaway_jobs():
    import time

    with pytest.raises(MediaError) as info:
        call_bounded(time.sleep, 30, timeout_s=0.5)
    assert info.value.code == "video.timeout"
    with pytest.raises(MediaError) as info:
        call_bounded(bytearray, 3 * 1024**3, max_memory_mb=512)
    assert info.value.code == "video.out_of_memory"
    with pytest.raises(MediaError) as info:
        call_bounded(fail_on_three, 3)
    assert info.value.code == "video.truncated"
    assert call_bounded(square, 9) == 81
