"""knarr.runtime.channel: JSON messages both ways over a pair of pipes, EOF when the
other side's ends are gone, errors rebuilt on the receiving side."""

import os

import pytest

from knarr.errors import FailedPrecondition, NotFound
from knarr.runtime.channel import error_from, pair


def test_messages_go_both_ways_and_eof_follows_the_other_sides_close():
    parent, child = pair()
    assert all(not os.get_inheritable(fd) for fd in parent.fds() + child.fds())
    child.send("pid", pid=42)
    child.send("ready")
    parent.send("continue", hook_state={"id": "x"})
    assert child.expect("continue", "wait")["hook_state"] == {"id": "x"}
    assert parent.recv() == {"kind": "pid", "pid": 42}
    assert parent.expect("ready", "wait") == {"kind": "ready"}
    child.close()
    assert parent.recv() is None
    parent.close()


def test_big_messages_arrive_whole_across_a_fork():
    parent, child = pair()
    pid = os.fork()
    if pid == 0:
        try:
            parent.close()
            message = child.recv()
            child.send("echo", size=len(message["data"]))
        finally:
            os._exit(0)
    child.close()
    parent.send("big", data="y" * 200_000)
    assert parent.expect("echo", "echo") == {"kind": "echo", "size": 200_000}
    assert os.waitpid(pid, 0)[1] == 0
    assert parent.recv() is None
    parent.close()


def test_an_error_is_raised_as_its_category_and_nonblocking_recv_says_so():
    parent, child = pair()
    child.send_error(NotFound("no such thing"))
    with pytest.raises(NotFound, match="no such thing"):
        parent.expect("ready", "wait")
    parent.set_blocking(False)
    with pytest.raises(BlockingIOError):
        parent.recv()
    parent.set_blocking(True)
    assert isinstance(error_from({"category": "Bogus"}), FailedPrecondition)
    parent.close()
    child.close()
