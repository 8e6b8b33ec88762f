"""`python -m app.bulk ...` (under `torchrun` for several processes)."""

from .run import main

raise SystemExit(main())
