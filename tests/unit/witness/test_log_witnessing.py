"""The log engine publishes only checkpoints its witnesses cosigned (keyless.log.witnessing)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from keyless.errors import StorageError, Unavailable
from keyless.formats.cosignature import Ed25519Cosigner
from keyless.formats.note import SignedNote
from keyless.formats.note_keys import NoteSigner
from keyless.formats.vkey import VerifierKey
from keyless.formats.witnesspolicy import WitnessPolicy
from keyless.keys import InMemorySigner
from keyless.log import TransparencyLog
from keyless.log.engine import AddResult
from keyless.log.witnessing import PostFn, ProveFn, WitnessEndpoint, Witnessing
from keyless.server.witnessing import KvPublishedStore, WitnessingSettings, policy_text
from keyless.storage import open_storage
from keyless.storage.memory import MemoryBackend
from keyless.storage.model import LogHead
from keyless.witness.routes import SIZE_MEDIA_TYPE
from keyless.witness.service import LogConfig, WitnessRefusal, WitnessService
from keyless.witness.store import WitnessStore

ORIGIN = "log.test/rekor"


class Witnesses:
    """In-process witnesses behind a fake transport that can take one of them down."""

    def __init__(self, tmp_path: Path, log_vkey: VerifierKey, count: int) -> None:
        self.services: dict[str, WitnessService] = {}
        self.endpoints = []
        self.down: set[str] = set()
        for i in range(count):
            cosigner = Ed25519Cosigner(f"w{i}.test", ed25519.Ed25519PrivateKey.generate())
            store = WitnessStore(tmp_path / f"w{i}" / "witness.db")
            url = f"http://w{i}.test"
            self.services[url] = WitnessService(store, [cosigner], LogConfig.from_vkeys([log_vkey]))
            self.endpoints.append(WitnessEndpoint(url, cosigner.vkey))

    async def post(self, url: str, body: bytes, _timeout: float) -> tuple[int, str, bytes]:
        base = url.removesuffix("/add-checkpoint")
        if base in self.down:
            raise OSError("connection refused")
        try:
            return 200, "text/plain", await self.services[base].add_checkpoint(body)
        except WitnessRefusal as exc:
            if exc.status == 409 and exc.size is not None:
                return 409, SIZE_MEDIA_TYPE, f"{exc.size}\n".encode()
            return exc.status, "application/json", str(exc).encode()


async def start_log(backend: MemoryBackend, witnessing: Witnessing, key: ed25519.Ed25519PrivateKey
                    ) -> TransparencyLog:
    storage = await open_storage("memory://", backend=backend)
    log = TransparencyLog(
        storage, name="rekor", origin=ORIGIN,
        signer=NoteSigner.ed25519(ORIGIN, InMemorySigner(key)), seed=[b"seed"],
        publisher=witnessing,
    )
    await log.start()
    return log


class Setup:
    """A log key, ``count`` in-process witnesses and one memory store with its published-
    checkpoint store, shared by every process (:meth:`witnessing`) of the test."""

    def __init__(self, tmp_path: Path, count: int) -> None:
        self.key = ed25519.Ed25519PrivateKey.generate()
        self.witnesses = Witnesses(
            tmp_path, VerifierKey.for_ed25519(ORIGIN, self.key.public_key()), count
        )
        self.backend = MemoryBackend()

    async def open(self) -> Setup:
        self.store = KvPublishedStore((await open_storage("memory://", backend=self.backend)).kv)
        return self

    def witnessing(self, quorum: int, post: PostFn | None = None) -> Witnessing:
        return Witnessing(self.witnesses.endpoints, quorum=quorum, timeout=5, fail_open=False,
                          post=post or self.witnesses.post, published=self.store)

    async def start_log(self, witnessing: Witnessing) -> TransparencyLog:
        return await start_log(self.backend, witnessing, self.key)


def policy(witnesses: Witnesses, key: ed25519.Ed25519PrivateKey, quorum: int) -> WitnessPolicy:
    settings = WitnessingSettings(tuple(witnesses.endpoints), quorum)
    log_vkey = VerifierKey.for_ed25519(ORIGIN, key.public_key())
    return WitnessPolicy.parse(policy_text(settings, [(log_vkey, f"http://{ORIGIN}")]))


async def test_checkpoints_carry_the_quorum_or_are_withheld(tmp_path: Path) -> None:
    setup = await Setup(tmp_path, 2).open()
    key, witnesses = setup.key, setup.witnesses
    witnessing = setup.witnessing(quorum=2)
    log = await setup.start_log(witnessing)
    result = await log.add(b"entry 1")
    note = SignedNote.parse(result.checkpoint)
    assert [s.name for s in note.signatures] == [ORIGIN, "w0.test", "w1.test"]
    assert await log.checkpoint() == result.checkpoint
    assert policy(witnesses, key, 2).verify(result.checkpoint).cosigned_at.keys() == {"w1", "w2"}

    # one witness down: the new checkpoint is not published, the write gets 503
    witnesses.down.add(witnesses.endpoints[1].url)
    with pytest.raises(Unavailable, match="1 of the 2"):
        await log.add(b"entry 2")
    assert await log.checkpoint() == result.checkpoint
    assert witnessing.state["w1.test"].failures == 1

    # back up: a resubmission publishes the head covering it
    witnesses.down.clear()
    again = await log.add(b"entry 2")
    assert again.duplicate and again.tree_size == 3
    assert len(SignedNote.parse(again.checkpoint).signatures) == 3
    await log.close()

    # a restarted log does not know the witnesses' sizes: 409 tells them, it resynchronises
    fresh = setup.witnessing(quorum=2)
    witnesses.down.add(witnesses.endpoints[0].url)
    log = await setup.start_log(fresh)
    assert await log.checkpoint() == again.checkpoint  # restored, while no quorum
    witnesses.down.clear()
    third = await log.add(b"entry 3")
    assert third.tree_size == 4 and len(SignedNote.parse(third.checkpoint).signatures) == 3
    assert fresh.state["w1.test"].sizes["rekor"] == 4
    await log.close()


async def test_fail_open_publishes_without_the_quorum(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    witnesses = Witnesses(tmp_path, VerifierKey.for_ed25519(ORIGIN, key.public_key()), 2)
    witnesses.down.add(witnesses.endpoints[0].url)
    witnessing = Witnessing(witnesses.endpoints, quorum=2, timeout=5, fail_open=True,
                            post=witnesses.post)
    log = await start_log(MemoryBackend(), witnessing, key)
    result = await log.add(b"entry")
    assert [s.name for s in SignedNote.parse(result.checkpoint).signatures] == [ORIGIN, "w1.test"]
    assert witnessing.withheld == 1 + 1  # the start and this one lacked the quorum
    await log.close()


async def test_a_forked_log_gets_no_cosignature(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    witnesses = Witnesses(tmp_path, VerifierKey.for_ed25519(ORIGIN, key.public_key()), 2)

    def witnessing() -> Witnessing:
        return Witnessing(witnesses.endpoints, quorum=1, timeout=5, fail_open=False,
                          post=witnesses.post)

    honest = await start_log(MemoryBackend(), witnessing(), key)
    await honest.add(b"a")
    await honest.add(b"b")
    await honest.close()
    forked_with = witnessing()
    fork = await start_log(MemoryBackend(), forked_with, key)  # same key, other history
    with pytest.raises(Unavailable):
        await fork.add(b"c")
    with pytest.raises(Unavailable):
        await fork.checkpoint()
    assert all(s.refusals >= 1 for s in forked_with.state.values())
    await fork.close()


class Announcing(Witnessing):
    """Witnessing that sets an event each time a checkpoint is published."""

    published_event: asyncio.Event

    async def publish(self, log: str, head: LogHead, consistency: ProveFn) -> bytes:
        note = await super().publish(log, head, consistency)
        self.published_event.set()
        return note


async def test_an_idle_log_publishes_once_the_witnesses_are_back(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    witnesses = Witnesses(tmp_path, VerifierKey.for_ed25519(ORIGIN, key.public_key()), 1)
    witnessing = Announcing(witnesses.endpoints, quorum=1, timeout=5, fail_open=False,
                            post=witnesses.post)
    witnessing.published_event = asyncio.Event()
    storage = await open_storage("memory://", backend=MemoryBackend())
    log = TransparencyLog(
        storage, name="rekor", origin=ORIGIN,
        signer=NoteSigner.ed25519(ORIGIN, InMemorySigner(key)), seed=[b"seed"],
        publisher=witnessing, republish_after=0.01,
    )
    await log.start()
    witnesses.down.add(witnesses.endpoints[0].url)
    witnessing.published_event.clear()
    with pytest.raises(Unavailable):
        await log.add(b"entry")
    witnesses.down.clear()
    await asyncio.wait_for(witnessing.published_event.wait(), 10)
    assert SignedNote.parse(await log.checkpoint()).text.split(b"\n")[1] == b"2"
    await log.close()


class Gate:
    """A witness transport that holds one process's requests until told to go on."""

    def __init__(self, post: PostFn) -> None:
        self._post = post
        self.waiting = asyncio.Event()
        self.go = asyncio.Event()

    async def post(self, url: str, body: bytes, timeout: float) -> tuple[int, str, bytes]:
        self.waiting.set()
        await self.go.wait()
        return await self._post(url, body, timeout)


def size_of(note: bytes) -> int:
    return int(SignedNote.parse(note).text.split(b"\n")[1])


async def test_processes_of_one_log_publish_for_each_other(tmp_path: Path) -> None:
    """Two processes sequence one log (``--workers 2``); the one whose checkpoint a witness has
    already passed is covered by the newer checkpoint: no refusal, no failed write."""
    setup = await Setup(tmp_path, 2).open()
    gate = Gate(setup.witnesses.post)
    gate.go.set()
    slow = setup.witnessing(quorum=2, post=gate.post)
    fast = setup.witnessing(quorum=2)
    first = await setup.start_log(slow)
    second = await setup.start_log(fast)
    # the slow process sequences entry "a" (size 2), but a witness hears of it only after the
    # fast one has sequenced and published "b" (size 3)
    gate.go.clear()
    gate.waiting.clear()
    pending = asyncio.create_task(first.add(b"a"))
    await asyncio.wait_for(gate.waiting.wait(), 10)
    second_result = await second.add(b"b")
    assert second_result.tree_size == 3
    gate.go.set()
    first_result = await asyncio.wait_for(pending, 10)
    assert first_result.index == 1
    assert first_result.tree_size == 3  # proven under the newer, witnessed checkpoint
    assert first_result.checkpoint == second_result.checkpoint
    signers = [s.name for s in SignedNote.parse(first_result.checkpoint).signatures]
    assert signers == [ORIGIN, "w0.test", "w1.test"]
    for witnessing in (slow, fast):
        assert witnessing.withheld == 0
        assert all(s.refusals == 0 and s.failures == 0 for s in witnessing.state.values())
    # each process serves the newest published checkpoint, whichever process published it
    for log in (first, second):
        assert size_of(await log.checkpoint()) == 3
    third = await second.add(b"c")
    assert size_of(await first.checkpoint()) == third.tree_size == 4
    await first.close()
    await second.close()


class Overtaken:
    """Process A sequences size 2, process B size 3; B's checkpoint reaches witness w1 before
    A's, and B's request to w0 is held: A is superseded at w1 while B has not stored its
    checkpoint yet. Every request A sends is recorded."""

    def __init__(self, setup: Setup, timeout: float) -> None:
        self.setup = setup
        self.w0, self.w1 = (e.url + "/add-checkpoint" for e in setup.witnesses.endpoints)
        self.a_gate, self.b_w0 = Gate(setup.witnesses.post), Gate(setup.witnesses.post)
        self.a_gate.go.set()
        self.b_w0.go.set()
        self.b_w1_cosigned = asyncio.Event()
        self.a_superseded = asyncio.Event()
        self.a_posts: list[str] = []
        self.a_reads_after_superseded = 0
        self.timeout = timeout

    async def a_post(self, url: str, body: bytes, timeout: float) -> tuple[int, str, bytes]:
        self.a_posts.append(url)
        answer = await self.a_gate.post(url, body, timeout)
        if url == self.w1 and answer[0] == 409:
            self.a_superseded.set()
        return answer

    async def b_post(self, url: str, body: bytes, timeout: float) -> tuple[int, str, bytes]:
        if url == self.w0:
            return await self.b_w0.post(url, body, timeout)
        answer = await self.setup.witnesses.post(url, body, timeout)
        if answer[0] == 200:
            self.b_w1_cosigned.set()
        return answer

    async def load(self, log: str) -> bytes | None:  # A's view of the published store
        note = await self.setup.store.load(log)
        if self.a_superseded.is_set():
            self.a_reads_after_superseded += 1
        return note

    async def save(self, log: str, note: bytes) -> None:
        await self.setup.store.save(log, note)

    async def start(self) -> tuple[TransparencyLog, TransparencyLog, asyncio.Task[AddResult],
                                   asyncio.Task[AddResult]]:
        endpoints = self.setup.witnesses.endpoints
        a = await self.setup.start_log(Witnessing(
            endpoints, quorum=2, timeout=self.timeout, fail_open=False, post=self.a_post,
            published=self))
        b = await self.setup.start_log(Witnessing(
            endpoints, quorum=2, timeout=self.timeout, fail_open=False, post=self.b_post,
            published=self.setup.store))
        self.a_posts.clear()
        self.a_gate.go.clear()
        self.a_gate.waiting.clear()
        a_task = asyncio.create_task(a.add(b"a"))
        await asyncio.wait_for(self.a_gate.waiting.wait(), 10)  # A is at size 2
        self.b_w0.go.clear()
        self.b_w0.waiting.clear()
        b_task = asyncio.create_task(b.add(b"b"))
        await asyncio.wait_for(self.b_w0.waiting.wait(), 10)  # B is at size 3
        await asyncio.wait_for(self.b_w1_cosigned.wait(), 10)  # and w1 cosigned it
        self.a_gate.go.set()
        return a, b, a_task, b_task


async def test_a_superseded_process_waits_for_the_checkpoint_that_overtook_it(
    tmp_path: Path,
) -> None:
    """A process whose checkpoint a witness has passed does not offer another one: the newer
    checkpoint covers its batch, and it waits for the process publishing it to store it. (Two
    busy workers that each offered their newest head instead kept overtaking each other at the
    witnesses on a loaded machine, until writes got 503.)"""
    setup = await Setup(tmp_path, 2).open()
    race = Overtaken(setup, timeout=5)
    a, b, a_task, b_task = await race.start()
    await asyncio.wait_for(race.a_superseded.wait(), 10)
    race.b_w0.go.set()  # B goes on: its checkpoint gets the quorum and is stored
    a_result, b_result = await asyncio.wait_for(asyncio.gather(a_task, b_task), 10)
    assert sorted(race.a_posts) == [race.w0, race.w1]  # A offered size 2 once, nothing more
    assert (a_result.index, a_result.tree_size) == (1, 3)
    assert a_result.checkpoint == b_result.checkpoint  # proven under B's witnessed checkpoint
    assert race.a_reads_after_superseded >= 1
    for log in (a, b):
        assert await log.checkpoint() == b_result.checkpoint
        await log.close()


async def test_a_superseded_process_publishes_itself_if_the_newer_one_is_never_stored(
    tmp_path: Path,
) -> None:
    """The process that overtook it died before storing its checkpoint: after one round's time
    the superseded process offers the newest committed head itself; its writes do not hang."""
    setup = await Setup(tmp_path, 2).open()
    race = Overtaken(setup, timeout=0.5)
    a, b, a_task, b_task = await race.start()  # B's request to w0 is never answered
    a_result = await asyncio.wait_for(a_task, 10)
    assert (a_result.index, a_result.tree_size) == (1, 3)
    assert len(race.a_posts) == 4  # size 2 to both witnesses, then size 3 to both
    signers = [s.name for s in SignedNote.parse(a_result.checkpoint).signatures]
    assert signers == [ORIGIN, "w0.test", "w1.test"]
    with pytest.raises(Unavailable):
        await asyncio.wait_for(b_task, 10)  # B's round timed out at w0
    race.b_w0.go.set()
    for log in (a, b):
        assert await log.checkpoint() == a_result.checkpoint
        await log.close()


async def test_the_published_checkpoint_never_goes_back(tmp_path: Path) -> None:
    setup = await Setup(tmp_path, 1).open()
    store = setup.store
    log = await setup.start_log(setup.witnessing(quorum=1))
    older = (await log.add(b"a")).checkpoint
    newer = (await log.add(b"b")).checkpoint
    await store.save("rekor", older)  # a slower process finishing late
    assert await store.load("rekor") == newer
    await log.close()


async def test_a_storage_error_while_publishing_fails_the_batch_not_the_log(
    tmp_path: Path,
) -> None:
    """The published checkpoint is read and stored in the shared store after each batch: a
    database error there fails that batch's writes (as a commit error does), and the log goes on
    taking entries; it never stops its integrator with the writers left waiting."""
    setup = await Setup(tmp_path, 1).open()
    backend = setup.backend
    log = await setup.start_log(setup.witnessing(quorum=1))
    backend.faults.fail("kv")
    with pytest.raises(StorageError, match="injected"):
        await asyncio.wait_for(log.add(b"entry 1"), 30)
    again = await asyncio.wait_for(log.add(b"entry 1"), 30)
    assert again.tree_size == 2 and await log.checkpoint() == again.checkpoint
    await log.close()
