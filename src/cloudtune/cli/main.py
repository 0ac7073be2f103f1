"""`cloudtune`: the root command."""

from __future__ import annotations

import typer

from cloudtune import __version__
from cloudtune.cli import jobs, server, users

app = typer.Typer(
    name="cloudtune",
    help="A self-hosted control plane for fine-tuning jobs on GPUs.",
    no_args_is_help=True,
)
app.command("server")(server.serve)
app.add_typer(jobs.app, name="jobs")
app.add_typer(users.app, name="users")


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


if __name__ == "__main__":
    app()
