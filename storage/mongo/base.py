"""What every part of the MongoDB unit of work shares: the database, the session, three writes."""

from __future__ import annotations

from typing import Any

from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from storage.errors import DuplicateKey, NotFound


class MongoBase:
    """The database and the session (a transaction's, a snapshot's, or None) every call passes."""

    def __init__(self, db: Database[dict[str, Any]], session: ClientSession | None) -> None:
        self._db, self._s = db, session

    def _insert(self, collection: str, doc: dict[str, Any]) -> Any:
        """Insert one document and return its _id; DuplicateKey if a unique index refuses it."""
        try:
            return self._db[collection].insert_one(doc, session=self._s).inserted_id
        except DuplicateKeyError as exc:
            raise DuplicateKey(str(exc)) from exc

    def _update(self, collection: str, filter_: dict[str, Any], update: dict[str, Any]) -> None:
        """Update the one matching document; NotFound if none matches."""
        if self._db[collection].update_one(filter_, update, session=self._s).matched_count != 1:
            raise NotFound(f"{collection} {filter_}")

    def _find(self, collection: str, filter_: dict[str, Any]) -> dict[str, Any] | None:
        """The first matching document, or None."""
        return self._db[collection].find_one(filter_, session=self._s)
