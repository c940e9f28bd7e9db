"""Suite-wide invariants: what sits at a final key is complete and verified."""

from __future__ import annotations

import hashlib
import json
import tempfile
from datetime import datetime
from pathlib import Path

from cog_assets.formats import cog as cogs
from cog_assets.sources.cmr.records import GranuleRecord
from cog_assets.store.layout import RECORD_FILE, granule_key, item_key
from cog_assets.store.objects import Storage, sha256_of


def partial_objects(storage: Storage, dataset_id: str) -> list[str]:
    """Objects at final keys that are not complete and verified (must be empty).

    A staged revision's granule file matches the size and checksum of its CMR record; a stored
    COG passes rio-cogeo's validator; a stored item names a COG that exists with the item's
    checksum.
    """
    problems: list[str] = []
    keys = set(storage.list_keys(f"{dataset_id}/"))
    scratch = Path(tempfile.mkdtemp(prefix="audit-"))
    for key in sorted(k for k in keys if k.endswith("/" + RECORD_FILE)):
        record = GranuleRecord.model_validate_json(storage.get_bytes(key))
        gkey = granule_key(dataset_id, record.concept_id, record.revision_id, record.require_file_name())
        if gkey not in keys:
            problems.append(f"{key}: its granule file {gkey} is missing")
            continue
        data = storage.get_bytes(gkey)
        if record.size_bytes is not None and len(data) != record.size_bytes:
            problems.append(f"{gkey}: {len(data)} bytes, CMR says {record.size_bytes}")
        if record.checksum and hashlib.new(record.checksum_algorithm.lower().replace("-", ""), data).hexdigest() != record.checksum:
            problems.append(f"{gkey}: checksum differs from CMR's")
    for key in sorted(k for k in keys if "/cogs/" in k and k.endswith(".tif")):
        valid, errors, _ = cogs.validate(storage.local_copy(key, scratch))
        if not valid:
            problems.append(f"{key}: not a valid COG ({errors})")
    for key in sorted(k for k in keys if "/items/" in k and not k.endswith("/catalog.json")):
        item = json.loads(storage.get_bytes(key))
        ckey = storage.key_of(item["assets"]["cog_default"]["href"])
        if ckey not in keys:
            problems.append(f"{key}: its COG {ckey} is missing")
            continue
        expected = item["assets"]["cog_default"]["file:checksum"]
        if expected != "1220" + sha256_of(storage.local_copy(ckey, scratch)):
            problems.append(f"{key}: checksum does not match {ckey}")
        if item_key(dataset_id, item["id"], datetime.fromisoformat(item["properties"]["datetime"].replace("Z", "+00:00"))) != key:
            problems.append(f"{key}: holds item {item['id']}")
    return problems
