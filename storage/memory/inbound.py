"""The inbound SMS log and the processed SP1 frames, in memory."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from storage.errors import DuplicateKey, NotFound
from storage.memory.tables import Part, numeric_id
from storage.models import FrameRecord, InboundRecord


class InboundPart(Part):
    """`Inbound` of the contract; inbound ids are integers as strings (1, 2, ...)."""

    def find_inbound(self, route: str, provider_message_id: str) -> InboundRecord | None:
        return next(
            (
                r
                for r in self._t.inbound_sms.values()
                if r.route == route and r.provider_message_id == provider_message_id
            ),
            None,
        )

    def insert_inbound(self, record: InboundRecord) -> None:
        t = self._w()
        if record.provider_message_id is not None and self.find_inbound(
            record.route, record.provider_message_id
        ):
            raise DuplicateKey(f"inbound {record.route} {record.provider_message_id}")
        inbound_id = t.next_id("inbound_sms")
        t.inbound_sms[inbound_id] = replace(record, id=str(inbound_id))

    def count_redelivery(self, inbound_id: str) -> None:
        t = self._w()
        key = numeric_id(inbound_id)
        record = t.inbound_sms.get(key) if key is not None else None
        if key is None or record is None:
            raise NotFound(f"inbound {inbound_id}")
        t.inbound_sms[key] = replace(record, deliveries=record.deliveries + 1)

    def inbound_for(self, sender: str, limit: int = 50) -> list[InboundRecord]:
        newest_first = sorted(self._t.inbound_sms.items(), reverse=True)
        return [r for _, r in newest_first if r.sender == sender][:limit]

    def inbound_for_reference(self, reference: str) -> list[InboundRecord]:
        return [r for _, r in sorted(self._t.inbound_sms.items()) if r.reference == reference]

    def inbound_outcomes(self, since: float, until: float) -> dict[str, int]:
        found = Counter(
            r.outcome for r in self._t.inbound_sms.values() if since <= r.received_at < until
        )
        return dict(found)

    def find_frame(self, key_id: int, counter: int) -> FrameRecord | None:
        return self._t.frames.get((key_id, counter))

    def insert_frame(self, record: FrameRecord) -> None:
        t = self._w()
        if (record.key_id, record.counter) in t.frames:
            raise DuplicateKey(f"frame {record.key_id}:{record.counter}")
        t.frames[(record.key_id, record.counter)] = record
