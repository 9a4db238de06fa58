"""Write a bundled upstream (upstreams/bundled/<NAME>/) from a pre-training export, with its card.

Run it in the clone that made the export, right after the command that made it, so that the
commit it records is the one that made the weights:

    ./run demo --board pretrain
    .venv/bin/python scripts/make_bundle.py runs/board-pretrain/hubert_small/iter2/upstream \
        hubert_small_synth --board leaderboards/pretrain --command "./run demo --board pretrain"

What it records (bundle.json and CARD.md): the recipe and its hash (the run's recipe.json), the
commit (`git rev-parse HEAD`; a tree with uncommitted changes to tracked files is refused), the
command, the pre-training corpus's generator version and content fingerprint, the updates and
hours of pre-training (upstream.json), and the board rows of the export's name (board.json of
--board: mean and 95 % interval per task) so the card says what the weights reach.

After `./run demo` has probed the bundle, its rows on the demo board go into the card without
touching the weights:

    .venv/bin/python scripts/make_bundle.py --demo-board leaderboards hubert_small_synth --command "./run demo"
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.errors import HarnessError  # noqa: E402
from upstreams.bundled import ROOT, write_bundle  # noqa: E402


def commit() -> str:
    """HEAD's sha, refusing a tree whose tracked files differ from it."""
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True, check=True).stdout.strip()
    if dirty:
        raise HarnessError(f"uncommitted changes to tracked files ({dirty.splitlines()[0]} ...): the bundle "
                           "could not name the code that made it")
    return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()


def corpus_identity(path: str) -> dict:
    """The pre-training corpus's generator version and content fingerprint."""
    from harness.data.corpora import load_corpus
    from harness.data.corpus import content_fingerprint

    meta_path = Path(path) / "corpus.json"
    version = json.loads(meta_path.read_text()).get("version", "") if meta_path.is_file() else ""
    return {"corpus": Path(path).name, "corpus_version": version,
            "corpus_fingerprint": content_fingerprint(load_corpus(f"synth:{path}"))}


def board_rows(board: Path, name: str, data: list = None) -> list:
    """(task, metric, mean, ci95, n_seeds, task_version) of `name`'s rows in `board`/board.json
    (or in `data`, that file already read)."""
    data = json.loads((board / "board.json").read_text()) if data is None else data
    out = []
    for r in data:
        if r.get("upstream") == name:
            out.append({k: r.get(k) for k in ("task", "metric", "mean", "ci95", "n_seeds", "task_version")})
    return sorted(out, key=lambda r: str(r["task"]))


def _row_table(rows: list) -> list:
    lines = ["| task | metric | mean | 95 % interval | seeds |", "|---|---|---|---|---|"]
    for r in rows:
        ci = f"± {r['ci95']:.2f}" if isinstance(r.get("ci95"), (int, float)) else "n/a"
        mean = f"{r['mean']:.2f}" if isinstance(r.get("mean"), (int, float)) else "n/a"
        lines.append(f"| {r['task']} | {r['metric']} | {mean} | {ci} | {r['n_seeds']} |")
    return lines + [""]


def card_text(name: str, prov: dict, rows: list, demo: dict = None) -> str:
    lines = [f"# bundled:{name}", "",
             f"Weights of `{prov['export_name']}`: recipe `{prov['recipe']}` (hash `{prov['recipe_hash'][:16]}`), "
             f"{prov['updates']} updates in all (iteration {prov['iteration']} included) on synth `{prov['corpus']}` "
             f"({prov['corpus_version']}, content fingerprint `{prov['corpus_fingerprint']}`, "
             f"{prov['hours']} h), stored in float16 (the export is float32; loading widens them back).", "",
             f"Made at commit `{prov['commit']}` by `{prov['command']}`, trained in {prov['precision']} "
             "(`train.precision: fastest` measured it faster here); the same command at that commit on the "
             "same machine type and thread count, with the same precision chosen, gives the same float32 "
             f"export (docs/reproducibility.md), and `{prov['bundle_command']}` turns it into this bundle.", "",
             "What it is: a CPU-budget HuBERT trained on synthetic speech. It is a reference point for "
             "the demo board, not a general speech model.", ""]
    if rows:
        lines += ["Its rows on the board it was made with (float32 export; mean and 95 % t-interval over "
                  "probe seeds):", ""] + _row_table(rows)
    if demo and demo.get("rows"):
        lines += [f"Its rows on the demo board (`leaderboards/synth.md`, made by `{demo['command']}` at commit "
                  f"`{demo['commit']}`; this bundle as shipped, float16 weights widened to float32; mean and "
                  f"95 % t-interval over probe seeds); absolute score {demo['score']}:", ""] + _row_table(demo["rows"])
    return "\n".join(lines)


def demo_rows(board: Path, name: str, command: str) -> dict:
    """The bundle's rows on a board that probed `bundled:NAME` (the demo's), with the board's
    commit (the rows' git sha, which must be one) and the bundle's absolute score."""
    data = [r for r in json.loads((board / "board.json").read_text()) if r.get("upstream") == f"bundled:{name}"]
    rows = board_rows(board, f"bundled:{name}", data)
    shas = sorted({r.get("git_sha") for r in data})
    if len(shas) != 1:
        raise HarnessError(f"{board / 'board.json'}: bundled:{name}'s rows come from {len(shas)} commits ({shas}); "
                           "a card names one board made at one commit")
    score = next((r for r in data if r.get("score") is not None), None)
    text = f"{score['score']:.2f} ± {score['score_ci95']:.2f}" if score and score.get("score_ci95") is not None else "n/a"
    return {"rows": rows, "commit": shas[0], "command": command, "score": text}


def update_demo_rows(name: str, board: Path, command: str, root: Path = ROOT) -> Path:
    """Rewrite bundle.json's demo_board and CARD.md of an existing bundle from `board`; the weights
    and their sha are untouched."""
    folder = root / name
    meta = json.loads((folder / "bundle.json").read_text())
    meta["demo_board"] = demo_rows(board, name, command)
    (folder / "bundle.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    (folder / "CARD.md").write_text(card_text(name, meta, meta.get("board_rows") or [], meta["demo_board"]))
    return folder


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export", type=Path, help="the export folder (e.g. runs/board-pretrain/hubert_small/iter2/upstream)")
    ap.add_argument("--demo-board", type=Path, default=None,
                    help="only rewrite the card's rows on this board (one that probed bundled:NAME, e.g. "
                    "leaderboards after ./run demo) in an existing bundle; EXPORT is not read")
    ap.add_argument("name", nargs="?", default=None, help="the bundle's name (the upstream is bundled:NAME)")
    ap.add_argument("--board", type=Path, default=None, help="the board folder with board.json that probed the export")
    ap.add_argument("--command", required=True, help="the command that made the export, at this commit")
    ap.add_argument("--root", type=Path, default=ROOT)
    a = ap.parse_args(argv)
    if a.demo_board is not None and a.name is None and a.export is not None:
        a.name, a.export = str(a.export), None  # `--demo-board BOARD NAME`: the one positional is the name
    if a.name is None:
        ap.error("the bundle's name is required")
    if a.demo_board is not None:
        try:
            print(f"wrote {update_demo_rows(a.name, a.demo_board, a.command, a.root)}")
        except (HarnessError, OSError, KeyError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        return 0
    if a.export is None:
        ap.error("the export folder is required (except with --demo-board)")
    try:
        up = json.loads((a.export / "upstream.json").read_text())
        run = a.export.parent.parent
        rec = json.loads((run / "recipe.json").read_text())
        pre = up.get("pretraining", {})
        prov = {"export_name": up["name"], "family": up["family"], "recipe": pre.get("recipe", rec["recipe"].get("name")),
                "recipe_hash": rec["recipe_hash"], "updates": pre.get("updates"), "hours": pre.get("hours"),
                "iteration": pre.get("iteration"), "commit": commit(), "command": a.command,
                "bundle_command": f"scripts/make_bundle.py {a.export} {a.name} --command '{a.command}'"
                                  + (f" --board {a.board}" if a.board else ""),
                "precision": json.loads((a.export.parent / "train" / "precision.json").read_text()).get("precision", "?")
                if (a.export.parent / "train" / "precision.json").is_file() else "the recipe's precision",
                **corpus_identity(rec["corpus"])}
        rows = board_rows(a.board, up["name"]) if a.board else []
        folder = write_bundle(a.export, a.name, {**prov, "board_rows": rows}, card_text(a.name, prov, rows), a.root)
    except (HarnessError, OSError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
