"""python -m harness.pretrain --recipe R --corpus C --out DIR (torchrun-compatible)."""

from harness.pretrain.run import main

raise SystemExit(main())
