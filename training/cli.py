"""`vatt train | eval | finetune | probe | datasets | synth`: the training commands, beside the code they run.

Each passes its arguments to the module's own `main(argv)` (argparse there; `--help` lists them);
`vatt_cli.main` merges this app into the `vatt` command. The training modules import only when a
command runs, so `vatt --help` and the service commands never load them.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable

import typer

from vatt_cli import PASS_THROUGH, fail, one_line_errors

__all__ = ["app", "run_training", "TRAIN_EXTRA_HINT", "COMMANDS"]

TRAIN_EXTRA_HINT = "pip install 'vatt[train]' (or, in a checkout, pip install -e '.[train]')"

app = typer.Typer(help="Train, fine-tune and evaluate VATT.", no_args_is_help=True, pretty_exceptions_enable=False,
                  add_completion=False)


def run_training(module: str, argv: list[str]) -> None:
    """Run `training.<module>.main(argv)`; a non-zero return is the command's exit code."""
    if module == "pretrain" and importlib.util.find_spec("tensorboard") is None:  # `train`, `demo --train`
        raise fail(f"training writes TensorBoard logs and tensorboard is not installed: {TRAIN_EXTRA_HINT}")
    try:
        mod = importlib.import_module(f"training.{module}")
    except ImportError as exc:
        raise RuntimeError(f"training.{module} is not available ({exc})") from None
    if not hasattr(mod, "main"):
        raise RuntimeError(f"training.{module} has no main(argv)")
    code = mod.main(argv)
    if code:
        raise typer.Exit(int(code))


# command -> (training module whose main(argv) it runs, help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("pretrain", "Pretrain VATT (arguments go to training.pretrain; --help lists them)."),
    "eval": ("evaluate", "Evaluate a model directory (arguments go to training.evaluate)."),
    "finetune": ("finetune", "Fine-tune a pretrained backbone into a classifier (arguments go to training.finetune)."),
    "probe": ("probe", "Linear evaluation on frozen backbone features (arguments go to training.probe)."),
    "datasets": ("datasets", "Official dataset annotations -> manifests, manifests -> WebDataset shards (arguments "
                             "go to training.datasets: prepare NAME ... | shard MANIFEST --out DIR)."),
    "synth": ("synthetic", "Generate the synthetic narrated corpus (arguments go to training.synthetic)."),
}


def _pass_through(module: str) -> Callable[[typer.Context], None]:
    @one_line_errors
    def command(ctx: typer.Context) -> None:
        run_training(module, list(ctx.args))

    command.__name__ = f"run_{module}"
    return command


for _name, (_module, _help) in COMMANDS.items():
    app.command(_name, help=_help, context_settings=PASS_THROUGH)(_pass_through(_module))
