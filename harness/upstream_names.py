"""What `--upstream` accepts, known without importing torch: the registered upstreams with their
facts (the rows of `harness list upstreams`), the source prefixes, the fusion form and export
folders, and the one-line error for a name that is none of them.

The upstream registry (harness.registry.UPSTREAMS, SOURCES) is filled by importing the model
modules, which import torch (seconds); `harness list upstreams` and a misspelt `--upstream` answer
from the tables here instead. tests/unit/test_upstream_names.py checks that the tables equal what
the registry builds (every upstream constructed on the meta device), so they cannot drift.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple, Union

from harness.errors import HarnessError

#: the config file of an exported upstream folder (written by harness pretrain and export)
CONFIG_FILE = "upstream.json"
FUSION_PREFIX = "fusion:"


@dataclass(frozen=True)
class UpstreamRow:
    """One upstream as listed.

    Attributes:
        name: what `--upstream` takes (a registered name or an export folder).
        family: model family (spec.family).
        layers: hidden states exposed, L+1.
        width: feature dimension D.
        frame_rate_hz: frames per second.
        params: parameter count.
        source: where the weights come from.
    """

    name: str
    family: str
    layers: int
    width: int
    frame_rate_hz: float
    params: int
    source: str


def _random(family: str, preset: str, layers: int, width: int, rate: float, params: int) -> UpstreamRow:
    return UpstreamRow(f"random:{family}_{preset}", family, layers, width, rate, params,
                       f"random init, {family} preset {preset}, seed 0")


_KALDI = "torchaudio.compliance.kaldi"
#: every registered upstream (harness.catalog.registered_rows builds the same from the registry)
REGISTERED = (
    UpstreamRow("fbank", "fbank", 1, 240, 100.0, 0, f"{_KALDI}.fbank+cmvn"),
    UpstreamRow("fbank_no_cmvn", "fbank", 1, 240, 100.0, 0, f"{_KALDI}.fbank"),
    UpstreamRow("mfcc", "mfcc", 1, 39, 100.0, 0, f"{_KALDI}.mfcc+cmvn"),
    _random("hubert", "base", 13, 768, 50.0, 94371712),
    _random("hubert", "base_40ms", 13, 768, 25.0, 94896000),
    _random("hubert", "base_80ms", 13, 768, 12.5, 95944576),
    _random("hubert", "small", 7, 256, 50.0, 5284896),
    _random("hubert", "tiny", 5, 128, 50.0, 1205248),
    _random("hubert", "tiny_40ms", 5, 128, 25.0, 1238016),
    _random("hubert", "tiny_80ms", 5, 128, 12.5, 1303552),
    _random("wavlm", "base", 13, 768, 50.0, 94381936),
    _random("wavlm", "base_plus", 13, 768, 50.0, 94381936),
    _random("wavlm", "large", 25, 1024, 50.0, 315453120),
    _random("wavlm", "tiny", 5, 128, 50.0, 1207600),
)
#: the bundled upstreams (upstreams/bundled.py): one folder each, its row in its bundle.json
BUNDLE_ROOT = Path(__file__).resolve().parents[1] / "upstreams" / "bundled"


def bundled_rows(root: Path = BUNDLE_ROOT) -> Tuple[UpstreamRow, ...]:
    """The rows of the bundled upstreams, read from their bundle.json files (no weights, no torch)."""
    import json

    rows = []
    for path in sorted(Path(root).glob("*/bundle.json")):
        try:
            r = json.loads(path.read_text())["row"]
            rows.append(UpstreamRow(f"bundled:{path.parent.name}", r["family"], int(r["layers"]), int(r["width"]),
                                    float(r["frame_rate_hz"]), int(r["params"]), f"bundle {path.parent.name}"))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise HarnessError(f"{path}: bad bundle record: {e}") from None
    return tuple(rows)


REGISTERED = tuple(sorted(REGISTERED + bundled_rows(), key=lambda r: r.name))
REGISTERED_NAMES = tuple(r.name for r in REGISTERED)
#: source prefix -> the form shown in help and errors (harness.registry.SOURCES and their `form` meta)
SOURCE_FORMS = {"fairseq": "fairseq:FILE.pt", "hf": "hf:DIR", "s3prl": "s3prl:NAME:FILE",
                "torchaudio": "torchaudio:PRESET:FILE"}
#: the forms build_upstream accepts besides registered names and sources
OTHER_FORMS = (f"{FUSION_PREFIX}A+B+... (names or folders, at the finest member's frame rate)",
               f"a folder with {CONFIG_FILE} (written by harness pretrain or export)")


def fusion_members(name: str) -> Optional[List[str]]:
    """The member names of `fusion:A+B+...` (None for any other name)."""
    if not name.startswith(FUSION_PREFIX):
        return None
    parts = name[len(FUSION_PREFIX):].split("+")
    if len(parts) < 2 or not all(parts):
        raise HarnessError(f"upstream {name!r}: a fusion names two or more upstreams, as fusion:A+B+C")
    return parts


def is_export(name_or_path: str) -> bool:
    """True for an export folder (one holding upstream.json) or a file path build_upstream reads
    as one (its upstream.json or weights)."""
    return (Path(name_or_path) / CONFIG_FILE).is_file() or name_or_path.endswith((".json", ".safetensors"))


def export_folders(runs_root: Union[str, Path]) -> List[Path]:
    """Folders under `runs_root` holding an upstream.json (pre-training iterations, exports)."""
    root = Path(runs_root)
    return sorted(p.parent for p in root.rglob(CONFIG_FILE)) if root.is_dir() else []


def accepted_forms() -> List[str]:
    """Every form `--upstream` accepts: registered names, each source's form, fusion, folders."""
    return ["a registered name (harness list upstreams)", *SOURCE_FORMS.values(), *OTHER_FORMS]


def check_upstream_name(name: str, runs_root: Union[str, Path] = Path("runs")) -> str:
    """`name` if it has one of the accepted forms (a fusion's members each), else
    `unknown_upstream`'s error; what the name points at (a source's file, a folder's weights)
    is checked when the upstream is built."""
    members = fusion_members(name)
    if members is not None:
        for m in members:
            check_upstream_name(m, runs_root)
        return name
    prefix, _, rest = name.partition(":")
    if name in REGISTERED_NAMES or (rest and prefix in SOURCE_FORMS) or is_export(name):
        return name
    raise unknown_upstream(name, runs_root)


def unknown_upstream(name: str, runs_root: Union[str, Path] = Path("runs")) -> HarnessError:
    """The error for `name` matching no accepted form: what is wrong with it, close names that
    exist (registered names, export folders under `runs_root`) and the accepted forms."""
    prefix, colon, _ = name.partition(":")
    path = Path(name)
    if colon and prefix.isidentifier() and not any(n.startswith(prefix + ":") for n in REGISTERED_NAMES) \
            and prefix + ":" != FUSION_PREFIX:
        what = f"unknown upstream source {prefix + ':'!r}"
        candidates = [p + ":" for p in sorted(SOURCE_FORMS)]
        probe = prefix + ":"
    elif path.is_dir():
        what = f"{name}: folder has no {CONFIG_FILE}"
        candidates, probe = [str(f) for f in export_folders(runs_root)], name
    elif path.is_file():
        what = f"{name}: a checkpoint file needs its source's prefix"
        candidates, probe = [], name
    else:
        what = f"unknown upstream {name!r}" + (" (no such folder)" if "/" in name else "")
        candidates = sorted(REGISTERED_NAMES) + [str(f) for f in export_folders(runs_root)]
        probe = name
    close = difflib.get_close_matches(probe, candidates, n=3, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return HarnessError(f"{what}.{hint} Accepted: {'; '.join(accepted_forms())}")
