"""Typed access to the tables of one state snapshot or transaction.

Wraps the TinyDB handed out by StateStore.read()/transaction(): models in, models out,
and one-line errors for references that match nothing or more than one thing. It does
not decide anything: callers hold the transaction and the rules.
"""

from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from tinydb import Query, TinyDB

from swarmctl.codec import from_json, to_json
from swarmctl.errors import SwarmctlError, cut
from swarmctl.models import Cluster, Network, Node, SecretsKey, Service, StoredFile, Task
from swarmctl.stack.model import StackDeploy

T = TypeVar("T")


class _Table(Generic[T]):
    def __init__(
        self, db: TinyDB, name: str, cls: type[T], noun: str, names: Callable[[T], str]
    ) -> None:
        self._table = db.table(name)
        self._cls = cls
        self._noun = noun
        self._names = names

    def all(self) -> list[T]:
        return [from_json(self._cls, doc) for doc in self._table.all()]

    def get(self, ref: str) -> T:
        """By full ID, by name, or by unique ID prefix (as docker does)."""
        found = self.find(ref)
        if found is None:
            raise SwarmctlError(f"{self._noun} {cut(ref)!r} not found")
        return found

    def find(self, ref: str) -> T | None:
        items = self.all()
        for item in items:
            if item.id == ref or self._names(item) == ref:  # type: ignore[attr-defined]
                return item
        matches = [i for i in items if i.id.startswith(ref)] if ref else []  # type: ignore[attr-defined]
        if len(matches) > 1:
            raise SwarmctlError(
                f"{self._noun} {cut(ref)!r} is ambiguous: it matches {len(matches)} IDs"
            )
        return matches[0] if matches else None

    def put(self, item: T) -> None:
        self._table.upsert(to_json(item), Query().id == item.id)  # type: ignore[attr-defined]

    def put_many(self, items: Iterable[T]) -> None:
        for item in items:
            self.put(item)

    def delete(self, ids: Iterable[str]) -> None:
        wanted = set(ids)
        self._table.remove(Query().id.one_of(list(wanted)))


class Repo:
    def __init__(self, db: TinyDB) -> None:
        self._db = db
        self.nodes = _Table(db, "nodes", Node, "node", lambda n: n.hostname)
        self.networks = _Table(db, "networks", Network, "network", lambda n: n.name)
        self.services = _Table(db, "services", Service, "service", lambda s: s.spec.name)
        self.tasks = _Table(db, "tasks", Task, "task", lambda t: t.id)
        self.deploys = _Table(db, "stack_deploys", StackDeploy, "deploy", lambda d: d.id)
        self.secrets = _Table(db, "secrets", StoredFile, "secret", lambda s: s.name)
        self.configs = _Table(db, "configs", StoredFile, "config", lambda c: c.name)

    def files(self, kind: str) -> "_Table[StoredFile]":
        """The secrets or the configs: kind is "secret" or "config"."""
        return self.secrets if kind == "secret" else self.configs

    def secrets_key(self) -> SecretsKey | None:
        docs = self._db.table("secrets_key").all()
        return from_json(SecretsKey, docs[0]) if docs else None

    def set_secrets_key(self, key: SecretsKey) -> None:
        table = self._db.table("secrets_key")
        table.truncate()
        table.insert(to_json(key))

    def cluster(self) -> Cluster:
        found = self.find_cluster()
        if found is None:
            raise SwarmctlError("this state holds no cluster yet: run `swarmctl init` first")
        return found

    def find_cluster(self) -> Cluster | None:
        docs = self._db.table("cluster").all()
        if not docs:
            return None
        # States written before the built-in pause image hold the old default, "busybox",
        # which no command let a user choose: they get the built-in image too.
        if docs[0].get("helper_image") == "busybox":
            return from_json(Cluster, {**docs[0], "helper_image": ""})
        return from_json(Cluster, docs[0])

    def set_cluster(self, cluster: Cluster) -> None:
        table = self._db.table("cluster")
        table.truncate()
        table.insert(to_json(cluster))
