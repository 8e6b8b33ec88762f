"""`python -m vatt_cli …` is the `vatt` command."""

from .main import main

main()
