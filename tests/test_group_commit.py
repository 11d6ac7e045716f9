"""Group commit: drawings that arrive while a group is stored go together in the next one."""

import asyncio
import threading

import pytest
from asgiref.sync import ThreadSensitiveContext

from recognizer.group_commit import GroupCommit

# The groups are stored through Channels' database hop, which tidies the thread's connections.
pytestmark = pytest.mark.django_db


class SlowDatabase:
    """Records each group; the first blocks until released, as a transaction waiting for a lock would."""

    def __init__(self, fail_first: bool = False) -> None:
        self.groups: list[list[str]] = []
        self.release, self.fail_first = threading.Event(), fail_first

    def store(self, items: list[str]) -> None:
        self.groups.append(items)
        if len(self.groups) == 1:
            self.release.wait(5)
            if self.fail_first:
                raise ConnectionError("the database went away")


async def until(condition, timeout: float = 5) -> None:
    for _ in range(int(timeout / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("timed out")


async def test_what_arrives_during_a_store_goes_in_the_next_group_of_at_most_most():
    database = SlowDatabase()
    group = GroupCommit(database.store, most=3)
    first = asyncio.create_task(group.put("a"))
    await until(lambda: database.groups == [["a"]])  # "a" is being stored, alone
    rest = [asyncio.create_task(group.put(name)) for name in "bcde"]
    await asyncio.sleep(0.05)
    assert not first.done() and database.groups == [["a"]]
    database.release.set()
    await asyncio.wait_for(asyncio.gather(first, *rest), 5)
    assert database.groups == [["a"], ["b", "c", "d"], ["e"]]


async def test_a_group_that_fails_fails_each_of_its_own_and_the_next_is_stored():
    database = SlowDatabase(fail_first=True)
    group = GroupCommit(database.store, most=64)
    first = asyncio.create_task(group.put("a"))
    await until(lambda: database.groups == [["a"]])
    second = asyncio.create_task(group.put("b"))
    database.release.set()
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(first, 5)
    await asyncio.wait_for(second, 5)
    assert database.groups == [["a"], ["b"]]


async def test_a_caller_that_goes_away_leaves_its_drawing_to_be_stored():
    database = SlowDatabase()
    group = GroupCommit(database.store, most=64)
    first = asyncio.create_task(group.put("a"))
    await until(lambda: database.groups == [["a"]])
    leaving = asyncio.create_task(group.put("b"))
    await asyncio.sleep(0.01)
    leaving.cancel()  # the socket closed while "b" waited for its group
    database.release.set()
    await asyncio.wait_for(first, 5)
    await until(lambda: len(database.groups) == 2)
    assert database.groups == [["a"], ["b"]]


async def test_groups_are_stored_in_one_thread_whichever_request_started_them():
    # Django runs each HTTP request in a ThreadSensitiveContext, whose thread ends with it.
    threads = []
    group = GroupCommit(lambda items: threads.append(threading.current_thread().name), most=64)
    for _ in range(3):
        async with ThreadSensitiveContext():
            await asyncio.wait_for(group.put("a"), 5)
    assert len(threads) == 3 and len(set(threads)) == 1
