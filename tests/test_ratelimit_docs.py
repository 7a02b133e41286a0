"""The rate-limit docs' examples, run as written (docs/rate-limits.md, writing-policies.md)."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest

import resilience as rs
from resilience.engine import GatePolicy
from resilience.profiles.saas_litellm.emulator import Emulator
from tests.docs_blocks import run_block
from tests.threads import WAIT, join_all

pytest_plugins = ["tests.emulator_fixtures"]

DOCS = Path(__file__).resolve().parent.parent / "docs"


def example(page: str, name: str, **names: Any) -> dict[str, Any]:
    """Run the block after ``<!-- example: NAME -->`` in docs/PAGE; return its namespace."""
    text = (DOCS / page).read_text()
    match = re.search(rf"<!-- example: {name} -->\n```python\n(.*?)```", text, re.DOTALL)
    assert match is not None, f"docs/{page} lost its {name!r} example"
    namespace: dict[str, Any] = {"__name__": f"docs_{name}", **names}
    run_block(page, match.group(1), namespace)
    return namespace


def test_every_python_block_of_the_how_to_is_run_here() -> None:
    """Each python block of docs/rate-limits.md has a marker that a test below runs."""
    text = (DOCS / "rate-limits.md").read_text()
    blocks = text.count("```python")
    markers = re.findall(r"<!-- example: ([\w-]+) -->\n```python", text)
    assert markers == ["rpm", "team-limits", "acquire", "adaptive"]
    assert blocks == len(markers)


def test_the_rpm_example_decorates_a_function() -> None:
    """rate=500 per minute, a decorated function that runs."""
    ns = example("rate-limits.md", "rpm")
    assert ns["complete"]("hi") is None
    assert ns["rpm"].available == pytest.approx(499, abs=0.1)


def test_the_team_limits_example_paces_a_real_llm_call_and_settles_its_tokens(
    emu: Emulator,
) -> None:
    """Against the emulator: one request taken, the tokens settled to what the reply says."""
    ns = example(
        "rate-limits.md",
        "team-limits",
        API_URL=emu.url,
        VIRTUAL_KEY=emu.virtual_key,
        TEAM=emu.team_id,
    )
    reply = ns["reply"]
    assert reply["response"]["finish_reason"] == "stop"
    rpm, tpm = ns["team_limits"](emu.team_id).policies
    assert ns["team_limits"](emu.team_id) is ns["team_limits"](emu.team_id)  # one per team
    assert rpm.name == "acme-corp:rpm"
    assert rpm.available == pytest.approx(59, abs=0.5)
    used = reply["metadata"]["tokens_used"]
    # Settled to what was used (the real clock refills 667 units a second meanwhile).
    assert 40_000 - used - 0.01 <= tpm.available <= 40_000
    assert emu.virtual_key not in repr(rpm) + repr(tpm)
    ns["api"].close()


def test_the_acquire_example_settles_by_hand() -> None:
    """An estimate of 1,500 settled at 1,210."""
    ns = example("rate-limits.md", "acquire")
    assert 40_000 - 1_210 - 0.01 <= ns["tpm"].available <= 40_000 - 1_200


def test_the_adaptive_example_learns_from_429s() -> None:
    """rs.transient: a 429 lowers the rate."""
    ns = example("rate-limits.md", "adaptive")
    rpm = ns["rpm"]

    class Status(Exception):
        status_code = 429

    with pytest.raises(Status):
        rpm.call(lambda: (_ for _ in ()).throw(Status()))
    assert rpm.current_rate == pytest.approx(480)


def test_the_per_tenant_gate_receives_the_calls_arguments() -> None:
    """writing-policies.md: a gate with arguments = True sees (args, kwargs); blocks see none."""
    gate: GatePolicy = example("writing-policies.md", "per-tenant")["OnePerTenant"]()
    inside = threading.Event()
    release = threading.Event()
    seen: list[object] = []

    @gate
    def work(tenant: str) -> str:
        inside.set()
        release.wait(WAIT)
        return tenant

    thread = threading.Thread(target=lambda: seen.append(work("a")))
    thread.start()
    try:
        assert inside.wait(WAIT)
        with pytest.raises(rs.RejectedError, match="'a'"):
            work("a")
        assert gate.call(lambda tenant: tenant, "b") == "b"
    finally:
        release.set()
        join_all([thread])
    assert seen == ["a"]
    with gate:  # a block: admit(None), no arguments
        assert gate.running == {""}  # type: ignore[attr-defined]
    assert gate.running == set()  # type: ignore[attr-defined]
