"""The lifecycle state machine."""

from pilothouse.runtime.lifecycle import Lifecycle, State


def test_transitions_and_listeners() -> None:
    seen: list[State] = []
    life = Lifecycle()
    life.subscribe(seen.append)
    life.mark_ready()
    life.drain()
    assert life.undrain()
    life.begin_shutdown("SIGTERM received")
    assert not life.undrain()
    life.mark_stopped()
    assert seen == [State.STARTING, State.READY, State.DRAINING, State.READY, State.DRAINING, State.STOPPED]


def test_drain_requested_while_starting_holds_after_startup() -> None:
    life = Lifecycle()
    life.drain("maintenance")
    life.mark_ready()
    assert life.state is State.DRAINING and not life.accepting_traffic
