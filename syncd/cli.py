"""syncd: runs a support team's processes across Zendesk, Salesforce and SharePoint."""

import typer

from syncd.commands.audit import audit
from syncd.commands.check import check, schema
from syncd.commands.demo import demo
from syncd.commands.doctor import doctor
from syncd.commands.intents import intents
from syncd.commands.rehearse import rehearse_command
from syncd.commands.run import plan, run
from syncd.commands.sandbox import sandbox

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help=__doc__, rich_markup_mode="markdown"
)


@app.callback()
def main() -> None:
    """Run support processes from YAML rules across Zendesk, Salesforce and SharePoint."""


app.command()(sandbox)
app.command()(check)
app.command()(schema)
app.command()(intents)
app.command()(audit)
app.command()(run)
app.command()(plan)
app.command()(demo)
app.command("rehearse")(rehearse_command)
app.command()(doctor)

if __name__ == "__main__":
    app()
