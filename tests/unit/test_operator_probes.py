"""What /healthz and /readyz answer in each role, and the status conditions handlers write."""

from arenastack_operator.conditions import upsert_condition
from arenastack_operator.health import Probe, Role


def probe(**kwargs) -> Probe:
    now = {"t": 100.0}
    p = Probe(identity="op-1", contact_max_age=15, clock=lambda: now["t"], **kwargs)
    p.now = now  # type: ignore[attr-defined]
    return p


def test_starting_is_live_but_not_ready():
    p = probe()
    assert p.live()[0]
    assert not p.ready()[0]


def test_standby_is_ready_while_it_reaches_the_apiserver():
    p = probe(last_contact=lambda: 95.0)
    p.role = Role.STANDBY
    assert p.ready() == (True, "ok")
    p.now["t"] = 111.0
    ok, reason = p.ready()
    assert not ok and "apiserver" in reason
    assert p.live()[0]  # a restart would not help reaching the apiserver


def test_leader_is_ready_once_handlers_started_and_dead_if_they_stopped():
    started = {"ready": False, "alive": True}
    p = probe(kopf_ready=lambda: started["ready"], kopf_alive=lambda: started["alive"])
    p.role = Role.LEADER
    assert not p.ready()[0]
    started["ready"] = True
    assert p.ready()[0] and p.live()[0]
    started["alive"] = False
    assert not p.live()[0]


def test_stopping_is_not_ready_but_live():
    p = probe()
    p.role = Role.STOPPING
    assert not p.ready()[0] and p.live()[0]


def test_condition_transition_time_moves_only_when_status_changes():
    first = upsert_condition(
        [{"type": "Ready", "status": "False", "reason": "X", "message": "",
          "lastTransitionTime": "t0"}],
        type_="Progressing", status="True", reason="Observed", message="m1",
        generation=1, now="t1",
    )  # fmt: skip
    assert [c["type"] for c in first] == ["Ready", "Progressing"]
    assert first[1] == {
        "type": "Progressing", "status": "True", "reason": "Observed", "message": "m1",
        "lastTransitionTime": "t1", "observedGeneration": 1,
    }  # fmt: skip
    same = upsert_condition(
        first, type_="Progressing", status="True", reason="Observed", message="m2",
        generation=2, now="t2",
    )  # fmt: skip
    assert same[1]["lastTransitionTime"] == "t1"
    assert (same[1]["message"], same[1]["observedGeneration"]) == ("m2", 2)
    flipped = upsert_condition(
        same, type_="Progressing", status="False", reason="Done", message="",
        generation=2, now="t3",
    )  # fmt: skip
    assert flipped[1]["lastTransitionTime"] == "t3"
    assert flipped[0] == first[0]
