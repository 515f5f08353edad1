"""Where payloads arrive, for ``payload_change_sensor``: the source interface and its sources.

:class:`DirectorySource` watches a directory of ``<workflow_id>.json`` files, :class:`S3Source`
``<prefix><workflow_id>.json`` objects in an S3 bucket, :class:`SQSSource` an SQS queue of
``{"workflow_id": ..., "payload": ...}`` messages (deleted once stored). A source lists
what is there now and reads only what changed since the sensor last looked (see
:mod:`dotflow_dagster.sources.base` to write one), and decodes it with :func:`decode_json`.

Example:
    >>> import os, tempfile
    >>> from dotflow_dagster.sources import ArrivedPayload, DirectorySource
    >>> inbox = tempfile.mkdtemp()
    >>> with open(os.path.join(inbox, "orders.json.tmp"), "w") as f:  # write, then rename
    ...     _ = f.write('[1, 2, 3]')
    >>> os.replace(os.path.join(inbox, "orders.json.tmp"), os.path.join(inbox, "orders.json"))
    >>> scan = DirectorySource(inbox).scan(known={}, max_payload_bytes=1_000_000)
    >>> [os.path.basename(location) for location in scan.present]
    ['orders.json']
    >>> [item for item in scan.items if isinstance(item, ArrivedPayload)][0].payload
    [1, 2, 3]
"""

from dotflow_dagster.sources.base import ArrivedPayload, BadPayload, PayloadSource, Scan, ScanItem, decode_json
from dotflow_dagster.sources.directory import DirectorySource
from dotflow_dagster.sources.s3 import S3Source, S3SourceError
from dotflow_dagster.sources.sqs import SQSSource, SQSSourceError

__all__ = [
    "ArrivedPayload",
    "BadPayload",
    "DirectorySource",
    "PayloadSource",
    "S3Source",
    "S3SourceError",
    "SQSSource",
    "SQSSourceError",
    "Scan",
    "ScanItem",
    "decode_json",
]
