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
