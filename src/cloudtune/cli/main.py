"""`cloudtune`: the root command. Every command but `server` and `users create-admin|add`
talks to a server through the SDK only (cloudtune.client)."""

from __future__ import annotations

from typing import Annotated

import typer

from cloudtune import __version__
from cloudtune.cli import account, admin, configs, datasets, jobs, server, users
from cloudtune.cli.common import target

app = typer.Typer(
    rich_markup_mode=None,
    name="cloudtune",
    help="A self-hosted control plane for fine-tuning jobs on GPUs.\n\n"
    "The server is --url, else CLOUDTUNE_URL (or SIMPLETUNER_URL), else the one you logged in "
    "to, else http://127.0.0.1:8001; the credential is --api-key, else CLOUDTUNE_API_KEY, "
    "else your saved login. Exit status: 0 done, 1 refused or the job did not complete, "
    "2 no server answered or bad usage.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def root(
    url: Annotated[str | None, typer.Option("--url", help="The server's base URL.")] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", help="An API key (stk_…).", envvar=None)
    ] = None,
) -> None:
    target.url = url
    target.api_key = api_key


app.command("server")(server.serve)
app.command("login")(account.login)
app.command("logout")(account.logout)
app.command("whoami")(account.whoami)
app.add_typer(jobs.app, name="jobs")
app.add_typer(configs.app, name="configs")
app.add_typer(datasets.app, name="datasets")
app.add_typer(account.keys, name="keys")
app.add_typer(admin.cost_limit, name="cost-limit")
app.add_typer(admin.providers, name="providers")
app.add_typer(users.app, name="users")


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


if __name__ == "__main__":
    app()
