"""A cluster's health says why it is down only while it is down."""

from federator.kube.clients import Health


def test_a_cluster_that_answers_again_no_longer_names_its_last_failure() -> None:
    health = Health("onprem", clock=lambda: 100.0)
    health.mark_failed("ClientConnectorError: Cannot connect to 127.0.0.1:16443")
    assert (health.up, health.last_error, health.down_since) == (
        False,
        "ClientConnectorError: Cannot connect to 127.0.0.1:16443",
        100.0,
    )

    health.mark_ok()

    assert (health.up, health.last_error, health.down_since) == (True, "", None)


def test_a_cluster_still_failing_names_its_latest_failure() -> None:
    health = Health("onprem", clock=lambda: 100.0)
    health.mark_failed("first")
    health.mark_failed("second")
    assert (health.up, health.last_error) == (False, "second")
