"""JSON log lines: one object per line, for our records and for kopf's own."""

import io
import json
import logging

import kopf
import pytest

from arenastack_operator.logs import setup_logging


@pytest.fixture
def captured():
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    setup_logging("DEBUG", stream=stream, static_fields={"identity": "op-1"})
    yield stream
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    logging.captureWarnings(False)


def lines(stream) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_every_record_is_one_json_object(captured):
    logging.getLogger("arenastack_operator").info(
        "Acquired the lease", extra={"lease": "arenastack-operator"}
    )
    logging.getLogger("kubernetes.client").warning("multi\nline\nmessage")
    first, second = lines(captured)
    assert first["message"] == "Acquired the lease"
    assert first["level"] == "INFO"
    assert first["logger"] == "arenastack_operator"
    assert first["lease"] == "arenastack-operator"
    assert first["identity"] == "op-1"
    assert "timestamp" in first
    assert second["message"] == "multi\nline\nmessage"
    assert second["level"] == "WARNING"


def test_kopf_object_records_carry_the_object_reference_not_internals(captured):
    body = kopf.Body(
        {
            "apiVersion": "ray.io/v1",
            "kind": "RayCluster",
            "metadata": {"name": "rc", "namespace": "ns", "uid": "u-1"},
        }
    )
    kopf.LocalObjectLogger(body=body, settings=kopf.OperatorSettings()).info("Handler succeeded.")
    (record,) = lines(captured)
    assert record["logger"] == "kopf.objects"
    assert record["message"] == "Handler succeeded."
    assert record["object"] == {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "name": "rc",
        "namespace": "ns",
        "uid": "u-1",
    }
    assert "settings" not in record and "k8s_skip" not in record and "k8s_ref" not in record


def test_exceptions_are_inside_the_json_object(captured):
    try:
        raise ValueError("bad")
    except ValueError:
        logging.getLogger("x").exception("failed")
    (record,) = lines(captured)
    assert "ValueError: bad" in record["exc_info"]


def test_kopf_thread_signal_warning_is_dropped(captured):
    logging.getLogger("kopf._core.reactor.running").warning(
        "OS signals are ignored: running not in the main thread."
    )
    logging.getLogger("kopf._core.reactor.running").warning("something else")
    assert [r["message"] for r in lines(captured)] == ["something else"]


def test_kopf_per_object_successes_only_at_debug():
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    body = kopf.Body({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}})
    object_logger = kopf.LocalObjectLogger(body=body, settings=kopf.OperatorSettings())
    try:
        for level, expected in (("INFO", ["failed"]), ("DEBUG", ["succeeded", "failed"])):
            stream = io.StringIO()
            setup_logging(level, stream=stream)
            object_logger.info("succeeded")
            object_logger.warning("failed")
            assert [r["message"] for r in lines(stream)] == expected, level
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        logging.getLogger("kopf.objects").setLevel(logging.NOTSET)
        logging.captureWarnings(False)
