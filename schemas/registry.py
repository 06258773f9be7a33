"""The published schema versions, read from ``schemas/avro/<subject>/v<N>.avsc``.

Every version ever published stays in the repository; a writer's version is
found by the CRC-64-AVRO fingerprint of its Parsing Canonical Form, which is
what the single-object encoding puts in front of every message.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from schemas.exceptions import UnknownSchemaError

AVRO_DIR = Path(__file__).resolve().parent / "avro"

ORDER_EVENT = "order_event"
CUSTOMER_PREFERENCES = "customer_preferences"
NOTIFICATION_SENT = "notification_sent"
CUSTOMER_SUPPRESSION = "customer_suppression"

_VERSION_FILE = re.compile(r"^v(\d+)\.avsc$")


@dataclass(frozen=True)
class SchemaVersion:
    subject: str
    version: int
    schema: Any  # fastavro's parsed schema
    fingerprint: bytes  # 8 bytes, little-endian, as on the wire
    path: Path


class SchemaRegistry:
    """File-backed registry of every published version of every subject."""

    def __init__(self, root: Path = AVRO_DIR) -> None:
        self._by_subject: dict[str, list[SchemaVersion]] = {}
        self._by_fingerprint: dict[bytes, SchemaVersion] = {}
        for subject_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            versions = []
            for path in subject_dir.iterdir():
                match = _VERSION_FILE.match(path.name)
                if not match:
                    continue
                parsed = fastavro.parse_schema(json.loads(path.read_text(encoding="utf-8")))
                fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))
                version = SchemaVersion(subject_dir.name, int(match.group(1)), parsed, fp, path)
                versions.append(version)
                self._by_fingerprint[fp] = version
            self._by_subject[subject_dir.name] = sorted(versions, key=lambda v: v.version)

    def versions(self, subject: str) -> list[SchemaVersion]:
        return list(self._by_subject[subject])

    def latest(self, subject: str) -> SchemaVersion:
        return self._by_subject[subject][-1]

    def version(self, subject: str, number: int) -> SchemaVersion:
        for candidate in self._by_subject[subject]:
            if candidate.version == number:
                return candidate
        raise UnknownSchemaError(f"{subject} has no published version {number}")

    def by_fingerprint(self, subject: str, fp: bytes) -> SchemaVersion:
        found = self._by_fingerprint.get(fp)
        if found is None or found.subject != subject:
            raise UnknownSchemaError(
                f"writer schema fingerprint {fp.hex()} is not a published {subject} version; "
                "publish the .avsc under schemas/avro/ before producing with it"
            )
        return found


@functools.cache
def default_registry() -> SchemaRegistry:
    return SchemaRegistry()
