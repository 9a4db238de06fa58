"""`harness export UPSTREAM --format NAME --out DIR`: write a project upstream in another
toolkit's format. FORMATS names each format's writer as "module:function" so that the command
line lists the formats without importing torch; a writer takes (Upstream, out folder) and returns
what it wrote (the folder, or the checkpoint file inside it for single-file formats)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Dict, Union

from harness.errors import HarnessError

#: format name -> "module:function" of its writer
FORMATS: Dict[str, str] = {
    "hf": "upstreams.source_hf:export_hf",  # transformers HubertModel / WavLMModel folder
    "s3prl": "upstreams.source_s3prl:export_s3prl",  # OUT/<OUT name>.pt for s3prl's hubert_local / wavlm_local
}


def export(upstream: str, fmt: str, out: Union[str, Path]) -> Path:
    """Build `upstream` (a name, folder or source, as `harness eval` takes it) and write it into
    folder `out` in format `fmt`; returns the folder or, for a single-file format, the file.

    Raises:
        HarnessError: for an unknown format (listing the known ones) or an upstream the format's
            writer cannot represent.
    """
    from harness.evaluate import build_upstream

    if fmt not in FORMATS:
        raise HarnessError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    module, _, function = FORMATS[fmt].partition(":")
    writer = getattr(importlib.import_module(module), function)
    return writer(build_upstream(upstream), Path(out))
