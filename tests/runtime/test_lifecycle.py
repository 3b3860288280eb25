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


def test_app_code_reaches_the_process_runtime() -> None:
    import pilothouse
    from pilothouse.config import config_from_dict
    from pilothouse.runtime.runtime import Runtime

    runtime = Runtime(config_from_dict({"service": {"name": "svc"}}))
    assert pilothouse.current_runtime() is runtime
    runtime.lifecycle.mark_ready()
    assert pilothouse.current_runtime().lifecycle.state is State.READY
